import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Redis } from 'ioredis';
import { describe, expect, it, type TestContext } from 'vitest';
import {
  ackMessage,
  followInbox,
  heartbeat,
  listPeers,
  readInbox,
  sendMessage,
  showMessage,
} from '../../src/core/bus/service.js';
import { wireId } from '../../src/core/bus/types.js';
import { assertName } from '../../src/core/names.js';
import { BUS_ADAPTERS, type BusWorld, seedAgents } from '../helpers/bus.js';
import { isolatedEnv, sos, spawnSos } from '../helpers/cli.js';
import { services, tempDir } from '../helpers/isolation.js';
import { redisProject } from '../helpers/redis.js';

/**
 * Wire compatibility with upstream SOS (the Python implementation): its own code reads what sos
 * writes and writes what sos reads, over the real Redis. Upstream's source is not in this
 * repository (see test/upstream/README.md): point SOS_UPSTREAM_DIR at a checkout of it (its `sos/`,
 * `tests/` and `pyproject.toml`). Without one these tests skip, saying so; with one, a missing
 * python3 or module fails them. Under CI=true the Python environment itself must be there (it is
 * installed by scripts/install-services.sh), whether or not a checkout is.
 */

const CI = process.env.CI === 'true';
const UPSTREAM = process.env.SOS_UPSTREAM_DIR ? resolve(process.env.SOS_UPSTREAM_DIR) : undefined;
const MODULES = ['redis', 'pytest', 'pytest_asyncio', 'jsonschema', 'pydantic', 'pydantic_settings', 'nacl'];

/** Upstream's bus tests, run as they are (the ones that need Redis must not skip). */
const UPSTREAM_TESTS = [
  'tests/test_bus.py',
  'tests/test_bus_envelope.py',
  'tests/services/bus/test_enforcement_errors.py',
  'tests/services/bus/test_messages_unified.py',
  'tests/contracts/test_messages_core.py',
  'tests/contracts/test_messages_integration.py',
  'tests/contracts/test_messages_tasks.py',
  'tests/contracts/test_bus_port.py',
  'tests/integration/test_bus_ack.py',
  'tests/integration/test_bus_dlq.py',
  'tests/integration/test_bus_retry.py',
];

// ---------------------------------------------------------------- the Python environment

interface Python {
  exe: string;
  /** Directories appended to sys.path (another interpreter's site-packages of the same version). */
  append: string[];
  versions: Record<string, string>;
}

/**
 * Finds an interpreter that imports everything upstream's bus code and tests need. Debian's
 * python3 with its packages (scripts/install-services.sh) comes first; a module Debian's release
 * lacks at the version upstream needs (pydantic 2 on bookworm) may come from another python3 of the
 * same version on the machine, whose site-packages are then appended (never put first).
 */
function findPython(): Python | { problem: string } {
  const seen = new Map<string, { ver: string; site: string[] }>();
  for (const candidate of ['/usr/bin/python3', 'python3']) {
    try {
      const info = JSON.parse(
        execFileSync(candidate, ['-c', 'import json,site,sys; print(json.dumps({"exe": sys.executable, "ver": "%d.%d" % sys.version_info[:2], "site": site.getsitepackages()}))'], {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'ignore'],
          timeout: 20_000,
        }),
      ) as { exe: string; ver: string; site: string[] };
      if (!seen.has(info.exe)) seen.set(info.exe, { ver: info.ver, site: info.site });
    } catch {
      // not installed
    }
  }
  if (seen.size === 0) return { problem: 'python3 is not installed (run `bash scripts/install-services.sh`)' };
  const problems: string[] = [];
  for (const [exe, { ver, site }] of seen) {
    const append = [...seen].filter(([other, o]) => other !== exe && o.ver === ver).flatMap(([, o]) => o.site.filter((d) => !site.includes(d)));
    const probe = [
      'import importlib, json, sys',
      `sys.path.extend(${JSON.stringify(append)})`,
      'out = {}',
      `for name in ${JSON.stringify(MODULES)}:`,
      '    try:',
      '        m = importlib.import_module(name)',
      '        out[name] = str(getattr(m, "__version__", getattr(m, "VERSION", "?")))',
      '    except Exception as e:',
      '        out[name] = "MISSING: " + repr(e)',
      'print(json.dumps(out))',
    ].join('\n');
    try {
      const versions = JSON.parse(execFileSync(exe, ['-W', 'ignore', '-c', probe], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 60_000 })) as Record<string, string>;
      const missing = Object.entries(versions).filter(([, v]) => v.startsWith('MISSING'));
      if (!versions.pydantic?.startsWith('MISSING') && Number(versions.pydantic?.split('.')[0]) < 2) missing.push(['pydantic', `${versions.pydantic} (upstream needs 2.x)`]);
      if (missing.length === 0) return { exe, append, versions };
      problems.push(`${exe}: ${missing.map(([k, v]) => `${k} ${v}`).join(', ')}`);
    } catch (err) {
      problems.push(`${exe}: ${(err as Error).message}`);
    }
  }
  return { problem: `no python3 imports ${MODULES.join(', ')} (pydantic 2): ${problems.join('; ')}` };
}

