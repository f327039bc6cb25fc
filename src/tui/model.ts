/**
 * The view model of `sos top`: a pure function from a snapshot, the UI state and the terminal size
 * to the lines to draw. Every line fits the width (cut with `…`, never wrapped), and there are at
 * most `rows - 1` of them (a live area as tall as the terminal makes Ink flicker). Colour is a hint
 * only: each state is also a word, so NO_COLOR and monochrome terminals read the same.
 */
import { dollars } from '../core/economy/format.js';
import { neutralise } from '../core/safe-text.js';
import type { AgentRow, Money, Snapshot } from './snapshot.js';

export const PANELS = ['agents', 'queues', 'spend', 'activity'] as const;
export type Panel = (typeof PANELS)[number];
export const SORTS = ['problems', 'name', 'spend'] as const;
export type Sort = (typeof SORTS)[number];

export type Tone = 'red' | 'yellow' | 'green' | 'cyan' | 'blue' | 'magenta' | 'gray';

export interface Segment {
  text: string;
  tone?: Tone;
  bold?: boolean;
  inverse?: boolean;
}

/** One screen row: its segments together are at most `columns` cells wide. */
export interface Line {
  segments: Segment[];
}

export type Prompt =
  | { kind: 'send'; agent: string; text: string }
  | { kind: 'confirm'; action: 'restart' | 'interrupt'; agent: string }
  /** `position` of `count` waiting approvals, oldest first; j/k move through them. */
  | { kind: 'approval'; id: string; what: string; position: number; count: number };

export interface UiState {
  panel: Panel;
  /** Index into the visible (filtered, sorted) agents; `selectedName` wins while that agent is shown. */
  selected: number;
  /** The agent chosen with j/k: the selection follows it when a refresh re-sorts the rows. */
  selectedName: string | null;
  /** First row shown of each panel other than agents (agents scroll with the selection). */
  scroll: Record<Panel, number>;
  sort: Sort;
  filter: string;
  /** The filter is being typed. */
  filtering: boolean;
  help: boolean;
  prompt: Prompt | null;
  /** The detail pane (Enter on an agent): its record and its last screen lines once read. */
  detail: { agent: string; screen: string[] | null; note?: string } | null;
  /** The outcome of the last action (or an error), shown in the bottom row. */
  status: { text: string; tone?: Tone } | null;
}

export const initialUi = (): UiState => ({
  panel: 'agents',
  selected: 0,
  selectedName: null,
  scroll: { agents: 0, queues: 0, spend: 0, activity: 0 },
  sort: 'problems',
  filter: '',
  filtering: false,
  help: false,
  prompt: null,
  detail: null,
  status: null,
});

export interface Size {
  columns: number;
  rows: number;
}

export interface Problem {
  kind: string;
  what: string;
  since: number | null;
  /** The key that acts on it (with the agent selected), or the command that does. */
  act: string;
  agent?: string;
}

export interface ViewModel {
  lines: Line[];
  problems: Problem[];
  /** The agents in the order shown (after the filter), and the selected one. */
  agents: string[];
  selectedAgent: string | null;
  /** `selected` clamped to the visible agents. */
  selected: number;
  wide: boolean;
}

// ---------------------------------------------------------------------------------------------
// text that fits

/** Cells a code point takes: 0 for combining marks, 2 for wide East Asian and emoji, else 1. */
function cells(cp: number): number {
  if (cp < 0x300) return 1;
  if ((cp >= 0x300 && cp <= 0x36f) || (cp >= 0x200b && cp <= 0x200f) || (cp >= 0xfe00 && cp <= 0xfe0f)) return 0;
  if (
    (cp >= 0x1100 && cp <= 0x115f) ||
    (cp >= 0x2e80 && cp <= 0xa4cf) ||
    (cp >= 0xac00 && cp <= 0xd7a3) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0xfe30 && cp <= 0xfe4f) ||
    (cp >= 0xff00 && cp <= 0xff60) ||
    (cp >= 0xffe0 && cp <= 0xffe6) ||
    (cp >= 0x1f300 && cp <= 0x1faff) ||
    (cp >= 0x20000 && cp <= 0x3fffd)
  )
    return 2;
  return 1;
}

