import { describe, expect, it } from 'vitest';
import { isolatedEnv, sos } from '../helpers/cli.js';
import { dumpDatabase } from '../helpers/dump.js';
import { tempDir } from '../helpers/isolation.js';

/** `sos memory` as a user runs it (SQLite; the pgvector adapter runs the same suite in-process). */
describe('sos memory', () => {
  it('remembers, recalls, merges, supersedes, forgets and packs context, with clear errors', async (ctx) => {
    const home = tempDir(ctx);
    const env = isolatedEnv(home);
    const run = (args: string[], extra: Record<string, string> = {}, input?: string) => sos(args, { ...env, ...extra }, input === undefined ? {} : { input });
    expect((await run(['init'])).code).toBe(0);
    for (const a of ['kasra', 'codex']) await run(['agents', 'add', a]);

    const id = (await run(['memory', 'remember', 'The', 'nightly', 'ETL', 'job', 'fails', 'when', 'the', 'S3', 'bucket', 'policy', 'blocks', 'ListObjects', '--kind', 'finding', '--tag', 'data', '--as', 'kasra'])).stdout.trim();
    expect(id).toMatch(/^eng_[0-9a-z]{26}$/);
    const merged = await run(['memory', 'remember', '--stdin', '--kind', 'finding', '--as', 'codex', '--json'], {}, 'The nightly ETL job fails when the S3 bucket policy blocks ListObjects\n');
    expect(merged.json()).toMatchObject({ id, merged: true });
    const newer = (await run(['memory', 'remember', 'ETL bucket policy fixed: ListObjects allowed for the etl role', '--supersedes', id, '--as', 'kasra'])).stdout.trim();
    const recalled = (await run(['memory', 'recall', 'why', 'does', 'the', 'ETL', 'job', 'break', '--json', '--as', 'codex'])).json<{ id: string; score: number }[]>();
    expect(recalled.map((r) => r.id)).toEqual([newer]);
    expect((await run(['memory', 'show', id, '--json'])).json()).toMatchObject({ supersededBy: newer, tags: ['data'] });
    expect((await run(['memory', 'list', '-q'])).stdout.trim().split('\n').sort()).toEqual([id, newer].sort());
    const pack = await run(['memory', 'context', 'kasra', '--max-chars', '500']);
    expect(pack.code).toBe(0);
    expect(pack.stdout.length).toBeLessThanOrEqual(501);
    expect(pack.stdout).toContain('You are kasra');

    const codexToken = (await run(['tokens', 'create', '--agent', 'codex', '--quiet'])).stdout.trim();
    const db = `${home}/data/sos/sos.db`;
    const before = await dumpDatabase(db, {});
    const cases: [string[], number, RegExp][] = [
      [['memory', 'remember', '', '--as', 'kasra'], 2, /empty/],
      [['memory', 'remember', 'x', '--scope', 'galaxy', '--as', 'kasra'], 2, /scope/],
      [['memory', 'remember', 'x', '--scope', 'squad:ghost', '--as', 'kasra'], 3, /squad "ghost"/],
      [['memory', 'remember', 'x'], 2, /needs an agent/],
      [['memory', 'recall', 'x', '--since', 'yesterday'], 2, /invalid --since/],
      [['memory', 'show', 'eng_00000000000000000000000000'], 3, /does not exist/],
    ];
    for (const [args, code, message] of cases) {
      const r = await run(args);
      expect(r.code, args.join(' ')).toBe(code);
      expect(r.stderr, args.join(' ')).toMatch(message);
    }
    const denied = await run(['memory', 'forget', newer], { SOS_TOKEN: codexToken });
    expect(denied.code).toBe(6);
    expect(denied.stderr).toMatch(/only to its author/);
    const big = await run(['memory', 'remember', '--stdin', '--as', 'kasra'], {}, 'y'.repeat(40_000));
    expect(big.code).toBe(2);
    const after = await dumpDatabase(db, {});
    // Only the refusal log and the token's last-used time moved.
    expect({ ...after, security_events: [], tokens: [] }).toEqual({ ...before, security_events: [], tokens: [] });
    expect((await run(['memory', 'forget', newer, '--as', 'kasra'])).code).toBe(0);

    // Another embedder configured: doctor warns that stored vectors need a reindex.
    const doctor = await run(['doctor', '--json'], { SOS_EMBEDDER: 'ollama:nomic-embed-text' });
    const memory = doctor.json<{ checks: { name: string; status: string; hint?: string }[] }>().checks.find((c) => c.name === 'memory');
    expect(memory).toMatchObject({ status: 'warn', hint: expect.stringContaining('sos memory reindex') });
  });
});
