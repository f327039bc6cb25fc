import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { stripAnsi } from '../../src/core/lifecycle/ansi.js';
import { type AgentKind, classify, type LifecycleState, parsePatternOverrides, typedInput } from '../../src/core/lifecycle/classifier.js';

const SCREENS = fileURLToPath(new URL('../fixtures/screens/', import.meta.url));

type Expected = Record<string, LifecycleState>;

/** What each captured screen shows, from the README beside it. */
const EXPECTED: Record<string, { kind: AgentKind; files: Expected; signal?: Record<string, string> }> = {
  'claude-code': {
    kind: 'claude',
    files: {
      idle: 'idle',
      typed: 'idle', // typed but not submitted: still at the prompt, nothing running
      busy: 'busy',
      'busy-tool': 'busy',
      permission: 'waiting',
      done: 'idle',
      'firstrun-offline': 'dead', // the CLI exits 1; tmux shows "Pane is dead (status 1, …)"
      'firstrun-trust': 'waiting',
      'firstrun-apikey': 'waiting',
    },
  },
  codex: {
    kind: 'codex',
    files: {
      idle: 'idle',
      typed: 'idle',
      busy: 'busy',
      'busy-tool': 'busy', // only the title spinner says so
      'busy-tool-no-text': 'busy',
      permission: 'waiting',
      'busy-tool-after-permission': 'busy', // only the title spinner says so
      'done-after-permission': 'idle',
      done: 'idle',
      'firstrun-login': 'waiting', // login required: waiting, evidence signal `login`
      'firstrun-trust': 'waiting',
    },
    signal: { 'firstrun-login': 'login' },
  },
  gemini: {
    kind: 'gemini',
    files: {
      idle: 'idle',
      typed: 'idle',
      busy: 'busy',
      'busy-tool': 'busy',
      permission: 'waiting',
      'busy-tool-after-permission': 'busy',
      'done-after-permission': 'idle',
      done: 'idle',
      'firstrun-trust': 'waiting',
      'firstrun-auth': 'waiting', // login: waiting, evidence signal `login`
      'firstrun-apikey': 'waiting',
      // The README lists it with the first-run dialogs, but the screen is the CLI back at its
      // prompt after "restarting to apply the trust changes": placeholder, `? for shortcuts`,
      // title `◇ Ready`, no dialog left. Nothing is waiting on a human there.
      'firstrun-ready': 'idle',
    },
    signal: { 'firstrun-auth': 'login', 'firstrun-apikey': 'login' },
  },
};

function titles(dir: string): Map<string, string> {
  const file = join(dir, 'pane-titles.tsv');
  const out = new Map<string, string>();
  if (!existsSync(file)) return out;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const tab = line.indexOf('\t');
    if (tab > 0) out.set(line.slice(0, tab), line.slice(tab + 1));
  }
  return out;
}

describe('classifier against captured screens', () => {
  it('has the fixture folder', () => {
    // Fail, not skip: these fixtures are the point of the test.
    expect(existsSync(SCREENS), `missing ${SCREENS}`).toBe(true);
    for (const dir of Object.keys(EXPECTED)) expect(existsSync(join(SCREENS, dir)), dir).toBe(true);
  });

  for (const [dir, { kind, files, signal }] of Object.entries(EXPECTED)) {
    describe(dir, () => {
      const path = join(SCREENS, dir);
      const present = existsSync(path) ? readdirSync(path).filter((f) => f.endsWith('.txt')) : [];

      it('has an expectation for every fixture and a fixture for every expectation', () => {
        const names = new Set(present.map((f) => f.replace(/(\.ansi)?\.txt$/, '')));
        expect([...names].sort()).toEqual(Object.keys(files).sort());
        for (const name of Object.keys(files)) {
          expect(present, name).toContain(`${name}.txt`);
          expect(present, name).toContain(`${name}.ansi.txt`);
        }
      });

      const paneTitles = existsSync(path) ? titles(path) : new Map<string, string>();
      for (const [name, state] of Object.entries(files)) {
        for (const file of [`${name}.txt`, `${name}.ansi.txt`]) {
          it(`${file} → ${state}`, () => {
            const screen = readFileSync(join(path, file), 'utf8');
            const title = paneTitles.get(name);
            const reading = classify({ kind, screen, sessionExists: true, ...(title === undefined ? {} : { title }) });
            expect(reading.state, JSON.stringify(reading.evidence, null, 1)).toBe(state);
            expect(reading.confidence).toBeGreaterThan(0.5);
            expect(reading.evidence.length).toBeGreaterThan(0);
            const want = signal?.[name];
            if (want) expect(reading.evidence.map((e) => e.signal)).toContain(want);
          });
        }
      }
    });
  }

  it('codex busy-tool is busy because of its title alone', () => {
    const screen = readFileSync(join(SCREENS, 'codex', 'busy-tool.txt'), 'utf8');
    expect(classify({ kind: 'codex', screen, sessionExists: true, title: '⠋ Fake acceptance session | project' }).state).toBe('busy');
    expect(classify({ kind: 'codex', screen, sessionExists: true, title: 'project' }).state).toBe('idle');
  });

  it('a claude busy screen names the footer pattern and its line', () => {
    const screen = readFileSync(join(SCREENS, 'claude-code', 'busy.ansi.txt'), 'utf8');
    const reading = classify({ kind: 'claude', screen, sessionExists: true });
    const ev = reading.evidence.find((e) => e.detail === 'claude.footer.esc-to-interrupt');
    expect(ev?.signal).toBe('screen.busy');
    expect(ev?.lines?.[0]).toMatch(/^esc to interrupt/);
  });
});

