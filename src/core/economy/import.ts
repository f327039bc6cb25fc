import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { type Caller, requireAdmin } from '../auth/caller.js';
import { listAgents } from '../identity/agents.js';
import type { Store } from '../store/port.js';
import type { BudgetCrossing } from './budgets.js';
import { parseClaudeChunk } from './importers/claude.js';
import { type CodexContext, type CodexRateLimits, parseCodexChunk } from './importers/codex.js';
import type { ParseResult } from './importers/common.js';
import { parseGeminiChunk } from './importers/gemini.js';
import type { PriceTable } from './prices.js';
import { epochMs, type QuotaReading, saveQuotaReading } from './quota.js';
import { MAX_BATCH, recordMany } from './service.js';
import { SqlUsageRepo } from './sql-usage.js';
import type { UsageInput } from './types.js';

/**
 * `sos usage import`: walks each agent CLI's transcript directory and records what it finds
 * through `recordMany`, reading every file incrementally from its `import_offsets` row
 * (device + inode, size, byte offset). Only complete lines are read: a last line without its
 * newline is left for the next pass. A file whose inode changed or that shrank below the saved
 * offset is read again from 0 (the unique source key keeps the re-read from counting twice).
 * Each file's events and its new offset commit in one transaction. A line that is not JSON is
 * skipped and counted, never fatal (each parser decodes and parses only the lines that can
 * matter to it; the rest are counted from their bytes: `prefilter` in importers/common.ts).
 * A pass reads a source's offsets in one query and stats each file once, during the walk.
 * Events are attributed to the agent whose `--workdir` contains the transcript's working
 * directory (the longest such), else to no agent.
 */

export const IMPORT_SOURCES = ['claude', 'codex', 'gemini'] as const;
export type ImportSource = (typeof IMPORT_SOURCES)[number];

export interface ImportOptions {
  source?: ImportSource | 'all';
  /** The source's root instead of its default (`~/.claude`, `~/.codex`, `~/.gemini`). */
  path?: string;
  prices?: PriceTable;
  now?: () => number;
  env?: NodeJS.ProcessEnv;
  /** Told of the budget thresholds each batch crossed, after it commits. */
  crossed?: (crossings: BudgetCrossing[]) => void | Promise<void>;
  /**
   * False: events no agent of the project claims (by `--transcripts` or workdir) are not
   * recorded here (the daemon imports them only into its default project). Default true.
   */
  keepUnattributed?: boolean;
}

export interface SourceImport {
  source: ImportSource;
  root: string;
  files: number;
  lines: number;
  /** Bytes read past the saved offsets (0 when nothing was appended). */
  bytes: number;
  eventsNew: number;
  duplicates: number;
  corrupt: number;
  /** Files read again from 0 because they were truncated or replaced. */
  reread: number;
}

export interface ImportReport {
  sources: SourceImport[];
  files: number;
  lines: number;
  bytes: number;
  eventsNew: number;
  duplicates: number;
  corrupt: number;
  seconds: number;
  /** Codex only: the latest rate limits seen in the files read this pass (each file's are stored as quota readings). */
  rateLimits: CodexRateLimits | null;
  /** Events left out because no agent claims them and keepUnattributed is false. */
  unattributed: number;
}

/** The default root of each source. */
export function sourceRoot(source: ImportSource, env: NodeJS.ProcessEnv = process.env): string {
  const home = env.HOME ?? homedir();
  if (source === 'claude') return env.CLAUDE_CONFIG_DIR ?? join(home, '.claude');
  if (source === 'codex') return env.CODEX_HOME ?? join(home, '.codex');
  return join(home, '.gemini');
}

/** A transcript file as the walk found it: its one stat, reused for the offset check and the read. */
export interface TranscriptFile {
  path: string;
  device: number;
  inode: number;
  size: number;
}

