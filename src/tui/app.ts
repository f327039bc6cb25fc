/**
 * The Ink side of `sos top`: draws the view model, reloads the snapshot on a tick and when the
 * project's event stream moves (reloads coalesced to at most 4 a second), and turns keys into UI
 * changes and actions. No JSX: `h` is React.createElement. Only `sos top` imports this module.
 */
import React from 'react';
import { Box, render, Text, useApp, useInput, useStdout } from 'ink';
import type { Outcome } from './actions.js';
import { initialUi, type Line, PANELS, SORTS, type Tone, type UiState, viewModel, type ViewModel } from './model.js';
import type { Snapshot } from './snapshot.js';

const h = React.createElement;

export interface TopOptions {
  load: () => Promise<Snapshot>;
  /** Resolves when the project's event stream may have moved (or on timeout / abort). */
  waitForEvent: (timeoutMs: number, signal: AbortSignal) => Promise<boolean>;
  actions: {
    togglePark: (agent: string) => Promise<Outcome>;
    send: (agent: string, text: string) => Promise<Outcome>;
    restart: (agent: string) => Promise<Outcome>;
    interrupt: (agent: string) => Promise<Outcome>;
    decide: (id: string, vote: 'approve' | 'deny') => Promise<Outcome>;
    screen: (agent: string) => Promise<Outcome & { lines?: string[] }>;
    /** Attaches this terminal to the agent's session; resolves when the operator detaches. Ink is not running meanwhile. */
    attach: (agent: string) => Promise<Outcome>;
  };
  intervalMs: number;
  color: boolean;
  stdout?: NodeJS.WriteStream;
  stdin?: NodeJS.ReadStream;
}

const MIN_RELOAD_MS = 250;

/** The printable key of an Ink input event, or its name. */
interface Key {
  upArrow: boolean;
  downArrow: boolean;
  return: boolean;
  escape: boolean;
  tab: boolean;
  shift: boolean;
  ctrl: boolean;
  backspace: boolean;
  delete: boolean;
}

/** SGR foreground codes of the tones the view model uses. */
const TONE_SGR: Record<Tone, number> = { red: 31, green: 32, yellow: 33, blue: 34, magenta: 35, cyan: 36, gray: 90 };

/**
 * One row as a single styled string (SGR codes around each styled segment). One Ink `Text` per
 * row rather than one per segment: a 160x50 frame is ~50 nodes for React and Yoga, not ~400,
 * which was most of a repaint's cost in bench/top.mjs. Without colour, bold and inverse stay
 * (state is also a word, so nothing is lost).
 */
export function styledLine(line: Line, color: boolean): string {
  let out = '';
  for (const s of line.segments) {
    const codes = [...(color && s.tone ? [TONE_SGR[s.tone]] : []), ...(s.bold ? [1] : []), ...(s.inverse ? [7] : [])];
    out += codes.length ? `\x1b[${codes.join(';')}m${s.text}\x1b[0m` : s.text;
  }
  return out === '' ? ' ' : out;
}

/** A row; React skips it when its text is unchanged since the last frame. */
const LineView = React.memo(function LineView({ text }: { text: string }) {
  return h(Text, { wrap: 'truncate' }, text);
});

/** The approval prompt on the waiting approval at `position` (wrapping), oldest first. */
function approvalPrompt(waiting: Snapshot['approvals'], position: number): Extract<UiState['prompt'], { kind: 'approval' }> {
  const i = ((position % waiting.length) + waiting.length) % waiting.length;
  const a = waiting[i]!;
  return { kind: 'approval', id: a.id, what: `${a.method} (${a.tier}, ${a.votes}/${a.needs})`, position: i, count: waiting.length };
}

/** Why the Ink app ended: quit, or leave for a while to attach to an agent's session. */
type Leave = { kind: 'quit' } | { kind: 'attach'; agent: string; ui: UiState };

