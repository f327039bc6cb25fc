import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, type TestContext } from 'vitest';
import { enqueueApproval } from '../../src/core/brain/governance.js';
import { resolveConfig } from '../../src/core/config/resolve.js';
import { openStore, parseStoreTarget } from '../../src/core/store/open.js';
import { BIN, isolatedEnv, ROOT, sos } from '../helpers/cli.js';
import { tempDir } from '../helpers/isolation.js';
import { killTmuxServer, shellQuote, TMUX_ADAPTER } from '../helpers/sessions.js';

/**
 * `sos top` in a real terminal: a tmux pane on a tmux server of the test's own (`-S`), read with
 * `capture-pane -p`, driven with `send-keys`; the Store is checked through the CLI.
 * SOS_UPDATE_FIXTURES=1 rewrites the captured screens under test/fixtures/top/.
 */

const FIXTURES = join(ROOT, 'test/fixtures/top');
const PROMPT = 'top-test$ ';

interface Pane {
  screen(): string;
  keys(...keys: string[]): void;
  type(text: string): void;
  until(what: string, check: (screen: string) => boolean, timeoutMs?: number): Promise<string>;
  format(f: string): string;
}

function pane(ctx: TestContext, dir: string, env: NodeJS.ProcessEnv, size: { columns: number; rows: number }): Pane {
  const socket = join(dir, 'top.sock');
  ctx.onTestFinished(() => killTmuxServer(socket));
  const tmux = (...args: string[]) => execFileSync('tmux', ['-S', socket, ...args], { encoding: 'utf8', env });
  tmux('new-session', '-d', '-s', 'top', '-x', String(size.columns), '-y', String(size.rows), `cd ${shellQuote(ROOT)} && PS1=${shellQuote(PROMPT)} exec sh`);
  const p: Pane = {
    screen: () => tmux('capture-pane', '-p', '-t', 'top'),
    keys: (...keys) => void tmux('send-keys', '-t', 'top', ...keys),
    type: (text) => void tmux('send-keys', '-t', 'top', '-l', text),
    format: (f) => tmux('display-message', '-p', '-t', 'top', f).trim(),
    async until(what, check, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      let last = '';
      while (Date.now() < deadline) {
        last = p.screen();
        if (check(last)) return last;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`timed out waiting for ${what}; the pane shows:\n${last}`);
    },
  };
  return p;
}

/** One frame where it belongs: the header on the first row, once (a drifting repaint leaves old rows behind). */
function oneFrame(screen: string) {
  expect(screen.split('\n')[0]).toMatch(/^sos top · /);
  expect(screen.split('sos top · ').length - 1, screen).toBe(1);
}

const selected = (screen: string) => /^> (\S+)/m.exec(screen)?.[1] ?? null;

async function world(ctx: TestContext) {
  const dir = tempDir(ctx);
  const env = isolatedEnv(join(dir, 'home'));
  const run = (args: string[]) => sos(args, env);
  expect((await run(['init'])).code).toBe(0);
  // The operator speaks as `lead` (sos top --as lead), as `sos send` needs.
  expect((await run(['agents', 'add', 'lead', '--role', 'coordinator'])).code).toBe(0);
  expect((await run(['agents', 'add', 'alice', '--kind', 'claude'])).code).toBe(0);
  expect((await run(['agents', 'add', 'bob', '--kind', 'codex'])).code).toBe(0);
  // A session that does not exist, on a tmux server that does not run: the probe reads it dead.
  expect((await run(['agents', 'add', 'ghost', '--kind', 'shell', '--session', 'tmux:nothere', '--tmux-socket', join(dir, 'none.sock')])).code).toBe(0);
  const probe = await run(['agents', 'probe', 'ghost', '--json']);
  expect(probe.json<{ state: string }>().state, probe.stderr).toBe('dead');
  return { dir, env, run };
}

const stateOf = async (run: (args: string[]) => ReturnType<typeof sos>, agent: string) => {
  const r = await run(['agents', 'status', '--json']);
  return r.json<{ agent: string; state: string }[]>().find((a) => a.agent === agent)?.state;
};