/** Stats a file the walk found; undefined when it is gone (or unreadable) since its directory was read. */
function statFile(path: string): TranscriptFile | undefined {
  try {
    const st = statSync(path, { throwIfNoEntry: false });
    return st && { path, device: Number(st.dev), inode: Number(st.ino), size: st.size };
  } catch {
    return undefined;
  }
}

function walk(dir: string, keep: (name: string) => boolean, out: TranscriptFile[] = []): TranscriptFile[] {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  // Files before subdirectories: a Claude session file is read before its subagents/, so an id
  // in both is recorded from the main conversation (the tokens are the same either way).
  const sorted = entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of sorted) {
    if (!e.isFile() || !keep(e.name)) continue;
    const f = statFile(join(dir, e.name));
    if (f) out.push(f);
  }
  for (const e of sorted) if (e.isDirectory()) walk(join(dir, e.name), keep, out);
  return out;
}

/** The transcript files of a source under its root, in a stable order, each stat-ed once. */
export function transcripts(source: ImportSource, root: string): TranscriptFile[] {
  if (source === 'claude') return walk(join(root, 'projects'), (name) => name.endsWith('.jsonl'));
  if (source === 'codex') return walk(join(root, 'sessions'), (name) => name.startsWith('rollout-') && name.endsWith('.jsonl'));
  const tmp = join(root, 'tmp');
  const files: TranscriptFile[] = [];
  if (!existsSync(tmp)) return files;
  for (const project of readdirSync(tmp).sort()) {
    const chats = join(tmp, project, 'chats');
    let names: string[];
    try {
      names = readdirSync(chats).sort();
    } catch {
      continue; // not a project dir
    }
    for (const name of names) {
      if (!name.startsWith('session-') || !name.endsWith('.jsonl')) continue;
      const f = statFile(join(chats, name));
      if (f) files.push(f);
    }
  }
  return files;
}

/** The paths of `transcripts`. */
export function transcriptFiles(source: ImportSource, root: string): string[] {
  return transcripts(source, root).map((f) => f.path);
}

/** Where the project stopped in each file of a source: its import_offsets rows, in one query. */
export async function savedOffsets(store: Store, project: string, source: ImportSource): Promise<Map<string, { device: number; inode: number; offset: number }>> {
  const rows = await store.sql.all<{ path: string; device: unknown; inode: unknown; offset: unknown }>(
    'SELECT path, device, inode, "offset" FROM import_offsets WHERE project = $1 AND source = $2',
    [project, source],
  );
  return new Map(rows.map((r) => [r.path, { device: Number(r.device), inode: Number(r.inode), offset: Number(r.offset) }]));
}

function readRange(path: string, start: number, end: number): Buffer {
  const buf = Buffer.allocUnsafe(end - start); // only the bytes read are returned
  const fd = openSync(path, 'r');
  try {
    let done = 0;
    while (done < buf.length) {
      const n = readSync(fd, buf, done, buf.length - done, start + done);
      if (n === 0) break;
      done += n;
    }
    return buf.subarray(0, done);
  } finally {
    closeSync(fd);
  }
}

/** Complete lines of a chunk and how many bytes they take (a last line without '\n' is left). */
function completeLines(buf: Buffer): { lines: string[]; consumed: number } {
  const end = buf.lastIndexOf(0x0a);
  if (end < 0) return { lines: [], consumed: 0 };
  return { lines: buf.subarray(0, end).toString('utf8').split('\n'), consumed: end + 1 };
}

/** The complete lines of a chunk, undecoded, through their last '\n' (a last line without one is left). */
function completeChunk(buf: Buffer): Buffer {
  return buf.subarray(0, buf.lastIndexOf(0x0a) + 1);
}

/** Finds the agent a transcript belongs to: by its `--transcripts` glob, its workdir, Gemini's project hash. */
export interface Workdirs {
  /** The agent whose `--transcripts` glob matches the file, else null. */
  byFile(path: string): string | null;
  /** The agent whose workdir holds `cwd` (the longest), else null. */
  byCwd(cwd: string | null | undefined): string | null;
  /** The agent whose workdir's SHA-256 is Gemini's projectHash. */
  byHash(hash: string | null | undefined): string | null;
}

