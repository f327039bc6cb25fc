import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, type TestContext } from 'vitest';
import { isolatedEnv, sos } from '../helpers/cli.js';
import { dumpDatabase } from '../helpers/dump.js';
import { ADAPTERS, type AdapterFixture, tempDir } from '../helpers/isolation.js';

/** `sos usage` as a user runs it (the built CLI, separate processes), on SQLite and PostgreSQL. */

async function setup(ctx: TestContext, adapter: AdapterFixture) {
  const target = adapter.target(ctx);
  const home = tempDir(ctx);
  const env = isolatedEnv(home, { ...target.env, SOS_DB: target.db });
  const run = (args: string[], extra: Record<string, string> = {}, input?: string) => sos(args, { ...env, ...extra }, input === undefined ? {} : { input });
  const init = await run(['init']);
  expect(init.code, init.stderr).toBe(0);
  for (const a of ['kasra', 'codex']) expect((await run(['agents', 'add', a])).code).toBe(0);
  const events = async () => ((await dumpDatabase(target.db, target.env)).usage_events ?? []).length;
  return { home, env, run, events, target };
}

/** One `sos usage record --stdin` process per agent, all at once (process p gets lines(p)); every one must exit 0. */
async function recordAtOnce(run: Awaited<ReturnType<typeof setup>>['run'], agents: string[], lines: (p: number) => string) {
  const results = await Promise.all(agents.map((a, p) => run(['usage', 'record', '--stdin', '--json', '--as', a], {}, lines(p))));
  expect(
    results.map((r) => r.code),
    results.map((r) => r.stderr).join('\n'),
  ).toEqual(agents.map(() => 0));
  return results;
}

interface Report {
  rows: { key: string; events: number; inputTokens: number; outputTokens: number; cacheReadTokens: number; costMicros: number | null; unknownCostEvents: number }[];
  total: { events: number; inputTokens: number; outputTokens: number; costMicros: number | null; unknownCostEvents: number };
  unknownModels: { model: string; events: number }[];
  costPerCompletedTaskMicros: number | null;
}