const PYTHON = UPSTREAM !== undefined || CI ? findPython() : { problem: 'not looked for: SOS_UPSTREAM_DIR is not set' };
const PY: Python | undefined = 'exe' in PYTHON ? PYTHON : undefined;
const UPSTREAM_OK = UPSTREAM !== undefined && existsSync(join(UPSTREAM, 'sos', 'contracts', 'messages.py'));
const READY = UPSTREAM_OK && PY !== undefined && services.redis !== null;
if (!READY) {
  const why = !UPSTREAM
    ? 'SOS_UPSTREAM_DIR is not set (upstream SOS is not vendored: see test/upstream/README.md)'
    : !UPSTREAM_OK
      ? `SOS_UPSTREAM_DIR=${UPSTREAM} has no sos/contracts/messages.py`
      : PY === undefined
        ? (PYTHON as { problem: string }).problem
        : 'Redis is not available';
  console.warn(`SKIP upstream wire compatibility: ${why}`);
}

/** A Redis URL on the test server, database `db`. */
function redisUrlFor(db: number): string {
  const url = new URL(services.redisUrl);
  url.pathname = `/${db}`;
  return url.toString();
}

/** The environment upstream's code runs in: its Redis settings point at the test server, HOME is private. */
function pythonEnv(ctx: TestContext, redisUrl: string): NodeJS.ProcessEnv {
  const url = new URL(redisUrl);
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(SOS_|REDIS_|MUMEGA_|PYTHON)/.test(k)) env[k] = v;
  return {
    ...env,
    HOME: tempDir(ctx),
    PYTHONDONTWRITEBYTECODE: '1',
    PYTHONWARNINGS: 'ignore',
    SOS_UPSTREAM_DIR: UPSTREAM!,
    SOS_TEST_PY_APPEND: PY!.append.join(':'),
    SOS_TEST_REDIS_URL: redisUrl,
    // Every way upstream's modules find Redis: kernel bus, services bus, settings (registry).
    SOS_REDIS_URL: redisUrl,
    REDIS_URL: redisUrl,
    MUMEGA_REDIS_URL: redisUrl,
    REDIS_HOST: url.hostname,
    REDIS_PORT: url.port || '6379',
    REDIS_PASSWORD: decodeURIComponent(url.password),
  };
}

function run(command: string, args: string[], options: { env: NodeJS.ProcessEnv; cwd?: string; input?: string; timeoutMs?: number }) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((done, fail) => {
    const child = spawn(command, args, { env: options.env, cwd: options.cwd ?? UPSTREAM, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', fail);
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

/** What every script starts with: upstream's package first on sys.path, helpers for the checks. */
const PRELUDE = String.raw`
import json, os, sys, uuid
sys.path.insert(0, os.environ["SOS_UPSTREAM_DIR"])
sys.path.extend(p for p in os.environ.get("SOS_TEST_PY_APPEND", "").split(":") if p)
import jsonschema
import redis as redis_py
from sos.bus import envelope as bus_envelope
from sos.contracts.messages import BusMessage, SendMessage, load_schema
from sos.kernel.bus import enforce_scope
from sos.services.bus.enforcement import enforce

R = redis_py.Redis.from_url(os.environ["SOS_TEST_REDIS_URL"], decode_responses=True)
IN = json.loads(sys.stdin.read() or "{}")

def out(value):
    print(json.dumps(value, default=str))

def decoded(fields):
    """The entry as upstream's consumers see it: JSON fields (payload, headers) decoded."""
    parsed = {}
    for k, v in fields.items():
        if v and v[0] in "{[":
            try:
                parsed[k] = json.loads(v)
                continue
            except ValueError:
                pass
        parsed[k] = v
    return parsed

SCHEMA = jsonschema.Draft202012Validator(load_schema("send"), format_checker=jsonschema.FormatChecker())

def check(fields):
    """Everything upstream does with a stream entry: typed decoder, enforce(), scope guard, JSON Schema, inbox."""
    res = {"fields": fields}
    try:
        m = BusMessage.from_redis_fields(dict(fields))
        res["decoded"] = type(m).__name__
        res["model"] = m.model_dump()
    except Exception as e:
        res["decoded"] = None
        res["decode_error"] = repr(e)
    try:
        enforce(decoded(fields))
        res["enforce"] = "ok"
    except Exception as e:
        res["enforce"] = str(e)
    try:
        enforce_scope(fields)
        res["scope"] = "ok"
    except Exception as e:
        res["scope"] = str(e)
    res["schema_errors"] = sorted(e.message for e in SCHEMA.iter_errors(decoded(fields)))
    res["inbox"] = bus_envelope.parse(fields)
    return res

def entries(key):
    return [dict(f) for _, f in R.xrange(key)]

def upstream_send(source, target, text, project, **extra):
    """An entry as upstream's MCP send builds one: a validated SendMessage, then its scope fields."""
    msg = SendMessage(source="agent:" + source, target=target, timestamp=SendMessage.now_iso(),
                      message_id=str(uuid.uuid4()), payload={"text": text, "content_type": "text/plain"}, **extra)
    fields = msg.to_redis_fields()
    fields["tenant_id"] = project
    fields["project"] = project
    return fields
`;

/** Runs a Python script (after PRELUDE) with `input` as JSON on stdin; returns the JSON it printed last. */
async function py<T = Record<string, unknown>>(ctx: TestContext, script: string, input: unknown = {}, redisUrl = services.redisUrl): Promise<T> {
  const file = join(tempDir(ctx), 'script.py');
  writeFileSync(file, `${PRELUDE}\n${script}\n`);
  const result = await run(PY!.exe, ['-W', 'ignore', file], { env: pythonEnv(ctx, redisUrl), input: JSON.stringify(input) });
  if (result.code !== 0) throw new Error(`python exited ${result.code}\n${result.stderr}\n${result.stdout}`);
  const last = result.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(last) as T;
  } catch {
    throw new Error(`python printed no JSON:\n${result.stdout}\n${result.stderr}`);
  }
}

// ---------------------------------------------------------------- sos side

const redisBus = BUS_ADAPTERS.find((a) => a.name === 'redis')!;

/** Agent names unique to this test: upstream's global keys and channels have no project in them. */
function names(ctx: TestContext, ...bases: string[]): string[] {
  const tag = randomBytes(3).toString('hex');
  const out = bases.map((b) => assertName('agent', `${b}-${tag}`));
  ctx.onTestFinished(async () => {
    const redis = new Redis(services.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false, retryStrategy: () => null });
    redis.on('error', () => undefined);
    try {
      await redis.connect();
      for (const a of out) await redis.del(`sos:stream:global:agent:${a}`, `sos:stream:sos:channel:private:agent:${a}`, `sos:memory:short:${a}`);
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `sos:registry:*${tag}`, 'COUNT', 1000);
        cursor = next;
        if (keys.length > 0) await redis.del(...keys);
      } while (cursor !== '0');
    } finally {
      redis.disconnect();
    }
  });
  return out;
}

