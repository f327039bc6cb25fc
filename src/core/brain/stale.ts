import { type Caller, requireAdmin } from '../auth/caller.js';
import { NotFound, UsageError } from '../errors.js';
import { refuseNul } from '../safe-text.js';
import type { Store } from '../store/port.js';

/**
 * The stale-directive guard (issue 14): a model reading old state keeps proposing work that is
 * no longer wanted. The case that motivates it: 5,370 stale fixture tasks made a coordinator
 * propose their cleanup, then cleanup of the cleanup, for ever. A proposal is stale when
 *
 * 1. its title or details contain a retired marker (case-insensitive): the built-in markers
 *    below, which every project has, and the project's own (`sos brain retire`);
 * 2. it is a cleanup of tasks (delete, clean up, purge, prune, remove… tasks) while a cleanup
 *    task was created within the last cycles or is still open;
 * 3. it names a goal that is done or dropped.
 */

/** The markers of the fixture tasks in the case study, retired in every project. */
export const BUILT_IN_MARKERS = ['test quest', 'global quest', 'test qv quest', 'mocked extract quest', 'tc-g53', 'fk test quest', 'delete_tasks_by_pattern'] as const;

export const MAX_MARKER_CHARS = 200;

export interface RetiredMarker {
  marker: string;
  source: 'built-in' | 'project';
  createdBy: string | null;
  createdAt: number | null;
}

function normalise(marker: string): string {
  const m = typeof marker === 'string' ? marker.trim().toLowerCase().replace(/\s+/g, ' ') : '';
  if (m.length < 3) throw new UsageError('a retired marker needs at least 3 characters (a shorter one would match too much)');
  if (m.length > MAX_MARKER_CHARS) throw new UsageError(`the marker is ${m.length} characters; the limit is ${MAX_MARKER_CHARS}`);
  refuseNul(m, 'the marker');
  return m;
}

export async function retireMarker(store: Store, caller: Caller, marker: string, now = Date.now()): Promise<RetiredMarker> {
  const m = normalise(marker);
  await requireAdmin(store, caller, 'retiring a directive marker');
  if ((BUILT_IN_MARKERS as readonly string[]).includes(m)) return { marker: m, source: 'built-in', createdBy: null, createdAt: null };
  const by = caller.agent ?? 'operator';
  await store.sql.run('INSERT INTO brain_retired (project, marker, created_by, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (project, marker) DO NOTHING', [caller.project, m, by, now]);
  const row = await store.sql.one<{ created_by: string; created_at: number | string }>('SELECT created_by, created_at FROM brain_retired WHERE project = $1 AND marker = $2', [caller.project, m]);
  return { marker: m, source: 'project', createdBy: row!.created_by, createdAt: Number(row!.created_at) };
}

export async function unretireMarker(store: Store, caller: Caller, marker: string): Promise<void> {
  const m = normalise(marker);
  await requireAdmin(store, caller, 'un-retiring a directive marker');
  if ((BUILT_IN_MARKERS as readonly string[]).includes(m)) throw new UsageError(`"${m}" is a built-in marker: it cannot be removed`);
  const removed = await store.sql.run('DELETE FROM brain_retired WHERE project = $1 AND marker = $2', [caller.project, m]);
  if (removed === 0) throw new NotFound(`"${m}" is not retired in project "${caller.project}"`, { hint: 'list them with `sos brain retired`' });
}

export async function retiredMarkers(store: Store, caller: Caller): Promise<RetiredMarker[]> {
  const rows = await store.sql.all<{ marker: string; created_by: string; created_at: number | string }>('SELECT marker, created_by, created_at FROM brain_retired WHERE project = $1 ORDER BY marker', [caller.project]);
  return [
    ...BUILT_IN_MARKERS.map((marker): RetiredMarker => ({ marker, source: 'built-in', createdBy: null, createdAt: null })),
    ...rows.map((r): RetiredMarker => ({ marker: r.marker, source: 'project', createdBy: r.created_by, createdAt: Number(r.created_at) })),
  ];
}

/** The first retired marker the text contains (case- and spacing-insensitive), or null. */
export function retiredIn(markers: readonly string[], text: string): string | null {
  const t = text.toLowerCase().replace(/\s+/g, ' ');
  return markers.find((m) => t.includes(m)) ?? null;
}

const CLEANUP_VERB = /\b(delete|deleting|clean(?:ing)?[\s-]?up|cleanup|purge|purging|prune|pruning|remove|removing|wipe|archive|archiving|dedupe|deduplicate|cancel|bulk[\s-]close|close out)\b/i;
const TASK_NOUN = /\b(tasks?|tickets?|quests?|fixtures?|backlog|queue|work items?)\b/i;

/** Whether a text proposes cleaning up tasks: a cleanup verb and a task noun. */
export function isTaskCleanup(text: string): boolean {
  return CLEANUP_VERB.test(text) && TASK_NOUN.test(text);
}

export interface StaleContext {
  markers: readonly string[];
  /** A cleanup task was created within the last cycles, or one is still open. */
  cleanupPending: boolean;
  /** The status of the goal the proposal names, if it names one. */
  goalStatus?: 'open' | 'done' | 'dropped' | 'missing';
}

export type StaleVerdict = { stale: false } | { stale: true; rule: 'retired_marker' | 'cleanup_of_cleanup' | 'closed_goal'; reason: string };

/** Rule by rule, the first that applies; `text` is the proposal's title and details. */
export function staleVerdict(text: string, ctx: StaleContext): StaleVerdict {
  const marker = retiredIn(ctx.markers, text);
  if (marker) return { stale: true, rule: 'retired_marker', reason: `it mentions the retired marker "${marker}"` };
  if (ctx.cleanupPending && isTaskCleanup(text)) return { stale: true, rule: 'cleanup_of_cleanup', reason: 'it cleans up tasks while a cleanup task is recent or still open' };
  if (ctx.goalStatus === 'done' || ctx.goalStatus === 'dropped') return { stale: true, rule: 'closed_goal', reason: `its goal is ${ctx.goalStatus}` };
  return { stale: false };
}