/** The cells `text` takes in a terminal. */
export function width(text: string): number {
  let w = 0;
  for (const ch of text) w += cells(ch.codePointAt(0)!);
  return w;
}

/** One printable line: control characters made visible, runs of white space one space. */
export function clean(text: string): string {
  return neutralise(text.replace(/\s+/g, ' '));
}

/** `text` cut to `max` cells with `…` where it was cut. */
export function cut(text: string, max: number): string {
  if (max <= 0) return '';
  if (width(text) <= max) return text;
  let out = '';
  let w = 0;
  for (const ch of text) {
    const c = cells(ch.codePointAt(0)!);
    if (w + c > max - 1) break;
    out += ch;
    w += c;
  }
  return `${out}…`;
}

/** Exactly `n` cells: cut, or padded with spaces (on the left with `right`). */
export function pad(text: string, n: number, right = false): string {
  const t = cut(text, n);
  const fill = ' '.repeat(Math.max(0, n - width(t)));
  return right ? fill + t : t + fill;
}

/** A line cut to `columns` cells, segment by segment. */
export function fitLine(segments: Segment[], columns: number): Line {
  const out: Segment[] = [];
  let room = columns;
  const total = segments.reduce((n, s) => n + width(s.text), 0);
  if (total <= columns) return { segments: segments.filter((s) => s.text !== '') };
  for (const s of segments) {
    if (room <= 0) break;
    const w = width(s.text);
    if (w < room) {
      out.push(s);
      room -= w;
    } else {
      // The segment where the line must end: cut it, ending in `…`.
      out.push({ ...s, text: cut(s.text + ' ', room) });
      room = 0;
    }
  }
  return { segments: out.filter((s) => s.text !== '') };
}

const plain = (text: string, tone?: Tone, bold?: boolean): Segment => ({ text, ...(tone ? { tone } : {}), ...(bold ? { bold } : {}) });
export const lineText = (l: Line): string => l.segments.map((s) => s.text).join('');

// ---------------------------------------------------------------------------------------------
// words for times and money

