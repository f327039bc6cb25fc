/**
 * The lifecycle classifier: a pure function from what the driver saw (screen, title, exit
 * status, time since the screen last changed) and the agent's latest hook report to a state,
 * with the evidence behind it and a confidence. No tmux, no I/O.
 *
 * Evidence, strongest first:
 *  1. hook reports (`sos hook <event>`) newer than the last screen change;
 *  2. the driver: session gone or process exited → `dead` (a hard fact: a hook cannot make a gone
 *     session alive, so this check runs first even though hooks outrank it for live sessions);
 *  3. screen patterns per kind (data in ./patterns/*.json), looking at the last lines and title;
 *  4. time: no output for `stuckAfterMs` while holding a claim turns `busy`/`unknown` into `stuck`.
 *
 * Decisions worth knowing:
 *  - login-required screens are reported as `waiting` (a human has to sign in) with the distinct
 *    evidence signal `login`, so the supervisor can park the agent if it wants;
 *  - `parked` is an operator/supervisor state and is never produced here;
 *  - `warm` is produced for an existing session whose screen is still empty (just started);
 *  - `stuck` only overrides `busy` and `unknown`: an agent waiting on a human or sitting idle at
 *    its prompt is not hung.
 */
import { UsageError } from '../errors.js';
import { momentText } from '../time.js';
import { stripAnsi } from './ansi.js';
import claudePatterns from './patterns/claude.json' with { type: 'json' };
import codexPatterns from './patterns/codex.json' with { type: 'json' };
import geminiPatterns from './patterns/gemini.json' with { type: 'json' };
import shellPatterns from './patterns/shell.json' with { type: 'json' };

export type AgentKind = 'claude' | 'codex' | 'gemini' | 'shell' | 'custom';

export type LifecycleState =
  | 'warm'
  | 'busy'
  | 'idle'
  | 'waiting'
  | 'compacted'
  | 'stuck'
  | 'quota'
  | 'parked'
  | 'dead'
  | 'unknown';

/** Where a pattern looks: see TAIL_LINES / FOOTER_LINES. */
export type PatternWhere = 'footer' | 'tail' | 'last' | 'screen' | 'title';

export interface PatternSpec {
  id: string;
  pattern: string;
  flags?: string;
  where?: PatternWhere;
  confidence?: number;
}

export const PATTERN_GROUPS = ['busy', 'idle', 'waiting', 'login', 'quota', 'compacted', 'crash'] as const;
export type PatternGroup = (typeof PATTERN_GROUPS)[number];

/**
 * Besides the state groups, a set may say where the agent's input line is (`input`): the last
 * line in a pattern's region that it matches is the input line, and what follows the match is
 * what sits typed in it. Wake delivery reads it to tell a submitted line from one still typed.
 */
export const INPUT_GROUP = 'input';
/** What an empty input line shows instead (`Ask Codex to do anything`): matched against the typed text. */
export const PLACEHOLDER_GROUP = 'placeholder';
const ALL_GROUPS = [...PATTERN_GROUPS, INPUT_GROUP, PLACEHOLDER_GROUP] as const;
type AnyGroup = (typeof ALL_GROUPS)[number];

export type PatternSet = Record<PatternGroup, PatternSpec[]> & { input?: PatternSpec[]; placeholder?: PatternSpec[] };

export interface Evidence {
  signal: string;
  detail: string;
  lines?: string[];
}

export interface Reading {
  state: LifecycleState;
  confidence: number;
  evidence: Evidence[];
}

export interface ClassifyInput {
  kind: AgentKind;
  /** The last screen lines; ANSI escapes allowed. */
  screen: string;
  title?: string;
  exited?: { code: number | null; signal: string | null } | null;
  sessionExists: boolean;
  /** Milliseconds since the screen last changed. */
  idleMs?: number;
  holdsClaim?: boolean;
  /** Default 30 minutes. */
  stuckAfterMs?: number;
  /** The latest hook report from the agent (`at` in epoch ms). */
  hook?: { event: string; at: number };
  /** Per-agent patterns: each group given replaces the kind's default group. */
  overrides?: Partial<PatternSet>;
  /** Epoch ms used to compare the hook time with the last screen change; default Date.now(). */
  now?: number;
}

export const DEFAULT_STUCK_AFTER_MS = 30 * 60 * 1000;
/** Lines (non-empty) scanned by `tail` patterns. */
export const TAIL_LINES = 15;
/** Lines (non-empty) scanned by `footer` patterns. */
export const FOOTER_LINES = 4;

interface CompiledPattern {
  id: string;
  re: RegExp;
  where: PatternWhere;
  confidence: number;
}
type CompiledSet = Record<AnyGroup, CompiledPattern[]>;

