import { join } from 'node:path';
import { describe, expect, it, type TestContext } from 'vitest';
import { openStore, parseStoreTarget } from '../../src/core/store/open.js';
import { isolatedEnv, sos } from '../helpers/cli.js';
import { dumpDatabase } from '../helpers/dump.js';
import { ADAPTERS, type AdapterFixture, tempDir } from '../helpers/isolation.js';

/** The CLI as a user runs it: the built binary, a private database, every adapter. */

function setup(ctx: TestContext, adapter: AdapterFixture) {
  const home = tempDir(ctx);
  const target = adapter.target(ctx);
  const env = isolatedEnv(home, target.env);
  // The database is named with --db, as a user pointing sos at PostgreSQL would.
  const run = (args: string[], extra: Record<string, string> = {}, input?: string) =>
    sos(['--db', target.db, ...args], { ...env, ...extra }, input === undefined ? {} : { input });
  return { home, target, env, run, dump: () => dumpDatabase(target.db, target.env) };
}

describe.each(ADAPTERS)('sos CLI on $name', (adapter) => {
  describe.skipIf(!adapter.available)(adapter.name, () => {
    it('initialises, registers an agent, and refuses a bad name without changing the database', async (ctx) => {
      const { run, dump } = setup(ctx, adapter);
      const init = await run(['init']);
      expect(init.stderr).toBe('');
      expect(init.code).toBe(0);
      expect(init.stdout).toContain('project "default" created');
      expect(init.stdout).toContain('sos agents add');

      const again = await run(['init', '--json']);
      expect(again.code).toBe(0);
      expect(again.json()).toMatchObject({
        appliedMigrations: [],
        project: 'default',
        projectCreated: false,
      });

      expect((await run(['agents', 'add', 'kasra', '--kind', 'claude', '--cap', 'code'])).code).toBe(0);
      const list = await run(['agents', 'list', '--json']);
      expect(list.code).toBe(0);
      expect(list.json()).toEqual([
        expect.objectContaining({
          project: 'default',
          name: 'kasra',
          kind: 'claude',
          role: 'worker',
          capabilities: ['code'],
          session: null,
        }),
      ]);

      const before = await dump();
      const bad = await run(['agents', 'add', 'Bad Name']);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/^sos: invalid agent name "Bad Name"/);
      expect(bad.stderr.trim().split('\n')).toHaveLength(1);
      expect(await dump()).toEqual(before);

      for (const args of [
        ['agents', 'add', 'kasra'],
        ['agents', 'add', 'ok-name', '--cap', 'BAD CAP'],
        ['agents', 'add', 'ok-name', '--session', 'screen:x'],
        ['squads', 'join', 'nowhere', '--agent', 'kasra'],
        ['tokens', 'create', '--agent', 'ghost'],
      ]) {
        const refused = await run(args);
        expect(refused.code, args.join(' ')).toBeGreaterThan(1);
      }
      expect(await dump()).toEqual(before);
    });

    it('maps every error class to its exit code, and prints JSON errors under --json', async (ctx) => {
      const { run } = setup(ctx, adapter);
      const notInit = await run(['agents', 'list', '--json']);
      expect(notInit.code).toBe(5);
      expect(notInit.json()).toMatchObject({
        error: { code: 'unavailable', message: expect.stringMatching(/not initialised|no sos database/) },
      });

      expect((await run(['init'])).code).toBe(0);
      expect((await run(['frobnicate'])).code).toBe(2);
      expect((await run(['agents', 'add', 'x', '--kind', 'robot'])).code).toBe(2);
      expect((await run(['agents', 'add', 'x', '--no-such-flag'])).code).toBe(2);
      const missing = await run(['agents', 'show', 'nobody', '--json']);
      expect(missing.code).toBe(3);
      expect(missing.json()).toEqual({
        error: {
          code: 'not_found',
          message: 'agent "nobody" does not exist in project "default"',
          hint: expect.any(String),
        },
      });
      expect((await run(['agents', 'add', 'kasra'])).code).toBe(0);
      const dup = await run(['agents', 'add', 'kasra', '--json']);
      expect(dup.code).toBe(4);
      expect(dup.json()).toMatchObject({ error: { code: 'conflict' } });
      expect((await run(['agents', 'list', '--project', 'ghost'])).code).toBe(3);

      // No stack trace unless SOS_DEBUG=1.
      expect(missing.stderr).not.toMatch(/\n\s+at /);
      const plain = await run(['agents', 'show', 'nobody']);
      expect(plain.stderr).not.toMatch(/\n\s+at /);
      const debug = await run(['agents', 'show', 'nobody'], { SOS_DEBUG: '1' });
      expect(debug.code).toBe(3);
      expect(debug.stderr).toMatch(/\n\s+at /);
    });

    it('creates tokens shown once and stored hashed, and scopes every call by the token', async (ctx) => {
      const { run, dump, target } = setup(ctx, adapter);
      await run(['init']);
      await run(['agents', 'add', 'kasra', '--kind', 'claude']);
      await run(['agents', 'add', 'codex', '--kind', 'codex']);
      const created = await run(['tokens', 'create', '--agent', 'kasra', '--json']);
      expect(created.code).toBe(0);
      const { secret, id, prefix } = created.json<{ secret: string; id: string; prefix: string }>();
      expect(secret).toMatch(/^sos_[A-Za-z0-9_-]{43}$/);
      expect(secret.startsWith(prefix)).toBe(true);
      expect(JSON.stringify(await dump())).not.toContain(secret);
      const listed = await run(['tokens', 'list', '--json']);
      expect(JSON.stringify(listed.json())).not.toContain(secret);

      const who = await run(['whoami', '--json'], { SOS_TOKEN: secret });
      expect(who.json()).toMatchObject({ project: 'default', agent: 'kasra', role: 'agent', via: 'token' });
      expect((await run(['agents', 'list', '--json'], { SOS_TOKEN: secret })).code).toBe(0);

      // An agent token cannot administer, impersonate, or reach another project.
      expect((await run(['agents', 'add', 'intruder'], { SOS_TOKEN: secret })).code).toBe(6);
      expect((await run(['tokens', 'create', '--agent', 'codex'], { SOS_TOKEN: secret })).code).toBe(6);
      expect((await run(['whoami', '--as', 'codex'], { SOS_TOKEN: secret })).code).toBe(6);
      expect((await run(['projects', 'create', 'beta'], { SOS_TOKEN: secret })).code).toBe(6);
      const cross = await run(['agents', 'list', '--project', 'beta', '--json'], { SOS_TOKEN: secret });
      expect(cross.code).toBe(6);
      expect(cross.json()).toMatchObject({ error: { code: 'permission_denied' } });
      expect((await run(['whoami'], { SOS_TOKEN: 'sos_not-a-real-token' })).code).toBe(6);

      // An admin token may act as another agent of its project.
      const admin = (
        await run(['tokens', 'create', '--agent', 'kasra', '--role', 'admin', '--quiet'])
      ).stdout.trim();
      expect((await run(['whoami', '--as', 'codex', '--json'], { SOS_TOKEN: admin })).json()).toMatchObject({
        agent: 'codex',
        role: 'admin',
      });

      expect((await run(['tokens', 'revoke', id])).code).toBe(0);
      expect((await run(['whoami'], { SOS_TOKEN: secret })).code).toBe(6);
      expect((await run(['tokens', 'revoke', 'tok_nothing'])).code).toBe(3);

      // Every refusal was recorded, so it can be counted.
      const store = await openStore({
        target: parseStoreTarget(target.db),
        pgSchema: target.env.SOS_PG_SCHEMA ?? 'sos',
        busyTimeoutMs: 5_000,
      });
      try {
        const counts = await store.security.count();
        expect(counts.cross_project).toBe(1);
        expect(counts.bad_token).toBe(2);
        expect(counts.forbidden).toBe(4);
      } finally {
        await store.close();
      }
    });

    it('manages squads and projects, keeping projects apart', async (ctx) => {
      const { run } = setup(ctx, adapter);
      await run(['init']);
      await run(['agents', 'add', 'kasra']);
      await run(['agents', 'add', 'codex']);
      expect((await run(['squads', 'create', 'core', '--description', 'the core team'])).code).toBe(0);
      expect((await run(['squads', 'create', 'core'])).code).toBe(4);
      expect((await run(['squads', 'join', 'core', '--agent', 'kasra'])).stdout).toContain(
        'kasra joined squad "core"',
      );
      expect((await run(['squads', 'join', 'core', '--as', 'codex'])).code).toBe(0);
      expect((await run(['squads', 'join', 'core', '--agent', 'kasra'])).stdout).toContain('already in');
      expect((await run(['squads', 'show', 'core', '--json'])).json()).toMatchObject({
        members: ['codex', 'kasra'],
        description: 'the core team',
      });
      expect((await run(['squads', 'join', 'core'])).code).toBe(2); // nobody to join as
      expect((await run(['squads', 'leave', 'core', '--agent', 'codex'])).code).toBe(0);
      expect((await run(['squads', 'list', '--json'])).json()).toEqual([
        expect.objectContaining({ name: 'core', members: ['kasra'] }),
      ]);
      expect((await run(['agents', 'show', 'kasra', '--json'])).json()).toMatchObject({ squads: ['core'] });

      expect((await run(['projects', 'create', 'beta'])).code).toBe(0);
      expect((await run(['projects', 'create', 'Beta'])).code).toBe(2);
      expect((await run(['projects', 'list', '--json'])).json()).toEqual([
        expect.objectContaining({ slug: 'beta' }),
        expect.objectContaining({ slug: 'default' }),
      ]);
      expect((await run(['agents', 'add', 'kasra', '--kind', 'gemini'], { SOS_PROJECT: 'beta' })).code).toBe(
        0,
      );
      expect((await run(['agents', 'list', '--json', '--project', 'beta'])).json()).toEqual([
        expect.objectContaining({ name: 'kasra', kind: 'gemini' }),
      ]);
      expect((await run(['agents', 'show', 'codex', '--project', 'beta'])).code).toBe(3);
      const betaToken = (
        await run(['tokens', 'create', '--agent', 'kasra', '--quiet', '--project', 'beta'])
      ).stdout.trim();
      expect((await run(['projects', 'list', '--json'], { SOS_TOKEN: betaToken })).json()).toEqual([
        expect.objectContaining({ slug: 'beta' }),
      ]);
      expect((await run(['agents', 'remove', 'codex'])).code).toBe(0);
      expect((await run(['agents', 'remove', 'codex'])).code).toBe(3);
    });

    it('reads configuration from a config file, below the environment and flags', async (ctx) => {
      const { env, target, home } = setup(ctx, adapter);
      const { mkdirSync, writeFileSync } = await import('node:fs');
      mkdirSync(join(home, 'config', 'sos'), { recursive: true });
      writeFileSync(
        join(home, 'config', 'sos', 'config.toml'),
        `db = "${target.db}"\nproject = "fromfile"\n`,
      );
      expect((await sos(['init'], env)).code).toBe(0);
      const config = (await sos(['config', '--json'], env)).json<{
        variables: { name: string; value: string; source: string }[];
      }>();
      const project = config.variables.find((v) => v.name === 'SOS_PROJECT');
      expect(project).toMatchObject({ value: 'fromfile', source: 'file' });
      expect((await sos(['agents', 'add', 'a1'], env)).code).toBe(0);
      expect((await sos(['agents', 'list', '--json', '--project', 'fromfile'], env)).json()).toHaveLength(1);
      expect((await sos(['agents', 'list', '--json'], { ...env, SOS_PROJECT: 'nope' })).code).toBe(3);
    });
  });
});
