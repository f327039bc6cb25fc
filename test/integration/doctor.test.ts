import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isolatedEnv, sos } from '../helpers/cli.js';
import { pgSchemaFor, services, tempDir } from '../helpers/isolation.js';

interface DoctorReport {
  healthy: boolean;
  checks: { name: string; status: string; detail: string; hint?: string }[];
}

const byName = (report: DoctorReport) => Object.fromEntries(report.checks.map((c) => [c.name, c]));

describe('sos doctor', () => {
  it('fails (exit 1) on an uninitialised database, then passes after init', async (ctx) => {
    const env = isolatedEnv(tempDir(ctx));
    const before = await sos(['doctor', '--json'], env);
    expect(before.code).toBe(1);
    const report = before.json<DoctorReport>();
    expect(report.healthy).toBe(false);
    expect(byName(report).database).toMatchObject({
      status: 'fail',
      hint: expect.stringContaining('sos init'),
    });
    expect(byName(report).node?.status).toBe('ok');

    expect((await sos(['init'], env)).code).toBe(0);
    const after = await sos(['doctor'], env);
    expect(after.code).toBe(0);
    expect(after.stdout).toMatch(/^ok\s+database\s+sqlite at .*schema version \d+$/m);
    expect(after.stdout).toMatch(/^skip\s+redis/m);
    expect(after.stdout).toMatch(/^(ok|warn)\s+tmux/m);
  });

  it('checks a configured Redis: ok when it answers, a failure with a hint when it does not', async (ctx) => {
    const env = isolatedEnv(tempDir(ctx));
    await sos(['init'], env);
    if (services.redis) {
      const good = (
        await sos(['doctor', '--json'], { ...env, SOS_REDIS_URL: services.redisUrl })
      ).json<DoctorReport>();
      expect(byName(good).redis).toMatchObject({ status: 'ok', detail: expect.stringContaining('PONG') });
    }
    // Port 1 on loopback: nothing listens there.
    const bad = await sos(['doctor', '--json'], { ...env, SOS_REDIS_URL: 'redis://127.0.0.1:1' });
    expect(bad.code).toBe(1);
    expect(byName(bad.json<DoctorReport>()).redis).toMatchObject({
      status: 'fail',
      hint: expect.stringContaining('install-services'),
    });
  });

  it.skipIf(!services.postgres)(
    'checks PostgreSQL and pgvector when the Store is on PostgreSQL',
    async (ctx) => {
      const schema = pgSchemaFor(ctx);
      const env = isolatedEnv(tempDir(ctx), { SOS_DB: services.postgresUrl, SOS_PG_SCHEMA: schema });
      expect((await sos(['doctor', '--json'], env)).code).toBe(1); // schema not created yet
      expect((await sos(['init'], env)).code).toBe(0);
      const result = await sos(['doctor', '--json'], env);
      expect(result.code).toBe(0);
      const checks = byName(result.json<DoctorReport>());
      expect(checks.database).toMatchObject({ status: 'ok', detail: expect.stringContaining('postgres') });
      expect(checks.postgres?.status).toBe('ok');
      expect(checks.pgvector?.status).toBe(services.pgvector ? 'ok' : 'warn');
      const unreachable = await sos(['doctor', '--json'], {
        ...env,
        SOS_DB: 'postgres://postgres@127.0.0.1:1/x',
      });
      expect(unreachable.code).toBe(1);
    },
  );

  it('prints the resolved configuration with sources and redacts secrets', async (ctx) => {
    const dir = tempDir(ctx);
    const env = isolatedEnv(dir, {
      SOS_TOKEN: 'sos_secret_value',
      SOS_REDIS_URL: 'redis://:hunter2@127.0.0.1:6379',
    });
    const result = await sos(['config', '--json', '--db', join(dir, 'x.db')], env);
    expect(result.code).toBe(0);
    expect(result.stdout).not.toContain('sos_secret_value');
    expect(result.stdout).not.toContain('hunter2');
    const vars = result.json<{ variables: { name: string; source: string; value: string | null }[] }>()
      .variables;
    expect(vars.find((v) => v.name === 'SOS_DB')).toMatchObject({ source: 'flag', value: join(dir, 'x.db') });
    expect(vars.find((v) => v.name === 'SOS_TOKEN')).toMatchObject({ source: 'env', value: '***' });
    expect(vars.find((v) => v.name === 'SOS_PROJECT')).toMatchObject({ source: 'default', value: 'default' });
  });
});
