import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The oracle: the installed `ccusage` / `@ccusage/codex` binaries (devDependencies), run
 * offline on a transcript dir, their JSON reduced to totals per model.
 *
 * Semantics are ccusage's own (see test/fixtures/transcripts/README.md):
 * - claude: input excludes cache tokens; cacheCreation is 5m + 1h together; cost prices all of
 *   cacheCreation at the 5-minute write price. Entries are deduplicated on message.id + requestId.
 * - codex: input INCLUDES cached input (cacheRead is that cached part); output includes
 *   reasoning (also given alone as `reasoning`); cacheCreation is always 0; cost is
 *   (input - cacheRead) at the input price + cacheRead at the cached price + output at the
 *   output price. Every token_count event's last_token_usage is added, without deduplication.
 */
export interface ModelTotals {
  input: number;
  output: number;
  cacheCreation: number;
  cacheRead: number;
  cost: number;
  /** codex only: reasoning tokens (already inside output). */
  reasoning?: number;
}

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = { claude: join(root, 'node_modules/.bin/ccusage'), codex: join(root, 'node_modules/.bin/ccusage-codex') };

function runBin(bin: string, args: string[], env: Record<string, string>): Promise<string> {
  const base = { ...process.env };
  for (const k of ['CLAUDE_CONFIG_DIR', 'CODEX_HOME', 'FORCE_COLOR', 'LOG_LEVEL']) delete base[k];
  return new Promise((resolvePromise, reject) => {
    const child = spawn(bin, args, { env: { ...base, NO_COLOR: '1', TZ: 'UTC', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolvePromise(out);
      else reject(new Error(`${bin} ${args.join(' ')} exited ${code}: ${err || out}`));
    });
  });
}

function parseJson(text: string, what: string): unknown {
  // ccusage may print log lines before the JSON document
  const start = text.indexOf('{');
  if (start < 0) throw new Error(`${what}: no JSON in output: ${text.slice(0, 500)}`);
  return JSON.parse(text.slice(start));
}

interface ClaudeDaily {
  daily: {
    modelBreakdowns: {
      modelName: string;
      inputTokens: number;
      outputTokens: number;
      cacheCreationTokens: number;
      cacheReadTokens: number;
      cost: number;
    }[];
  }[];
}

interface CodexModel {
  inputTokens: number;
  cachedInputTokens: number;
  outputTokens: number;
  reasoningOutputTokens: number;
}
interface CodexSessions {
  sessions: { costUSD: number; models: Record<string, CodexModel> }[];
}

function add(into: Record<string, ModelTotals>, model: string, t: ModelTotals): void {
  const cur = (into[model] ??= { input: 0, output: 0, cacheCreation: 0, cacheRead: 0, cost: 0 });
  cur.input += t.input;
  cur.output += t.output;
  cur.cacheCreation += t.cacheCreation;
  cur.cacheRead += t.cacheRead;
  cur.cost += t.cost;
  if (t.reasoning !== undefined) cur.reasoning = (cur.reasoning ?? 0) + t.reasoning;
}

async function claudeTotals(dir: string): Promise<Record<string, ModelTotals>> {
  const out = await runBin(BIN.claude, ['daily', '--json', '--offline', '--breakdown', '--mode', 'calculate'], { CLAUDE_CONFIG_DIR: dir });
  const report = parseJson(out, 'ccusage daily') as ClaudeDaily;
  const totals: Record<string, ModelTotals> = {};
  for (const day of report.daily) {
    for (const m of day.modelBreakdowns) {
      add(totals, m.modelName, {
        input: m.inputTokens,
        output: m.outputTokens,
        cacheCreation: m.cacheCreationTokens,
        cacheRead: m.cacheReadTokens,
        cost: m.cost,
      });
    }
  }
  return totals;
}

async function codexSessions(codexHome: string): Promise<CodexSessions> {
  const out = await runBin(BIN.codex, ['session', '--json', '--offline'], { CODEX_HOME: codexHome });
  return parseJson(out, 'ccusage-codex session') as CodexSessions;
}

/**
 * @ccusage/codex reports cost per session, not per model. Its per-token prices are read
 * back from it by pricing one probe session per model and token kind (100k tokens, under
 * its 200k tiering threshold), so per-model cost is exactly what it would charge.
 */
const PROBE = 100_000;
async function codexPrices(models: string[]): Promise<Record<string, { input: number; cached: number; output: number }>> {
  const home = mkdtempSync(join(tmpdir(), 'sos-ccusage-probe-'));
  try {
    const kinds = {
      input: { input_tokens: PROBE, cached_input_tokens: 0, output_tokens: 0 },
      cached: { input_tokens: PROBE, cached_input_tokens: PROBE, output_tokens: 0 },
      output: { input_tokens: 0, cached_input_tokens: 0, output_tokens: PROBE },
    };
    const day = join(home, 'sessions', '2000', '01', '01');
    mkdirSync(day, { recursive: true });
    const order: { model: string; kind: keyof typeof kinds }[] = [];
    models.forEach((model, i) => {
      for (const kind of Object.keys(kinds) as (keyof typeof kinds)[]) {
        const n = order.push({ model, kind });
        const usage = { ...kinds[kind], reasoning_output_tokens: 0, total_tokens: 0 };
        const ts = '2000-01-01T00:00:00.000Z';
        const lines = [
          { timestamp: ts, type: 'turn_context', payload: { model } },
          { timestamp: ts, type: 'event_msg', payload: { type: 'token_count', info: { total_token_usage: usage, last_token_usage: usage } } },
        ];
        const name = `rollout-probe-${String(n).padStart(4, '0')}-${i}-${kind}.jsonl`;
        writeFileSync(join(day, name), lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
      }
    });
    const report = await codexSessions(home);
    const prices: Record<string, { input: number; cached: number; output: number }> = {};
    report.sessions.forEach((s) => {
      const [model] = Object.keys(s.models);
      const m = model === undefined ? undefined : s.models[model];
      if (model === undefined || m === undefined) return;
      const kind = m.outputTokens > 0 ? 'output' : m.cachedInputTokens > 0 ? 'cached' : 'input';
      (prices[model] ??= { input: 0, cached: 0, output: 0 })[kind] = s.costUSD / PROBE;
    });
    return prices;
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

async function codexTotals(dir: string): Promise<Record<string, ModelTotals>> {
  const report = await codexSessions(dir);
  const tokens: Record<string, CodexModel> = {};
  for (const s of report.sessions) {
    for (const [model, m] of Object.entries(s.models)) {
      const cur = (tokens[model] ??= { inputTokens: 0, cachedInputTokens: 0, outputTokens: 0, reasoningOutputTokens: 0 });
      cur.inputTokens += m.inputTokens;
      cur.cachedInputTokens += m.cachedInputTokens;
      cur.outputTokens += m.outputTokens;
      cur.reasoningOutputTokens += m.reasoningOutputTokens;
    }
  }
  const prices = await codexPrices(Object.keys(tokens));
  const totals: Record<string, ModelTotals> = {};
  for (const [model, m] of Object.entries(tokens)) {
    const p = prices[model] ?? { input: 0, cached: 0, output: 0 };
    add(totals, model, {
      input: m.inputTokens,
      output: m.outputTokens,
      cacheCreation: 0,
      cacheRead: m.cachedInputTokens,
      reasoning: m.reasoningOutputTokens,
      cost: (m.inputTokens - m.cachedInputTokens) * p.input + m.cachedInputTokens * p.cached + m.outputTokens * p.output,
    });
  }
  return totals;
}

/**
 * ccusage's totals per model for a transcript dir: for 'claude' a CLAUDE_CONFIG_DIR (holding
 * projects/), for 'codex' a CODEX_HOME (holding sessions/). Runs offline (bundled prices).
 */
export async function ccusageTotals(source: 'claude' | 'codex', dir: string): Promise<Record<string, ModelTotals>> {
  return source === 'claude' ? claudeTotals(resolve(dir)) : codexTotals(resolve(dir));
}