describe('the input line, as wake delivery reads it to verify a submission', () => {
  const PROMPT = "Please upper-case 'hello sos' with echo_upper.";
  // Typed and not yet submitted, the prompt sits in the input line; once submitted (busy, done)
  // it is echoed above and the input line no longer holds it, whatever the line below says.
  const CASES: [dir: string, kind: AgentKind, typed: string, clear: string[]][] = [
    ['claude-code', 'claude', 'typed', ['idle', 'busy', 'busy-tool', 'done']],
    ['codex', 'codex', 'typed', ['idle', 'busy', 'busy-tool', 'done', 'done-after-permission']],
    ['gemini', 'gemini', 'typed', ['idle', 'busy', 'busy-tool', 'done', 'done-after-permission']],
  ];
  for (const [dir, kind, typed, clear] of CASES) {
    it(`${dir}: finds the typed prompt in the input line, and not after it was submitted`, () => {
      for (const suffix of ['.txt', '.ansi.txt']) {
        const read = (name: string) => typedInput(kind, readFileSync(join(SCREENS, dir, `${name}${suffix}`), 'utf8'));
        expect(read(typed)?.text, `${typed}${suffix}`).toBe(PROMPT);
        // The footer below the input box does not hold the prompt: the last line alone cannot tell.
        expect(stripAnsi(readFileSync(join(SCREENS, dir, `${typed}${suffix}`), 'utf8')).trimEnd().split('\n').pop()).not.toContain(PROMPT);
        for (const name of clear) {
          const input = read(name);
          expect(input, `${name}${suffix}`).not.toBeNull();
          expect(input!.text, `${name}${suffix}`).not.toContain(PROMPT);
        }
      }
    });
  }

  it('an empty input line showing its placeholder holds nothing typed', () => {
    for (const suffix of ['.txt', '.ansi.txt']) {
      const idle = (dir: string) => readFileSync(join(SCREENS, dir, `idle${suffix}`), 'utf8');
      expect(typedInput('codex', idle('codex'))).toEqual({ id: 'codex.input.composer', text: '', placeholder: 'codex.placeholder.ask' });
      expect(typedInput('gemini', idle('gemini'))).toEqual({ id: 'gemini.input.box', text: '', placeholder: 'gemini.placeholder.type' });
      expect(typedInput('claude', idle('claude-code'))).toEqual({ id: 'claude.input.box', text: '' });
    }
    // Words a human typed are not a placeholder.
    expect(typedInput('codex', '› Ask Codex to do anything else\n  gpt · ~/p')?.text).toBe('Ask Codex to do anything else');
  });

  it('a shell has no input rule (the last line is its input line); overrides can give one', () => {
    expect(typedInput('shell', 'sos$ echo hi\nhi\nsos$ ')).toBeNull();
    const overrides = parsePatternOverrides({ input: [{ id: 'mine', pattern: '^>>> ', where: 'last' }] });
    expect(typedInput('shell', '>>> 1+1\n2\n>>> print(3)', overrides)).toEqual({ id: 'mine', text: 'print(3)' });
    expect(() => parsePatternOverrides({ input: [{ id: 'bad', pattern: '(' }] })).toThrow(/input\[0\]/);
  });
});