async function world(ctx: TestContext, agents: string[], squads: Record<string, string[]> = {}): Promise<BusWorld> {
  const w = await redisBus.open(ctx);
  await seedAgents(w, Object.fromEntries(agents.map((a) => [a, 'worker' as const])), squads);
  return w;
}

const inboxKey = (project: string, agent: string) => `sos:stream:project:${project}:agent:${agent}`;

interface Check {
  fields: Record<string, string>;
  decoded: string | null;
  decode_error?: string;
  model: Record<string, unknown>;
  enforce: string;
  scope: string;
  schema_errors: string[];
  inbox: { type: string; source: string; target: string; text: string; id: string; project: string | null; version: string };
}

/** Upstream's checks of every entry in `key`, and of an entry its own MCP send would write there. */
async function upstreamChecks(ctx: TestContext, key: string, project: string): Promise<{ sos: Check[]; own: Check }> {
  return py(ctx, `out({"sos": [check(f) for f in entries(IN["key"])], "own": check(upstream_send("kasra", "agent:codex", "hi", IN["project"]))})`, { key, project });
}

/** An entry exactly as sos wrote them before it followed upstream's schema (kept readable). */
function oldFormatEntry(project: string, id: string, from: string, to: string, text: string, extra: Record<string, unknown> = {}): string[] {
  const at = Date.now();
  const payload = {
    text,
    content_type: 'text/plain',
    reply_to: null,
    request_id: null,
    ack_required: false,
    ack_timeout_ms: null,
    priority: 'normal',
    created_at: at,
    expires_at: null,
    recipients: [to],
    ack_for: null,
    ack_ok: null,
    resend_of: null,
    project,
    ...extra,
  };
  return ['type', 'message', 'source', `agent:${from}`, 'target', `agent:${to}`, 'timestamp', new Date(at).toISOString(), 'version', '1', 'message_id', id, 'payload', JSON.stringify(payload)];
}

