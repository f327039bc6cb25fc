import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it, type TestContext } from 'vitest';
import { type Caller, resolveCaller } from '../../src/core/auth/caller.js';
import { openBusContext } from '../../src/core/bus/context.js';
import { resolveConfig } from '../../src/core/config/resolve.js';
import { WakeDelivery } from '../../src/core/daemon/wake.js';
import { EXPOSITION_CONTENT_TYPE, metricsHandler } from '../../src/core/http/metrics.js';
import type { HttpDeps, HttpReply, HttpRequest } from '../../src/core/http/types.js';
import { lifecycleFromConfig } from '../../src/core/lifecycle/context.js';
import { openMemoryContext } from '../../src/core/memory/open.js';
import { metricFamilies, projectMetrics } from '../../src/core/metrics.js';
import { openStore, parseStoreTarget } from '../../src/core/store/open.js';
import { isolatedEnv, sos } from '../helpers/cli.js';
import { call, httpWorld } from '../helpers/http.js';
import { ADAPTERS, type AdapterFixture, tempDir } from '../helpers/isolation.js';

/**
 * `/metrics` on SQLite and PostgreSQL: a project with real activity (messages sent and held by the
 * wake loop's own code, tasks in several statuses, a budget spent and a claim it refused, usage
 * recorded, agent states read by the supervisor), then `metricsHandler` called as the HTTP server
 * calls it, with a caller resolved from a real token. promtool (Debian's, installed by
 * scripts/install-services.sh) must accept the exposition with no lint problem; every sample that
 * shows a `sos metrics` figure must equal what `sos metrics --json` prints for the same token;
 * and another project's samples never appear. Without promtool these tests skip, saying so;
 * under CI=true they fail instead.
 */

const CI = process.env.CI === 'true';
const PROMTOOL = (() => {
  try {
    execFileSync('promtool', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
if (!PROMTOOL && !CI) console.warn('PROMTOOL MISSING: the /metrics tests are SKIPPED. Install it: bash scripts/install-services.sh');

/** `promtool check metrics` on stdin: its exit code and everything it printed (lint problems go to stdout). */
function promtool(text: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, output }));
    child.stdin.end(text);
  });
}

/** Each sample line as `name{labels}` → value; comments checked to come as HELP then TYPE. */
function parseExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

const seriesOf = (name: string, labels: Record<string, string>) => {
  const set = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return set.length === 0 ? name : `${name}{${set.join(',')}}`;
};