describe('classifier synthetic cases', () => {
  const idleScreen = '❯ \n──────\n  ? for shortcuts · ← for agents\n';
  const busyScreen = '· Pondering…\n❯ \n──────\n  esc to interrupt · ← for agents\n';

  it('session gone → dead', () => {
    const r = classify({ kind: 'claude', screen: idleScreen, sessionExists: false });
    expect(r.state).toBe('dead');
    expect(r.evidence[0]?.signal).toBe('driver.session-gone');
  });

  it('exited with code 1 → dead, the code in evidence', () => {
    const r = classify({ kind: 'claude', screen: '', sessionExists: true, exited: { code: 1, signal: null } });
    expect(r.state).toBe('dead');
    expect(r.confidence).toBe(1);
    expect(r.evidence[0]).toMatchObject({ signal: 'driver.exited' });
    expect(r.evidence[0]?.detail).toContain('code 1');
  });

  it('killed by a signal → dead, the signal in evidence', () => {
    const r = classify({ kind: 'codex', screen: '', sessionExists: true, exited: { code: null, signal: 'SIGKILL' } });
    expect(r.state).toBe('dead');
    expect(r.evidence[0]?.detail).toContain('SIGKILL');
  });

  it('firstrun-offline without driver exit info: the tmux banner gives the status', () => {
    const screen = readFileSync(join(SCREENS, 'claude-code', 'firstrun-offline.txt'), 'utf8');
    const r = classify({ kind: 'claude', screen, sessionExists: true });
    expect(r.state).toBe('dead');
    expect(r.evidence[0]?.detail).toContain('exit status 1');
    expect(r.evidence.map((e) => e.detail)).toContain('tmux.pane-dead');
  });

  it('busy + silent past the threshold + holding a claim → stuck', () => {
    const r = classify({ kind: 'claude', screen: busyScreen, sessionExists: true, idleMs: 31 * 60_000, holdsClaim: true });
    expect(r.state).toBe('stuck');
    expect(r.evidence[0]?.signal).toBe('time.silent');
    expect(r.evidence.map((e) => e.detail)).toContain('claude.footer.esc-to-interrupt');
  });

  it('custom threshold', () => {
    const r = classify({ kind: 'claude', screen: busyScreen, sessionExists: true, idleMs: 61_000, holdsClaim: true, stuckAfterMs: 60_000 });
    expect(r.state).toBe('stuck');
  });

  it('same without a claim → not stuck', () => {
    const r = classify({ kind: 'claude', screen: busyScreen, sessionExists: true, idleMs: 31 * 60_000, holdsClaim: false });
    expect(r.state).toBe('busy');
  });

  it('below the threshold → not stuck', () => {
    const r = classify({ kind: 'claude', screen: busyScreen, sessionExists: true, idleMs: 60_000, holdsClaim: true });
    expect(r.state).toBe('busy');
  });

  it('idle or waiting is never stuck', () => {
    expect(classify({ kind: 'claude', screen: idleScreen, sessionExists: true, idleMs: 99 * 60_000, holdsClaim: true }).state).toBe('idle');
    const perm = readFileSync(join(SCREENS, 'claude-code', 'permission.txt'), 'utf8');
    expect(classify({ kind: 'claude', screen: perm, sessionExists: true, idleMs: 99 * 60_000, holdsClaim: true }).state).toBe('waiting');
  });

  it('a Stop hook newer than the screen → idle with high confidence', () => {
    const now = 1_800_000_000_000;
    const r = classify({ kind: 'claude', screen: busyScreen, sessionExists: true, idleMs: 5_000, now, hook: { event: 'Stop', at: now - 1_000 } });
    expect(r.state).toBe('idle');
    expect(r.confidence).toBeGreaterThanOrEqual(0.9);
    expect(r.evidence[0]?.signal).toBe('hook');
  });

  it('a Stop hook older than the screen is ignored', () => {
    const now = 1_800_000_000_000;
    const r = classify({ kind: 'claude', screen: busyScreen, sessionExists: true, idleMs: 5_000, now, hook: { event: 'Stop', at: now - 60_000 } });
    expect(r.state).toBe('busy');
    expect(r.evidence.map((e) => e.signal)).toContain('hook.stale');
  });

  it('hooks map to states (PreCompact, Notification, Codex agent-turn-complete)', () => {
    const now = 1_800_000_000_000;
    const base = { kind: 'claude' as const, screen: idleScreen, sessionExists: true, idleMs: 10_000, now };
    expect(classify({ ...base, hook: { event: 'PreCompact', at: now } }).state).toBe('compacted');
    expect(classify({ ...base, hook: { event: 'Notification', at: now } }).state).toBe('waiting');
    expect(classify({ ...base, kind: 'codex', hook: { event: 'agent-turn-complete', at: now } }).state).toBe('idle');
  });

  it('a hook cannot revive a gone session', () => {
    const r = classify({ kind: 'claude', screen: '', sessionExists: false, hook: { event: 'Stop', at: Date.now() } });
    expect(r.state).toBe('dead');
  });

  it('compaction notices → compacted', () => {
    const claude = classify({ kind: 'claude', screen: '✻ Conversation compacted · ctrl+o for history\n❯ \n  ? for shortcuts\n', sessionExists: true });
    expect(claude.state).toBe('compacted');
    expect(claude.evidence[0]).toMatchObject({ signal: 'screen.compacted', detail: 'claude.compacted.notice' });
    expect(claude.evidence[0]?.lines?.[0]).toContain('Conversation compacted');
    expect(classify({ kind: 'gemini', screen: 'ℹ Chat history compressed from 9000 to 1200 tokens.\n > \n', sessionExists: true }).state).toBe('compacted');
    expect(classify({ kind: 'shell', screen: 'context compacted\n$ ', sessionExists: true }).state).toBe('compacted');
  });

  it('quota and rate-limit texts → quota', () => {
    const claude = classify({ kind: 'claude', screen: '⎿ Claude usage limit reached. Your limit will reset at 5pm.\n❯ \n  ? for shortcuts\n', sessionExists: true });
    expect(claude.state).toBe('quota');
    expect(claude.evidence.map((e) => e.detail)).toContain('claude.quota.limit-reached');
    expect(classify({ kind: 'codex', screen: "■ You've hit your usage limit. Try again later.\n› Ask Codex to do anything\n", sessionExists: true }).state).toBe('quota');
    expect(classify({ kind: 'gemini', screen: '✕ [API Error: RESOURCE_EXHAUSTED: Quota exceeded]\n > \n', sessionExists: true }).state).toBe('quota');
  });

  it('login required → waiting with the login signal', () => {
    const r = classify({ kind: 'claude', screen: 'Invalid API key · Please run /login\n❯ \n  ? for shortcuts\n', sessionExists: true });
    expect(r.state).toBe('waiting');
    expect(r.evidence[0]?.signal).toBe('login');
  });

  it('unknown screens → unknown with low confidence; empty → warm', () => {
    const r = classify({ kind: 'claude', screen: 'lorem ipsum\ndolor sit amet\n', sessionExists: true });
    expect(r.state).toBe('unknown');
    expect(r.confidence).toBeLessThan(0.5);
    expect(classify({ kind: 'claude', screen: '\n\n', sessionExists: true }).state).toBe('warm');
  });

  it('shell prompts and questions', () => {
    expect(classify({ kind: 'shell', screen: 'ok\nuser@host:~$ ', sessionExists: true }).state).toBe('idle');
    expect(classify({ kind: 'custom', screen: 'Overwrite? [y/N] ', sessionExists: true }).state).toBe('waiting');
    expect(classify({ kind: 'shell', screen: 'Traceback (most recent call last):\n  File "x.py"\n$ ', sessionExists: true }).state).toBe('dead');
  });

  it('per-agent overrides replace a group', () => {
    const screen = 'FAKE> working hard\n';
    expect(classify({ kind: 'custom', screen, sessionExists: true }).state).toBe('unknown');
    const r = classify({ kind: 'custom', screen, sessionExists: true, overrides: { busy: [{ id: 'fake.busy', pattern: 'working hard', where: 'last' }] } });
    expect(r.state).toBe('busy');
    expect(r.evidence[0]?.detail).toBe('fake.busy');
  });

  it('stripAnsi removes CSI, OSC and keeps text', () => {
    expect(stripAnsi('\u001b]0;⠋ title\u0007\u001b[1;32mgreen\u001b[0m \u001b]8;;http://x\u001b\\link\u001b]8;;\u001b\\\r\n')).toBe('green link\n');
  });
});