async function raw(ctx: TestContext): Promise<Redis> {
  const redis = new Redis(services.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
  redis.on('error', () => undefined);
  ctx.onTestFinished(() => {
    redis.disconnect();
  });
  await redis.connect();
  return redis;
}

// ---------------------------------------------------------------- the tests

describe('upstream SOS wire compatibility', () => {
  it.runIf(CI)('has the Python environment upstream code needs (CI: installed by scripts/install-services.sh)', () => {
    expect(PY, 'problem' in PYTHON ? PYTHON.problem : '').toBeDefined();
  });

  describe.skipIf(!READY)('against upstream code', () => {
    it("(a) upstream's own bus tests pass against the real Redis, in a database of their own", { timeout: 180_000 }, async (ctx) => {
      // A database no one else uses: claimed with a marker while empty, flushed after a pass.
      let db = -1;
      for (let n = 15; n >= 1 && db < 0; n--) {
        const redis = new Redis(redisUrlFor(n), { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
        redis.on('error', () => undefined);
        await redis.connect();
        try {
          if ((await redis.set('sos-test:upstream-claim', String(process.pid), 'EX', 900, 'NX')) === 'OK') {
            if ((await redis.dbsize()) === 1) db = n;
            else await redis.del('sos-test:upstream-claim');
          }
        } finally {
          redis.disconnect();
        }
      }
      expect(db, 'no empty Redis database (1-15) to run upstream tests in').toBeGreaterThan(0);
      ctx.onTestFinished(async () => {
        if (ctx.task.result?.state === 'fail') {
          console.warn(`kept Redis database ${db} (upstream tests) for the failed test`);
          return;
        }
        const redis = new Redis(redisUrlFor(db), { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
        redis.on('error', () => undefined);
        await redis.connect();
        await redis.flushdb();
        redis.disconnect();
      });
      const url = redisUrlFor(db);
      const code = [
        'import os, sys',
        'sys.path.insert(0, os.getcwd())',
        'sys.path.extend(p for p in os.environ.get("SOS_TEST_PY_APPEND", "").split(":") if p)',
        'import pytest',
        'sys.exit(pytest.main(["-q", "-rs", "-p", "no:cacheprovider", *sys.argv[1:]]))',
      ].join('\n');
      const result = await run(PY!.exe, ['-W', 'ignore', '-c', code, ...UPSTREAM_TESTS], { env: pythonEnv(ctx, url), timeoutMs: 170_000 });
      const summary = result.stdout.trim().split('\n').pop() ?? '';
      expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0);
      expect(summary).toMatch(/^\d+ passed in /);
      expect(summary, 'a test skipped (Redis unreachable from upstream?)').not.toMatch(/skipped/);
      // Its Redis tests really ran, in that database.
      const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
      redis.on('error', () => undefined);
      await redis.connect();
      expect(await redis.exists('sos:stream:sos:channel:private:test_agent')).toBe(1);
      redis.disconnect();
    });

    it("1-2, 5: sos entries are v1 `send` messages (version 1.0, payload text + content_type) that upstream's decoder and enforce() take", async (ctx) => {
      const [kasra, codex] = names(ctx, 'kasra', 'codex');
      const w = await world(ctx, [kasra!, codex!]);
      const plain = await sendMessage(w.ctx, w.as(kasra!), { to: codex!, text: 'deploy fixed' });
      const rich = await sendMessage(w.ctx, w.as(kasra!), { to: codex!, text: 'urgent', type: 'task.note', critical: true, expiresInMs: 60_000 });
      // The old format, as sos wrote it before: upstream refuses it (the differences measured).
      const redis = await raw(ctx);
      await redis.xadd(inboxKey(w.project, codex!), '*', ...oldFormatEntry(w.project, 'msg_01hzzzzzzzzzzzzzzzzzzzzzzz', kasra!, codex!, 'old'));
      // sos reads all of it back as it was sent, the old format too (the tolerant reader).
      const got = (await readInbox(w.ctx, w.as(codex!), {})).unread.map((i) => i.message);
      expect(got.map((m) => [m.id, m.type, m.text, m.priority, m.ackRequired])).toEqual([
        [plain.id, 'message', 'deploy fixed', 'normal', false],
        [rich.id, 'task.note', 'urgent', 'critical', true],
        ['msg_01hzzzzzzzzzzzzzzzzzzzzzzz', 'message', 'old', 'normal', false],
      ]);
      expect(got[1]!.expiresAt).toBeGreaterThan(Date.now());
      await ackMessage(w.ctx, w.as(codex!), { id: rich.id, ok: true }); // an `ack` back to kasra

      const toCodex = await upstreamChecks(ctx, inboxKey(w.project, codex!), w.project);
      const toKasra = await upstreamChecks(ctx, inboxKey(w.project, kasra!), w.project);
      const [a, b, old] = toCodex.sos;
      const ack = toKasra.sos[0]!;
      for (const c of [a!, b!, ack]) {
        expect(c.decoded, c.decode_error).toBe('SendMessage');
        expect(c.enforce).toBe('ok');
        expect(c.scope).toBe('ok');
        expect(c.fields.type).toBe('send');
        expect(c.fields.version).toBe('1.0');
        expect(Object.keys(JSON.parse(c.fields.payload!) as object).sort()).toEqual(['content_type', 'text']);
        // The JSON Schema: nothing but what upstream's own entries also fail (their scope fields).
        expect(c.schema_errors).toEqual(toCodex.own.schema_errors);
      }
      expect(toCodex.own.schema_errors.join()).toMatch(/Additional properties.*('project'|'tenant_id')/);
      expect(a!.inbox).toMatchObject({ type: 'send', source: `agent:${kasra}`, text: 'deploy fixed', version: '1.0' });
      expect(b!.model).toMatchObject({ payload: { text: 'urgent' }, headers: { sos_type: 'task.note', sos_priority: 'critical', sos_ack_required: 'true' } });
      expect(ack.model).toMatchObject({ headers: { sos_type: 'ack', sos_ack_ok: 'true' }, reply_to: wireId(rich.id) });
      expect(old!.decoded).toBeNull();
      expect(old!.decode_error).toMatch(/Unknown message type: 'message'/);
      expect(old!.enforce).toMatch(/SOS-4004/);

      const acks = (await readInbox(w.ctx, w.as(kasra!), {})).unread.map((i) => i.message);
      expect(acks).toEqual([expect.objectContaining({ type: 'ack', ackFor: rich.id, ackOk: true, replyTo: rich.id, requestId: expect.stringMatching(/^req_/) })]);
    });

    it('3: message ids are UUIDs on the wire, and sos takes upstream UUIDs for --reply-to, ack and show', async (ctx) => {
      const [kasra, codex] = names(ctx, 'kasra', 'codex');
      const w = await world(ctx, [kasra!, codex!]);
      const sent = await sendMessage(w.ctx, w.as(kasra!), { to: codex!, text: 'ping' });
      const theirs = await py<{ id: string; model: { message_id: string } }>(
        ctx,
        `f = upstream_send(IN["from"], "agent:" + IN["to"], "from upstream", IN["project"])
R.xadd(IN["key"], f)
mine = check(entries(IN["mine"])[0])
out({"id": f["message_id"], "model": mine["model"]})`,
        { from: kasra, to: codex, project: w.project, key: inboxKey(w.project, codex!), mine: inboxKey(w.project, codex!) },
      );
      // Upstream parsed sos's message_id as a UUID: the same 128 bits as the msg_ id.
      expect(theirs.model.message_id).toBe(wireId(sent.id));
      const inbox = (await readInbox(w.ctx, w.as(codex!), {})).unread.map((i) => i.message);
      expect(inbox.map((m) => m.text)).toEqual(['ping', 'from upstream']);
      const foreign = inbox[1]!;
      expect(wireId(foreign.id)).toBe(theirs.id);
      // Every place a message id is taken takes upstream's UUID for it.
      expect((await showMessage(w.ctx, w.as(codex!), theirs.id)).message.id).toBe(foreign.id);
      expect((await showMessage(w.ctx, w.as(codex!), theirs.id.toUpperCase())).message.id).toBe(foreign.id);
      const reply = await sendMessage(w.ctx, w.as(codex!), { to: kasra!, text: 'pong', replyTo: theirs.id });
      expect(await ackMessage(w.ctx, w.as(codex!), { id: theirs.id, ok: true })).toMatchObject({ id: foreign.id, ok: true });
      expect((await showMessage(w.ctx, w.as(kasra!), reply.id)).message.replyTo).toBe(foreign.id);
      expect((await showMessage(w.ctx, w.as(codex!), foreign.id)).deliveries).toEqual([{ recipient: codex, state: 'acked', at: expect.any(Number) }]);
    });

    it('3: the CLI takes upstream UUIDs in --reply-to, ack and messages show (no exit 2)', { timeout: 60_000 }, async (ctx) => {
      const home = tempDir(ctx);
      const project = redisProject(ctx);
      const [kasra, codex] = names(ctx, 'kasra', 'codex');
      const env = isolatedEnv(home, { SOS_PROJECT: project, SOS_REDIS_URL: services.redisUrl });
      const cli = (args: string[]) => sos(args, env);
      expect((await cli(['init'])).code).toBe(0);
      for (const a of [kasra!, codex!]) expect((await cli(['agents', 'add', a, '--role', 'worker'])).code).toBe(0);
      const { id } = await py<{ id: string }>(
        ctx,
        `f = upstream_send(IN["from"], "agent:" + IN["to"], "from upstream", IN["project"])
R.xadd(IN["key"], f)
out({"id": f["message_id"]})`,
        { from: kasra, to: codex, project, key: inboxKey(project, codex!) },
      );
      const inbox = await cli(['inbox', '--as', codex!, '--json']);
      expect(inbox.code, inbox.stderr).toBe(0);
      expect(inbox.stdout).toContain('from upstream');
      for (const args of [
        ['send', kasra!, 'got it', '--as', codex!, '--reply-to', id],
        ['ack', id, '--as', codex!],
        ['messages', 'show', id, '--as', codex!],
      ]) {
        const r = await cli(args);
        expect(r.code, `sos ${args.join(' ')}: ${r.stderr}`).toBe(0);
      }
    });

    it('4: threads both ways: top-level reply_to and correlation_id, read and written', async (ctx) => {
      const [kasra, codex] = names(ctx, 'kasra', 'codex');
      const w = await world(ctx, [kasra!, codex!]);
      // Upstream → sos: a request with a correlation id; sos's reply carries both back.
      const up = await py<{ id: string; corr: string }>(
        ctx,
        `corr = str(uuid.uuid4())
f = upstream_send(IN["from"], "agent:" + IN["to"], "question?", IN["project"], correlation_id=corr)
R.xadd(IN["key"], f)
out({"id": f["message_id"], "corr": corr})`,
        { from: kasra, to: codex, project: w.project, key: inboxKey(w.project, codex!) },
      );
      const [question] = (await readInbox(w.ctx, w.as(codex!), {})).unread.map((i) => i.message);
      expect(question).toMatchObject({ text: 'question?', requestId: expect.stringMatching(/^req_/) });
      expect(wireId(question!.requestId!)).toBe(up.corr);
      const answer = await sendMessage(w.ctx, w.as(codex!), { to: kasra!, text: 'answer', replyTo: question!.id });
      const seen = await py<{ model: { reply_to: string; correlation_id: string } }>(ctx, 'out(check(entries(IN["key"])[-1]))', { key: inboxKey(w.project, kasra!) });
      expect(seen.model).toMatchObject({ reply_to: up.id, correlation_id: up.corr });

      // sos → upstream → sos: upstream replies to sos's message with its UUID; sos threads it.
      const theirReply = await py<{ corr: string }>(
        ctx,
        `orig = check(entries(IN["key"])[-1])["model"]
f = upstream_send(IN["from"], "agent:" + IN["to"], "re: answer", IN["project"], reply_to=orig["message_id"], correlation_id=orig["correlation_id"])
R.xadd(IN["back"], f)
out({"corr": orig["correlation_id"]})`,
        { key: inboxKey(w.project, kasra!), back: inboxKey(w.project, codex!), from: kasra, to: codex, project: w.project },
      );
      const [reply] = (await readInbox(w.ctx, w.as(codex!), {})).unread.map((i) => i.message);
      expect(reply).toMatchObject({ text: 're: answer', replyTo: answer.id, requestId: question!.requestId });
      expect(wireId(reply!.requestId!)).toBe(theirReply.corr);
    });

    it('6: project (and tenant_id) at the top level, where upstream readers and its scope guard look', async (ctx) => {
      const [kasra, codex] = names(ctx, 'kasra', 'codex');
      const w = await world(ctx, [kasra!, codex!]);
      await sendMessage(w.ctx, w.as(kasra!), { to: codex!, text: 'scoped' });
      const { sos: [c] } = await upstreamChecks(ctx, inboxKey(w.project, codex!), w.project);
      expect(c!.fields).toMatchObject({ project: w.project, tenant_id: w.project });
      expect(c!.scope).toBe('ok');
      expect(c!.inbox.project).toBe(w.project);
      expect(JSON.parse(c!.fields.payload!)).not.toHaveProperty('project');
    });

    it('7: squad and broadcast targets are upstream channels, both ways', async (ctx) => {
      const [kasra, codex, gemini] = names(ctx, 'kasra', 'codex', 'gemini');
      const w = await world(ctx, [kasra!, codex!, gemini!], { core: [kasra!, codex!, gemini!] });
      await sendMessage(w.ctx, w.as(kasra!), { to: 'squad:core', text: 'standup' });
      await sendMessage(w.ctx, w.as(kasra!), { to: 'all', text: 'release' });
      const squad = await upstreamChecks(ctx, `sos:stream:project:${w.project}:squad:core`, w.project);
      const all = await upstreamChecks(ctx, `sos:stream:project:${w.project}:broadcast`, w.project);
      expect(squad.sos[0]).toMatchObject({ decoded: 'SendMessage', enforce: 'ok', fields: { target: `sos:channel:project:${w.project}:squad:core` } });
      expect(all.sos[0]).toMatchObject({ decoded: 'SendMessage', enforce: 'ok', fields: { target: `sos:channel:project:${w.project}:global` } });
      expect(squad.sos[0]!.schema_errors).toEqual(squad.own.schema_errors);
      // Upstream's broadcast (MCP `broadcast`: the squad's or project's stream, a channel target) reaches the members.
      await py(
        ctx,
        `p = IN["project"]
R.xadd("sos:stream:project:%s:squad:core" % p, upstream_send(IN["from"], "sos:channel:project:%s:squad:core" % p, "upstream standup", p))
R.xadd("sos:stream:project:%s:broadcast" % p, upstream_send(IN["from"], "sos:channel:project:%s:global" % p, "upstream release", p))
out({})`,
        { project: w.project, from: gemini },
      );
      const codexMail = (await readInbox(w.ctx, w.as(codex!), {})).unread.map((i) => [i.message.text, i.message.target]);
      expect(codexMail).toEqual([
        ['standup', { kind: 'squad', name: 'core' }],
        ['release', { kind: 'broadcast' }],
        ['upstream standup', { kind: 'squad', name: 'core' }],
        ['upstream release', { kind: 'broadcast' }],
      ]);
      expect((await readInbox(w.ctx, w.as(gemini!), {})).unread.map((i) => i.message.text)).toEqual(['standup', 'release']);
    });

    it("8: wakes both ways: upstream's listeners get sos's message; each upstream wake wakes sos at once", { timeout: 60_000 }, async (ctx) => {
      const [kasra, codex] = names(ctx, 'kasra', 'codex');
      const w = await world(ctx, [kasra!, codex!]);
      // sos → upstream: a subscriber on sos:wake:<a> (the wake daemon's) and on the per-agent channel.
      const listener = spawn(
        PY!.exe,
        [
          '-W',
          'ignore',
          '-c',
          `${PRELUDE}
ps = R.pubsub()
ps.subscribe("sos:wake:" + IN["to"], "sos:channel:project:%s:agent:%s" % (IN["project"], IN["to"]))
print("ready", flush=True)
got = {}
import time
deadline = time.time() + 20
while len(got) < 2 and time.time() < deadline:
    m = ps.get_message(timeout=1)
    if m and m["type"] == "message":
        got[m["channel"]] = check(json.loads(m["data"]))
out(got)`,
        ],
        { env: pythonEnv(ctx, services.redisUrl), cwd: UPSTREAM, stdio: ['pipe', 'pipe', 'pipe'] },
      );
      ctx.onTestFinished(() => {
        listener.kill('SIGKILL');
      });
      listener.stdin.end(JSON.stringify({ to: codex, project: w.project }));
      let out = '';
      let err = '';
      listener.stderr.on('data', (d: Buffer) => (err += d.toString()));
      await new Promise<void>((ready, fail) => {
        listener.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('ready\n')) ready();
        });
        listener.on('close', () => fail(new Error(`listener exited: ${err}`)));
      });
      await sendMessage(w.ctx, w.as(kasra!), { to: codex!, text: 'wake up' });
      const closed = new Promise<void>((r) => listener.on('close', () => r()));
      await closed;
      const got = JSON.parse(out.trim().split('\n').pop()!) as Record<string, Check>;
      for (const channel of [`sos:wake:${codex}`, `sos:channel:project:${w.project}:agent:${codex}`]) {
        expect(got[channel], `${channel}: ${err}`).toMatchObject({ decoded: 'SendMessage', enforce: 'ok', inbox: { text: 'wake up', source: `agent:${kasra}` } });
      }
      await readInbox(w.ctx, w.as(codex!), {});

      // Upstream → sos: each channel upstream's senders publish on wakes a waiting reader by itself.
      const streams = [{ kind: 'agent' as const, name: codex! }];
      for (const channel of [`sos:wake:${codex}`, `sos:channel:project:${w.project}:agent:${codex}`, `sos:channel:agent:${codex}`]) {
        const started = Date.now();
        const waiting = w.ctx.bus.waitForWake(w.project, codex!, streams, { timeoutMs: 15_000 });
        await new Promise((r) => setTimeout(r, 100));
        await py(ctx, 'R.publish(IN["channel"], json.dumps({"from": "kasra", "text": "hi"})); out({})', { channel });
        expect(await waiting, channel).toBe(true);
        expect(Date.now() - started, channel).toBeLessThan(10_000);
      }

      // End to end: `sos inbox --follow` gets upstream's MCP send (XADD, then its two publishes) at once.
      const abort = new AbortController();
      ctx.onTestFinished(() => abort.abort());
      const arrived: string[] = [];
      const following = followInbox(w.ctx, w.as(codex!), {
        signal: abort.signal,
        onItems: (items) => {
          arrived.push(...items.map((i) => i.message.text));
        },
      });
      await new Promise((r) => setTimeout(r, 300));
      const sentAt = Date.now();
      await py(
        ctx,
        `f = upstream_send(IN["from"], "agent:" + IN["to"], "via mcp", IN["project"])
R.xadd(IN["key"], f)
R.publish("sos:channel:project:%s:agent:%s" % (IN["project"], IN["to"]), json.dumps(f))
R.publish("sos:wake:" + IN["to"], json.dumps(f))
out({})`,
        { from: kasra, to: codex, project: w.project, key: inboxKey(w.project, codex!) },
      );
      while (arrived.length === 0 && Date.now() - sentAt < 10_000) await new Promise((r) => setTimeout(r, 20));
      expect(arrived).toEqual(['via mcp']);
      expect(Date.now() - sentAt).toBeLessThan(10_000); // the fallback poll is 30 s
      abort.abort();
      await following;
    });

    it('8: `sos inbox --follow` (the CLI) gets an upstream send without waiting for its 30 s poll', { timeout: 60_000 }, async (ctx) => {
      const home = tempDir(ctx);
      const project = redisProject(ctx);
      const [kasra, codex] = names(ctx, 'kasra', 'codex');
      const env = isolatedEnv(home, { SOS_PROJECT: project, SOS_REDIS_URL: services.redisUrl });
      expect((await sos(['init'], env)).code).toBe(0);
      for (const a of [kasra!, codex!]) expect((await sos(['agents', 'add', a], env)).code).toBe(0);
      const follower: ChildProcess = spawnSos(['inbox', '--follow', '--json', '--as', codex!], env);
      ctx.onTestFinished(() => {
        follower.kill('SIGKILL');
      });
      let out = '';
      follower.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      await new Promise((r) => setTimeout(r, 1_500));
      const sentAt = Date.now();
      await py(
        ctx,
        `f = upstream_send(IN["from"], "agent:" + IN["to"], "cli wake", IN["project"])
R.xadd(IN["key"], f)
R.publish("sos:wake:" + IN["to"], json.dumps(f))
out({})`,
        { from: kasra, to: codex, project, key: inboxKey(project, codex!) },
      );
      while (!out.includes('cli wake') && Date.now() - sentAt < 15_000) await new Promise((r) => setTimeout(r, 20));
      expect(out).toContain('cli wake');
      expect(Date.now() - sentAt).toBeLessThan(15_000);
      follower.kill('SIGINT');
    });

    it("9: sos reads the per-agent streams upstream's own senders write outside any project", { timeout: 60_000 }, async (ctx) => {
      const [kasra, codex] = names(ctx, 'kasra', 'codex');
      const w = await world(ctx, [kasra!, codex!]);
      // The kernel MessageBus (sos:stream:sos:channel:private:agent:<a>) and an MCP send without a
      // project (sos:stream:global:agent:<a>), by upstream's own code.
      await py(
        ctx,
        `import asyncio
from sos.kernel import Message, MessageType
from sos.kernel.bus import MessageBus
async def main():
    bus = MessageBus()
    await bus.connect()
    assert bus._redis is not None, "kernel bus did not connect"
    await bus.send(Message(type=MessageType.CHAT, source="agent:" + IN["from"], target="agent:" + IN["to"], payload={"text": "from the kernel"}), tenant_id="sos", project="sos")
    await bus.disconnect()
asyncio.run(main())
R.xadd("sos:stream:global:agent:" + IN["to"], upstream_send(IN["from"], "agent:" + IN["to"], "from a global send", "sos"))
out({})`,
        { from: kasra, to: codex },
      );
      // send.sh, upstream's shell sender, with its redis-cli pointed at the test server.
      const bin = tempDir(ctx);
      const url = new URL(services.redisUrl);
      writeFileSync(join(bin, 'redis-cli'), `#!/bin/sh\nexec /usr/bin/env -u REDISCLI_AUTH redis-cli-real -h ${url.hostname} -p ${url.port || 6379} "$@"\n`, { mode: 0o755 });
      const realCli = execFileSync('sh', ['-c', 'command -v redis-cli'], { encoding: 'utf8' }).trim();
      writeFileSync(join(bin, 'redis-cli-real'), `#!/bin/sh\nexec ${realCli} "$@"\n`, { mode: 0o755 });
      const env = { ...pythonEnv(ctx, services.redisUrl), PATH: `${bin}:${process.env.PATH}` };
      const sh = await run('bash', [join(UPSTREAM!, 'sos', 'bus', 'send.sh'), kasra!, codex!, 'from send.sh'], { env });
      expect(sh.code, sh.stderr).toBe(0);

      const got = (await readInbox(w.ctx, w.as(codex!), {})).unread.map((i) => [i.message.from, i.message.text, i.message.type]);
      expect(got).toEqual(
        expect.arrayContaining([
          [kasra, 'from the kernel', 'chat'],
          [kasra, 'from a global send', 'message'],
          [kasra, 'from send.sh', 'chat'],
        ]),
      );
      expect(got).toHaveLength(3);
      expect((await readInbox(w.ctx, w.as(codex!), {})).unread).toEqual([]);
      // Each project has its own cursor on a global stream: another project's agent of the same name reads them too.
      const other = await world(ctx, [codex!]);
      expect((await readInbox(other.ctx, other.as(codex!), {})).unread).toHaveLength(3);
    });

    it("10: presence both ways: sos's heartbeat in upstream's registry, upstream's registry in sos peers", async (ctx) => {
      const [kasra, codex] = names(ctx, 'kasra', 'codex');
      const w = await world(ctx, [kasra!, codex!]);
      await heartbeat(w.ctx, w.as(codex!));
      const seen = await py<{ agents: { name: string; last_seen: string; project: string }[] }>(
        ctx,
        `from sos.services import registry
out({"agents": [{"name": a.name, "last_seen": a.metadata.get("last_seen"), "project": a.metadata.get("project")} for a in registry.read_all(IN["project"])]})`,
        { project: w.project },
      );
      expect(seen.agents).toEqual([{ name: codex, last_seen: expect.any(String), project: w.project }]);
      expect(Date.now() - Date.parse(seen.agents[0]!.last_seen)).toBeLessThan(60_000);

      // Upstream's registry write (AgentIdentity through sos.services.registry) makes kasra online in sos.
      expect((await listPeers(w.ctx, w.as(codex!))).find((p) => p.name === kasra)?.online).toBe(false);
      await py(
        ctx,
        `from datetime import datetime, timezone
from sos.kernel.identity import AgentIdentity
from sos.services import registry
ident = AgentIdentity(name=IN["agent"], metadata={"last_seen": datetime.now(timezone.utc).isoformat(), "status": "online"})
registry.write(ident, project=IN["project"], ttl_seconds=300)
out({})`,
        { agent: kasra, project: w.project },
      );
      const peers = await listPeers(w.ctx, w.as(codex!));
      expect(peers.find((p) => p.name === kasra)).toMatchObject({ online: true, lastSeen: expect.any(Number) });
      expect(peers.find((p) => p.name === codex)).toMatchObject({ online: true });
    });

    it('11: every sos project name is an upstream tenant id and makes channel targets upstream accepts; acme_corp is not a sos name', async (ctx) => {
      const [kasra, codex] = names(ctx, 'kasra', 'codex');
      const w = await world(ctx, [kasra!, codex!], { ops: [kasra!, codex!] });
      const samples = ['a', 'acme-corp', 'p0', `x${'y'.repeat(39)}`, w.project];
      const res = await py<{ tenant: boolean[]; channels: string[]; upstreamOnly: boolean[] }>(
        ctx,
        `from sos.bus.tenant_provisioning import TENANT_ID_RE
from sos.contracts.messages import SendMessage
ok = []
for p in IN["projects"]:
    for t in ("sos:channel:project:%s:squad:ops" % p, "sos:channel:project:%s:global" % p):
        SendMessage(source="agent:a", target=t, timestamp=SendMessage.now_iso(), message_id=str(uuid.uuid4()), payload={"text": "x"})
        ok.append(t)
out({"tenant": [bool(TENANT_ID_RE.match(p)) for p in IN["projects"]], "channels": ok,
     "upstreamOnly": [bool(TENANT_ID_RE.match(p)) for p in IN["foreign"]]})`,
        { projects: samples, foreign: ['acme_corp', '9lives', 'Acme.Corp', 'a'.repeat(64)] },
      );
      expect(res.tenant).toEqual(samples.map(() => true));
      expect(res.channels).toHaveLength(samples.length * 2);
      expect(res.upstreamOnly).toEqual([true, true, true, true]);
      for (const name of ['acme_corp', '9lives', 'Acme.Corp', 'a'.repeat(64)]) expect(() => assertName('project', name)).toThrow(/invalid project name/);
    });
  });
});
