import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, type TestContext } from 'vitest';
import { isolatedEnv, ROOT, sos } from '../helpers/cli.js';
import { ADAPTERS, type AdapterFixture, tempDir } from '../helpers/isolation.js';

/**
 * The cost so far, as a user sees it through the built CLI on SQLite and PostgreSQL: of a task
 * (`sos tasks show`), of each agent today and in all (`sos agents status`), and the doctor's
 * warning about events no price covers.
 */

interface Price {
  input: number;
  output: number;
  cache_write: number;
  cache_write_1h: number;
  cache_read: number;
}
const PRICES = (JSON.parse(readFileSync(join(ROOT, 'src/core/economy/prices.json'), 'utf8')) as { models: Record<string, Price> }).models;

interface Tokens {
  input: number;
  output: number;
  cacheWrite?: number;
  cacheWrite1h?: number;
  cacheRead?: number;
}

/**
 * The expected cost of one event from the table itself, independently of src/: tokens × USD per
 * million tokens is micro-dollars; exact in pico-dollars, rounded once, halves up.
 */
function micros(model: string, t: Tokens): number {
  const p = PRICES[model];
  if (!p) throw new Error(`${model} is not in prices.json`);
  const pico = (count: number | undefined, usd: number) => BigInt(count ?? 0) * BigInt(Math.round(usd * 1e6));
  const total = pico(t.input, p.input) + pico(t.output, p.output) + pico(t.cacheWrite, p.cache_write) + pico(t.cacheWrite1h, p.cache_write_1h) + pico(t.cacheRead, p.cache_read);
  return Number((total + 500_000n) / 1_000_000n);
}

const recordArgs = (model: string, t: Tokens) => [
  'usage',
  'record',
  '--model',
  model,
  '--input',
  String(t.input),
  '--output',
  String(t.output),
  ...(t.cacheWrite ? ['--cache-write', String(t.cacheWrite)] : []),
  ...(t.cacheWrite1h ? ['--cache-write-1h', String(t.cacheWrite1h)] : []),
  ...(t.cacheRead ? ['--cache-read', String(t.cacheRead)] : []),
];

async function setup(ctx: TestContext, adapter: AdapterFixture) {
  const target = adapter.target(ctx);
  const env = isolatedEnv(tempDir(ctx), { ...target.env, SOS_DB: target.db });
  const run = (args: string[], extra: Record<string, string> = {}) => sos(args, { ...env, ...extra });
  const ok = async (args: string[], extra: Record<string, string> = {}) => {
    const r = await run(args, extra);
    expect(r.code, `sos ${args.join(' ')}\n${r.stderr}`).toBe(0);
    return r;
  };
  await ok(['init']);
  for (const a of ['kasra', 'codex', 'gem', 'boss']) await ok(['agents', 'add', a]);
  const record = (model: string, t: Tokens, more: string[]) => ok([...recordArgs(model, t), ...more]);
  const task = async (title: string, more: string[] = []) => (await ok(['tasks', 'create', title, '-q', ...more])).stdout.trim();
  return { run, ok, record, task };
}

interface TaskUsage {
  events: number;
  inputTokens: number;
  outputTokens: number;
  cacheWriteTokens: number;
  cacheWrite1hTokens: number;
  cacheReadTokens: number;
  reasoningTokens: number;
  costMicros: number | null;
  unknownCostEvents: number;
  unknownModels: { model: string; events: number }[];
}

interface Spend {
  costMicros: number | null;
  events: number;
  unknownCostEvents: number;
}

interface DoctorReport {
  healthy: boolean;
  checks: { name: string; status: string; detail: string; hint?: string }[];
}

const LONG_AGO = '2020-01-02T03:04:05Z';

// Events of task one: kasra's two priced ones, codex's two of a model the table lacks (one long ago).
const SONNET: Tokens = { input: 1_200_000, output: 350_000, cacheWrite: 100_000, cacheWrite1h: 20_000, cacheRead: 40_000_000 };
const GPT: Tokens = { input: 1_000, output: 100 };
const HOUSE_NOW: Tokens = { input: 10, output: 5 };
const HOUSE_OLD: Tokens = { input: 7, output: 3 };
// Task two: 999 × $1.25 + 1 × $10 per million is 1,258.75 micro-dollars, which rounds up.
const GPT_ODD: Tokens = { input: 999, output: 1 };
// Kasra's spend on no task: one today, one long ago.
const HAIKU: Tokens = { input: 1_000, output: 1_000 };
const SONNET_OLD: Tokens = { input: 1_000_000, output: 0 };