const DEFAULT_CONFIDENCE = 0.7;

function compilePattern(spec: PatternSpec): CompiledPattern {
  const flags = new Set((spec.flags ?? '').replace(/[gy]/g, ''));
  flags.add('u');
  return {
    id: spec.id,
    re: new RegExp(spec.pattern, [...flags].join('')),
    where: spec.where ?? 'tail',
    confidence: spec.confidence ?? DEFAULT_CONFIDENCE,
  };
}

function readSet(data: Record<string, unknown>): PatternSet {
  const set = {} as PatternSet;
  for (const group of ALL_GROUPS) {
    const specs = data[group];
    set[group] = Array.isArray(specs) ? (specs as PatternSpec[]) : [];
  }
  return set;
}

function compileSet(set: PatternSet): CompiledSet {
  const out = {} as CompiledSet;
  for (const group of ALL_GROUPS) out[group] = (set[group] ?? []).map(compilePattern);
  return out;
}

/** The default pattern sets per kind, as data (custom agents start from the shell set). */
export const DEFAULT_PATTERNS: Readonly<Record<AgentKind, PatternSet>> = {
  claude: readSet(claudePatterns),
  codex: readSet(codexPatterns),
  gemini: readSet(geminiPatterns),
  shell: readSet(shellPatterns),
  custom: readSet(shellPatterns),
};

const COMPILED: Record<AgentKind, CompiledSet> = {
  claude: compileSet(DEFAULT_PATTERNS.claude),
  codex: compileSet(DEFAULT_PATTERNS.codex),
  gemini: compileSet(DEFAULT_PATTERNS.gemini),
  shell: compileSet(DEFAULT_PATTERNS.shell),
  custom: compileSet(DEFAULT_PATTERNS.custom),
};

const WHERES: readonly PatternWhere[] = ['footer', 'tail', 'last', 'screen', 'title'];

/**
 * Checks per-agent pattern overrides (JSON the operator wrote): known groups, an id and a
 * pattern that compiles for each entry, a known `where`, a confidence in [0, 1].
 */
export function parsePatternOverrides(data: unknown, source = 'patterns'): Partial<PatternSet> {
  const bad = (why: string) => new UsageError(`invalid ${source}: ${why}`, { hint: `groups: ${ALL_GROUPS.join(', ')}; entries: {id, pattern, flags?, where?, confidence?}` });
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw bad('expected a JSON object of pattern groups');
  const out: Partial<PatternSet> = {};
  for (const [group, specs] of Object.entries(data)) {
    if (group.startsWith('$') || group === 'comment' || group === 'notes' || group === 'kind') continue; // documentation keys
    if (!(ALL_GROUPS as readonly string[]).includes(group)) throw bad(`unknown group ${JSON.stringify(group)}`);
    if (!Array.isArray(specs)) throw bad(`group ${group} must be an array`);
    out[group as AnyGroup] = specs.map((spec: unknown, i): PatternSpec => {
      const at = `${group}[${i}]`;
      if (typeof spec !== 'object' || spec === null) throw bad(`${at} must be an object`);
      const { id, pattern, flags, where, confidence } = spec as Record<string, unknown>;
      if (typeof id !== 'string' || id === '') throw bad(`${at} needs an id`);
      if (typeof pattern !== 'string' || pattern === '') throw bad(`${at} needs a pattern`);
      if (flags !== undefined && (typeof flags !== 'string' || !/^[imsu]*$/.test(flags))) throw bad(`${at}: flags may use i, m, s, u`);
      if (where !== undefined && !WHERES.includes(where as PatternWhere)) throw bad(`${at}: where must be one of ${WHERES.join(', ')}`);
      if (confidence !== undefined && !(typeof confidence === 'number' && confidence >= 0 && confidence <= 1)) throw bad(`${at}: confidence must be from 0 to 1`);
      const parsed: PatternSpec = { id, pattern };
      if (flags !== undefined) parsed.flags = flags as string;
      if (where !== undefined) parsed.where = where as PatternWhere;
      if (confidence !== undefined) parsed.confidence = confidence as number;
      try {
        compilePattern(parsed);
      } catch (err) {
        throw bad(`${at}: ${(err as Error).message}`);
      }
      return parsed;
    });
  }
  return out;
}

const overrideCache = new WeakMap<Partial<PatternSet>, Partial<CompiledSet>>();

function patternsFor(kind: AgentKind, overrides: Partial<PatternSet> | undefined): CompiledSet {
  const base = COMPILED[kind];
  if (!overrides) return base;
  let compiled = overrideCache.get(overrides);
  if (!compiled) {
    compiled = {};
    for (const group of ALL_GROUPS) {
      const specs = overrides[group];
      if (specs) compiled[group] = specs.map(compilePattern);
    }
    overrideCache.set(overrides, compiled);
  }
  return { ...base, ...compiled };
}