function Top({ options, onExit, initial }: { options: TopOptions; onExit: (leave: Leave) => void; initial: UiState }) {
  const { exit } = useApp();
  const { stdout } = useStdout();
  const [snapshot, setSnapshot] = React.useState<Snapshot | null>(null);
  const [error, setError] = React.useState<string | null>(null);
  const [ui, setUi] = React.useState<UiState>(initial);
  const [size, setSize] = React.useState({ columns: stdout.columns || 80, rows: stdout.rows || 24 });
  const uiRef = React.useRef(ui);
  uiRef.current = ui;
  const snapshotRef = React.useRef(snapshot);
  snapshotRef.current = snapshot;
  const vmRef = React.useRef<ViewModel | null>(null);
  const reloadRef = React.useRef<() => void>(() => undefined);
  // Approvals decided here: left out of the A prompt until a reload has caught up with the decision.
  const decidedRef = React.useRef(new Set<string>());
  const waitingApprovals = () => (snapshotRef.current?.approvals ?? []).filter((a) => !decidedRef.current.has(a.id));

  React.useEffect(() => {
    const onResize = () => setSize({ columns: stdout.columns || 80, rows: stdout.rows || 24 });
    stdout.on('resize', onResize);
    return () => {
      stdout.off('resize', onResize);
    };
  }, [stdout]);

  // Loads: one at a time, at most one every MIN_RELOAD_MS, on the tick and on events.
  React.useEffect(() => {
    const stop = new AbortController();
    let loading = false;
    let again = false;
    let last = 0;
    let timer: NodeJS.Timeout | undefined;
    const reload = () => {
      if (stop.signal.aborted) return;
      if (loading) {
        again = true;
        return;
      }
      const wait = last + MIN_RELOAD_MS - Date.now();
      if (wait > 0) {
        clearTimeout(timer);
        timer = setTimeout(reload, wait);
        return;
      }
      loading = true;
      last = Date.now();
      options
        .load()
        .then((s) => {
          setSnapshot(s);
          setError(null);
        })
        .catch((err: unknown) => setError(err instanceof Error ? err.message : String(err)))
        .finally(() => {
          loading = false;
          if (again) {
            again = false;
            reload();
          }
        });
    };
    reloadRef.current = reload;
    reload();
    const tick = setInterval(reload, options.intervalMs);
    void (async () => {
      while (!stop.signal.aborted) {
        const moved = await options.waitForEvent(Math.max(options.intervalMs, 1_000), stop.signal).catch(async () => {
          await new Promise((r) => setTimeout(r, options.intervalMs));
          return false;
        });
        if (moved) reload();
      }
    })();
    return () => {
      stop.abort();
      clearInterval(tick);
      clearTimeout(timer);
    };
  }, [options]);

  const act = (label: string, run: () => Promise<Outcome>) => {
    setUi((u) => ({ ...u, status: { text: `${label}…`, tone: 'cyan' } }));
    void run()
      .then((o) => setUi((u) => ({ ...u, status: { text: o.text, tone: o.ok ? 'green' : 'red' } })))
      .catch((err: unknown) => setUi((u) => ({ ...u, status: { text: err instanceof Error ? err.message : String(err), tone: 'red' } })))
      .finally(() => reloadRef.current());
  };

  useInput((input: string, key: Key) => {
    const u = uiRef.current;
    const vm = vmRef.current;
    const set = (patch: Partial<UiState>) => setUi((cur) => ({ ...cur, ...patch }));
    if (key.ctrl && input === 'c') {
      exit();
      onExit({ kind: 'quit' });
      return;
    }
    if (u.prompt?.kind === 'send') {
      const prompt = u.prompt;
      if (key.escape) set({ prompt: null, status: { text: 'not sent' } });
      else if (key.return) {
        set({ prompt: null });
        act(`sending to ${prompt.agent}`, () => options.actions.send(prompt.agent, prompt.text));
      } else if (key.backspace || key.delete) set({ prompt: { ...prompt, text: [...prompt.text].slice(0, -1).join('') } });
      else if (input && !key.ctrl) set({ prompt: { ...prompt, text: prompt.text + input.replace(/[\r\n]/g, ' ') } });
      return;
    }
    if (u.prompt?.kind === 'confirm') {
      const prompt = u.prompt;
      set({ prompt: null });
      if (input === 'y' || input === 'Y') {
        act(`${prompt.action === 'restart' ? 'restarting' : 'interrupting'} ${prompt.agent}`, () => (prompt.action === 'restart' ? options.actions.restart(prompt.agent) : options.actions.interrupt(prompt.agent)));
      }
      else set({ prompt: null, status: { text: `${prompt.action} ${prompt.agent} canceled` } });
      return;
    }
    if (u.prompt?.kind === 'approval') {
      const prompt = u.prompt;
      if (input === 'j' || input === 'k' || key.downArrow || key.upArrow) {
        const waiting = waitingApprovals();
        if (waiting.length > 0) set({ prompt: approvalPrompt(waiting, prompt.position + (input === 'k' || key.upArrow ? -1 : 1)) });
        return;
      }
      set({ prompt: null });
      const decide = (verdict: 'approve' | 'deny') => async () => {
        const outcome = await options.actions.decide(prompt.id, verdict);
        if (outcome.ok) decidedRef.current.add(prompt.id);
        return outcome;
      };
      if (input === 'y' || input === 'Y') act(`approving ${prompt.id}`, decide('approve'));
      else if (input === 'n' || input === 'N') act(`denying ${prompt.id}`, decide('deny'));
      else set({ prompt: null, status: { text: `approval ${prompt.id} left waiting` } });
      return;
    }
    if (u.filtering) {
      if (key.escape) set({ filtering: false, filter: '', selected: 0, selectedName: null });
      else if (key.return) set({ filtering: false });
      else if (key.backspace || key.delete) set({ filter: [...u.filter].slice(0, -1).join(''), selected: 0, selectedName: null });
      else if (input && !key.ctrl) set({ filter: u.filter + input, selected: 0, selectedName: null });
      return;
    }
    if (u.help) {
      set({ help: false });
      return;
    }
    if (u.detail && (key.escape || key.return)) {
      set({ detail: null });
      return;
    }
    const agent = vm?.selectedAgent ?? null;
    const move = (d: number) => {
      if (u.panel === 'agents') {
        const i = Math.max(0, Math.min((vm?.agents.length ?? 1) - 1, (vm?.selected ?? 0) + d));
        set({ selected: i, selectedName: vm?.agents[i] ?? null });
      }
      else set({ scroll: { ...u.scroll, [u.panel]: Math.max(0, u.scroll[u.panel] + (u.panel === 'activity' ? -d : d)) } });
    };
    if (input === 'q') {
      exit();
      onExit({ kind: 'quit' });
    } else if (key.downArrow || input === 'j') move(1);
    else if (key.upArrow || input === 'k') move(-1);
    else if (key.tab) {
      const i = PANELS.indexOf(u.panel);
      set({ panel: PANELS[(i + (key.shift ? PANELS.length - 1 : 1)) % PANELS.length]! });
    } else if (input === '/') set({ filtering: true });
    else if (input === '?') set({ help: true });
    else if (input === 'o') set({ sort: SORTS[(SORTS.indexOf(u.sort) + 1) % SORTS.length]! });
    else if (key.return && u.panel === 'agents') {
      if (agent === null) set({ status: { text: 'no agent selected', tone: 'yellow' } });
      else {
        set({ detail: { agent, screen: null } });
        void options.actions.screen(agent).then((o) =>
          setUi((cur) => (cur.detail?.agent === agent ? { ...cur, detail: o.lines ? { agent, screen: o.lines } : { agent, screen: null, note: o.text } } : cur)),
        );
      }
    } else if (input === 'A') {
      const waiting = waitingApprovals();
      if (waiting.length === 0) set({ status: { text: 'no approvals waiting', tone: 'yellow' } });
      else set({ prompt: approvalPrompt(waiting, 0) });
    }
    else if (input === 'p' || input === 's' || input === 'r' || input === 'i' || input === 'a') {
      if (agent === null) {
        set({ status: { text: 'no agent selected', tone: 'yellow' } });
        return;
      }
      if (input === 'p') act(`park/unpark ${agent}`, () => options.actions.togglePark(agent));
      else if (input === 'a') {
        onExit({ kind: 'attach', agent, ui: { ...u, prompt: null, detail: null } });
        exit();
      }
      else if (input === 's') set({ prompt: { kind: 'send', agent, text: '' } });
      else set({ prompt: { kind: 'confirm', action: input === 'r' ? 'restart' : 'interrupt', agent } });
    } else if (key.escape) set({ status: null, filter: '' });
  });

  if (snapshot === null) {
    return h(Text, null, error ? `sos top: ${error}` : 'sos top: reading…');
  }
  const vm = viewModel(snapshot, error ? { ...ui, status: { text: `read failed: ${error}`, tone: 'red' } } : ui, size);
  vmRef.current = vm;
  return h(
    Box,
    { flexDirection: 'column', width: size.columns, height: Math.max(1, size.rows - 1) },
    ...vm.lines.map((line, i) => h(LineView, { key: i, text: styledLine(line, options.color) })),
  );
}

