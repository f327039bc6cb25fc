import { type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { describe, expect, it, type TestContext } from 'vitest';
import { BIN, isolatedEnv, ROOT, sos, spawnSos } from '../helpers/cli.js';
import { tempDir } from '../helpers/isolation.js';

/**
 * `sos mcp` against a client that sends what it should not: arguments no tool takes, lines that
 * are not JSON-RPC, megabytes where a name goes, durations out of range. The built binary over
 * stdio, a private SQLite install made with the CLI, as in mcp.test.ts.
 */

/** What a tool error may be at most, whatever the input (the server cuts at 1,000 characters). */
const ERROR_BUDGET_CHARS = 2_000;

const FIVE_MB = 5 * 1024 * 1024;

async function install(ctx: TestContext) {
  const env = isolatedEnv(tempDir(ctx));
  for (const args of [['init'], ['agents', 'add', 'kasra', '--cap', 'code'], ['agents', 'add', 'codex']]) {
    const r = await sos(args, env);
    expect(r.code, r.stderr).toBe(0);
  }
  return env;
}

/** A queued task made with the CLI, so nothing the MCP server did is needed to see it. */
async function queuedTask(env: NodeJS.ProcessEnv, title: string): Promise<string> {
  const r = await sos(['--as', 'kasra', '--json', 'tasks', 'create', title], env);
  expect(r.code, r.stderr).toBe(0);
  return r.json<{ id: string }>().id;
}

async function taskState(env: NodeJS.ProcessEnv, id: string) {
  const r = await sos(['--json', 'tasks', 'show', id], env);
  expect(r.code, r.stderr).toBe(0);
  const t = r.json<{ status: string; claimant: string | null; attempt: number; leaseUntil: string | null }>();
  return { status: t.status, claimant: t.claimant, attempt: t.attempt, leaseUntil: t.leaseUntil };
}

/** How long the lease has left, read with the CLI. */
async function leaseLeft(env: NodeJS.ProcessEnv, id: string): Promise<number> {
  const { leaseUntil } = await taskState(env, id);
  expect(leaseUntil).toEqual(expect.any(String));
  return Date.parse(leaseUntil!) - Date.now();
}

const UNTOUCHED = { status: 'queued', claimant: null, attempt: 0, leaseUntil: null };

function definedEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}

/** Spawns `sos mcp --agent <agent>` and connects the SDK client to it; closed when the test ends. */
async function connect(ctx: TestContext, env: NodeJS.ProcessEnv, agent = 'kasra') {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [BIN, 'mcp', '--agent', agent],
    env: definedEnv(env),
    cwd: ROOT,
    stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const client = new Client({ name: 'sos-hostile-test', version: '0.0.0' });
  ctx.onTestFinished(() => client.close());
  await client.connect(transport);
  /** The raw text of the one content block, and the body parsed from it. */
  const call = async (name: string, args: Record<string, unknown>) => {
    const result = await client.callTool({ name, arguments: args });
    const content = result.content as { type: string; text: string }[];
    expect(content).toHaveLength(1);
    const raw = content[0]!.text;
    const body = JSON.parse(raw) as { error?: { code: string; message: string; hint?: string } } & Record<string, unknown>;
    return { isError: result.isError === true, raw, body };
  };
  const refused = async (name: string, args: Record<string, unknown>) => {
    const r = await call(name, args);
    expect(r.isError, `${name}: ${r.raw.slice(0, 300)}`).toBe(true);
    return r.body.error!;
  };
  return { client, stderr: () => stderr, call, refused };
}

/**
 * `sos mcp` spawned by hand, for lines no SDK client would write. `next` waits for the next reply
 * line on stdout (each one parsed); `write` sends raw text.
 */
