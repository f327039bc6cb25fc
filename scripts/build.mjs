// Bundles src/cli.ts into dist/ with code splitting, so `sos --help` loads only commander and the
// command definitions; every handler and backend is a lazily imported chunk.
import { cpSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { build } from 'esbuild';

// Built into a directory of its own, then moved into dist/ file by file (each rename atomic): a
// process already running from dist/ (a test's daemon, `sos top`) keeps finding the chunks it
// lazily imports, which removing dist/ before building broke.
const out = `dist.build-${process.pid}`;
rmSync(out, { recursive: true, force: true });
await build({
  entryPoints: { cli: 'src/cli.ts', index: 'src/index.ts', 'pty-host': 'src/core/sessions/pty-host-main.ts', 'sim-agent': 'src/core/sim/agent-main.ts' },
  outdir: out,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: 'linked',
  chunkNames: 'chunks/[name]-[hash]',
  // Native addons and heavy optional backends stay external (resolved from node_modules when a
  // command needs them); small pure-JS libraries are bundled so startup reads few files.
  external: [
    'better-sqlite3',
    'pg',
    'pg-native',
    'ioredis',
    // Ink and React are bundled into `sos top`'s chunks: loaded from node_modules they were
    // ~500 ms of module loading (es-toolkit alone is hundreds of files) before the first frame.
    // Ink loads its devtools (and so these) only with DEV=true.
    'react-devtools-core',
    'ws',
    'node-pty',
    '@modelcontextprotocol/*',
  ],
  // React (bundled into sos top's chunk) picks its build from NODE_ENV: the production build is
  // the one a CLI ships, and fixing it here drops the development build from the chunk.
  define: { 'process.env.NODE_ENV': '"production"' },
  // Bundled CommonJS dependencies (commander) call require() for Node built-ins.
  banner: {
    js: "import { createRequire as __sosCreateRequire } from 'node:module'; const require = __sosCreateRequire(import.meta.url);",
  },
  logLevel: 'warning',
});
// Migrations are read at run time from `<dir of the running module>/migrations/<dialect>`.
cpSync('src/core/store/migrations', join(out, 'chunks/migrations'), { recursive: true });

function files(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)]));
}
const built = new Set();
for (const file of files(out)) {
  const target = join('dist', relative(out, file));
  mkdirSync(dirname(target), { recursive: true });
  renameSync(file, target);
  built.add(target);
}
rmSync(out, { recursive: true, force: true });
// Chunks of earlier builds stay a while for processes still running from them, then go.
const stale = Date.now() - 30 * 60_000;
for (const file of files('dist')) {
  if (!built.has(file) && statSync(file).mtimeMs < stale) rmSync(file, { force: true });
}