/**
 * Hook events (Claude Code hooks, Codex notify, `sos hook <event>`) and the state they report.
 * Matching is case-insensitive and ignores `-`/`_`.
 */
const HOOK_STATES: Record<string, LifecycleState> = {
  sessionstart: 'idle',
  stop: 'idle',
  subagentstop: 'busy',
  agentturncomplete: 'idle', // Codex notify: agent-turn-complete
  idle: 'idle',
  userpromptsubmit: 'busy',
  pretooluse: 'busy',
  posttooluse: 'busy',
  busy: 'busy',
  notification: 'waiting', // Claude: needs permission / waiting for input
  permissionrequest: 'waiting',
  waiting: 'waiting',
  precompact: 'compacted',
  compacted: 'compacted',
  sessionend: 'dead',
  quota: 'quota',
};

export function hookState(event: string): LifecycleState | undefined {
  return HOOK_STATES[event.toLowerCase().replace(/[-_\s]/g, '')];
}

interface Match {
  group: PatternGroup;
  pattern: CompiledPattern;
  lines: string[];
}

function regionLines(where: PatternWhere, all: string[], title: string): string[] {
  switch (where) {
    case 'title':
      return title ? [title] : [];
    case 'screen':
      return all;
    case 'last':
      return all.slice(-1);
    case 'footer':
      return all.slice(-FOOTER_LINES);
    case 'tail':
      return all.slice(-TAIL_LINES);
  }
}

function matchAll(set: CompiledSet, lines: string[], title: string): Match[] {
  const matches: Match[] = [];
  for (const group of PATTERN_GROUPS) {
    for (const pattern of set[group]) {
      const hit = regionLines(pattern.where, lines, title).filter((line) => pattern.re.test(line));
      if (hit.length > 0) matches.push({ group, pattern, lines: hit });
    }
  }
  return matches;
}

function toEvidence(m: Match): Evidence {
  const where = m.pattern.where === 'title' ? 'title' : 'screen';
  return { signal: `${where}.${m.group}`, detail: m.pattern.id, lines: m.lines.map((l) => l.trim()) };
}

const clamp = (n: number) => Math.max(0, Math.min(1, n));

/** Combine several independent matches of one state: the strongest, nudged up by the others. */
function combined(ms: Match[]): number {
  const sorted = ms.map((m) => m.pattern.confidence).sort((a, b) => b - a);
  const [best = 0, ...rest] = sorted;
  return clamp(rest.reduce((acc, c) => acc + (1 - acc) * c * 0.3, best));
}

function exitDetail(exited: { code: number | null; signal: string | null }): string {
  if (exited.signal) return `process killed by signal ${exited.signal}`;
  return `process exited with code ${exited.code ?? 'unknown'}`;
}

/** Screen (and title) patterns only: returns null when nothing matched. */
function classifyScreen(matches: Match[]): Reading | null {
  const by = (group: PatternGroup) => matches.filter((m) => m.group === group);
  const reading = (state: LifecycleState, ms: Match[], factor = 1): Reading => ({
    state,
    confidence: clamp(combined(ms) * factor),
    evidence: ms.map(toEvidence),
  });

  const crash = by('crash');
  if (crash.length > 0) {
    const r = reading('dead', crash);
    const paneDead = crash.find((m) => m.pattern.id === 'tmux.pane-dead');
    const code = paneDead?.lines[0]?.match(/status (\d+)/)?.[1];
    if (code !== undefined) r.evidence.unshift({ signal: 'screen.exit', detail: `pane reports exit status ${code}` });
    return r;
  }
  const quota = by('quota');
  if (quota.length > 0) return reading('quota', quota);
  const login = by('login');
  if (login.length > 0) {
    const r = reading('waiting', [...login, ...by('waiting')]);
    r.evidence = [{ signal: 'login', detail: 'login required: a human has to sign in' }, ...r.evidence];
    return r;
  }
  const waiting = by('waiting');
  if (waiting.length > 0) return reading('waiting', waiting);
  const busy = by('busy');
  if (busy.length > 0) return reading('busy', busy);
  const compacted = by('compacted');
  if (compacted.length > 0) return reading('compacted', compacted);
  const idle = by('idle');
  if (idle.length > 0) {
    const r = reading('idle', idle);
    r.evidence.push({ signal: 'screen.no-busy-marker', detail: 'no busy marker on screen or in the title' });
    return r;
  }
  return null;
}

/** The screen's non-empty lines, ANSI escapes and trailing blanks removed. */
function screenLines(screen: string): string[] {
  return stripAnsi(screen)
    .split('\n')
    .map((l) => l.replace(/\s+$/u, ''))
    .filter((l) => l.trim() !== '');
}