const ENTER_ALT = '\x1b[?1049h\x1b[H';
const LEAVE_ALT = '\x1b[?25h\x1b[?1049l';

/**
 * Runs the TUI until `q`, Ctrl-C or SIGTERM. The alternate screen is entered first and left on
 * every way out (quit, error, signal, process exit), so the shell's screen comes back. `a` leaves
 * it too: Ink unmounts, the terminal is the attach's until the operator detaches, then a new Ink
 * app draws the same view state again.
 */
export async function runTop(options: TopOptions): Promise<void> {
  const stdout = options.stdout ?? process.stdout;
  const stdin = options.stdin ?? process.stdin;
  let onScreen = false;
  const leaveScreen = () => {
    if (!onScreen) return;
    onScreen = false;
    try {
      if (stdin.isTTY) stdin.setRawMode?.(false);
    } catch {
      // stdin already closed
    }
    stdout.write(LEAVE_ALT);
  };
  process.on('exit', leaveScreen);
  let ui = initialUi();
  try {
    for (;;) {
      stdout.write(ENTER_ALT);
      onScreen = true;
      const leave = await drawUntilLeft(options, stdout, ui);
      leaveScreen();
      if (leave.kind === 'quit') return;
      // `a`: Ink is gone and the terminal is the shell's again; the attach owns it until the
      // operator detaches, then the view comes back where it was, with the attach's outcome.
      stopReading(stdin);
      const outcome = await options.actions.attach(leave.agent).catch((err: unknown): Outcome => ({ ok: false, text: err instanceof Error ? err.message : String(err) }));
      // Whatever reached this process's buffer was typed for the session, not for the view.
      while (stdin.read() !== null) continue;
      ui = { ...leave.ui, status: { text: outcome.text, tone: outcome.ok ? 'green' : 'red' } };
    }
  } finally {
    leaveScreen();
    process.off('exit', leaveScreen);
  }
}

