import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, type TestContext } from 'vitest';
import { isolatedEnv, ROOT, sos } from '../helpers/cli.js';
import { pgSchemaFor, services, tempDir } from '../helpers/isolation.js';

/**
 * Startup budget: one-shot commands load only what they need. The trace records
 * every module URL resolved in the child process.
 */

const HEAVY = ['ink', 'react', 'pg', 'ioredis', '@modelcontextprotocol/sdk', '@modelcontextprotocol/server', '@modelcontextprotocol/core', 'node-pty'];

async function loadedPackages(ctx: TestContext, args: string[], extraEnv: Record<string, string> = {}) {
  const dir = tempDir(ctx);
  const trace = join(dir, 'trace.txt');
  const env = isolatedEnv(dir, { SOS_TRACE_FILE: trace, ...extraEnv });
  const result = await sos(args, env, {
    nodeArgs: ['--import', join(ROOT, 'test/fixtures/trace-imports.mjs')],
  });
  const urls = readFileSync(trace, 'utf8').split('\n').filter(Boolean);
  const packages = new Set(
    urls.flatMap((u) => {
      const match = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(u);
      return match ? [match[1]!] : [];
    }),
  );
  return { result, packages, urls };
}

describe('what a command loads', () => {
  it('`sos --help` loads commander only: no handler, no database driver, no zod', async (ctx) => {
    const { result, packages, urls } = await loadedPackages(ctx, ['--help']);
    expect(result.code).toBe(0);
    expect([...packages]).toEqual([]); // commander is bundled; no package is imported from node_modules
    const chunks = urls.filter((u) => u.includes('/dist/chunks/'));
    expect(chunks.filter((u) => /\.run-/.test(u))).toEqual([]); // no command handler
    for (const chunk of chunks) {
      const code = readFileSync(new URL(chunk), 'utf8');
      expect(code, chunk).not.toMatch(/ZodError|better-sqlite3|resolveConfig|openStore/);
    }
  });

  it('`sos agents list` on SQLite loads better-sqlite3 and none of the heavy modules', async (ctx) => {
    const db = join(tempDir(ctx), 'sos.db');
    const home = tempDir(ctx);
    expect((await sos(['init', '--db', db], isolatedEnv(home))).code).toBe(0);
    const { result, packages } = await loadedPackages(ctx, ['agents', 'list', '--db', db]);
    expect(result.code, result.stderr).toBe(0);
    expect(packages.has('better-sqlite3')).toBe(true);
    for (const heavy of HEAVY) expect(packages.has(heavy), heavy).toBe(false);
  });

  it.skipIf(!services.postgres)(
    '`sos agents list` on PostgreSQL loads pg (the trace can see a load) and not better-sqlite3',
    async (ctx) => {
      const schema = pgSchemaFor(ctx);
      const env = isolatedEnv(tempDir(ctx), { SOS_PG_SCHEMA: schema });
      expect((await sos(['init', '--db', services.postgresUrl], env)).code).toBe(0);
      const { result, packages } = await loadedPackages(
        ctx,
        ['agents', 'list', '--db', services.postgresUrl],
        { SOS_PG_SCHEMA: schema },
      );
      expect(result.code, result.stderr).toBe(0);
      expect(packages.has('pg')).toBe(true);
      expect(packages.has('better-sqlite3')).toBe(false);
      for (const heavy of HEAVY.filter((h) => h !== 'pg')) expect(packages.has(heavy), heavy).toBe(false);
    },
  );

  it('`sos top --once` loads neither ink nor react (the view model is plain data)', async (ctx) => {
    const db = join(tempDir(ctx), 'sos.db');
    expect((await sos(['init', '--db', db], isolatedEnv(tempDir(ctx)))).code).toBe(0);
    const { result, packages, urls } = await loadedPackages(ctx, ['top', '--once', '--db', db]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('sos top ·');
    for (const heavy of HEAVY) expect(packages.has(heavy), heavy).toBe(false);
    // Ink and React are bundled into dist/chunks: no chunk that carries them is loaded either.
    const chunks = urls.filter((u) => u.includes('/dist/chunks/'));
    expect(chunks.length).toBeGreaterThan(0);
    for (const chunk of chunks) expect(readFileSync(new URL(chunk), 'utf8'), chunk).not.toMatch(/node_modules\/(ink|react)\//);
  });

  it('ink and react are bundled into one chunk, reached only from the `sos top` handler', () => {
    const dir = join(ROOT, 'dist/chunks');
    const files = readdirSync(dir).filter((f) => f.endsWith('.js'));
    // esbuild names each bundled module's path in a comment; nothing imports them from node_modules.
    // (Ink's devtools, loaded by Ink itself only with DEV=true, are a chunk of their own.)
    const uses = files.filter((f) => /node_modules\/(ink|react)\//.test(readFileSync(join(dir, f), 'utf8')) && !f.startsWith('devtools-'));
    for (const f of files) expect(readFileSync(join(dir, f), 'utf8'), f).not.toMatch(/from\s*"(ink|react)"|import\("(ink|react)"\)/);
    expect(uses.length).toBe(1);
    const referrers = [...readdirSync(join(ROOT, 'dist')).filter((f) => f.endsWith('.js')).map((f) => `../${f}`), ...files].filter((f) => f !== uses[0] && readFileSync(join(dir, f), 'utf8').includes(uses[0]!));
    expect(referrers.map((f) => f.replace(/-[A-Z0-9]+\.js$/, ''))).toEqual(['top.run']);
  });

  it('the launcher refuses Node.js older than 20 with a clear message', () => {
    const launcher = readFileSync(join(ROOT, 'bin/sos'), 'utf8');
    expect(launcher).toMatch(/major < 20/);
    expect(launcher).toMatch(/sos needs Node\.js 20 or newer/);
  });
});