function rawServer(ctx: TestContext, env: NodeJS.ProcessEnv) {
  const child: ChildProcess = spawnSos(['mcp', '--agent', 'kasra'], env);
  const closed = once(child, 'close');
  ctx.onTestFinished(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.stdin!.end();
      await closed;
    }
  });
  let buffered = '';
  let stderr = '';
  const replies: Record<string, unknown>[] = [];
  const waiters: (() => void)[] = [];
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.on('exit', () => waiters.splice(0).forEach((wake) => wake()));
  child.stdout!.on('data', (d: Buffer) => {
    buffered += d.toString();
    for (let nl = buffered.indexOf('\n'); nl !== -1; nl = buffered.indexOf('\n')) {
      replies.push(JSON.parse(buffered.slice(0, nl)) as Record<string, unknown>);
      buffered = buffered.slice(nl + 1);
      waiters.shift()?.();
    }
  });
  let read = 0;
  return {
    child,
    closed,
    stderr: () => stderr,
    write(text: string) {
      child.stdin!.write(text);
    },
    send(message: Record<string, unknown>) {
      child.stdin!.write(`${JSON.stringify({ jsonrpc: '2.0', ...message })}\n`);
    },
    async next(timeoutMs = 10_000): Promise<Record<string, unknown>> {
      const deadline = Date.now() + timeoutMs;
      while (replies.length <= read) {
        const exited = child.exitCode !== null || child.signalCode !== null;
        if (exited) throw new Error(`sos mcp exited (${child.exitCode ?? child.signalCode}) before replying; stderr: ${stderr}`);
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no reply from sos mcp within ${timeoutMs} ms; stderr: ${stderr}`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      return replies[read++]!;
    },
  };
}

const INITIALIZE = {
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '0' } },
};

describe('sos mcp, hostile input', () => {
  it('refuses an argument a tool does not take, naming it and the valid ones, for every tool; nothing is done', async (ctx) => {
    const env = await install(ctx);
    const id = await queuedTask(env, 'fix the login bug');
    const kasra = await connect(ctx, env);

    // The case from the issue: a lease in the CLI's syntax used to be dropped, and the task
    // claimed with the default lease.
    expect(await kasra.refused('task_claim', { lease: '-5s' })).toEqual({
      code: 'usage',
      message: 'unknown argument "lease" for task_claim; valid: id, squad, wait_seconds, lease_seconds, idempotency_key',
    });
    expect(await kasra.refused('task_claim', { id, lease_seconds: 60, leese: 1, fnece: 2 })).toEqual({
      code: 'usage',
      message: 'unknown arguments "leese", "fnece" for task_claim; valid: id, squad, wait_seconds, lease_seconds, idempotency_key',
    });
    expect(await taskState(env, id)).toEqual(UNTOUCHED);

    // A misspelt text argument is refused (`message` is the documented alias, `body` is not):
    // no message is sent.
    expect((await kasra.refused('send', { to: 'codex', body: 'deploy is fixed' })).message).toBe(
      'unknown argument "body" for send; valid: to, text, message, reply_to, ack, priority, idempotency_key',
    );
    const inbox = await sos(['--as', 'codex', '--json', 'inbox', '--all'], env);
    expect(inbox.json()).toMatchObject({ agent: 'codex', unread: [], history: [] });
    expect((await kasra.refused('whoami', { verbose: true })).message).toBe('unknown argument "verbose" for whoami; it takes no arguments');

    // Every tool, checked in one place: the valid names are exactly the listed schema's properties.
    const { tools } = await kasra.client.listTools();
    expect(tools.length).toBeGreaterThanOrEqual(17);
    for (const tool of tools) {
      const names = Object.keys(tool.inputSchema.properties ?? {});
      const error = await kasra.refused(tool.name, { bogus_argument: 1 });
      expect(error, tool.name).toEqual({
        code: 'usage',
        message: `unknown argument "bogus_argument" for ${tool.name}; ${names.length ? `valid: ${names.join(', ')}` : 'it takes no arguments'}`,
      });
      // The list stays lean: no per-tool `additionalProperties` (the server refuses, not the schema).
      expect(tool.inputSchema, tool.name).not.toHaveProperty('additionalProperties');
    }

    // A flood of unknown names is listed briefly.
    const many = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`junk_${i}`, i]));
    const flood = await kasra.refused('task_claim', many);
    expect(flood.message).toBe(
      'unknown arguments "junk_0", "junk_1", "junk_2", "junk_3", "junk_4" and 9995 more for task_claim; valid: id, squad, wait_seconds, lease_seconds, idempotency_key',
    );

    // Arguments of the wrong type are usage errors in the same JSON, not the SDK's plain text.
    expect(await kasra.refused('task_claim', { wait_seconds: 'soon' })).toEqual({
      code: 'usage',
      message: 'invalid arguments for task_claim: wait_seconds: Invalid input: expected number, received string',
    });
    expect((await kasra.refused('task_create', {})).message).toMatch(/^invalid arguments for task_create: title: /);

    // After all that, the task is still untouched, and a correct call claims it.
    expect(await taskState(env, id)).toEqual(UNTOUCHED);
    const claimed = await kasra.call('task_claim', { id, lease_seconds: 120 });
    expect(claimed.isError, claimed.raw).toBe(false);
    expect(await taskState(env, id)).toMatchObject({ status: 'claimed', claimant: 'kasra', attempt: 1 });
    const left = await leaseLeft(env, id);
    expect(left).toBeGreaterThan(100_000);
    expect(left).toBeLessThanOrEqual(120_000);
    expect(kasra.stderr()).not.toMatch(/\n\s+at |Error:/);
  });

  it('answers a line that is not JSON with -32700 and one that is not JSON-RPC with -32600 (id null), then serves the next', async (ctx) => {
    const env = await install(ctx);
    const server = rawServer(ctx, env);
    server.send(INITIALIZE);
    expect(await server.next()).toMatchObject({ jsonrpc: '2.0', id: 1, result: { serverInfo: { name: 'sos' } } });
    server.send({ method: 'notifications/initialized' });

    const parseError = { jsonrpc: '2.0', id: null, error: { code: -32700, message: expect.stringMatching(/^Parse error/) } };
    const invalidRequest = { jsonrpc: '2.0', id: null, error: { code: -32600, message: expect.stringMatching(/^Invalid Request/) } };
    server.write('{not json\n');
    expect(await server.next()).toEqual(parseError);
    server.write('[1,2\r\n');
    expect(await server.next()).toEqual(parseError);
    // Blank lines are skipped, not answered: the next reply is for the next real line.
    server.write('\n  \n{"hello":"world"}\n');
    expect(await server.next()).toEqual(invalidRequest);
    server.write('[1,2]\n');
    expect(await server.next()).toEqual(invalidRequest);
    server.write('{"jsonrpc":"2.0","id":7,"method":"tools/list","surprise":true}\n');
    expect(await server.next()).toEqual(invalidRequest);

    // The connection is still good: a request split over two writes is answered.
    const call = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'whoami', arguments: {} } });
    server.write(call.slice(0, 20));
    server.write(`${call.slice(20)}\n`);
    const whoami = await server.next();
    expect(whoami).toMatchObject({ jsonrpc: '2.0', id: 2, result: { content: [{ type: 'text' }] } });
    expect(JSON.parse((whoami.result as { content: { text: string }[] }).content[0]!.text)).toMatchObject({ agent: 'kasra' });

    // JSON can spell a number no duration holds (1e999 is Infinity once parsed): refused.
    server.write('{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"task_claim","arguments":{"wait_seconds":1e999}}}\n');
    const infinite = await server.next();
    expect(infinite).toMatchObject({ id: 3, result: { isError: true } });
    expect(JSON.parse((infinite.result as { content: { text: string }[] }).content[0]!.text)).toMatchObject({
      error: { code: 'usage', message: expect.stringMatching(/wait_seconds/) },
    });

    // A line past the 10 MB read bound is dropped and answered, and the connection survives it.
    server.write(`{"jsonrpc":"2.0","id":4,"method":"tools/list","params":{"pad":"${'x'.repeat(10 * 1024 * 1024)}"}}\n`);
    expect(await server.next()).toEqual({ jsonrpc: '2.0', id: null, error: { code: -32600, message: expect.stringMatching(/at most 10485760 bytes/) } });
    server.send({ id: 5, method: 'tools/list' });
    expect(await server.next()).toMatchObject({ id: 5, result: { tools: expect.any(Array) } });

    // Each refused line is logged on stderr, briefly; stdout carried only the replies above.
    expect(server.stderr()).toMatch(/Parse error/);
    expect(server.stderr().length).toBeLessThan(10_000);
    server.child.stdin!.end();
    const [code] = (await server.closed) as [number | null];
    expect(code).toBe(0);
  });

  it('never sends a 5 MB argument back: every error that quotes input is cut short', async (ctx) => {
    const env = await install(ctx);
    const id = await queuedTask(env, 'keep me');
    const kasra = await connect(ctx, env);
    const huge = 'x'.repeat(FIVE_MB);

    const cases: [string, Record<string, unknown>][] = [
      ['task_claim', { id: huge }], // the task service quotes a bad id
      ['send', { to: huge, text: 'hi' }], // the bus quotes a bad agent name
      ['task_accept', { id: huge }],
      ['whoami', { [huge]: 1 }], // an unknown argument's name
      ['task_claim', { wait_seconds: huge }], // zod: a string where a number goes
      ['send', { to: 'codex', text: 'hi', priority: huge }], // zod: not one of the enum
      ['task_create', { title: huge }], // longer than a title may be
      ['recall', { query: 'deploy', agent: huge }],
    ];
    for (const [name, args] of cases) {
      const r = await kasra.call(name, args);
      const what = `${name} ${Object.keys(args).map((k) => k.slice(0, 20)).join(',')}`;
      expect(r.isError, what).toBe(true);
      expect(r.body.error, what).toMatchObject({ code: 'usage' });
      expect(r.raw.length, `${what}: ${r.raw.slice(0, 200)}`).toBeLessThan(ERROR_BUDGET_CHARS);
    }
    expect(await taskState(env, id)).toMatchObject({ status: 'queued', claimant: null });
    expect(kasra.stderr().length).toBeLessThan(ERROR_BUDGET_CHARS);
  });

  it('bounds wait_seconds and lease_seconds: negative, zero leases, past 7 days and past a day of waiting are refused', async (ctx) => {
    const env = await install(ctx);
    const id = await queuedTask(env, 'bounded');
    const kasra = await connect(ctx, env);

    const refusals: [Record<string, unknown>, string][] = [
      [{ wait_seconds: -1 }, 'wait_seconds must be 0 or more'],
      [{ wait_seconds: 86_401 }, 'wait_seconds is at most 1d'],
      [{ wait_seconds: 1e300 }, 'wait_seconds is at most 1d'],
      [{ lease_seconds: -5 }, 'lease_seconds must be 1 or more'],
      [{ lease_seconds: 0 }, 'lease_seconds must be 1 or more'],
      [{ lease_seconds: 0.5 }, 'lease_seconds must be 1 or more'],
      [{ lease_seconds: 7 * 86_400 + 1 }, 'lease_seconds is at most 7d'],
      [{ lease_seconds: 1e300 }, 'lease_seconds is at most 7d'],
    ];
    for (const [args, message] of refusals) {
      expect(await kasra.refused('task_claim', { id, ...args }), JSON.stringify(args)).toEqual({ code: 'usage', message });
    }
    expect(await taskState(env, id)).toEqual(UNTOUCHED);

    // Past 60 s a wait is capped, not refused: with work ready, the claim returns at once. The
    // widest lease there is, 7 days, is taken.
    const started = Date.now();
    const claimed = await kasra.call('task_claim', { wait_seconds: 3_600, lease_seconds: 7 * 86_400 });
    expect(claimed.isError, claimed.raw).toBe(false);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(claimed.body).toMatchObject({ id, claimant: 'kasra', fence: 1 });
    expect(await taskState(env, id)).toMatchObject({ status: 'claimed', claimant: 'kasra', attempt: 1 });
    expect(await leaseLeft(env, id)).toBeGreaterThan(7 * 86_400_000 - 60_000);

    // The shortest lease, 1 s, is taken too.
    const short = await queuedTask(env, 'short lease');
    const quick = await kasra.call('task_claim', { id: short, lease_seconds: 1 });
    expect(quick.isError, quick.raw).toBe(false);
    expect(Date.parse(quick.body.lease_until as string) - Date.now()).toBeLessThanOrEqual(1_000);
    expect(await taskState(env, short)).toMatchObject({ status: 'claimed', claimant: 'kasra' });
  });
});