export async function workdirs(store: Store, caller: Caller): Promise<Workdirs> {
  const agents = await listAgents(store, caller);
  const dirs = agents
    .filter((a) => typeof a.workdir === 'string' && a.workdir !== '')
    .map((a) => ({ agent: a.name, dir: resolve(a.workdir!), hash: createHash('sha256').update(a.workdir!).digest('hex') }))
    .sort((a, b) => b.dir.length - a.dir.length);
  const globs = agents
    .filter((a) => typeof a.transcripts === 'string' && a.transcripts !== '')
    .map((a) => ({ agent: a.name, re: globPattern(a.transcripts!) }));
  const byCwd = new Map<string, string | null>();
  return {
    byFile: (path) => globs.find((g) => g.re.test(path))?.agent ?? null,
    byCwd: (cwd) => {
      if (!cwd) return null;
      let agent = byCwd.get(cwd);
      if (agent === undefined) {
        const c = resolve(cwd);
        agent = dirs.find((d) => c === d.dir || c.startsWith(d.dir.endsWith('/') ? d.dir : `${d.dir}/`))?.agent ?? null;
        byCwd.set(cwd, agent); // a transcript names the same few cwds on every line
      }
      return agent;
    },
    byHash: (hash) => (hash ? (dirs.find((d) => d.hash === hash)?.agent ?? null) : null),
  };
}