/** The daemon's parts over a private database, opened from configuration as the daemon opens them. */
async function world(ctx: TestContext, adapter: AdapterFixture) {
  const target = adapter.target(ctx);
  const home = tempDir(ctx);
  const env = isolatedEnv(home, { ...target.env, SOS_DB: target.db });
  /** `sos` as a user runs it, whatever its exit code. */
  const attempt = (args: string[], extra: Record<string, string> = {}) => sos(args, { ...env, ...extra });
  /** `sos`, which must succeed. */
  const run = async (args: string[], extra: Record<string, string> = {}) => {
    const r = await attempt(args, extra);
    expect(r.code, `sos ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r;
  };
  await run(['init']);
  const config = await resolveConfig({ env, flags: {} });
  const values = config.values;
  const store = await openStore({ target: parseStoreTarget(values.db, home), pgSchema: values.pgSchema, busyTimeoutMs: values.busyTimeoutMs });
  ctx.onTestFinished(() => store.close());
  const bus = await openBusContext(values, store);
  ctx.onTestFinished(() => bus.bus.close());
  const memory = await openMemoryContext(values, store, home, bus.bus);
  ctx.onTestFinished(() => memory.close());
  const life = await lifecycleFromConfig(values, { store, bus: bus.bus, memory: memory.ctx, cwd: home });
  const deps: HttpDeps = { store, bus, tasks: { store, bus: bus.bus, maxTextBytes: values.maxMessageBytes }, memory: memory.ctx, life, values };
  const scrape = async (caller: Caller, method = 'GET'): Promise<HttpReply> => {
    const request: HttpRequest = { method, path: '/metrics', query: new URLSearchParams(), body: undefined, caller, requestId: `req_${method}`, signal: new AbortController().signal };
    return metricsHandler(deps, request);
  };
  const callerOf = (token: string) => resolveCaller(store, { token, project: values.project, projectExplicit: false, agent: undefined });
  return { run, attempt, home, store, life, deps, scrape, callerOf };
}

describe.each(ADAPTERS)('/metrics on $name', (adapter) => {
  describe.skipIf(!adapter.available)(adapter.name, () => {
    it.skipIf(!PROMTOOL && !CI)('passes promtool, equals sos metrics --json for the same token, and shows nothing of another project', { timeout: 120_000 }, async (ctx) => {
      expect(PROMTOOL, 'CI=true and promtool is missing: run scripts/install-services.sh').toBe(true);
      const { run, attempt, home, store, life, deps, scrape, callerOf } = await world(ctx, adapter);

      // ---- agents: a coordinator, and two workers whose sessions are gone (the supervisor reads them dead)
      const sock = join(home, 'tmux.sock');
      await run(['agents', 'add', 'boss', '--role', 'coordinator']);
      await run(['agents', 'add', 'kasra', '--kind', 'claude', '--cap', 'code', '--session', 'tmux:sos-metrics-gone', '--tmux-socket', sock]);
      await run(['agents', 'add', 'codex', '--kind', 'codex', '--session', 'tmux:sos-metrics-gone-too', '--tmux-socket', sock]);
      await run(['agents', 'probe']);
      const token = (await run(['tokens', 'create', '--agent', 'boss', '-q'])).stdout.trim();
      const caller = await callerOf(token);
      expect(caller).toMatchObject({ project: 'default', agent: 'boss', via: 'token' });

      // ---- messages: three sent to kasra; the wake loop's code holds them (its session is gone)
      for (const text of ['deploy is green', 'please review tsk', 'standup in 5']) await run(['send', 'kasra', text, '--as', 'boss']);
      const wake = new WakeDelivery(life, { cooldownMs: 0, verifyMs: 200 }, (_key, fn) => fn());
      const held = await wake.deliverProject(caller, await store.agents.list('default'));
      expect(held.find((o) => o.agent === 'kasra')).toMatchObject({ result: 'held', newlyHeld: expect.arrayContaining([expect.any(String)]) as unknown });

      // ---- tasks: one done, one failed, one claimed, one queued; a second claim of a taken task refused
      const create = async (title: string) => (await run(['tasks', 'create', title, '--as', 'boss'])).stdout.trim();
      const done = await create('ship the parser');
      await run(['tasks', 'claim', '--id', done, '--as', 'kasra']);
      await run(['tasks', 'complete', done, '--as', 'kasra', '--fence', '1']);
      const failed = await create('port the importer');
      await run(['tasks', 'claim', '--id', failed, '--as', 'kasra']);
      await run(['tasks', 'fail', failed, '--as', 'kasra', '--fence', '1', '--error', 'no such file']);
      const claimed = await create('write the docs');
      await run(['tasks', 'claim', '--id', claimed, '--as', 'kasra']);
      expect((await attempt(['tasks', 'claim', '--id', claimed, '--as', 'codex'])).code).toBe(4);
      const queued = await create('tidy the board');

      // ---- economy: a one-cent project budget that blocks, spent by recorded usage; the next claim is refused
      await run(['budgets', 'set', 'project', '--limit', '0.01usd', '--period', 'day', '--action', 'block']);
      await run(['usage', 'record', '--model', 'claude-sonnet-4-5', '--input', '12345', '--output', '678', '--as', 'kasra', '--task', claimed]);
      await run(['budgets', 'set', 'agent:kasra', '--limit', '2m', '--period', 'total', '--action', 'warn']);
      await run(['usage', 'record', '--model', 'claude-haiku-4-5', '--input', '1000', '--output', '100', '--as', 'kasra', '--task', claimed]);
      const refused = await attempt(['tasks', 'claim', '--id', queued, '--as', 'codex']);
      expect(refused.code, refused.stderr).toBe(6);

      // ---- the brain's breakers (installation-wide): one whose name needs every label escape
      const at = Date.now();
      const breaker = (name: string, state: string) =>
        JSON.stringify({ name, state, consecutiveFailures: 3, failureThreshold: 3, coolDownMs: 3_600_000, openedAt: at, probeAt: at + 3_600_000, probeInFlight: false, lastError: 'HTTP 503', counters: { calls: 5, successes: 2, failures: 3, timeouts: 1, opens: 1, rejections: 4 } });
      const hostile = 'we"ird\\back\nslash';
      await store.sql.run('INSERT INTO brain_breakers (name, snapshot, updated_at) VALUES ($1, $2, $3)', ['openai', breaker('openai', 'open'), at]);
      await store.sql.run('INSERT INTO brain_breakers (name, snapshot, updated_at) VALUES ($1, $2, $3)', [hostile, breaker(hostile, 'closed'), at]);

      // ---- another project with activity of its own
      await run(['projects', 'create', 'other']);
      await run(['agents', 'add', 'spy', '--project', 'other']);
      await run(['agents', 'add', 'mole', '--project', 'other']);
      await run(['send', 'mole', 'the other project', '--as', 'spy', '--project', 'other']);
      await run(['tasks', 'create', 'other work', '--as', 'spy', '--project', 'other']);
      const otherToken = (await run(['tokens', 'create', '--agent', 'spy', '--project', 'other', '-q'])).stdout.trim();

      // ---- the scrape
      const reply = await scrape(caller);
      expect(reply.status).toBe(200);
      expect(reply.contentType).toBe(EXPOSITION_CONTENT_TYPE);
      const text = reply.body as string;
      expect(typeof text).toBe('string');
      const check = await promtool(text);
      expect(check, text).toEqual({ code: 0, output: '' });

      const samples = parseExposition(text);
      const json = (await run(['metrics', '--json'], { SOS_TOKEN: token })).json<Record<string, number | null>>();
      // Every `sos metrics` figure is one sample of the exposition with the same value; null ones are absent.
      const families = metricFamilies(await projectMetrics({ store, bus: deps.bus, repo: life.repo }, caller));
      const shown = new Set<string>();
      for (const f of families) {
        for (const s of f.samples) {
          if (s.key === undefined) continue;
          shown.add(s.key);
          const series = seriesOf(f.name, s.labels);
          if (json[s.key] === null) expect(samples.has(series), `${series} (null in sos metrics) is absent`).toBe(false);
          else expect(samples.get(series), `${series} = sos metrics ${s.key}`).toBe(json[s.key]);
        }
      }
      expect([...shown].sort()).toEqual(Object.keys(json).sort());

      // The figures the activity above moved, by their Prometheus names.
      const value = (name: string, labels: Record<string, string> = {}) => samples.get(seriesOf(name, { project: 'default', ...labels }));
      expect(value('sos_messages_held_now')).toBe(3);
      expect(value('sos_messages_held_total')).toBe(3);
      expect(value('sos_duplicate_claims_refused_total')).toBe(1);
      expect(value('sos_budget_claims_refused_total')).toBe(1);
      expect(value('sos_tasks_done')).toBe(1);
      expect(value('sos_tasks', { status: 'done' })).toBe(1);
      expect(value('sos_tasks', { status: 'claimed' })).toBe(1);
      expect(value('sos_tasks', { status: 'queued' })).toBe(1);
      expect((value('sos_tasks', { status: 'failed' }) ?? 0) + (value('sos_tasks', { status: 'dead' }) ?? 0)).toBe(1);
      expect(value('sos_agents', { state: 'dead' })).toBe(2);
      expect(value('sos_agents', { state: 'unprobed' })).toBe(1);
      expect(value('sos_agents', { state: 'idle' })).toBe(0);
      expect(value('sos_budget_limit_usd', { scope: 'project', period: 'day' })).toBe(0.01);
      expect(value('sos_budget_spent_usd', { scope: 'project', period: 'day' })).toBeGreaterThan(0.01);
      expect(value('sos_budget_spent_usd', { scope: 'project', period: 'day' })).toBe(json.priced_spend_usd);
      expect(value('sos_budget_spent_tokens', { scope: 'agent:kasra', period: 'total' })).toBe(12_345 + 678 + 1_000 + 100);
      expect(value('sos_budget_limit_tokens', { scope: 'agent:kasra', period: 'total' })).toBe(2_000_000);
      expect(value('sos_priced_spend_usd')).toBeGreaterThan(0);
      expect(value('sos_brain_breaker_state', { provider: 'openai' })).toBe(2);
      expect(value('sos_brain_breaker_state', { provider: hostile })).toBe(0);
      expect(value('sos_brain_breakers_open')).toBe(1);
      expect(text).toContain('provider="we\\"ird\\\\back\\nslash"');
      expect(text).not.toMatch(/NaN/);
      expect(value('sos_recovery_success_rate')).toBeUndefined();

      // Every sample carries the caller's project, and only it.
      const lines = text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
      expect(lines.length).toBeGreaterThan(50);
      for (const line of lines) expect(line, line).toMatch(/^sos_[a-z_]+\{project="default"[,}]/);

      // ---- the other project's token sees its own project only
      const other = await scrape(await callerOf(otherToken));
      expect(other.status).toBe(200);
      expect(await promtool(other.body as string)).toEqual({ code: 0, output: '' });
      const otherLines = (other.body as string).split('\n').filter((l) => l !== '' && !l.startsWith('#'));
      for (const line of otherLines) expect(line, line).toMatch(/^sos_[a-z_]+\{project="other"[,}]/);
      const otherSamples = parseExposition(other.body as string);
      expect(otherSamples.get('sos_tasks{project="other",status="queued"}')).toBe(1);
      expect(otherSamples.get('sos_agents{project="other",state="unprobed"}')).toBe(2);
      expect(otherSamples.get('sos_messages_held_now{project="other"}')).toBe(0);
      expect(otherSamples.get('sos_duplicate_claims_refused_total{project="other"}')).toBe(0);
      expect(other.body as string).not.toMatch(/sos_budget_(spent|limit)_/);
      expect(text).not.toContain('project="other"');

      // ---- sos metrics --prometheus prints the same exposition for the same token, for promtool offline
      const printed = await run(['metrics', '--prometheus'], { SOS_TOKEN: token });
      expect(printed.stdout).toBe(text);
      const both = await attempt(['metrics', '--prometheus', '--json']);
      expect(both.code).toBe(2);

      // ---- counters move when work happens: one more delivery held, one more refused claim
      await run(['send', 'kasra', 'one more', '--as', 'boss']);
      await wake.deliverProject(caller, await store.agents.list('default'));
      expect((await attempt(['tasks', 'claim', '--id', queued, '--as', 'codex'])).code).toBe(6);
      const after = parseExposition((await scrape(caller)).body as string);
      expect(after.get('sos_messages_held_total{project="default"}')).toBe(4);
      expect(after.get('sos_budget_claims_refused_total{project="default"}')).toBe(2);
    });

    it.skipIf(!PROMTOOL && !CI)('is served by sos daemon at GET /metrics: a token needed, promtool-valid, counters moving with work', { timeout: 60_000 }, async (ctx) => {
      expect(PROMTOOL, 'CI=true and promtool is missing: run scripts/install-services.sh').toBe(true);
      const w = await httpWorld(ctx, adapter);
      const token = await w.token('boss');
      await w.run(['agents', 'add', 'kasra']);
      await w.run(['projects', 'create', 'other']);
      const otherToken = await w.token('spy', { project: 'other' });
      const { url } = await w.serve();

      expect((await call(`${url}/metrics`)).status).toBe(401);
      const first = await call(`${url}/metrics`, { token });
      expect(first.status, first.text).toBe(200);
      expect(first.headers.get('content-type')).toBe(EXPOSITION_CONTENT_TYPE);
      expect(await promtool(first.text)).toEqual({ code: 0, output: '' });
      expect(parseExposition(first.text).get('sos_duplicate_claims_refused_total{project="default"}')).toBe(0);

      const id = (await w.run(['tasks', 'create', 'one'])).stdout.trim();
      expect((await w.run(['tasks', 'claim', '--id', id, '--as', 'kasra'])).code).toBe(0);
      expect((await w.run(['tasks', 'claim', '--id', id, '--as', 'kasra'])).code).toBe(4);
      const second = parseExposition((await call(`${url}/metrics`, { token })).text);
      expect(second.get('sos_duplicate_claims_refused_total{project="default"}')).toBe(1);
      expect(second.get('sos_tasks{project="default",status="claimed"}')).toBe(1);

      const other = await call(`${url}/metrics`, { token: otherToken });
      expect(other.status).toBe(200);
      expect(other.text).toContain('sos_tasks{project="other",status="claimed"} 0\n');
      expect(other.text).not.toContain('project="default"');
    });

    it('answers only GET and HEAD, and an error as the CLI error object with its status', async (ctx) => {
      const { run, scrape, callerOf } = await world(ctx, adapter);
      await run(['agents', 'add', 'boss']);
      const caller = await callerOf((await run(['tokens', 'create', '--agent', 'boss', '--role', 'observer', '-q'])).stdout.trim());
      expect((await scrape(caller)).status).toBe(200);
      expect((await scrape(caller, 'HEAD')).status).toBe(200);
      const post = await scrape(caller, 'POST');
      expect(post).toMatchObject({ status: 405, headers: { allow: 'GET, HEAD' }, body: { error: { code: 'usage' } } });
      // A caller for a project that does not exist: not_found, 404, as `sos metrics` exits 3.
      const gone = await scrape({ project: 'nowhere', agent: null, role: 'operator', via: 'local' });
      expect(gone).toMatchObject({ status: 404, body: { error: { code: 'not_found' } } });
    });
  });
});