function checkFits(screen: string, size: { columns: number; rows: number }) {
  const lines = screen.replace(/\n+$/, '').split('\n');
  expect(lines.length).toBeLessThanOrEqual(size.rows);
  for (const l of lines) expect([...l].length, l).toBeLessThanOrEqual(size.columns);
}

function saveFixture(name: string, screen: string) {
  const path = join(FIXTURES, name);
  if (process.env.SOS_UPDATE_FIXTURES === '1') {
    mkdirSync(FIXTURES, { recursive: true });
    writeFileSync(path, screen.replace(/\s+$/, '\n'));
  }
  return readFileSync(path, 'utf8');
}

describe.skipIf(!TMUX_ADAPTER.available())('sos top in a tmux pane', () => {
  it('80x24: problems, j/k, p parks and unparks in the Store, s sends to the inbox, q restores the shell', async (ctx) => {
    const { dir, env, run } = await world(ctx);
    const size = { columns: 80, rows: 24 };
    const p = pane(ctx, dir, env, size);
    await p.until('the shell prompt', (s) => s.includes(PROMPT.trimEnd()));
    p.type(`${shellQuote(process.execPath)} ${shellQuote(BIN)} top --as lead --interval 500`);
    p.keys('Enter');
    const screen = await p.until('the first frame', (s) => s.includes('sos top ·') && s.includes('ghost'));
    expect(p.format('#{alternate_on}')).toBe('1');
    checkFits(screen, size);
    // The problems band: the dead agent, the daemon not running.
    expect(screen).toMatch(/^! ghost dead: .* since \d+[smh] +\[r restart\]$/m);
    expect(screen).toMatch(/^! daemon not running/m);
    expect(screen.split('\n')[0]).toContain('DAEMON DOWN');
    const fixture = saveFixture('80x24.txt', screen);
    expect(fixture).toContain('! ghost dead');
    checkFits(fixture, size);

    // Problems sort first: ghost, then alice and bob by name.
    expect(selected(screen)).toBe('ghost');
    p.keys('j');
    await p.until('the selection on alice', (s) => selected(s) === 'alice');
    p.keys('j');
    await p.until('the selection on bob', (s) => selected(s) === 'bob');
    p.keys('k');
    oneFrame(await p.until('the selection back on alice', (s) => selected(s) === 'alice'));
    // Repaints (the clock ticks every second, the moves above) rewrite lines in place.
    await new Promise((r) => setTimeout(r, 1_200));
    oneFrame(p.screen());

    // p parks the selected agent, p again unparks it; the Store says so each time.
    p.keys('p');
    await p.until('the park outcome', (s) => /alice: parked by the operator: from sos top/.test(s));
    expect(await stateOf(run, 'alice')).toBe('parked');
    await p.until('alice shown parked', (s) => /^> alice +claude +parked/m.test(s));
    p.keys('p');
    await p.until('the unpark outcome', (s) => s.includes('alice unparked'));
    expect(await stateOf(run, 'alice')).toBe('unknown');

    // s, a line, Enter: a message in alice's inbox.
    p.keys('s');
    await p.until('the send prompt', (s) => s.includes('send to alice:'));
    p.type('hello from sos top');
    p.keys('Enter');
    await p.until('the send outcome', (s) => /sent msg_\w+ to alice/.test(s));
    const inbox = await run(['inbox', '--as', 'alice', '--json']);
    const got = inbox.json<{ unread: { from: string; text: string }[] }>().unread;
    expect(got.map((m) => [m.from, m.text])).toContainEqual(['lead', 'hello from sos top']);

    // Enter: the detail pane of the selected agent (alice has no session to read); Esc closes it.
    p.keys('Enter');
    await p.until('the detail pane', (s) => s.includes('agent alice') && s.includes('alice has no session: no screen to show'));
    p.keys('Escape');
    await p.until('the agents panel back', (s) => !s.includes('agent alice') && /^> alice/m.test(s));

    // r asks first; anything but y cancels.
    p.keys('r');
    await p.until('the restart confirmation', (s) => s.includes('restart alice? y to confirm'));
    p.keys('n');
    await p.until('the restart canceled', (s) => s.includes('restart alice canceled'));
    p.keys('i');
    await p.until('the interrupt confirmation', (s) => s.includes('interrupt alice? y to confirm'));
    p.keys('n');
    await p.until('the interrupt canceled', (s) => s.includes('interrupt alice canceled'));

    // A: an approval waiting shows in the band; A then y approves it, and the task exists.
    const config = await resolveConfig({ env, flags: {} });
    const store = await openStore({ target: parseStoreTarget(config.values.db, dir), pgSchema: config.values.pgSchema, busyTimeoutMs: config.values.busyTimeoutMs });
    ctx.onTestFinished(() => store.close());
    const gated = await enqueueApproval(store.sql, config.values.project, {
      cycleId: 'cyc_top',
      method: 'post_content',
      tier: 'human_gate',
      proposal: { method: 'post_content', agent: null, goal_id: null, details: { title: 'Announce the release' } },
      at: Date.now(),
    });
    await p.until('the approval in the band', (s) => s.includes(`approval waiting: ${gated.id}`) && s.includes('[A approve/deny]'));
    // A second one, newer: A starts on the oldest, j moves to the other, n denies that one.
    const second = await enqueueApproval(store.sql, config.values.project, {
      cycleId: 'cyc_top2',
      method: 'post_content',
      tier: 'human_gate',
      proposal: { method: 'post_content', agent: null, goal_id: null, details: { title: 'Announce it twice' } },
      at: Date.now() + 1,
    });
    await p.until('both approvals in the band', (s) => s.includes(`approval waiting: ${second.id}`));
    p.keys('A');
    await p.until('the approval prompt on the oldest', (s) => s.includes('1/2 j/k other, y approve, n deny') && s.includes(gated.id));
    p.keys('j');
    await p.until('the prompt on the second', (s) => s.includes('2/2 j/k other') && s.includes(second.id));
    p.keys('n');
    await p.until('the denial', (s) => s.includes(`approval ${second.id} denied`));
    p.keys('A');
    await p.until('the approval prompt', (s) => s.includes('y approve, n deny') && s.includes('post_content (human_gate, 0/1)') && s.includes(gated.id));
    p.keys('y');
    await p.until('the approval outcome', (s) => s.includes(`approval ${gated.id}: executed`));
    const listed = await run(['tasks', 'list', '--json']);
    const titles = listed.json<{ title: string }[]>().map((t) => t.title);
    expect(titles).toContain('Announce the release');
    expect(titles).not.toContain('Announce it twice');
    p.keys('A');
    await p.until('nothing left to approve', (s) => s.includes('no approvals waiting'));

    // q: the alternate screen is left and the prompt is back.
    p.keys('q');
    await p.until('the shell back', (s) => !s.includes('sos top ·') && s.trimEnd().endsWith(PROMPT.trimEnd()));
    expect(p.format('#{alternate_on}')).toBe('0');
    expect(p.format('#{pane_current_command}')).toBe('sh');
  });

  it('160x50: the wide layout fits, every panel on one screen; SIGTERM restores the terminal', async (ctx) => {
    const { dir, env, run } = await world(ctx);
    expect((await run(['tasks', 'create', 'write the parser'])).code).toBe(0);
    const size = { columns: 160, rows: 50 };
    const p = pane(ctx, dir, env, size);
    await p.until('the shell prompt', (s) => s.includes(PROMPT.trimEnd()));
    p.type(`${shellQuote(process.execPath)} ${shellQuote(BIN)} top`);
    p.keys('Enter');
    const screen = await p.until('the first wide frame', (s) => s.includes('sos top ·') && s.includes('activity') && s.includes('write the parser'));
    checkFits(screen, size);
    expect(screen).toMatch(/queues.*│.*spend/);
    expect(screen).toMatch(/^! ghost dead/m);
    const fixture = saveFixture('160x50.txt', screen);
    expect(fixture).toMatch(/queues.*│.*spend/);
    checkFits(fixture, size);
    // The shell's child is `sos top` (node).
    const shell = p.format('#{pane_pid}');
    const pid = Number(execFileSync('ps', ['-o', 'pid=', '--ppid', shell], { encoding: 'utf8' }).trim().split(/\s+/)[0]);
    expect(pid).toBeGreaterThan(0);
    process.kill(pid, 'SIGTERM');
    await p.until('the shell back after SIGTERM', (s) => !s.includes('sos top ·') && s.trimEnd().endsWith(PROMPT.trimEnd()));
    expect(p.format('#{alternate_on}')).toBe('0');
  });

  it('a attaches to the selected agent\'s tmux session and comes back where it was; --agent narrows the view', async (ctx) => {
    const { dir, env, run } = await world(ctx);
    // carol's session runs on a tmux server of its own, as an agent's would.
    const agents = join(dir, 'agents.sock');
    ctx.onTestFinished(() => killTmuxServer(agents));
    execFileSync('tmux', ['-S', agents, 'new-session', '-d', '-s', 'carol', '-x', '80', '-y', '24', `PS1=${shellQuote('carol-shell$ ')} exec sh`], { env });
    expect((await run(['agents', 'add', 'carol', '--kind', 'shell', '--session', 'tmux:carol', '--tmux-socket', agents])).code).toBe(0);
    const size = { columns: 80, rows: 24 };
    const p = pane(ctx, dir, env, size);
    await p.until('the shell prompt', (s) => s.includes(PROMPT.trimEnd()));
    p.type(`${shellQuote(process.execPath)} ${shellQuote(BIN)} top --agent carol`);
    p.keys('Enter');
    const screen = await p.until('the narrowed frame', (s) => s.includes('sos top ·') && /^> carol/m.test(s));
    // --agent: only carol's row (ghost's problem line is narrowed away with its row).
    expect(screen).not.toMatch(/^[ >] (alice|bob|ghost|lead) /m);
    // A repaint where only the clock changes rewrites the header in place (Ink 6.8 alone wrote
    // it one row lower on every repaint: the homed stdout in app.ts).
    await new Promise((r) => setTimeout(r, 2_100));
    oneFrame(p.screen());
    // Keys are read once Ink has the terminal in raw mode: the help shows, then any key closes it.
    p.keys('?');
    await p.until('the help', (s) => s.includes("attach to the selected agent's session"));
    p.keys('x');
    await p.until('the help closed', (s) => /^> carol/m.test(s));
    p.keys('a');
    // (The nested tmux client draws on the alternate screen of its own, so the pane stays on one.)
    await p.until("carol's shell in the pane", (s) => s.includes('carol-shell$') && !s.includes('sos top ·'));
    // Typing reaches carol's session, not sos top.
    p.type('echo typed-into-carol');
    p.keys('Enter');
    await p.until('the echo in carol', (s) => s.includes('typed-into-carol'));
    expect(execFileSync('tmux', ['-S', agents, 'capture-pane', '-p', '-t', 'carol'], { encoding: 'utf8' })).toContain('typed-into-carol');
    // Detaching (as carol's detach key would) brings sos top back, with the outcome in the footer.
    execFileSync('tmux', ['-S', agents, 'detach-client', '-s', 'carol']);
    const back = await p.until('sos top back', (s) => s.includes('sos top ·') && s.includes('back from carol'));
    expect(selected(back)).toBe('carol');
    oneFrame(back);
    expect(p.format('#{alternate_on}')).toBe('1');
    // Keys work again after the attach.
    p.keys('?');
    await p.until('the help', (s) => s.includes("attach to the selected agent's session"));
    p.keys('x');
    p.keys('q');
    await p.until('the shell back', (s) => !s.includes('sos top ·') && s.trimEnd().endsWith(PROMPT.trimEnd()));
  });
});