/** A glob to a whole-path pattern: `**` any characters, `*` and `?` any but `/`. */
export function globPattern(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      re += '.*';
      i++;
      if (glob[i + 1] === '/') i++; // `**/` also matches no directory at all
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** Codex rate limits as quota readings: the 300-minute window is the 5-hour one, 10,080 the weekly. */
function codexReadings(project: string, agent: string, limits: CodexRateLimits, now: number): QuotaReading[] {
  const out: QuotaReading[] = [];
  for (const w of [limits.primary, limits.secondary]) {
    if (!w || w.usedPercent === null) continue;
    const window = w.windowMinutes === 300 ? 'five_hour' : w.windowMinutes === 10_080 ? 'seven_day' : null;
    if (!window) continue;
    out.push({ project, agent, window, source: 'codex', usedPercent: w.usedPercent, windowMinutes: w.windowMinutes, resetsAt: epochMs(w.resetsAt), observedAt: limits.seenAt ?? now });
  }
  return out;
}

/** Gemini's header line names the project by a hash of its path. */
function geminiProjectHash(path: string, size: number): string | null {
  const head = completeLines(readRange(path, 0, Math.min(size, 65_536))).lines[0];
  if (!head) return null;
  try {
    const o = JSON.parse(head) as { projectHash?: unknown };
    return typeof o.projectHash === 'string' ? o.projectHash : null;
  } catch {
    return null;
  }
}

/** A Codex rollout's thread, model and cwd in force at `offset` (from its session_meta and turn_context lines). */
function codexContextAt(path: string, offset: number): CodexContext {
  return parseCodexChunk(completeChunk(readRange(path, 0, offset)), null, undefined, true).context;
}

export async function importTranscripts(store: Store, caller: Caller, options: ImportOptions = {}): Promise<ImportReport> {
  await requireAdmin(store, caller, 'importing agent transcripts (it attributes usage to any agent)');
  const started = performance.now();
  const env = options.env ?? process.env;
  const now = options.now ?? Date.now;
  const sources = options.source === undefined || options.source === 'all' ? IMPORT_SOURCES : [options.source];
  const repo = new SqlUsageRepo(store.sql);
  const agents = await workdirs(store, caller);
  const report: ImportReport = { sources: [], files: 0, lines: 0, bytes: 0, eventsNew: 0, duplicates: 0, corrupt: 0, seconds: 0, rateLimits: null, unattributed: 0 };
  const keepUnattributed = options.keepUnattributed ?? true;
  for (const source of sources) {
    const root = resolve(options.path ?? sourceRoot(source, env));
    const s: SourceImport = { source, root, files: 0, lines: 0, bytes: 0, eventsNew: 0, duplicates: 0, corrupt: 0, reread: 0 };
    // The project's offsets for this source in one query (a re-run of an unchanged tree is then
    // the walk, one stat per file and this read). Each path is read once per pass.
    const offsets = await savedOffsets(store, caller.project, source);
    for (const { path, device, inode, size } of transcripts(source, root)) {
      s.files++;
      const saved = offsets.get(path);
      const same = saved !== undefined && saved.device === device && saved.inode === inode && size >= saved.offset;
      if (saved !== undefined && !same) s.reread++;
      const start = same ? saved.offset : 0;
      if (start >= size) continue;
      const chunk = completeChunk(readRange(path, start, size));
      const consumed = chunk.length;
      if (consumed === 0) continue; // only a half-written line: wait for its newline
      s.bytes += consumed;
      let parsed: ParseResult;
      // A `--transcripts` glob claims the whole file; otherwise each event's cwd decides.
      const fileAgent = agents.byFile(path);
      let cwdOf: (cwd: string | null | undefined) => string | null = (cwd) => fileAgent ?? agents.byCwd(cwd);
      let readings: QuotaReading[] = [];
      if (source === 'claude') {
        parsed = parseClaudeChunk(chunk, path);
      } else if (source === 'codex') {
        const r = parseCodexChunk(chunk, path, start > 0 ? codexContextAt(path, start) : undefined);
        parsed = r;
        if (r.rateLimits) {
          if (report.rateLimits === null || (r.rateLimits.seenAt ?? 0) >= (report.rateLimits.seenAt ?? 0)) report.rateLimits = r.rateLimits;
          const owner = fileAgent ?? agents.byCwd(r.context.cwd);
          if (owner !== null || keepUnattributed) readings = codexReadings(caller.project, owner ?? '-', r.rateLimits, now());
        }
      } else {
        parsed = parseGeminiChunk(chunk, path);
        const agent = fileAgent ?? agents.byHash(geminiProjectHash(path, size));
        cwdOf = () => agent;
      }
      s.lines += parsed.lines;
      s.corrupt += parsed.corrupt;
      let inputs: UsageInput[] = parsed.events.map(({ cwd, ...e }) => ({ ...e, source, agent: cwdOf(cwd), task: null }));
      if (!keepUnattributed) {
        const kept = inputs.filter((e) => e.agent !== null);
        report.unattributed += inputs.length - kept.length;
        inputs = kept;
      }
      const offset = { project: caller.project, source, path, device, inode, size, offset: start + consumed, updatedAt: now() };
      // Batches of at most MAX_BATCH; the offset is saved with the last one.
      const batches: UsageInput[][] = [];
      for (let i = 0; i < inputs.length; i += MAX_BATCH) batches.push(inputs.slice(i, i + MAX_BATCH));
      if (batches.length === 0) batches.push([]);
      for (const [i, batch] of batches.entries()) {
        const last = i === batches.length - 1;
        const results = await recordMany(store, caller, batch, {
          ...(options.prices ? { prices: options.prices } : {}),
          ...(options.crossed ? { crossed: options.crossed } : {}),
          now,
          ...(last
            ? {
                inTransaction: async (tx) => {
                  for (const r of readings) await saveQuotaReading(tx, r);
                  await repo.saveOffset(tx, offset);
                },
              }
            : {}),
        });
        for (const r of results) {
          if (r.duplicate) s.duplicates++;
          else s.eventsNew++;
        }
      }
    }
    report.sources.push(s);
    report.files += s.files;
    report.lines += s.lines;
    report.bytes += s.bytes;
    report.eventsNew += s.eventsNew;
    report.duplicates += s.duplicates;
    report.corrupt += s.corrupt;
  }
  report.seconds = Math.round(performance.now() - started) / 1000;
  return report;
}