/**
 * Makes Node stop reading the terminal. Ink's unmount only drops its listener; a paused stdin
 * still reads while its buffer has room, so keys typed into an attached session would be split
 * between the session and this process (and replayed as commands to the next view). Node stops
 * reading a TTY stdin on the 'pause' event, which `pause()` emits only when leaving flowing mode.
 */
function stopReading(stdin: NodeJS.ReadStream): void {
  stdin.resume();
  stdin.pause();
}

const HOME = '\x1b[H';

/**
 * The terminal as Ink is given it: every write starts at the top-left cell. The live area is
 * one row shorter than the screen (a full-height frame makes Ink clear the whole terminal on
 * every repaint), so Ink writes it with a trailing newline, and Ink 6.8's incremental renderer
 * then moves the cursor up one row too few before each frame: every repaint drew one row lower
 * than the last (seen in a tmux pane: the old header stayed on row 1). On the alternate screen
 * the frame always begins at the top, so homing the cursor first makes Ink's relative move a
 * no-op (the cursor cannot go above row 1) and each frame lands where the last one was.
 */
function homed(stdout: NodeJS.WriteStream): NodeJS.WriteStream {
  return new Proxy(stdout, {
    get(target, prop) {
      if (prop === 'write') {
        return (chunk: unknown, ...rest: unknown[]) =>
          (target.write as (...a: unknown[]) => boolean)(typeof chunk === 'string' && chunk !== '' ? HOME + chunk : chunk, ...rest);
      }
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** One Ink app on the alternate screen, until `q`, Ctrl-C, SIGTERM/SIGHUP, an error or `a`. */
async function drawUntilLeft(options: TopOptions, stdout: NodeJS.WriteStream, initial: UiState): Promise<Leave> {
  let finish: (leave: Leave, err?: unknown) => void = () => undefined;
  const done = new Promise<Leave>((resolve, reject) => {
    finish = (leave, err) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(leave));
  });
  const instance = render(h(Top, { options, initial, onExit: (leave: Leave) => finish(leave) }), {
    stdout: homed(stdout),
    ...(options.stdin ? { stdin: options.stdin } : {}),
    exitOnCtrlC: false,
    patchConsole: false,
    // Only changed lines are rewritten (a clock tick rewrites one line, not the screen).
    incrementalRendering: true,
  });
  const onSignal = () => finish({ kind: 'quit' });
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  instance.waitUntilExit().then(
    () => finish({ kind: 'quit' }),
    (err: unknown) => finish({ kind: 'quit' }, err),
  );
  try {
    return await done;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGHUP', onSignal);
    instance.unmount();
    instance.cleanup();
  }
}