export interface TypedInput {
  /** The `input` pattern that found the line. */
  id: string;
  /** What sits typed there ('' when empty or showing a placeholder). */
  text: string;
  /** The `placeholder` pattern the line showed, if any. */
  placeholder?: string;
}

/** Whether the kind (or the agent's override) says where its input line is. */
export function hasInputRule(kind: AgentKind, overrides?: Partial<PatternSet>): boolean {
  return patternsFor(kind, overrides).input.length > 0;
}

/**
 * What sits typed in the agent's input line, by the kind's `input` patterns (or the agent's
 * override): null when the set has no input rule or no line on screen matches it.
 */
export function typedInput(kind: AgentKind, screen: string, overrides?: Partial<PatternSet>): TypedInput | null {
  const set = patternsFor(kind, overrides);
  const lines = screenLines(screen);
  for (const pattern of set.input) {
    const region = regionLines(pattern.where, lines, '');
    for (let i = region.length - 1; i >= 0; i--) {
      const m = pattern.re.exec(region[i]!);
      if (!m) continue;
      const text = region[i]!.slice(m.index + m[0].length).trim();
      // An empty input line showing its placeholder holds nothing typed.
      const placeholder = set.placeholder.find((p) => p.re.test(text));
      return placeholder ? { id: pattern.id, text: '', placeholder: placeholder.id } : { id: pattern.id, text };
    }
  }
  return null;
}

export function classify(input: ClassifyInput): Reading {
  const evidence: Evidence[] = [];

  // 2 (checked first). The driver: a gone session or an exited process is dead, whatever else.
  if (!input.sessionExists) {
    return { state: 'dead', confidence: 1, evidence: [{ signal: 'driver.session-gone', detail: 'session does not exist' }] };
  }
  if (input.exited) {
    return {
      state: 'dead',
      confidence: 1,
      evidence: [{ signal: 'driver.exited', detail: exitDetail(input.exited) }],
    };
  }

  const lines = screenLines(input.screen);
  const title = stripAnsi(input.title ?? '').trim();
  const matches = matchAll(patternsFor(input.kind, input.overrides), lines, title);
  const screenReading = classifyScreen(matches);

  // 1. Hook reports newer than the last screen change win.
  let reading: Reading | null = null;
  if (input.hook) {
    const state = hookState(input.hook.event);
    const now = input.now ?? Date.now();
    const lastChange = input.idleMs === undefined ? undefined : now - input.idleMs;
    const fresh = lastChange === undefined || input.hook.at >= lastChange;
    const detail = `hook ${input.hook.event} at ${momentText(input.hook.at)}`;
    if (state && fresh) {
      const agrees = screenReading?.state === state;
      reading = {
        state,
        confidence: lastChange === undefined ? 0.8 : agrees ? 0.98 : 0.95,
        evidence: [
          { signal: 'hook', detail: `${detail} (newer than the last screen change) → ${state}` },
          ...(screenReading?.evidence ?? []),
        ],
      };
    } else {
      evidence.push({
        signal: 'hook.stale',
        detail: state ? `${detail} is older than the last screen change; ignored` : `${detail}: unknown event; ignored`,
      });
    }
  }

  // 3. Screen patterns.
  if (!reading && screenReading) reading = { ...screenReading, evidence: [...screenReading.evidence, ...evidence] };
  if (!reading) {
    reading =
      lines.length === 0
        ? { state: 'warm', confidence: 0.3, evidence: [{ signal: 'screen.empty', detail: 'session exists but the screen is empty' }, ...evidence] }
        : {
            state: 'unknown',
            confidence: 0.2,
            evidence: [{ signal: 'screen.unrecognised', detail: `no ${input.kind} pattern matched`, lines: lines.slice(-3) }, ...evidence],
          };
  }

  // 4. Time: silent for the threshold while holding a claim → stuck (over busy / unknown only).
  const stuckAfter = input.stuckAfterMs ?? DEFAULT_STUCK_AFTER_MS;
  if (input.holdsClaim && input.idleMs !== undefined && input.idleMs >= stuckAfter) {
    if (reading.state === 'busy' || reading.state === 'unknown') {
      return {
        state: 'stuck',
        confidence: reading.state === 'busy' ? 0.85 : 0.6,
        evidence: [
          {
            signal: 'time.silent',
            detail: `no screen change for ${Math.round(input.idleMs / 1000)}s (threshold ${Math.round(stuckAfter / 1000)}s) while holding a claim; was ${reading.state}`,
          },
          ...reading.evidence,
        ],
      };
    }
  }
  return reading;
}
