import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveConfig, xdgDataDir } from '../../src/core/config/resolve.js';
import { VARIABLES } from '../../src/core/config/variables.js';
import { UsageError } from '../../src/core/errors.js';
import { parseStoreTarget } from '../../src/core/store/open.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function home(files: Record<string, string> = {}): NodeJS.ProcessEnv {
  const dir = mkdtempSync(join(tmpdir(), 'sos-config-'));
  dirs.push(dir);
  mkdirSync(join(dir, 'config', 'sos'), { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, 'config', 'sos', name), text);
  return { HOME: dir, XDG_CONFIG_HOME: join(dir, 'config'), XDG_DATA_HOME: join(dir, 'data') };
}

describe('configuration', () => {
  it('declares every variable once, with an SOS_ name, a doc line and a unique file key', () => {
    const specs = Object.values(VARIABLES);
    expect(new Set(specs.map((s) => s.env)).size).toBe(specs.length);
    expect(new Set(specs.map((s) => s.key)).size).toBe(specs.length);
    for (const spec of specs) {
      expect(spec.env).toMatch(/^SOS_[A-Z_]+$/);
      expect(spec.doc.length).toBeGreaterThan(10);
    }
  });

  it('defaults the data directory to $XDG_DATA_HOME/sos, then ~/.local/share/sos', async () => {
    const env = home();
    const resolved = await resolveConfig({ env, flags: {} });
    expect(resolved.values.dataDir).toBe(join(env.XDG_DATA_HOME!, 'sos'));
    expect(resolved.values.db).toBe(join(env.XDG_DATA_HOME!, 'sos', 'sos.db'));
    expect(resolved.sources.db).toBe('default');
    expect(xdgDataDir({ HOME: '/home/u' })).toBe('/home/u/.local/share/sos');
  });

  it('applies flag > environment > config file > default, and says where each value came from', async () => {
    const env = {
      ...home({ 'config.json': JSON.stringify({ project: 'from-file', agent: 'file-agent', db: '/f.db' }) }),
    };
    const fileOnly = await resolveConfig({ env, flags: {} });
    expect(fileOnly.values.project).toBe('from-file');
    expect(fileOnly.sources.project).toBe('file');
    const withEnv = await resolveConfig({ env: { ...env, SOS_PROJECT: 'from-env' }, flags: {} });
    expect(withEnv.values.project).toBe('from-env');
    expect(withEnv.sources.project).toBe('env');
    const withFlag = await resolveConfig({
      env: { ...env, SOS_PROJECT: 'from-env' },
      flags: { project: 'from-flag' },
    });
    expect(withFlag.values.project).toBe('from-flag');
    expect(withFlag.sources.project).toBe('flag');
    expect(withFlag.values.agent).toBe('file-agent');
    expect(withFlag.sources.pgSchema).toBe('default');
  });

  it('reads TOML when there is no JSON file, and coerces numbers and booleans', async () => {
    const env = home({
      'config.toml': 'busy_timeout_ms = 2500\ndebug = true\nredis_url = "redis://127.0.0.1:6379"\n',
    });
    const resolved = await resolveConfig({ env, flags: {} });
    expect(resolved.values.busyTimeoutMs).toBe(2500);
    expect(resolved.values.debug).toBe(true);
    expect(resolved.values.redisUrl).toBe('redis://127.0.0.1:6379');
    expect(resolved.file).toMatch(/config\.toml$/);
    expect(
      (await resolveConfig({ env: { ...env, SOS_BUSY_TIMEOUT_MS: '40' }, flags: {} })).values.busyTimeoutMs,
    ).toBe(40);
  });

  it('refuses invalid values, unknown file keys and broken files with usage errors naming the source', async () => {
    const env = home();
    await expect(resolveConfig({ env: { ...env, SOS_PROJECT: 'Bad Project' }, flags: {} })).rejects.toThrow(
      /SOS_PROJECT/,
    );
    await expect(resolveConfig({ env, flags: { project: 'x y' } })).rejects.toThrow(/--project/);
    await expect(
      resolveConfig({ env: { ...env, SOS_BUSY_TIMEOUT_MS: '-1' }, flags: {} }),
    ).rejects.toBeInstanceOf(UsageError);
    await expect(resolveConfig({ env: { ...env, SOS_REDIS_URL: 'http://x' }, flags: {} })).rejects.toThrow(
      /redis/,
    );
    await expect(
      resolveConfig({ env: home({ 'config.json': '{"projekt": "x"}' }), flags: {} }),
    ).rejects.toThrow(/unknown key "projekt"/);
    await expect(resolveConfig({ env: home({ 'config.json': '{oops' }), flags: {} })).rejects.toThrow(
      /not valid/,
    );
    await expect(resolveConfig({ env: home({ 'config.toml': 'db = ' }), flags: {} })).rejects.toThrow(
      /not valid/,
    );
  });

  it('parses every SOS_DB form', () => {
    expect(parseStoreTarget('postgres://u@h/db')).toEqual({ dialect: 'postgres', url: 'postgres://u@h/db' });
    expect(parseStoreTarget('postgresql://u@h/db').dialect).toBe('postgres');
    expect(parseStoreTarget('sos.db', '/work')).toEqual({ dialect: 'sqlite', path: '/work/sos.db' });
    expect(parseStoreTarget('sqlite:/tmp/a.db')).toEqual({ dialect: 'sqlite', path: '/tmp/a.db' });
    expect(parseStoreTarget('sqlite:///tmp/a.db')).toEqual({ dialect: 'sqlite', path: '/tmp/a.db' });
    expect(parseStoreTarget('file:///tmp/b.db')).toEqual({ dialect: 'sqlite', path: '/tmp/b.db' });
    expect(parseStoreTarget('sqlite::memory:')).toEqual({ dialect: 'sqlite', path: ':memory:' });
    expect(() => parseStoreTarget('mysql://x')).toThrow(UsageError);
  });
});