describe.each(ADAPTERS)('cost so far on $name', (adapter) => {
  describe.skipIf(!adapter.available)(adapter.name, () => {
    it('tasks show sums the events of the task exactly, and flags the unpriced ones by model', async (ctx) => {
      const { run, ok, record, task } = await setup(ctx, adapter);
      const one = await task('one');
      const two = await task('two');
      const none = await task('nothing spent');
      const unpriced = await task('only unpriced');
      await record('claude-sonnet-4-5', SONNET, ['--task', one, '--as', 'kasra']);
      await record('gpt-5', GPT, ['--task', one, '--as', 'kasra']);
      await record('house-model', HOUSE_NOW, ['--task', one, '--as', 'codex']);
      await record('house-model', HOUSE_OLD, ['--task', one, '--as', 'codex', '--at', LONG_AGO]);
      await record('gpt-5', GPT_ODD, ['--task', two, '--as', 'codex']);
      await record('claude-haiku-4-5', HAIKU, ['--as', 'kasra']); // no task: counted for no task
      await record('house-model', HOUSE_NOW, ['--task', unpriced, '--as', 'gem']);

      // The table's numbers, checked by hand: $3.60 + $5.25 + $0.375 + $0.12 + $12.00, and $0.00125 + $0.001.
      expect(micros('claude-sonnet-4-5', SONNET)).toBe(21_345_000);
      expect(micros('gpt-5', GPT)).toBe(2_250);
      expect(micros('gpt-5', GPT_ODD)).toBe(1_259);

      const shown = (id: string) => ok(['tasks', 'show', id, '--json']).then((r) => r.json<{ id: string; usage: TaskUsage }>());
      expect((await shown(one)).usage).toEqual({
        events: 4,
        inputTokens: 1_200_000 + 1_000 + 10 + 7,
        outputTokens: 350_000 + 100 + 5 + 3,
        cacheWriteTokens: 100_000,
        cacheWrite1hTokens: 20_000,
        cacheReadTokens: 40_000_000,
        reasoningTokens: 0,
        costMicros: micros('claude-sonnet-4-5', SONNET) + micros('gpt-5', GPT),
        unknownCostEvents: 2,
        unknownModels: [{ model: 'house-model', events: 2 }],
      });
      expect((await shown(two)).usage).toMatchObject({ events: 1, inputTokens: 999, outputTokens: 1, costMicros: 1_259, unknownCostEvents: 0, unknownModels: [] });
      expect((await shown(none)).usage).toEqual({
        events: 0,
        inputTokens: 0,
        outputTokens: 0,
        cacheWriteTokens: 0,
        cacheWrite1hTokens: 0,
        cacheReadTokens: 0,
        reasoningTokens: 0,
        costMicros: 0,
        unknownCostEvents: 0,
        unknownModels: [],
      });
      // Every event unpriced: the cost is unknown (null), never 0.
      expect((await shown(unpriced)).usage).toMatchObject({ events: 1, costMicros: null, unknownCostEvents: 1, unknownModels: [{ model: 'house-model', events: 1 }] });

      const human = (id: string) => ok(['tasks', 'show', id]).then((r) => r.stdout);
      const text = await human(one);
      expect(text).toContain('\ncost:        $21.35 over 4 events; cost unknown for 2 events of model house-model\n');
      expect(text).toContain('\ntokens:      1,201,017 in, 350,108 out, 120,000 cache write, 40,000,000 cache read\n');
      expect(await human(two)).toContain('\ncost:        $0.00 over 1 event\n');
      expect(await human(none)).toContain('\ncost:        no usage recorded\n');
      expect(await human(none)).not.toContain('tokens:');
      expect(await human(unpriced)).toContain('\ncost:        cost unknown for 1 event of model house-model\n');

      // Only a task the caller can see: a squad's task is not found for an agent outside the squad.
      await ok(['squads', 'create', 'web']);
      await ok(['squads', 'join', 'web', '--agent', 'kasra']);
      const secret = await task('squad work', ['--squad', 'web']);
      await record('gpt-5', GPT, ['--task', secret, '--as', 'kasra']);
      const outsider = (await ok(['tokens', 'create', '--agent', 'codex', '-q'])).stdout.trim();
      const member = (await ok(['tokens', 'create', '--agent', 'kasra', '-q'])).stdout.trim();
      const refused = await run(['tasks', 'show', secret, '--json'], { SOS_TOKEN: outsider });
      expect(refused.code).toBe(3);
      expect(refused.json()).toEqual({ error: expect.objectContaining({ code: 'not_found' }) });
      expect(refused.stdout).not.toContain('usage');
      const seen = await run(['tasks', 'show', secret, '--json'], { SOS_TOKEN: member });
      expect(seen.code, seen.stderr).toBe(0);
      expect(seen.json<{ usage: TaskUsage }>().usage).toMatchObject({ events: 1, costMicros: 2_250 });
    });

    it('agents status shows each agent’s spend today (UTC) and in all, within 80 columns', async (ctx) => {
      const { ok, record, task } = await setup(ctx, adapter);
      const one = await task('one');
      await record('claude-sonnet-4-5', SONNET, ['--task', one, '--as', 'kasra']);
      await record('gpt-5', GPT, ['--task', one, '--as', 'kasra']);
      await record('claude-haiku-4-5', HAIKU, ['--as', 'kasra']);
      await record('claude-sonnet-4-5', SONNET_OLD, ['--as', 'kasra', '--at', LONG_AGO]);
      await record('house-model', HOUSE_NOW, ['--task', one, '--as', 'codex']);
      await record('house-model', HOUSE_OLD, ['--as', 'codex', '--at', LONG_AGO]);
      await record('gpt-5', GPT_ODD, ['--as', 'codex']);
      await record('house-model', HOUSE_NOW, ['--as', 'gem']);

      const kasraToday = micros('claude-sonnet-4-5', SONNET) + micros('gpt-5', GPT) + micros('claude-haiku-4-5', HAIKU);
      const kasraTotal = kasraToday + micros('claude-sonnet-4-5', SONNET_OLD);
      expect([kasraToday, kasraTotal]).toEqual([21_353_250, 24_353_250]);

      const status = (await ok(['agents', 'status', '--json'])).json<{ agent: string; spent: { dayStart: string; today: Spend; total: Spend } }[]>();
      const spent = Object.fromEntries(status.map((s) => [s.agent, s.spent]));
      const dayStart = new Date(Math.floor(Date.now() / 86_400_000) * 86_400_000).toISOString();
      expect(spent).toEqual({
        kasra: { dayStart, today: { costMicros: kasraToday, events: 3, unknownCostEvents: 0 }, total: { costMicros: kasraTotal, events: 4, unknownCostEvents: 0 } },
        codex: { dayStart, today: { costMicros: 1_259, events: 2, unknownCostEvents: 1 }, total: { costMicros: 1_259, events: 3, unknownCostEvents: 2 } },
        gem: { dayStart, today: { costMicros: null, events: 1, unknownCostEvents: 1 }, total: { costMicros: null, events: 1, unknownCostEvents: 1 } },
        boss: { dayStart, today: { costMicros: 0, events: 0, unknownCostEvents: 0 }, total: { costMicros: 0, events: 0, unknownCostEvents: 0 } },
      });

      const table = (await ok(['agents', 'status'])).stdout;
      expect(table).toBe(
        [
          'AGENT  STATE     SINCE  HOLDS  UNREAD  SPENT TODAY  TOTAL    EVIDENCE',
          'boss   unprobed  -      0      0       $0.00        $0.00    -',
          'codex  unprobed  -      0      0       $0.00+?      $0.00+?  -',
          'gem    unprobed  -      0      0       ?            ?        -',
          'kasra  unprobed  -      0      0       $21.35       $24.35   -',
          '?: events of an unpriced model, cost unknown (sos usage --by model)',
          '',
        ].join('\n'),
      );

      // Long evidence is cut to keep every line within 80 columns; a held task counts in HOLDS.
      const token = (await ok(['tokens', 'create', '--agent', 'kasra', '-q'])).stdout.trim();
      await ok(['hook', 'UserPromptSubmit'], { SOS_TOKEN: token });
      await ok(['tasks', 'claim', '--id', one, '--as', 'kasra']);
      const busy = (await ok(['agents', 'status'])).stdout;
      const lines = busy.trimEnd().split('\n');
      for (const l of lines) expect(l.length, l).toBeLessThanOrEqual(80);
      expect(lines.find((l) => l.startsWith('kasra'))).toMatch(/^kasra {2}busy\s+\d+s ago\s+1\s+0\s+\$21\.35\s+\$24\.35\s+hook: hook User\S* ?\S*…$/);
    });

    it('doctor warns about unpriced events in every project, and not when everything is priced', async (ctx) => {
      const { run, ok, record } = await setup(ctx, adapter);
      const prices = async (extra: Record<string, string> = {}) => {
        const r = await run(['doctor', '--json'], extra);
        const report = r.json<DoctorReport>();
        expect(r.code, JSON.stringify(report.checks.filter((c) => c.status === 'fail'))).toBe(0);
        return report.checks.find((c) => c.name === 'prices');
      };
      expect(await prices()).toMatchObject({ status: 'ok', detail: expect.stringContaining('no usage recorded yet') });
      await record('gpt-5', GPT, ['--as', 'kasra']);
      expect(await prices()).toMatchObject({ status: 'ok', detail: expect.stringContaining(': all 1 usage event priced') });
      expect((await ok(['doctor'])).stdout).not.toContain('cost unknown');

      await ok(['projects', 'create', 'side']);
      await record('house-model', HOUSE_NOW, ['--as', 'codex']);
      await record('house-model', HOUSE_OLD, ['--as', 'codex', '--at', LONG_AGO]);
      await record('other-model', HOUSE_NOW, ['--project', 'side']);
      const warned = await prices();
      expect(warned).toEqual({
        name: 'prices',
        status: 'warn',
        detail: 'cost unknown for 2 events of model house-model (project default); cost unknown for 1 event of model other-model (project side): not in the price table',
        hint: 'add house-model, other-model to a price file named by SOS_PRICES (see `sos usage prices`), then run `sos usage recompute --project default`, `sos usage recompute --project side`',
      });
      const human = await run(['doctor']);
      expect(human.code).toBe(0); // a warning, not a failure
      expect(human.stdout).toMatch(/^warn\s+prices\s+cost unknown for 2 events of model house-model \(project default\); .*other-model \(project side\)/m);
      expect(human.stdout).toMatch(/^\s+→ add house-model, other-model to a price file named by SOS_PRICES/m);

      // Priced by an overlay but not re-priced yet: only recompute is needed; after it, no warning.
      const file = join(tempDir(ctx), 'prices.json');
      writeFileSync(file, JSON.stringify({ models: { 'house-model': { provider: 'acme', input: 1, output: 2 }, 'other-model': { provider: 'acme', input: 1, output: 2 } } }));
      const overlay = { SOS_PRICES: file };
      expect(await prices(overlay)).toMatchObject({
        status: 'warn',
        detail: expect.stringContaining('priced now, not yet re-priced'),
        hint: 'run `sos usage recompute --project default`, `sos usage recompute --project side`',
      });
      await ok(['usage', 'recompute'], overlay);
      expect((await prices(overlay))?.detail).toBe(
        'cost unknown for 1 event of model other-model (project side): priced now, not yet re-priced',
      );
      await ok(['usage', 'recompute', '--project', 'side'], overlay);
      expect(await prices(overlay)).toMatchObject({ status: 'ok', detail: expect.stringContaining(': all 4 usage events priced') });
      expect((await ok(['doctor'], overlay)).stdout).not.toContain('cost unknown');
      // A price file that cannot be read is a failure: every `sos usage` command would refuse it.
      const broken = await run(['doctor', '--json'], { SOS_PRICES: join(tempDir(ctx), 'missing.json') });
      expect(broken.code).toBe(1);
      expect(broken.json<DoctorReport>().checks.find((c) => c.name === 'prices')).toMatchObject({ status: 'fail', detail: expect.stringContaining('cannot read the price file') });
    });
  });
});
