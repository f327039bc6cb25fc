#!/usr/bin/env node
// HTTP surface benchmarks (issue 16), each against a primitive measured in the same run:
//   (a) closed loop: `POST /v1/messages` to a real `sos daemon --listen 127.0.0.1:<port>` on a
//       SQLite data dir, from C keep-alive connections (each its own agent's token) for S seconds:
//       req/s, p50/p99, errors (anything but 201, or a failed connection);
//   (b) the same send in-process: core `sendMessage` on the same database file (its own
//       connection, the daemon idle meanwhile), one after another: sends/s and p50/p99;
//   (c) a bare Node HTTP server (its own process, as the daemon is) that reads the body and
//       answers the daemon's own 201 JSON: the cost of the HTTP layer alone;
//   (d) MCP `tools/call send` over streamable HTTP with the SDK client, one session, calls one
//       after another: p50/p99;
//   (e) open loop at a fixed offered rate (default 1,000 req/s) for S seconds against the daemon:
//       each request's latency from the moment it was due (so a stall counts for every request it
//       delays), p50/p99/max, errors, and the rate answered. The issue's aim: p99 < 10 ms.
//   (a), (b) and (c) are interleaved, ROUNDS times, and every figure is the median of the rounds
//   with the spread (min–max) next to it: the machine is shared and drifts.
// Usage: npm run build && node bench/http.mjs [seconds=30] [connections=50] [rate=1000] [rounds=3]
//   SOS_BENCH_PROFILE=<dir>: run the daemon under `node --cpu-prof --cpu-prof-dir <dir>` and
//   print the functions with the most self time over the whole run (the profile stays in <dir>).
//   The daemon's per-token rate and concurrency limits are raised for the run (SOS_HTTP_RATE,
//   SOS_HTTP_BURST, SOS_HTTP_CONCURRENCY): the bench measures the cost of a request, not the policy.
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate } from 'node:timers';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(root, 'bin', 'sos');
const TICK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
const TEXT = 'deploy fixed: the release build passed every check and is live on the canary hosts';

if (process.argv[2] === '--bare-server') await bareServer(process.argv[3]);
else await main();

/**
 * The bare server: Node's http alone, reading the whole body and parsing it as the daemon does,
 * then answering with the daemon's own 201 JSON (given as an argument) and its headers' shape.
 */