describe.each(ADAPTERS)('sos usage on $name', (adapter) => {
  describe.skipIf(!adapter.available)(adapter.name, () => {
    it('records, reports as a table and as JSON, and refuses bad input with the right exit code', async (ctx) => {
      const { run, events } = await setup(ctx, adapter);
      const first = await run(['usage', 'record', '--model', 'claude-sonnet-4-5-20250929', '--input', '1200000', '--output', '350000', '--cache-read', '40000000', '--as', 'kasra']);
      expect(first.code, first.stderr).toBe(0);
      // 1.2M × $3 + 0.35M × $15 + 40M × $0.30 = $3.60 + $5.25 + $12.00
      expect(first.stdout).toMatch(/^recorded use_[0-9a-z]{26}: \$20\.85 \(agent kasra\)\n$/);
      const keyed = ['usage', 'record', '--model', 'house-model', '--input', '10', '--output', '5', '--key', 'run-7', '--as', 'codex', '--json'];
      const once = (await run(keyed)).json<{ id: string; duplicate: boolean; costMicros: number | null }>();
      expect(once).toMatchObject({ duplicate: false, costMicros: null });
      expect((await run(keyed)).json()).toMatchObject({ id: once.id, duplicate: true });
      expect((await run(['usage', 'record', '--model', 'gpt-5', '--input', '1000', '--output', '100', '--at', '2026-11-02T10:00:00Z', '--as', 'codex', '--quiet'])).stdout).toMatch(/^use_/);
      expect(await events()).toBe(3);

      const human = await run(['usage']);
      expect(human.code, human.stderr).toBe(0);
      expect(human.stdout).toBe(
        [
          'AGENT  EVENTS      INPUT   OUTPUT  CACHE WRITE  CACHE READ  REASONING    COST  UNPRICED',
          'kasra       1  1,200,000  350,000            0  40,000,000          0  $20.85         0',
          'codex       2      1,010      105            0           0          0   $0.00         1',
          'total       3  1,201,010  350,105            0  40,000,000          0  $20.85         1',
          'cost: unknown for 1 event of model house-model',
          '',
        ].join('\n'),
      );
      const byModel = (await run(['usage', '--by', 'model', '--json'])).json<Report>();
      expect(byModel.rows.map((r) => [r.key, r.events, r.costMicros])).toEqual([
        ['claude-sonnet-4-5-20250929', 1, 20_850_000],
        ['gpt-5', 1, 2_250],
        ['house-model', 1, null],
      ]);
      expect(byModel.total).toMatchObject({ events: 3, costMicros: 20_852_250, unknownCostEvents: 1 });
      expect(byModel.unknownModels).toEqual([{ model: 'house-model', events: 1 }]);
      const day = (await run(['usage', '--by', 'day', '--agent', 'codex', '--since', '2026-11-01', '--until', '2026-11-03', '--json'])).json<Report>();
      expect(day.rows.map((r) => [r.key, r.events])).toEqual([['2026-11-02', 1]]);
      expect((await run(['usage', '--agent', 'nobody'])).stdout).toBe('no usage recorded that matches\n');

      const cases: [string[], number, RegExp][] = [
        [['usage', 'record', '--model', 'gpt-5', '--input', '-1', '--output', '1'], 2, /--input must be a whole number/],
        [['usage', 'record', '--model', 'gpt-5', '--input', '1.5', '--output', '1'], 2, /whole number/],
        [['usage', 'record', '--model', 'gpt-5', '--input', '1'], 2, /--output <n> is required/],
        [['usage', 'record', '--input', '1', '--output', '1'], 2, /--model <model> is required/],
        [['usage', 'record', '--model', 'gpt-5', '--input', '99999999999', '--output', '1'], 2, /at most 1,000,000,000/],
        [['usage', 'record', '--model', 'gpt-5', '--input', '1', '--output', '1', '--task', 'tsk_00000000000000000000000000'], 3, /task tsk_0+ does not exist in project "default"/],
        [['usage', 'record', '--model', 'gpt-5', '--input', '1', '--output', '1', '--task', 'nope'], 2, /task id/],
        [['usage', 'record', '--model', 'gpt-5', '--input', '1', '--output', '1', '--at', 'soon'], 2, /invalid --at/],
        [['usage', '--by', 'planet'], 2, /planet/],
        [['usage', '--since', 'yesterday'], 2, /invalid --since/],
        [['usage', '--since', '1d', '--until', '2d'], 2, /--since must be before --until/],
        [['usage', 'record', '--stdin', '--model', 'gpt-5'], 2, /not both/],
      ];
      for (const [args, code, message] of cases) {
        const r = await run(args);
        expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(code);
        expect(r.stderr).toMatch(message);
      }
      // A bad line anywhere refuses the whole input.
      const lines = `${JSON.stringify({ model: 'gpt-5', inputTokens: 1, outputTokens: 1 })}\n${JSON.stringify({ model: 'gpt-5', inputTokens: -4, outputTokens: 1 })}\n`;
      const bad = await run(['usage', 'record', '--stdin', '--json'], {}, lines);
      expect(bad.code).toBe(2);
      expect(bad.json()).toEqual({ error: { code: 'usage', message: 'invalid usage event: line 2: inputTokens: input tokens must be 0 or more' } });
      expect((await run(['usage', 'record', '--stdin'], {}, '{"model": \n')).stderr).toMatch(/line 1: not JSON/);
      expect(await events()).toBe(3);
    });

    it('sums exactly when 4 processes record 250 events each at once, shared keys counted once', async (ctx) => {
      const { run, events } = await setup(ctx, adapter);
      const lines = (p: number) =>
        [
          ...Array.from({ length: 250 }, (_, j) => ({ model: 'gpt-5', inputTokens: 1_000 + j, outputTokens: p + 1, cacheReadTokens: 10, sourceKey: `p${p}-${j}` })),
          // Every process also reports the same 20 events: each must count once.
          ...Array.from({ length: 20 }, (_, j) => ({ model: 'gpt-5', inputTokens: 7, outputTokens: 7, sourceKey: `shared-${j}` })),
        ]
          .map((e) => JSON.stringify(e))
          .join('\n');
      const agents = ['kasra', 'codex', 'kasra', 'codex'];
      const results = await recordAtOnce(run, agents, lines);
      const outcomes = results.map((r) => r.json<{ recorded: number; duplicates: number }>());
      expect(outcomes.map((o) => o.recorded + o.duplicates)).toEqual([270, 270, 270, 270]);
      expect(outcomes.reduce((n, o) => n + o.recorded, 0)).toBe(1_000 + 20);
      expect(outcomes.reduce((n, o) => n + o.duplicates, 0)).toBe(60);
      expect(await events()).toBe(1_020);

      // Σ_j (1000 + j) over 250 = 281,125 per process; outputs 1..4 × 250; shared 20 × 7.
      const input = 4 * 281_125 + 20 * 7;
      const output = (1 + 2 + 3 + 4) * 250 + 20 * 7;
      // Each event is priced exactly in pico-dollars and rounded once, halves up; the report sums those.
      let cost = 0;
      for (let p = 0; p < 4; p++) for (let j = 0; j < 250; j++) cost += Math.floor(((1_000 + j) * 1_250_000 + (p + 1) * 10_000_000 + 10 * 125_000 + 500_000) / 1_000_000);
      cost += 20 * Math.floor((7 * 1_250_000 + 7 * 10_000_000 + 500_000) / 1_000_000);
      const report = (await run(['usage', '--by', 'project', '--json'])).json<Report>();
      expect(report.total).toMatchObject({ events: 1_020, inputTokens: input, outputTokens: output, costMicros: cost, unknownCostEvents: 0 });
      const byAgent = (await run(['usage', '--json'])).json<Report>();
      expect(byAgent.rows.map((r) => r.events).reduce((a, b) => a + b, 0)).toBe(1_020);

      // Four separate processes with one --key: one records, three are told it is there already.
      const keyed = await Promise.all(
        agents.map((a) => run(['usage', 'record', '--model', 'gpt-5', '--input', '5', '--output', '5', '--key', 'same-call', '--as', a, '--json'])),
      );
      expect(keyed.map((r) => r.code)).toEqual([0, 0, 0, 0]);
      const dup = keyed.map((r) => r.json<{ id: string; duplicate: boolean }>());
      expect(dup.filter((d) => !d.duplicate)).toHaveLength(1);
      expect(new Set(dup.map((d) => d.id)).size).toBe(1);
      expect(await events()).toBe(1_021);
    });

    it('announces a budget crossed by 4 processes at once exactly once: one event and one coordinator message per threshold', async (ctx) => {
      const { run, target } = await setup(ctx, adapter);
      expect((await run(['agents', 'add', 'boss', '--role', 'coordinator'])).code).toBe(0);
      const set = await run(['budgets', 'set', 'project', '--limit', '10k', '--period', 'day', '--action', 'block', '--at', '50%']);
      expect(set.code, set.stderr).toBe(0);
      // 4 × 50 calls of 100 tokens: 20,000 tokens, so both the 5,000 warning and the 10,000 limit are crossed mid-race.
      const lines = (p: number) =>
        Array.from({ length: 50 }, (_, j) => JSON.stringify({ model: 'gpt-5', inputTokens: 90, outputTokens: 10, sourceKey: `b${p}-${j}` })).join('\n');
      await recordAtOnce(run, ['kasra', 'codex', 'kasra', 'codex'], lines);

      const announced = ((await dumpDatabase(target.db, target.env)).bus_events ?? [])
        .map((row) => JSON.parse(String(row)) as { seq: number; type: string; data: string })
        .filter((e) => e.type.startsWith('budget.'))
        .map((e) => [e.type, typeof e.data === 'string' ? JSON.parse(e.data) : e.data])
        // Each crossing is announced by the process that made it, after its commit: the two
        // processes race, so the order of the two announcements is not fixed.
        .sort((a, b) => String(a[0]).localeCompare(String(b[0])));
      expect(announced).toEqual([
        ['budget.exhausted', expect.objectContaining({ scope: 'project', level: 'exhausted', spent: 10_000, limit: 10_000, unit: 'tokens', action: 'block' })],
        ['budget.warning', expect.objectContaining({ scope: 'project', level: 'warning', spent: 5_000, limit: 10_000, unit: 'tokens', action: 'block' })],
      ]);
      const shown = (await run(['budgets', 'show', 'project', '--json'])).json<{ spent: number; state: string }>();
      expect(shown).toMatchObject({ spent: 20_000, state: 'exhausted' });
      const inbox = (await run(['inbox', '--as', 'boss', '--json'])).json<{ unread: { type: string; from: string; text: string }[] }>();
      expect(inbox.unread.map((m) => [m.type, m.from, m.text]).sort((a, b) => a[2]!.localeCompare(b[2]!))).toEqual([
        ['escalation', 'sos', 'budget project: exhausted, 10,000 tokens of 10,000 tokens (100%); claims in this scope are refused until the period rolls over (action block)'],
        ['escalation', 'sos', 'budget project: warning, 5,000 tokens of 10,000 tokens (50%); action at the limit: block'],
      ]);
      // Workers are not coordinators: nothing reached them.
      expect((await run(['inbox', '--as', 'kasra', '--json'])).json<{ unread: unknown[] }>().unread).toEqual([]);
    });

    it('reads SOS_PRICES overlays, refuses a malformed one with exit 2, re-prices, and scopes by token', async (ctx) => {
      const { home, run, events } = await setup(ctx, adapter);
      const prices = await run(['usage', 'prices', '--json']);
      expect(prices.code, prices.stderr).toBe(0);
      const table = prices.json<{ version: string; checked: string; overlays: unknown[]; models: Record<string, { input: number }> }>();
      expect(table.overlays).toEqual([]);
      expect(table.models['claude-haiku-4-5']).toMatchObject({ input: 1 });
      const human = (await run(['usage', 'prices'])).stdout;
      expect(human).toContain(`checked:  ${table.checked}`);
      expect(human).toMatch(/claude-sonnet-4-5\s+anthropic\s+\$3\.00\s+\$15\.00\s+\$3\.75\s+\$6\.00\s+\$0\.30/);
      expect(human).toMatch(/gemini-2\.0-flash-lite\s+google\s+\$0\.075/);

      expect((await run(['usage', 'record', '--model', 'house-model', '--input', '1000', '--output', '1000', '--as', 'kasra'])).stdout).toContain('cost unknown');
      const bad = join(home, 'bad-prices.json');
      writeFileSync(bad, JSON.stringify({ models: { 'house-model': { provider: 'local', input: 'cheap', output: 1 } } }));
      for (const args of [['usage', 'record', '--model', 'house-model', '--input', '1', '--output', '1', '--as', 'kasra'], ['usage', 'recompute'], ['usage', 'prices']]) {
        const r = await run(args, { SOS_PRICES: bad });
        expect(r.code, args.join(' ')).toBe(2);
        expect(r.stderr).toContain(bad);
        expect(r.stderr).toMatch(/models\.house-model\.input/);
      }
      expect(await events()).toBe(1);

      const good = join(home, 'prices.json');
      writeFileSync(good, JSON.stringify({ version: 'house-1', models: { 'house-model': { provider: 'local', input: 2, output: 4 } } }));
      const overlaid = (await run(['usage', 'prices', '--json'], { SOS_PRICES: good })).json<{ version: string; overlays: { file: string; version: string; models: string[] }[] }>();
      expect(overlaid.version).toBe(`${table.version}+house-1`);
      expect(overlaid.overlays).toEqual([{ file: good, version: 'house-1', models: ['house-model'] }]);
      expect((await run(['usage', 'prices'], { SOS_PRICES: good })).stdout).toContain(`overlays: ${good} (house-1: house-model)`);

      const kasraToken = (await run(['tokens', 'create', '--agent', 'kasra', '--quiet'])).stdout.trim();
      const denied = await run(['usage', 'recompute'], { SOS_PRICES: good, SOS_TOKEN: kasraToken });
      expect(denied.code).toBe(6);
      const re = await run(['usage', 'recompute', '--json'], { SOS_PRICES: good });
      expect(re.json()).toEqual({ events: 1, changed: 1, unknown: 0, priceVersion: `${table.version}+house-1` });
      expect((await run(['usage', 'recompute'], { SOS_PRICES: good })).stdout).toBe(`re-priced 0 of 1 event with prices ${table.version}+house-1\n`);
      // 1000 × $2 + 1000 × $4 per million = 6000 micro-dollars.
      expect((await run(['usage', '--json'])).json<Report>().total.costMicros).toBe(6_000);

      // The token's project is its own: another project's token sees none of this.
      expect((await run(['projects', 'create', 'other'])).code).toBe(0);
      expect((await run(['agents', 'add', 'kasra'], { SOS_PROJECT: 'other' })).code).toBe(0);
      const otherToken = (await run(['tokens', 'create', '--agent', 'kasra', '--quiet'], { SOS_PROJECT: 'other' })).stdout.trim();
      const theirs = (await run(['usage', '--json'], { SOS_TOKEN: otherToken })).json<Report>();
      expect(theirs.total.events).toBe(0);
      expect((await run(['usage', 'record', '--model', 'gpt-5', '--input', '1', '--output', '1'], { SOS_TOKEN: otherToken })).code).toBe(0);
      expect((await run(['usage', '--json'])).json<Report>().total.events).toBe(1);
      expect((await run(['usage', '--json'], { SOS_TOKEN: kasraToken })).json<Report>().total.events).toBe(1);
      const cross = await run(['usage', '--project', 'default'], { SOS_TOKEN: otherToken });
      expect(cross.code).toBe(6);
    });

    it('plans, the status line (Claude Code’s rate limits stored as quota readings), usage windows, and a pause budget lifted from the CLI', async (ctx) => {
      const { run, home } = await setup(ctx, adapter);
      const ok = async (args: string[], extra: Record<string, string> = {}, input?: string) => {
        const r = await run(args, extra, input);
        expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
        return r;
      };
      const app = join(home, 'app');
      await ok(['agents', 'set', 'kasra', '--plan', 'max', '--workdir', app]);
      expect((await run(['agents', 'set', 'kasra', '--plan', 'gold'])).code).toBe(2);
      expect((await run(['agents', 'set', 'codex', '--transcripts', 'logs/*.jsonl'], {})).code).toBe(0);
      expect((await ok(['agents', 'show', 'codex', '--json'])).json<{ transcripts: string }>().transcripts).toMatch(/^\/.*\/logs\/\*\.jsonl$/);
      await ok(['agents', 'set', 'codex', '--clear', 'transcripts']);
      expect((await ok(['agents', 'show', 'kasra', '--json'])).json()).toMatchObject({ plan: 'max', transcripts: null });

      // Claude Code hands the status line its session; on a subscription, rate_limits (percent, reset in epoch seconds).
      const reset = Math.floor(Date.now() / 1000) + 2 * 3600;
      const status = {
        session_id: 's1',
        model: { id: 'claude-opus-4-5', display_name: 'Opus 4.5' },
        workspace: { current_dir: join(app, 'src'), project_dir: app },
        rate_limits: { five_hour: { used_percentage: 42.5, resets_at: reset }, seven_day: { used_percentage: 12, resets_at: reset + 86_400 } },
      };
      await ok(['usage', 'record', '--model', 'claude-sonnet-4-5', '--input', '1000', '--output', '200', '--as', 'kasra']);
      const hhmm = new Date(reset * 1000).toISOString().slice(11, 16);
      const line = await ok(['statusline'], {}, JSON.stringify(status));
      expect(line.stdout).toBe(`kasra · Opus 4.5 · 5h 43% (resets ${hhmm}Z) · 7d 12% · today $0.01\n`);
      // The token's agent wins over the workdir; no agent found still prints a line.
      expect((await ok(['statusline', '--as', 'codex'], {}, JSON.stringify({ ...status, rate_limits: null }))).stdout).toMatch(/^codex · Opus 4\.5 · today \$0\.00\n$/);
      expect((await ok(['statusline'], {}, JSON.stringify({ workspace: { current_dir: '/elsewhere' } }))).stdout).toBe('sos (no agent for /elsewhere)\n');
      const bad = await run(['statusline'], {}, '{not json');
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/not JSON/);

      const windows = (await ok(['usage', 'windows', '--json'])).json<{ agent: string; plan: string; fiveHour: { usedPercent: number; basis: string; tokens: number; end: string; reported: { source: string } }; sevenDay: { usedPercent: number }; routable: boolean }[]>();
      expect(windows).toHaveLength(1);
      expect(windows[0]).toMatchObject({ agent: 'kasra', plan: 'max', routable: true, fiveHour: { usedPercent: 42.5, basis: 'reported', tokens: 1200, end: new Date(reset * 1000).toISOString(), reported: { source: 'statusline' } }, sevenDay: { usedPercent: 12 } });
      const table = (await ok(['usage', 'windows'])).stdout;
      expect(table.split('\n')[0]).toBe('AGENT  PLAN  5H USED           ENDS    BURN/H      LIMIT AT  7D USED           ROUTABLE');
      expect(table).toMatch(/^kasra {2}max {3}43% \(statusline\) {2}\d\d:\d\dZ {2}2400 \$0\.01 {2}\d\d:\d\dZ {4}12% \(statusline\) {2}yes$/m);
      // 42.5% for 1,200 tokens implies a 2,824-token window: 1,624 left at 2,400/h is 40.6 minutes away.
      const projected = (await ok(['usage', 'windows', '--json'])).json<{ projectedLimitAt: string }[]>()[0]!.projectedLimitAt;
      expect((Date.parse(projected) - Date.now()) / 60_000).toBeGreaterThan(39);
      expect((Date.parse(projected) - Date.now()) / 60_000).toBeLessThan(41);
      expect((await run(['usage', 'windows', '--agent', 'nobody'])).code).toBe(3);

      // A pause budget spent: claims refused (exit 6), lifted from the CLI, claims resume.
      await ok(['budgets', 'set', 'agent:codex', '--limit', '$0.001', '--period', 'day', '--action', 'pause']);
      await ok(['usage', 'record', '--model', 'claude-sonnet-4-5', '--input', '1000', '--output', '200', '--as', 'codex']);
      const id = (await ok(['tasks', 'create', 'paused work', '-q'])).stdout.trim();
      const refused = await run(['tasks', 'claim', '--as', 'codex']);
      expect(refused.code).toBe(6);
      expect(refused.stderr).toMatch(/agent:codex .* is spent, and its action is pause/);
      const lifted = await ok(['budgets', 'lift', 'agent:codex']);
      expect(lifted.stdout).toMatch(/^budget on agent:codex lifted until \d{4}-\d\d-\d\dT00:00:00\.000Z\n$/);
      expect((await ok(['budgets', 'list'])).stdout).toMatch(/agent:codex .* lifted$/m);
      expect((await ok(['tasks', 'claim', '--as', 'codex', '-q'])).stdout.trim()).toBe(`${id} 1`);
      expect((await run(['budgets', 'lift', 'agent:codex'])).code).toBe(2);
    });
  });
});