/** How long ago, in at most 4 characters: `12s`, `5m`, `3h`, `2d`; `-` for never. */
export function age(at: number | null, now: number): string {
  if (at === null) return '-';
  const s = Math.max(0, Math.round((now - at) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h`;
  return `${Math.min(999, Math.floor(s / 86_400))}d`;
}

/** A clock time `HH:MM` (UTC), or `HH:MM:SS` with `seconds`. */
export function clock(at: number, seconds = false): string {
  return new Date(at).toISOString().slice(11, seconds ? 19 : 16);
}

/** Priced spend, `+?` when some events were unpriced, `?` when all were. */
export function money(m: Money): string {
  if (m.micros === 0 && m.unpriced > 0) return '?';
  return dollars(m.micros) + (m.unpriced > 0 ? '+?' : '');
}

// ---------------------------------------------------------------------------------------------
// agents

const STATE_TONE: Record<string, Tone> = {
  dead: 'red',
  stuck: 'red',
  quota: 'yellow',
  waiting: 'yellow',
  parked: 'magenta',
  busy: 'green',
  warm: 'green',
  idle: 'cyan',
  compacted: 'blue',
  unknown: 'gray',
  unprobed: 'gray',
};

/** Worst first: the order of the problems band and of the agents sorted by problems. */
const SEVERITY: Record<string, number> = { dead: 0, stuck: 1, quota: 2, waiting: 3, compacted: 4, unknown: 5, unprobed: 6, parked: 7, busy: 8, warm: 9, idle: 10 };

export const stateTone = (state: string): Tone | undefined => STATE_TONE[state];

function visibleAgents(s: Snapshot, ui: UiState): AgentRow[] {
  const f = ui.filter.trim().toLowerCase();
  const shown = f === '' ? s.agents : s.agents.filter((a) => `${a.name} ${a.kind} ${a.state} ${a.role} ${a.task?.id ?? ''}`.toLowerCase().includes(f));
  const sorted = [...shown];
  if (ui.sort === 'name') sorted.sort((a, b) => a.name.localeCompare(b.name));
  else if (ui.sort === 'spend') sorted.sort((a, b) => b.spendToday.micros - a.spendToday.micros || a.name.localeCompare(b.name));
  else sorted.sort((a, b) => (SEVERITY[a.state] ?? 5) - (SEVERITY[b.state] ?? 5) || a.name.localeCompare(b.name));
  return sorted;
}

function windowText(a: AgentRow, now: number): string {
  const w = a.window;
  if (!w) return '-';
  const used = w.usedPercent === null ? '?%' : `${Math.round(w.usedPercent)}%`;
  const end = w.projectedLimitAt !== null ? `!${clock(w.projectedLimitAt)}` : w.end !== null && w.end > now ? clock(w.end) : '';
  return end ? `${used} ${end}` : used;
}

interface Column {
  head: string;
  width: number;
  right?: boolean;
  cell: (a: AgentRow) => Segment;
}

/** The agent table's columns for a width: fixed ones, then the task (and on wide terminals the evidence) taking the rest. */
function agentColumns(columns: number, now: number): Column[] {
  const wide = columns >= 120;
  const nameW = wide ? 20 : 14;
  const fixed: Column[] = [
    { head: 'agent', width: nameW, cell: (a) => plain(a.name, undefined, true) },
    { head: 'kind', width: wide ? 7 : 6, cell: (a) => plain(a.kind) },
    { head: 'state', width: 9, cell: (a) => plain(a.state, stateTone(a.state), a.state === 'dead' || a.state === 'stuck') },
    { head: 'for', width: 4, right: true, cell: (a) => plain(age(a.since, now)) },
  ];
  const tail: Column[] = [
    { head: 'unrd', width: 4, right: true, cell: (a) => plain(String(a.unread), a.unread > 0 ? 'yellow' : undefined) },
    { head: 'today', width: wide ? 9 : 7, right: true, cell: (a) => plain(money(a.spendToday)) },
    ...(wide ? [{ head: 'burn/h', width: 8, right: true, cell: (a: AgentRow) => plain(a.window ? dollars(a.window.burnMicrosPerHour) : '-') }] : []),
    { head: '5h', width: wide ? 10 : 9, right: true, cell: (a) => plain(windowText(a, now), a.window && !a.window.routable ? 'yellow' : undefined) },
  ];
  const used = [...fixed, ...tail].reduce((n, c) => n + c.width + 1, 0) + 2;
  const rest = Math.max(0, columns - used - 1);
  const taskW = wide ? Math.min(36, Math.max(8, Math.floor(rest / 2))) : rest;
  const task: Column = { head: 'task', width: taskW, cell: (a) => plain(a.task ? clean(`${a.task.id} ${a.task.title}`) : a.holds > 0 ? `${a.holds} held` : '-') };
  const cols = [...fixed, task, ...tail];
  if (wide) {
    const evW = Math.max(0, rest - taskW - 1);
    if (evW >= 10) cols.push({ head: 'evidence', width: evW, cell: (a) => plain(clean(a.evidence ?? ''), 'gray') });
  }
  return cols;
}

function agentLines(s: Snapshot, ui: UiState, agents: AgentRow[], selected: number, height: number, columns: number): Line[] {
  const cols = agentColumns(columns, s.at);
  const head: Segment[] = [plain('  '), ...cols.map((c) => plain(`${pad(c.head, c.width, c.right)} `, undefined, true))];
  const out: Line[] = [fitLine(head, columns)];
  const room = Math.max(0, height - 1);
  if (agents.length === 0) {
    out.push(fitLine([plain(s.agents.length === 0 ? '  no agents in this project yet: sos agents add <name> --kind claude' : `  no agent matches /${ui.filter}`, 'gray')], columns));
    return out.slice(0, height);
  }
  // Keep the selection in view: it sits in the middle of the window once the list is longer.
  const start = agents.length <= room ? 0 : Math.max(0, Math.min(selected - Math.floor(room / 2), agents.length - room));
  const shown = agents.slice(start, start + room);
  const below = agents.length - start - shown.length;
  for (const [i, a] of shown.entries()) {
    const isSel = start + i === selected;
    if (below > 0 && i === shown.length - 1 && !isSel) {
      out.push(fitLine([plain(`  … ${below + 1} more (j/k to scroll)`, 'gray')], columns));
      break;
    }
    const segs: Segment[] = [plain(isSel ? '> ' : '  ', undefined, isSel)];
    for (const c of cols) {
      const seg = c.cell(a);
      segs.push({ ...seg, text: `${pad(seg.text, c.width, c.right)} ` });
    }
    const line = fitLine(segs, columns);
    if (isSel) line.segments = line.segments.map((x) => ({ ...x, inverse: true }));
    out.push(line);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// problems

/** Everything wrong right now, worst first; empty when all is well. */
export function problemsOf(s: Snapshot): Problem[] {
  const out: Problem[] = [];
  if (!s.daemon.running) {
    out.push({ kind: 'daemon', what: s.daemon.heartbeatAt === null ? 'daemon not running' : `daemon not running (last heartbeat ${age(s.daemon.heartbeatAt, s.at)} ago)`, since: s.daemon.heartbeatAt, act: 'run: sos daemon' });
  }
  const agentProblem: Record<string, (a: AgentRow) => Omit<Problem, 'kind' | 'since' | 'agent'>> = {
    dead: (a) => ({ what: `${a.name} dead${a.evidence ? `: ${a.evidence}` : ''}`, act: 'r restart' }),
    stuck: (a) => ({ what: `${a.name} stuck${a.task ? ` on ${a.task.id}` : ''}`, act: 'r restart, s send' }),
    quota: (a) => ({ what: `${a.name} out of quota${a.window?.reason ? `: ${a.window.reason}` : ''}`, act: 'p park' }),
    waiting: (a) => ({ what: `${a.name} waiting on a human${a.evidence ? `: ${a.evidence}` : ''}`, act: 's send' }),
  };
  const worst = [...s.agents].sort((a, b) => (SEVERITY[a.state] ?? 9) - (SEVERITY[b.state] ?? 9) || a.name.localeCompare(b.name));
  for (const a of worst) {
    const p = agentProblem[a.state];
    if (p) out.push({ kind: a.state, since: a.since, agent: a.name, ...p(a) });
  }
  for (const a of s.acksOverdue) out.push({ kind: 'ack', what: `ack overdue: ${a.id} from ${a.from}, not acked by ${a.unacked.join(', ')}`, since: a.deadline, act: 'sos messages pending' });
  for (const t of s.deadTasks) out.push({ kind: 'task', what: `task dead: ${t.id} ${t.title}${t.error ? ` (${t.error})` : ''}`, since: t.at, act: `sos tasks show ${t.id}` });
  for (const b of s.budgets) {
    if (b.state === 'ok' || b.lifted) continue;
    const pct = b.limit > 0 ? Math.round((b.spent / b.limit) * 100) : 100;
    out.push({ kind: 'budget', what: `budget ${b.scope} ${b.state} ${pct}% (${b.action})`, since: b.since, act: b.state === 'exhausted' && (b.action === 'block' || b.action === 'pause') ? `sos budgets lift ${b.scope}` : 'sos budgets list' });
  }
  for (const b of s.breakers) {
    if (b.state === 'closed') continue;
    out.push({ kind: 'breaker', what: `provider ${b.name} breaker ${b.state}${b.lastError ? `: ${b.lastError}` : ''}`, since: b.openedAt, act: 'sos brain status' });
  }
  for (const a of s.approvals) out.push({ kind: 'approval', what: `approval waiting: ${a.id} ${a.method} (${a.tier}, ${a.votes}/${a.needs})`, since: a.createdAt, act: 'A approve/deny' });
  return out;
}

function problemLines(problems: Problem[], now: number, max: number, columns: number): Line[] {
  if (problems.length === 0 || max <= 0) return [];
  const shown = problems.length > max ? problems.slice(0, max - 1) : problems;
  const lines = shown.map((p) => {
    const tone: Tone = p.kind === 'dead' || p.kind === 'stuck' || p.kind === 'daemon' || p.kind === 'task' ? 'red' : 'yellow';
    const since = p.since === null ? '' : ` since ${age(p.since, now)}`;
    const act = `  [${p.act}]`;
    // The key stays visible: the description is what gets cut.
    const room = Math.max(0, columns - 2 - width(since) - width(act));
    return fitLine([plain('! ', tone, true), plain(cut(clean(p.what), room), tone), plain(since), plain(act, 'cyan')], columns);
  });
  if (problems.length > max) lines.push(fitLine([plain(`! … ${problems.length - shown.length} more problems`, 'yellow')], columns));
  return lines;
}

// ---------------------------------------------------------------------------------------------
// queues, spend, activity

function queueLines(s: Snapshot, columns: number): Line[] {
  const out: Line[] = [];
  const head = `${pad('squad', 16)} ${pad('ready', 6, true)} ${pad('claimed', 8, true)} ${pad('blocked', 8, true)} ${pad('dead', 5, true)} ${pad('oldest', 7, true)}`;
  out.push(fitLine([plain(head, undefined, true)], columns));
  if (s.queues.length === 0) out.push(fitLine([plain('no open tasks', 'gray')], columns));
  for (const q of s.queues) {
    out.push(
      fitLine(
        [
          plain(`${pad(q.squad, 16)} ${pad(String(q.ready), 6, true)} ${pad(String(q.claimed), 8, true)} ${pad(String(q.blocked), 8, true)} `),
          plain(pad(String(q.dead), 5, true), q.dead > 0 ? 'red' : undefined),
          plain(` ${pad(age(q.oldestReadyAt, s.at), 7, true)}`),
        ],
        columns,
      ),
    );
  }
  if (s.ready.length > 0) {
    out.push(fitLine([plain('ready board', undefined, true)], columns));
    for (const t of s.ready) out.push(fitLine([plain(`p${pad(String(t.priority), 3)} ${pad(t.id, 14)} ${pad(age(t.createdAt, s.at), 4, true)} ${clean(t.title)}${t.squad ? ` [${t.squad}]` : ''}`)], columns));
  }
  return out;
}

function bar(fraction: number, n: number): string {
  const full = Math.max(0, Math.min(n, Math.round(fraction * n)));
  return `[${'#'.repeat(full)}${'-'.repeat(n - full)}]`;
}

function spendLines(s: Snapshot, columns: number): Line[] {
  const out: Line[] = [];
  const perTask = s.spend.tasksDone > 0 ? dollars(Math.round(s.spend.period.micros / s.spend.tasksDone)) : '-';
  out.push(fitLine([plain('today ', undefined, true), plain(money(s.spend.today)), plain('  this month ', undefined, true), plain(money(s.spend.period)), plain('  per done task ', undefined, true), plain(perTask)], columns));
  for (const b of s.budgets) {
    const frac = b.limit > 0 ? b.spent / b.limit : 1;
    const amount = (v: number) => (b.unit === 'usd' ? dollars(v) : `${v.toLocaleString('en-US')}t`);
    const tone: Tone | undefined = b.state === 'exhausted' ? 'red' : b.state === 'warning' ? 'yellow' : undefined;
    out.push(
      fitLine(
        [plain(`${pad(b.scope, 16)} `), plain(bar(frac, 10), tone), plain(` ${pad(`${Math.round(frac * 100)}%`, 4, true)} ${amount(b.spent)}/${amount(b.limit)} `), plain(`${b.state}${b.lifted ? ' (lifted)' : ''}`, tone), plain(` → ${b.action}`)],
        columns,
      ),
    );
  }
  const table = (title: string, rows: Snapshot['spend']['byModel']) => {
    if (rows.length === 0) return;
    out.push(fitLine([plain(`${pad(title, 24)} ${pad('today', 10, true)} ${pad('month', 10, true)}`, undefined, true)], columns));
    for (const r of rows) out.push(fitLine([plain(`${pad(clean(r.key), 24)} ${pad(money(r.today), 10, true)} ${pad(money(r.period), 10, true)}`)], columns));
  };
  table('by model', s.spend.byModel);
  table('by agent', s.spend.byAgent);
  return out;
}

/** One event as a line: what happened and to what. */
export function eventText(type: string, data: Record<string, unknown>): string {
  const str = (k: string) => (typeof data[k] === 'string' || typeof data[k] === 'number' ? String(data[k]) : null);
  const parts = [str('agent'), str('id') ?? str('task'), str('state'), str('status'), str('outcome'), str('title') ?? str('reason') ?? str('scope')].filter((p): p is string => p !== null);
  return clean(`${type} ${parts.join(' ')}`.trim());
}

function activityLines(s: Snapshot, columns: number): Line[] {
  const items: { at: number; seg: Segment[] }[] = [
    ...s.events.map((e) => ({ at: e.at, seg: [plain(`${clock(e.at, true)} `, 'gray'), plain(eventText(e.type, e.data), e.type.endsWith('failed') || e.type.endsWith('dead') || e.type.includes('exhausted') ? 'red' : undefined)] })),
    ...s.cycles.map((c) => ({
      at: c.startedAt,
      seg: [plain(`${clock(c.startedAt, true)} `, 'gray'), plain('brain ', 'blue'), plain(c.outcome, c.outcome === 'executed' ? 'green' : c.outcome.startsWith('failed') || c.outcome.startsWith('invalid') ? 'red' : undefined), plain(clean(` ${c.trigger}: ${c.reason}`))],
    })),
  ].sort((a, b) => a.at - b.at);
  if (items.length === 0) return [fitLine([plain('no events yet', 'gray')], columns)];
  return items.map((i) => fitLine(i.seg, columns));
}

// ---------------------------------------------------------------------------------------------
// the screen

const HELP: [string, string][] = [
  ['j / k, ↓ / ↑', 'move the selection (agents) or scroll the panel'],
  ['Tab / Shift-Tab', 'next / previous panel'],
  ['/', 'filter agents by name, kind, state or task (Enter keeps it, Esc clears)'],
  ['o', 'sort agents: problems first, by name, by spend today'],
  ['p', 'park the selected agent, or unpark it when parked (sos agents park|unpark)'],
  ['s', 'send the selected agent a message (sos send)'],
  ['r', 'restart the selected agent, after a confirmation (the lifecycle restart)'],
  ['i', 'interrupt the selected agent, after a confirmation (its kind\'s interrupt keys)'],
  ['a', 'attach to the selected agent\'s session (sos attach); detaching comes back here'],
  ['A', 'approve (y) or deny (n) a waiting approval, the oldest first; j/k pick another (sos approvals approve|deny)'],
  ['Enter', 'the selected agent in detail: its evidence and its last screen lines (Esc closes)'],
  ['?', 'this help (any key closes it)'],
  ['q, Ctrl-C', 'quit'],
];

function sectionHead(title: string, active: boolean, columns: number, extra = ''): Line {
  return fitLine([plain(active ? `▸ ${title}` : `  ${title}`, active ? 'cyan' : undefined, true), plain(extra ? `  ${extra}` : '', 'gray')], columns);
}

function scrolled(lines: Line[], offset: number, height: number, columns: number, tail = false): Line[] {
  if (height <= 0) return [];
  if (lines.length <= height) return lines;
  if (tail && offset === 0) return lines.slice(lines.length - height);
  const start = tail ? Math.max(0, lines.length - height - offset) : Math.min(offset, lines.length - height);
  const shown = lines.slice(start, start + height);
  const below = lines.length - start - height;
  if (below > 0 && !tail) shown[height - 1] = fitLine([plain(`… ${below + 1} more`, 'gray')], columns);
  return shown;
}

/** Two blocks side by side, the left padded to `leftW` cells and a bar between. */
function sideBySide(left: Line[], right: Line[], leftW: number, columns: number, height: number): Line[] {
  const out: Line[] = [];
  const rightW = columns - leftW - 3;
  for (let i = 0; i < height; i++) {
    const l = left[i] ? fitLine(left[i]!.segments, leftW).segments : [];
    const used = l.reduce((n, s) => n + width(s.text), 0);
    const r = right[i] ? fitLine(right[i]!.segments, rightW).segments : [];
    if (l.length === 0 && r.length === 0) continue;
    out.push({ segments: [...l, plain(`${' '.repeat(leftW - used)} │ `, 'gray'), ...r] });
  }
  return out;
}

export function viewModel(s: Snapshot, ui: UiState, size: Size): ViewModel {
  const columns = Math.max(20, size.columns);
  const budget = Math.max(1, size.rows - 1);
  const wide = columns >= 120 && size.rows >= 36;
  const agents = visibleAgents(s, ui);
  const named = ui.selectedName === null ? -1 : agents.findIndex((a) => a.name === ui.selectedName);
  const selected = named >= 0 ? named : Math.max(0, Math.min(ui.selected, agents.length - 1));
  const problems = problemsOf(s);

  const daemon = s.daemon.running ? plain('daemon up', 'green') : plain('DAEMON DOWN', 'red', true);
  const counts = `${s.agents.length} agents · ${problems.length} problem${problems.length === 1 ? '' : 's'}`;
  const header = fitLine([plain('sos top', undefined, true), plain(` · ${s.project} · `), daemon, plain(` · ${counts} · ${clock(s.at, true)}`), plain('  ? help', 'gray')], columns);

  const footer: Line = (() => {
    if (ui.prompt?.kind === 'send') return fitLine([plain(`send to ${ui.prompt.agent}: `, 'cyan', true), plain(clean(ui.prompt.text)), plain('█'), plain('  Enter sends, Esc cancels', 'gray')], columns);
    if (ui.prompt?.kind === 'confirm') return fitLine([plain(`${ui.prompt.action} ${ui.prompt.agent}? `, 'yellow', true), plain('y to confirm, any other key cancels')], columns);
    if (ui.prompt?.kind === 'approval') {
      const of = ui.prompt.count > 1 ? `${ui.prompt.position + 1}/${ui.prompt.count} j/k other, ` : '';
      return fitLine([plain(`${of}y approve, n deny, other: cancel · `, 'yellow', true), plain(`${clean(ui.prompt.what)} ${ui.prompt.id}`)], columns);
    }
    if (ui.filtering) return fitLine([plain('/', 'cyan', true), plain(clean(ui.filter)), plain('█'), plain('  Enter keeps, Esc clears', 'gray')], columns);
    if (ui.status) return fitLine([plain(clean(ui.status.text), ui.status.tone)], columns);
    return fitLine([plain('j/k move  Tab panel  Enter detail  p park  s send  r restart  a attach  q quit', 'gray')], columns);
  })();

  const lines: Line[] = [header];
  const room = () => budget - lines.length - 1; // rows left above the footer
  const shown = ui.detail ? s.agents.find((a) => a.name === ui.detail!.agent) : undefined;
  if (ui.detail && !ui.help) {
    lines.push(...problemLines(problems, s.at, Math.max(2, Math.floor(budget / 4)), columns).slice(0, Math.max(0, room() - 4)));
    lines.push(sectionHead(`agent ${ui.detail.agent}`, true, columns, 'Esc closes'));
    const a = shown;
    const facts: [string, string][] = a
      ? [
          ['kind', `${a.kind}, ${a.role}${a.session ? `, session ${a.session}` : ', no session'}`],
          ['state', `${a.state}${a.since !== null ? ` for ${age(a.since, s.at)}` : ''}${a.parkedUntil !== null ? `, parked until ${clock(a.parkedUntil, true)}` : ''}`],
          ['evidence', a.evidence ?? '-'],
          ['task', a.task ? `${a.task.id} ${a.task.status} ${a.task.title}${a.holds > 1 ? ` (+${a.holds - 1} more)` : ''}` : '-'],
          ['unread', String(a.unread)],
        ]
      : [['agent', 'no longer in the project']];
    for (const [k, v] of facts) if (room() > 0) lines.push(fitLine([plain(`  ${pad(k, 10)}`, 'cyan'), plain(clean(v))], columns));
    if (room() > 0) lines.push(fitLine([plain(ui.detail.screen ? '  last screen lines:' : `  ${ui.detail.note ?? 'reading the screen…'}`, 'gray')], columns));
    const screen = (ui.detail.screen ?? []).slice(-Math.max(0, room()));
    for (const l of screen) lines.push(fitLine([plain(`  ${clean(l)}`)], columns));
  } else if (ui.help) {
    lines.push(sectionHead('keys', true, columns));
    for (const [k, v] of HELP) if (room() > 0) lines.push(fitLine([plain(`  ${pad(k, 16)}`, 'cyan'), plain(v)], columns));
  } else {
    // The problems band: at most a third of the screen, at least 2 rows when there are problems.
    lines.push(...problemLines(problems, s.at, Math.max(2, Math.floor(budget / 3)), columns).slice(0, Math.max(0, room() - 2)));
    const filterNote = ui.filter ? `filter /${ui.filter}` : '';
    const sortNote = `sort: ${ui.sort}`;
    if (wide) {
      const rest = room();
      const agentH = Math.max(2, Math.min(agents.length + 2, Math.floor(rest * 0.5)));
      lines.push(sectionHead(`agents (${agents.length}${agents.length !== s.agents.length ? ` of ${s.agents.length}` : ''})`, ui.panel === 'agents', columns, [sortNote, filterNote].filter(Boolean).join('  ')));
      lines.push(...agentLines(s, ui, agents, selected, agentH - 1, columns));
      const midH = Math.max(0, Math.min(12, Math.floor((room() - 1) / 2)));
      if (midH > 1) {
        const leftW = Math.floor((columns - 3) / 2);
        const q = [sectionHead('queues', ui.panel === 'queues', leftW), ...scrolled(queueLines(s, leftW), ui.scroll.queues, midH - 1, leftW)];
        const sp = [sectionHead('spend', ui.panel === 'spend', columns - leftW - 3), ...scrolled(spendLines(s, columns - leftW - 3), ui.scroll.spend, midH - 1, columns - leftW - 3)];
        lines.push(...sideBySide(q, sp, leftW, columns, midH));
      }
      if (room() > 1) {
        lines.push(sectionHead('activity', ui.panel === 'activity', columns));
        lines.push(...scrolled(activityLines(s, columns), ui.scroll.activity, room(), columns, true));
      }
    } else {
      const tabs: Segment[] = PANELS.flatMap((p) => [plain(ui.panel === p ? `[${p}]` : ` ${p} `, ui.panel === p ? 'cyan' : 'gray', ui.panel === p), plain(' ')]);
      const note = ui.panel === 'agents' ? [sortNote, filterNote].filter(Boolean).join('  ') : '';
      lines.push(fitLine([...tabs, plain(note ? ` ${note}` : '', 'gray')], columns));
      const h = room();
      if (ui.panel === 'agents') lines.push(...agentLines(s, ui, agents, selected, h, columns));
      else if (ui.panel === 'queues') lines.push(...scrolled(queueLines(s, columns), ui.scroll.queues, h, columns));
      else if (ui.panel === 'spend') lines.push(...scrolled(spendLines(s, columns), ui.scroll.spend, h, columns));
      else lines.push(...scrolled(activityLines(s, columns), ui.scroll.activity, h, columns, true));
    }
  }
  lines.splice(budget - 1);
  lines.push(footer);
  return { lines: lines.slice(0, budget), problems, agents: agents.map((a) => a.name), selectedAgent: agents[selected]?.name ?? null, selected, wide };
}
