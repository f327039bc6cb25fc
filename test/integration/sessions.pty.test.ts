import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { describe, expect, test, type TestContext } from 'vitest';
import { Conflict, Unavailable, UsageError } from '../../src/core/errors.js';
import { attachPty } from '../../src/core/sessions/attach.js';
import { PtyDriver, type PtyDriverOptions } from '../../src/core/sessions/pty.js';
import { fails } from '../helpers/expect.js';
import { tempDir } from '../helpers/isolation.js';

/**
 * The pty driver against real pty hosts (dist/pty-host.js: `npm test` builds it first). Every host
 * a test starts is stopped when the test ends, so the leak check sees no child process left.
 */

const FAKE_AGENT = fileURLToPath(new URL('../fixtures/fake-agent.mjs', import.meta.url));
const SHELL = 'exec bash --norc --noprofile';
const SHELL_ENV = { PS1: 'sos$ ', SOS_TOKEN: 'tok-4f2a' };

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until<T>(what: string, probe: () => Promise<T> | T, ok: (value: T) => boolean, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (ok(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last seen: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Session {
  driver: PtyDriver;
  workdir: string;
  dir: string;
  screen(lines?: number): Promise<string>;
  waitScreen(pattern: RegExp): Promise<string>;
}

async function startSession(ctx: TestContext, command: string, env: Record<string, string> = {}, options: Partial<PtyDriverOptions> = {}): Promise<Session> {
  const dir = tempDir(ctx);
  const workdir = join(dir, 'work');
  mkdirSync(workdir);
  const driver = new PtyDriver(command, { runDir: join(dir, 'run'), owner: { project: 'proj', agent: 'ag' }, ...options });
  ctx.onTestFinished(() => driver.stop());
  await driver.start({ command, workdir, env });
  const screen = async (lines?: number): Promise<string> => (await driver.snapshot(lines)).screen;
  return {
    driver,
    workdir,
    dir,
    screen,
    waitScreen: (pattern) => until(`screen ${pattern}`, () => screen(), (s) => pattern.test(s)),
  };
}

describe('pty driver', () => {
  test('runs the command in its workdir with the extra env; the screen is rendered', async (ctx) => {
    const s = await startSession(ctx, SHELL, SHELL_ENV);
    expect(s.driver.spec).toBe(`pty:${SHELL}`);
    expect(await s.driver.exists()).toBe(true);
    await s.waitScreen(/sos\$ $/);
    await s.driver.submit('echo "token=$SOS_TOKEN"; pwd');
    const screen = await s.waitScreen(/^token=tok-4f2a$/m);
    expect(screen).toContain(realpathSync(s.workdir));
    expect(screen).not.toContain('\x1b'); // rendered, not raw escape sequences

    const snap = await s.driver.snapshot(2);
    expect(snap.screen.split('\n')).toHaveLength(2);
    expect(snap.screen.split('\n')[1]).toBe('sos$ ');
    expect(snap.hash).toBe(createHash('sha256').update(snap.screen).digest('hex'));
    expect(snap.exists).toBe(true);
    expect(snap.exited).toBeNull();
    expect(snap.cwd).toBe(realpathSync(s.workdir));
    expect(snap.lastOutputAt).toBeGreaterThan(Date.now() - 10_000);
  });

  test('submit types text literally, then Enter; control characters are refused', async (ctx) => {
    const dir = tempDir(ctx);
    const log = join(dir, 'typed.jsonl');
    const s = await startSession(ctx, `node ${FAKE_AGENT} --log ${log}`);
    await s.waitScreen(/fake> $/);
    const text = `echo "$HOME" 'q' $(id) ; | & > < \` ~ * ? \\ %s {}`;
    await s.driver.submit(text);
    await s.waitScreen(/^ok: echo/m);
    const lines = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { line?: string });
    expect(lines.map((l) => l.line)).toEqual([text]);

    await fails(s.driver.submit('two\nlines'), UsageError);
    await fails(s.driver.submit('esc\x1b[A'), UsageError);
    await fails(s.driver.submit('nul\u0000'), UsageError);
  });

  test('interrupt stops a running command', async (ctx) => {
    const s = await startSession(ctx, SHELL, SHELL_ENV);
    await s.waitScreen(/sos\$ $/);
    await s.driver.submit('sleep 100');
    await s.waitScreen(/sleep 100$/);
    await s.driver.interrupt();
    await s.driver.submit('echo after-$((40+2))');
    await s.waitScreen(/^after-42$/m);
  });

  test('an exited process is reported with its code, and its output is in the log', async (ctx) => {
    const s = await startSession(ctx, `node -e "process.stdout.write('bye now'); process.exit(3)"`);
    const snap = await until('the exit', () => s.driver.snapshot(), (x) => x.exited !== null);
    expect(snap.exists).toBe(true);
    expect(snap.exited).toEqual({ code: 3, signal: null });
    expect(snap.screen).toBe('bye now');
    expect(readFileSync(s.driver.logPath, 'utf8')).toContain('bye now');
    await fails(s.driver.submit('anyone?'), Unavailable, /exited/);
    await fails(s.driver.interrupt(), Unavailable);

    // A new start replaces the exited session.
    await s.driver.start({ command: 'exec sleep 100', workdir: s.workdir, env: {} });
    expect((await s.driver.snapshot()).exited).toBeNull();
  });

  test('the log rotates: it stays under its size, the previous part kept as .1', async (ctx) => {
    const s = await startSession(ctx, SHELL, SHELL_ENV, { logMaxBytes: 4_096 });
    await s.waitScreen(/sos\$ $/);
    // ~29 kB of numbered lines: the log rotates several times on the way.
    await s.driver.submit('seq -f "line %05g" 1 2600; echo done-$((6*7))');
    await s.waitScreen(/^done-42$/m);
    await until('the log to hold the end', () => readFileSync(s.driver.logPath, 'utf8').includes('done-42'), (x) => x);
    const current = readFileSync(s.driver.logPath, 'utf8');
    const previous = readFileSync(`${s.driver.logPath}.1`, 'utf8');
    expect(statSync(s.driver.logPath).size).toBeLessThanOrEqual(4_096);
    expect(statSync(`${s.driver.logPath}.1`).size).toBeLessThanOrEqual(4_096);
    // Older parts are gone; the two kept are the latest output, in order, with nothing lost between them.
    expect(current + previous).not.toContain('line 00001');
    const numbers = [...(previous + current).matchAll(/line (\d{5})/g)].map((m) => Number(m[1]));
    expect(numbers.length).toBeGreaterThan(100);
    expect(numbers.at(-1)).toBe(2600);
    expect(numbers.every((n, i) => i === 0 || n === numbers[i - 1]! + 1)).toBe(true);
  });

  test('a process killed by a signal reports the signal', async (ctx) => {
    const s = await startSession(ctx, `exec node -e "setTimeout(() => process.kill(process.pid, 'SIGKILL'), 100)"`);
    const snap = await until('the exit', () => s.driver.snapshot(), (x) => x.exited !== null);
    expect(snap.exited).toEqual({ code: null, signal: 'SIGKILL' });
  });

  test('the terminal title a program sets is reported', async (ctx) => {
    const s = await startSession(ctx, SHELL, SHELL_ENV);
    await s.waitScreen(/sos\$ $/);
    await s.driver.submit(`printf '\\033]0;hello\\007'`);
    await until('the title', () => s.driver.snapshot(), (x) => x.title === 'hello');
  });

  test('the alternate screen of a full-screen program is what the snapshot shows', async (ctx) => {
    const script = `process.stdout.write('below\\n\\x1b[?1049h\\x1b[H\\x1b[2JFULL SCREEN\\x1b[5;3Hbox'); setInterval(() => {}, 1000)`;
    const s = await startSession(ctx, `node -e "${script}"`);
    const screen = await s.waitScreen(/box/);
    expect(screen).toBe('FULL SCREEN\n\n\n\n  box');
  });

  test('stop ends the host and its process, removes the socket, and is idempotent', async (ctx) => {
    const s = await startSession(ctx, SHELL, SHELL_ENV);
    const hello = (await s.driver.hello())!;
    expect(isAlive(hello.pid)).toBe(true);
    expect(isAlive(hello.childPid)).toBe(true);
    expect(existsSync(s.driver.socketPath)).toBe(true);
    await s.driver.stop();
    expect(isAlive(hello.pid)).toBe(false);
    await until('the child to end', () => isAlive(hello.childPid), (alive) => !alive);
    expect(existsSync(s.driver.socketPath)).toBe(false);
    expect(await s.driver.exists()).toBe(false);
    await s.driver.stop();
    const snap = await s.driver.snapshot();
    expect(snap).toMatchObject({ exists: false, exited: null, screen: '', title: '' });
    await fails(s.driver.submit('hello'), Unavailable, /not running/);
  });

  test('starting a running session is a Conflict, unless asked to replace it', async (ctx) => {
    const s = await startSession(ctx, SHELL, SHELL_ENV);
    const first = (await s.driver.hello())!;
    await fails(s.driver.start({ command: SHELL, workdir: s.workdir, env: {} }), Conflict);
    await s.driver.start({ command: 'exec sleep 100', workdir: s.workdir, env: {}, replace: true });
    const second = (await s.driver.hello())!;
    expect(second.command).toBe('exec sleep 100');
    expect(isAlive(first.pid)).toBe(false);
  });

  test('a stale socket file counts as no session and is removed', async (ctx) => {
    const s = await startSession(ctx, SHELL, SHELL_ENV);
    const hello = (await s.driver.hello())!;
    // A host that died without cleaning up: its socket file stays behind.
    process.kill(hello.pid, 'SIGKILL');
    await until('the host to die', () => isAlive(hello.pid), (alive) => !alive);
    await until('the orphaned shell to hang up', () => isAlive(hello.childPid), (alive) => !alive);
    expect(existsSync(s.driver.socketPath)).toBe(true);
    expect(await s.driver.exists()).toBe(false);
    expect(existsSync(s.driver.socketPath)).toBe(false);

    writeFileSync(s.driver.socketPath, 'not a socket');
    expect(await s.driver.exists()).toBe(false);
    expect(existsSync(s.driver.socketPath)).toBe(false);

    await s.driver.start({ command: SHELL, workdir: s.workdir, env: SHELL_ENV });
    expect(await s.driver.exists()).toBe(true);
  });

  test('a missing workdir is refused before anything starts', async (ctx) => {
    const dir = tempDir(ctx);
    const driver = new PtyDriver('true', { runDir: dir, owner: { project: 'p', agent: 'a' } });
    await fails(driver.start({ command: 'true', workdir: join(dir, 'nope'), env: {} }), UsageError);
    expect(await driver.exists()).toBe(false);
  });

  test('a host that dies at start is reported with its log', async (ctx) => {
    const dir = tempDir(ctx);
    const hostScript = join(dir, 'broken-host.mjs');
    writeFileSync(hostScript, 'process.exit(1);\n');
    const driver = new PtyDriver('true', { runDir: join(dir, 'run'), owner: { project: 'p', agent: 'a' }, hostScript });
    ctx.onTestFinished(() => driver.stop());
    await fails(driver.start({ command: 'true', workdir: dir, env: {} }), Unavailable, /did not start: it exited with code 1/);
  });

  test('a host that fails at start says why, from what it wrote to the log', async (ctx) => {
    const dir = tempDir(ctx);
    const hostScript = join(dir, 'failing-host.mjs');
    // What pty-host-main.ts does when PtyHost.start throws: report to the session log, exit 1.
    writeFileSync(
      hostScript,
      "import { appendFileSync } from 'node:fs';\nconst { logPath } = JSON.parse(process.argv[2]);\nappendFileSync(logPath, '\\n[sos pty host] could not start: posix_spawnp failed.\\n');\nprocess.exit(1);\n",
    );
    const driver = new PtyDriver('true', { runDir: join(dir, 'run'), owner: { project: 'p', agent: 'a' }, hostScript });
    ctx.onTestFinished(() => driver.stop());
    mkdirSync(join(dir, 'run'));
    // An earlier session's line in the same log is not taken for this start's reason.
    writeFileSync(driver.logPath, '[sos pty host] the process exited with code 0\n');
    await fails(driver.start({ command: 'true', workdir: dir, env: {} }), Unavailable, /it exited with code 1 \(could not start: posix_spawnp failed\.\)$/);
  });

  test('a long run directory puts the socket in the temp directory', (ctx) => {
    const runDir = join(tempDir(ctx), 'x'.repeat(120));
    const driver = new PtyDriver('true', { runDir, owner: { project: 'p', agent: 'a' } });
    expect(Buffer.byteLength(driver.socketPath)).toBeLessThanOrEqual(100);
    expect(driver.logPath).toBe(join(runDir, 'p.a.log'));
  });
});

describe('attachPty', () => {
  test('replays recent output, carries keys both ways and detaches on Ctrl-]', async (ctx) => {
    const s = await startSession(ctx, `node ${FAKE_AGENT}`);
    await s.waitScreen(/fake> $/);
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    let seen = '';
    stdout.on('data', (chunk: Buffer) => (seen += chunk.toString()));
    const attached = attachPty(s.driver.socketPath, { stdin, stdout });
    await until('the replay', () => seen, (text) => text.includes('fake-agent ready'));
    stdin.write('typed by hand\r');
    await until('the answer', () => seen, (text) => text.includes('ok: typed by hand'));
    stdin.write(Buffer.from([0x1d]));
    expect(await attached).toBe('detached');
    expect(seen).not.toContain('\x1d');
    expect(await s.driver.exists()).toBe(true);
    expect(await s.screen()).toMatch(/ok: typed by hand\nfake> $/);
  });

  test('ends when the session stops', async (ctx) => {
    const s = await startSession(ctx, SHELL, SHELL_ENV);
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    let seen = '';
    stdout.on('data', (chunk: Buffer) => (seen += chunk.toString()));
    const attached = attachPty(s.driver.socketPath, { stdin, stdout });
    await until('the prompt', () => seen, (text) => text.includes('sos$'));
    await s.driver.stop();
    expect(await attached).toBe('ended');
  });

  test('attaching to no session is Unavailable', async (ctx) => {
    await fails(attachPty(join(tempDir(ctx), 'none.sock'), { stdin: new PassThrough(), stdout: new PassThrough() }), Unavailable);
  });
});