async function bareServer(reply) {
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      JSON.parse(Buffer.concat(chunks).toString('utf8'));
      res.writeHead(201, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(reply), 'x-request-id': 'req_bare' });
      res.end(reply);
    });
  });
  server.keepAliveTimeout = 5_000;
  server.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`));
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
  server.on('close', () => undefined);
  await new Promise(() => undefined);
}

async function main() {
  const SECONDS = Number(process.argv[2] ?? 30);
  const CONNECTIONS = Number(process.argv[3] ?? 50);
  const RATE = Number(process.argv[4] ?? 1000);
  const ROUNDS = Number(process.argv[5] ?? 3);
  const MCP_CALLS = 2_000;
  const TOKENS = Math.min(CONNECTIONS, 10);
  const profileDir = process.env.SOS_BENCH_PROFILE;
  const sos = await import('../dist/index.js');

  const dir = mkdtempSync(join(tmpdir(), 'sos-bench-http-'));
  const env = { ...process.env, SOS_DB: join(dir, 'sos.db'), SOS_DATA_DIR: join(dir, 'data'), XDG_CONFIG_HOME: join(dir, 'cfg'), HOME: dir };
  for (const k of Object.keys(env)) if (k.startsWith('SOS_') && !['SOS_DB', 'SOS_DATA_DIR'].includes(k)) delete env[k];
  Object.assign(env, { SOS_IMPORT: '0', SOS_HTTP_RATE: '1000000', SOS_HTTP_BURST: '1000000', SOS_HTTP_CONCURRENCY: '100000' });
  const run = (args) => execFileSync(process.execPath, [BIN, ...args], { env, encoding: 'utf8' }).trim();
  const began = Date.now();
  const log = (s) => process.stderr.write(`[${((Date.now() - began) / 1000).toFixed(0).padStart(4)}s] ${s}\n`);
  const now = () => Number(process.hrtime.bigint()) / 1e6;
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const children = [];

  try {
    run(['init', '-q']);
    run(['agents', 'add', 'sink', '-q']);
    const senders = Array.from({ length: TOKENS }, (_, i) => `s${i}`);
    const tokens = senders.map((name) => {
      run(['agents', 'add', name, '-q']);
      return run(['tokens', 'create', '--agent', name, '--quiet']);
    });
    const body = (i) => JSON.stringify({ to: 'sink', text: `${TEXT} ${i}` });

    // ---- the daemon
    if (profileDir) mkdirSync(profileDir, { recursive: true });
    const nodeArgs = profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [];
    const daemon = spawn(process.execPath, [...nodeArgs, BIN, 'daemon', '--listen', '127.0.0.1:0'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(daemon);
    let daemonErr = '';
    daemon.stderr.on('data', (d) => (daemonErr += d));
    const daemonUrl = await waitFor(() => /"event":"http_listening","url":"([^"]+)"/.exec(daemonErr)?.[1], 20_000, () => daemonErr);
    await waitFor(() => /"event":"started"/.test(daemonErr) || undefined, 20_000, () => daemonErr);
    const daemonPort = Number(new URL(daemonUrl).port);
    log(`daemon pid ${daemon.pid} at ${daemonUrl}${profileDir ? ` (profiling into ${profileDir})` : ''}`);

    // The daemon's own answer, for the bare server to echo.
    const first = await request(new http.Agent({ keepAlive: false }), daemonPort, tokens[0], body(-1));
    if (first.status !== 201) throw new Error(`POST /v1/messages answered ${first.status}: ${first.text}`);
    const bare = spawn(process.execPath, [fileURLToPath(import.meta.url), '--bare-server', first.text], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(bare);
    let bareOut = '';
    bare.stdout.on('data', (d) => (bareOut += d));
    const barePort = await waitFor(() => /"port":(\d+)/.exec(bareOut)?.[1], 10_000, () => bareOut).then(Number);

    // ---- the in-process sender, on its own connection to the same file
    const { values } = await sos.resolveConfig({ env, flags: {} });
    const store = await sos.openStore({ target: { dialect: 'sqlite', path: env.SOS_DB }, pgSchema: 'sos', busyTimeoutMs: 10_000 });
    const ctx = await sos.openBusContext(values, store);
    const caller = await sos.resolveCaller(store, { token: tokens[0], project: 'default', projectExplicit: false, agent: undefined });

    /** Sends one after another for `seconds`; latencies in ms. */
    async function inProcess(seconds) {
      const lat = [];
      const end = now() + seconds * 1000;
      let i = 0;
      const cpu0 = process.cpuUsage();
      while (now() < end) {
        const t = now();
        await sos.sendMessage(ctx, caller, { to: 'sink', text: `${TEXT} ${i++}` });
        lat.push(now() - t);
      }
      const cpu = process.cpuUsage(cpu0);
      return { rate: lat.length / seconds, lat, errors: 0, cpuPerRequest: (cpu.user + cpu.system) / 1000 / lat.length };
    }

    /** C connections, each sending as soon as its last answer came, for `seconds`. */
    async function closedLoop(port, seconds, connections, pid) {
      const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
      const cpu0 = cpuMs(pid);
      const lat = [];
      let errors = 0;
      let i = 0;
      const end = now() + seconds * 1000;
      await Promise.all(
        Array.from({ length: connections }, async (_, c) => {
          while (now() < end) {
            const t = now();
            const r = await request(agent, port, tokens[c % TOKENS], body(i++)).catch((e) => ({ status: 0, text: String(e) }));
            lat.push(now() - t);
            if (r.status !== 201) errors += 1;
          }
        }),
      );
      agent.destroy();
      return { rate: lat.length / seconds, lat, errors, cpuPerRequest: (cpuMs(pid) - cpu0) / lat.length };
    }

    /**
     * A fixed offered rate: request k is due at start + k/rate and goes out then on any free
     * keep-alive connection (up to 256 open); its latency counts from when it was due.
     */
    async function openLoop(port, seconds, rate) {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
      const lat = [];
      let errors = 0;
      const total = Math.round(seconds * rate);
      const start = now() + 50;
      const pending = [];
      for (let k = 0; k < total; k++) {
        const due = start + (k * 1000) / rate;
        const wait = due - now();
        if (wait > 1) await sleep(wait - 1);
        while (now() < due) await new Promise(setImmediate);
        pending.push(
          request(agent, port, tokens[k % TOKENS], body(k))
            .catch((e) => ({ status: 0, text: String(e) }))
            .then((r) => {
              lat.push(now() - due);
              if (r.status !== 201) errors += 1;
            }),
        );
      }
      await Promise.all(pending);
      const took = (now() - start) / 1000;
      agent.destroy();
      return { rate: total / took, lat, errors };
    }

    async function mcpCalls(n) {
      const { Client, StreamableHTTPClientTransport } = await import('@modelcontextprotocol/client');
      const client = new Client({ name: 'sos-bench', version: '0.0.0' });
      await client.connect(new StreamableHTTPClientTransport(new URL(`${daemonUrl}/mcp`), { requestInit: { headers: { authorization: `Bearer ${tokens[0]}` } } }));
      const lat = [];
      let errors = 0;
      for (let i = 0; i < n + 50; i++) {
        const t = now();
        const r = await client.callTool({ name: 'send', arguments: { to: 'sink', text: `${TEXT} mcp ${i}` } });
        if (i >= 50) lat.push(now() - t);
        if (r.isError) errors += 1;
      }
      await client.close();
      return { lat, errors };
    }

    // Warm-up: JIT, prepared statements, connection set-up.
    await closedLoop(daemonPort, 2, CONNECTIONS, daemon.pid);
    await closedLoop(barePort, 1, CONNECTIONS, bare.pid);
    await inProcess(1);

    const results = { sos: [], inproc: [], bare: [] };
    for (let round = 1; round <= ROUNDS; round++) {
      results.sos.push(await closedLoop(daemonPort, SECONDS, CONNECTIONS, daemon.pid));
      log(`round ${round}: sos ${summary(results.sos.at(-1))}`);
      results.inproc.push(await inProcess(Math.min(SECONDS, 10)));
      log(`round ${round}: in-process ${summary(results.inproc.at(-1))}`);
      results.bare.push(await closedLoop(barePort, Math.min(SECONDS, 10), CONNECTIONS, bare.pid));
      log(`round ${round}: bare node ${summary(results.bare.at(-1))}`);
    }
    const mcp = [];
    for (let round = 1; round <= ROUNDS; round++) {
      mcp.push(await mcpCalls(MCP_CALLS));
      log(`round ${round}: mcp tools/call send p50 ${ms(pct(mcp.at(-1).lat, 50))} p99 ${ms(pct(mcp.at(-1).lat, 99))}`);
    }
    const open = [];
    for (let round = 1; round <= ROUNDS; round++) {
      open.push(await openLoop(daemonPort, SECONDS, RATE));
      log(`round ${round}: open loop ${RATE}/s ${summary(open.at(-1))}`);
    }

    // ---- report
    const med = (xs) => pct(xs, 50);
    const spread = (xs, f) => `${f(Math.min(...xs))}–${f(Math.max(...xs))}`;
    const rows = [];
    const figure = (what, runs, pick, f, raw, rawRuns) => {
      const v = runs.map(pick);
      const r = rawRuns?.map(pick);
      rows.push([what, `${f(med(v))} (${spread(v, f)})`, r ? `${raw} ${f(med(r))}` : raw ?? '', r ? (med(v) / med(r)).toFixed(2) : '']);
    };
    const rate = (x) => `${Math.round(x).toLocaleString('en-US')}/s`;
    figure(`POST /v1/messages, ${CONNECTIONS} conns, ${SECONDS}s: req/s`, results.sos, (x) => x.rate, rate, 'in-process', results.inproc);
    figure('  the same: req/s', results.sos, (x) => x.rate, rate, 'bare node', results.bare);
    figure('  p50', results.sos, (x) => pct(x.lat, 50), ms, 'bare node', results.bare);
    figure('  p99', results.sos, (x) => pct(x.lat, 99), ms, 'bare node', results.bare);
    figure('  max', results.sos, (x) => Math.max(...x.lat), ms, 'bare node', results.bare);
    figure('  errors', results.sos, (x) => x.errors, String);
    figure('  CPU per request (server process)', results.sos, (x) => x.cpuPerRequest, ms, 'in-process', results.inproc);
    figure('  the same', results.sos, (x) => x.cpuPerRequest, ms, 'bare node', results.bare);
    figure('in-process sendMessage p50', results.inproc, (x) => pct(x.lat, 50), ms);
    figure('in-process sendMessage p99', results.inproc, (x) => pct(x.lat, 99), ms);
    figure(`MCP tools/call send, 1 session, ${MCP_CALLS} calls: p50`, mcp, (x) => pct(x.lat, 50), ms);
    figure('  p99', mcp, (x) => pct(x.lat, 99), ms);
    figure('  errors', mcp, (x) => x.errors, String);
    figure(`open loop ${RATE} req/s offered, ${SECONDS}s: answered`, open, (x) => x.rate, rate);
    figure('  p50 (from due time)', open, (x) => pct(x.lat, 50), ms);
    figure('  p99 (from due time)', open, (x) => pct(x.lat, 99), ms, 'aim: < 10 ms');
    figure('  max', open, (x) => Math.max(...x.lat), ms);
    figure('  errors', open, (x) => x.errors, String);
    const widths = [0, 1, 2, 3].map((c) => Math.max(...[['measure', 'sos: median (min–max)', 'against', 'ratio'], ...rows].map((x) => String(x[c]).length)));
    const line = (x) => x.map((v, c) => String(v).padEnd(widths[c])).join('  ').trimEnd();
    console.log(`http benchmark: SQLite, ${ROUNDS} rounds, ${TOKENS} tokens; Node ${process.version}`);
    console.log(line(['measure', 'sos: median (min–max)', 'against', 'ratio']));
    for (const x of rows) console.log(line(x));

    await ctx.bus.close();
    await store.close();
    const exited = new Promise((r) => daemon.once('close', r));
    daemon.kill('SIGTERM');
    await exited;
    if (/loop_error|http_error|audit_failed/.test(daemonErr)) {
      console.log(`daemon reported errors:\n${daemonErr.split('\n').filter((l) => /loop_error|http_error|audit_failed/.test(l)).slice(0, 5).join('\n')}`);
    }
    if (profileDir) printProfile(profileDir);
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

/** One POST /v1/messages; resolves with the status and the answer's text. */
function request(agent, port, token, payload) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { agent, host: '127.0.0.1', port, method: 'POST', path: '/v1/messages', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode, text }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

async function waitFor(check, timeoutMs, detail) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out; output so far:\n${detail()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function pct(xs, p) {
  const s = Float64Array.from(xs).sort();
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

function ms(x) {
  return `${x.toFixed(x < 1 ? 3 : x < 10 ? 2 : 1)} ms`;
}

/** CPU time (user + system) a process has used, in ms, from /proc. */
function cpuMs(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / TICK;
}

function summary(r) {
  return `${Math.round(r.rate)}/s p50 ${ms(pct(r.lat, 50))} p99 ${ms(pct(r.lat, 99))} errors ${r.errors}${r.cpuPerRequest === undefined ? '' : ` CPU ${(r.cpuPerRequest * 1000).toFixed(0)} µs/request`}`;
}

/** Self time per function (and per source file) over the daemon's whole run, from its .cpuprofile. */
function printProfile(dir) {
  const file = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort().at(-1);
  if (!file) return console.log(`no .cpuprofile in ${dir}`);
  const profile = JSON.parse(readFileSync(join(dir, file), 'utf8'));
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const dt = profile.timeDeltas;
  for (let i = 0; i < profile.samples.length; i++) self.set(profile.samples[i], (self.get(profile.samples[i]) ?? 0) + (dt[i] ?? 0));
  const fns = new Map();
  const files = new Map();
  let total = 0;
  for (const [id, us] of self) {
    const f = byId.get(id).callFrame;
    const where = f.url ? f.url.replace(/^file:\/\//, '').replace(root, '') : '(native)';
    const name = `${f.functionName || '(anonymous)'} ${where}:${f.lineNumber + 1}`;
    fns.set(name, (fns.get(name) ?? 0) + us);
    const fileKey = where.replace(/node_modules\/((?:@[^/]+\/)?[^/]+).*/, 'node_modules/$1');
    files.set(fileKey, (files.get(fileKey) ?? 0) + us);
    total += us;
  }
  const top = (m, n) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n);
  console.log(`\ndaemon CPU profile ${join(dir, file)}: ${(total / 1e6).toFixed(1)} s sampled`);
  console.log('self time by file:');
  for (const [k, us] of top(files, 15)) console.log(`  ${((100 * us) / total).toFixed(1).padStart(5)}%  ${k}`);
  console.log('self time by function:');
  for (const [k, us] of top(fns, 25)) console.log(`  ${((100 * us) / total).toFixed(1).padStart(5)}%  ${k}`);
}
