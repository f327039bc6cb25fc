// Bundles src/cli.ts into dist/ with code splitting, so `sos --help` loads only commander and the
// command definitions; every handler and backend is a lazily imported chunk.
import { cpSync, rmSync } from 'node:fs';
import { build } from 'esbuild';

rmSync('dist', { recursive: true, force: true });
await build({
  entryPoints: { cli: 'src/cli.ts', index: 'src/index.ts', 'pty-host': 'src/core/sessions/pty-host-main.ts', 'sim-agent': 'src/core/sim/agent-main.ts' },
  outdir: 'dist',
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
cpSync('src/core/store/migrations', 'dist/chunks/migrations', { recursive: true });
