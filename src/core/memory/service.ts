import { type Caller, deny, isAdmin } from '../auth/caller.js';
import type { Bus } from '../bus/port.js';
import { streamsFrom } from '../bus/service.js';
import { NotFound, UsageError } from '../errors.js';
import { getAgent } from '../identity/agents.js';
import { getSquad, listSquads } from '../identity/squads.js';
import { newId } from '../ids.js';
import { assertCapability, assertName } from '../names.js';
import type { Store } from '../store/port.js';
import type { Embedder } from './embedder.js';
import type { Memory } from './port.js';
import { ENGRAM_KINDS, type Engram, type EngramFilter, type EngramKind } from './types.js';
import { quote, refuseNul } from '../safe-text.js';

/**
 * Memory rules (docs/ARCHITECTURE.md, "Flow of a memory"), the same on every adapter: scopes, near-duplicate merging,
 * supersession, hybrid recall (vector + full text fused by reciprocal rank, plus recency), and
 * context packs. CLI commands and MCP tools call these functions.
 */

export interface MemoryContext {
  store: Store;
  memory: Memory;
  embedder: Embedder;
  maxEngramBytes: number;
  /** For context packs (unread digest); optional elsewhere. */
  bus?: Bus;
  now?: () => number;
}

export const DUPLICATE_COSINE = 0.92;
export const RRF_K = 60;
/** At most this much is added for a brand-new engram; it halves every 30 days. */
export const RECENCY_WEIGHT = 0.004;
const ENGRAM_ID = /^eng_[0-9a-z]{26}$/;
const DAY = 86_400_000;

const now = (ctx: MemoryContext) => (ctx.now ?? Date.now)();

export function assertEngramId(id: string): string {
  if (!ENGRAM_ID.test(id)) throw new UsageError(`invalid engram id ${quote(id)}: expected eng_ followed by 26 characters`);
  return id;
}

function author(caller: Caller, action: string): string {
  if (caller.agent === null) throw new UsageError(`${action} needs an agent`, { hint: 'pass --as <agent> (or SOS_AGENT), or use an agent token' });
  return caller.agent;
}

async function viewer(ctx: MemoryContext, caller: Caller): Promise<EngramFilter['viewer']> {
  const squads =
    caller.agent === null ? [] : (await listSquads(ctx.store, caller)).filter((s) => s.members.includes(caller.agent!)).map((s) => s.name);
  return { agent: caller.agent, squads, all: isAdmin(caller) && caller.agent === null };
}

/** `private`, `project` or `squad:<name>`; a squad scope needs membership unless admin. */
async function parseScope(ctx: MemoryContext, caller: Caller, scope: string | undefined): Promise<string> {
  const value = scope ?? 'project';
  if (value === 'private' || value === 'project') return value;
  if (value.startsWith('squad:')) {
    const squad = await getSquad(ctx.store, caller, assertName('squad', value.slice(6)));
    if (!isAdmin(caller) && !squad.members.includes(caller.agent ?? '')) {
      await deny(ctx.store, caller, `using scope ${value}`, `needs membership of squad ${squad.name}`);
    }
    return value;
  }
  throw new UsageError(`invalid scope ${quote(value)}: use private, project or squad:<name>`);
}

function parseKind(kind: string | undefined): EngramKind | undefined {
  if (kind === undefined) return undefined;
  if (!(ENGRAM_KINDS as readonly string[]).includes(kind)) throw new UsageError(`invalid kind ${quote(kind)}: use ${ENGRAM_KINDS.join(', ')}`);
  return kind as EngramKind;
}

function assertText(ctx: MemoryContext, text: string): string {
  if (text.trim() === '') throw new UsageError('the memory is empty');
  refuseNul(text, 'the memory');
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > ctx.maxEngramBytes) throw new UsageError(`the memory is ${bytes} bytes; the limit is ${ctx.maxEngramBytes}`, { hint: 'split it, or raise SOS_MAX_ENGRAM_BYTES' });
  return text;
}

async function visibleEngram(ctx: MemoryContext, caller: Caller, id: string): Promise<Engram> {
  assertEngramId(id);
  const engram = await ctx.memory.get(caller.project, id);
  const v = await viewer(ctx, caller);
  const visible =
    engram !== undefined &&
    (v.all ||
      isAdmin(caller) ||
      engram.scope === 'project' ||
      (engram.scope.startsWith('squad:') && v.squads.includes(engram.scope.slice(6))) ||
      (engram.scope === 'private' && engram.author === caller.agent));
  if (!visible) throw new NotFound(`engram ${id} does not exist in project "${caller.project}"`);
  return engram;
}

export interface RememberInput {
  text: string;
  kind?: string;
  scope?: string;
  tags?: string[];
  taskId?: string;
  messageId?: string;
  supersedes?: string;
}

export interface RememberResult {
  id: string;
  /** True when a near-duplicate in the same scope was updated instead of adding an engram. */
  merged: boolean;
  engram: Engram;
}

export async function remember(ctx: MemoryContext, caller: Caller, input: RememberInput): Promise<RememberResult> {
  const text = assertText(ctx, input.text);
  const kind = parseKind(input.kind) ?? 'observation';
  const tags = [...new Set((input.tags ?? []).map(assertCapability))];
  if (input.supersedes !== undefined) assertEngramId(input.supersedes);
  if (input.taskId !== undefined && !/^tsk_[0-9a-z]{26}$/.test(input.taskId)) throw new UsageError(`invalid task id ${quote(input.taskId)}`);
  if (caller.role === 'observer') await deny(ctx.store, caller, 'remembering', 'is not allowed with an observer token');
  const who = author(caller, 'remembering');
  await getAgent(ctx.store, caller, who);
  const scope = await parseScope(ctx, caller, input.scope);
  const old = input.supersedes === undefined ? undefined : await visibleEngram(ctx, caller, input.supersedes);
  const [vector] = await ctx.embedder.embed([text]);
  const at = now(ctx);

  // A near-duplicate in the same scope (and, for private, of the same author) is updated instead.
  if (old === undefined) {
    const [nearest] = await ctx.memory.searchVector(
      { project: caller.project, viewer: { agent: who, squads: [], all: true }, embedder: ctx.embedder.name, scope, ...(scope === 'private' ? { author: who } : {}) },
      vector!,
      1,
    );
    if (nearest && nearest.score >= DUPLICATE_COSINE) {
      const existing = (await ctx.memory.get(caller.project, nearest.id))!;
      const merged = [...new Set([...existing.tags, ...tags])];
      await ctx.memory.update(caller.project, nearest.id, { text, tags: merged, kind, embedding: vector!, updatedAt: at });
      return { id: nearest.id, merged: true, engram: (await ctx.memory.get(caller.project, nearest.id))! };
    }
  }
  const id = newId('eng', at);
  await ctx.memory.insert({
    id,
    project: caller.project,
    text,
    kind,
    scope,
    author: who,
    tags,
    taskId: input.taskId ?? null,
    messageId: input.messageId ?? null,
    embedder: ctx.embedder.name,
    dim: ctx.embedder.dim,
    embedding: vector!,
    createdAt: at,
    updatedAt: at,
  });
  if (old) await ctx.memory.setSupersededBy(caller.project, old.id, id, at);
  return { id, merged: false, engram: (await ctx.memory.get(caller.project, id))! };
}

/**
 * An engram written by sos itself (the brain's `cycle` records): the author is a system name, not
 * a registered agent, the scope is the project, and it is never merged into a near-duplicate
 * (two cycles that read alike are still two cycles).
 */
export async function rememberSystem(ctx: MemoryContext, project: string, input: { author: string; text: string; kind: EngramKind; tags?: string[]; taskId?: string }): Promise<string> {
  const text = assertText(ctx, input.text);
  const [vector] = await ctx.embedder.embed([text]);
  const at = now(ctx);
  const id = newId('eng', at);
  await ctx.memory.insert({
    id,
    project,
    text,
    kind: input.kind,
    scope: 'project',
    author: input.author,
    tags: [...new Set((input.tags ?? []).map(assertCapability))],
    taskId: input.taskId ?? null,
    messageId: null,
    embedder: ctx.embedder.name,
    dim: ctx.embedder.dim,
    embedding: vector!,
    createdAt: at,
    updatedAt: at,
  });
  return id;
}

export interface RecallInput {
  query: string;
  limit?: number;
  scope?: string;
  agent?: string;
  tags?: string[];
  kind?: string;
  since?: number;
  /** `hybrid` (default), or one signal alone: `vector` or `text`. */
  mode?: 'hybrid' | 'vector' | 'text';
  includeSuperseded?: boolean;
}

export interface Recalled {
  engram: Engram;
  score: number;
  vectorRank: number | null;
  textRank: number | null;
  similarity: number | null;
}

/**
 * Hybrid recall: the top candidates by cosine similarity and by full-text rank, each filtered
 * inside its query, fused by reciprocal rank (1 / (60 + rank)), plus a small recency term.
 */
export async function recall(ctx: MemoryContext, caller: Caller, input: RecallInput): Promise<Recalled[]> {
  if (input.query.trim() === '') throw new UsageError('the query is empty');
  const limit = input.limit ?? 10;
  if (!Number.isInteger(limit) || limit < 1 || limit > 200) throw new UsageError('--limit must be a whole number from 1 to 200');
  const kind = parseKind(input.kind);
  const mode = input.mode ?? 'hybrid';
  if (input.agent !== undefined) assertName('agent', input.agent);
  for (const t of input.tags ?? []) assertCapability(t);
  if (input.scope !== undefined && input.scope !== 'private' && input.scope !== 'project' && !/^squad:[a-z][a-z0-9-]{0,39}$/.test(input.scope)) {
    throw new UsageError(`invalid scope ${quote(input.scope)}: use private, project or squad:<name>`);
  }
  const filter: EngramFilter = {
    project: caller.project,
    viewer: await viewer(ctx, caller),
    ...(input.scope !== undefined ? { scope: input.scope } : {}),
    ...(input.agent !== undefined ? { author: input.agent } : {}),
    ...(input.tags?.length ? { tags: input.tags } : {}),
    ...(kind !== undefined ? { kind } : {}),
    ...(input.since !== undefined ? { since: input.since } : {}),
    ...(input.includeSuperseded ? { includeSuperseded: true } : {}),
  };
  const depth = Math.max(50, limit * 5);
  const [vector] = mode === 'text' ? [undefined] : await ctx.embedder.embed([input.query]);
  const [byVector, byText] = await Promise.all([
    vector ? ctx.memory.searchVector({ ...filter, embedder: ctx.embedder.name }, vector, depth) : Promise.resolve([]),
    mode === 'vector' ? Promise.resolve([]) : ctx.memory.searchText(filter, input.query, depth),
  ]);
  const fused = new Map<string, { score: number; vectorRank: number | null; textRank: number | null; similarity: number | null }>();
  byVector.forEach((r, i) => fused.set(r.id, { score: 1 / (RRF_K + i + 1), vectorRank: i + 1, textRank: null, similarity: r.score }));
  byText.forEach((r, i) => {
    const entry = fused.get(r.id) ?? { score: 0, vectorRank: null, textRank: null, similarity: null };
    entry.score += 1 / (RRF_K + i + 1);
    entry.textRank = i + 1;
    fused.set(r.id, entry);
  });
  const at = now(ctx);
  const scored: Recalled[] = [];
  // Enough candidates to let recency reorder near-ties, then load only those.
  const top = [...fused.entries()].sort((a, b) => b[1].score - a[1].score).slice(0, limit * 3);
  const loaded = new Map((await ctx.memory.getMany(caller.project, top.map(([id]) => id))).map((e) => [e.id, e]));
  for (const [id, entry] of top) {
    const engram = loaded.get(id);
    if (!engram) continue;
    const ageDays = Math.max(0, (at - engram.updatedAt) / DAY);
    scored.push({ engram, ...entry, score: entry.score + RECENCY_WEIGHT * 0.5 ** (ageDays / 30) });
  }
  return scored.sort((a, b) => b.score - a.score).slice(0, limit);
}

export async function showEngram(ctx: MemoryContext, caller: Caller, id: string): Promise<Engram> {
  return visibleEngram(ctx, caller, id);
}

/** Only the author or an admin may forget an engram. */
export async function forget(ctx: MemoryContext, caller: Caller, id: string): Promise<Engram> {
  const engram = await visibleEngram(ctx, caller, id);
  if (engram.author !== caller.agent && !isAdmin(caller)) {
    await deny(ctx.store, caller, `forgetting ${id}`, 'is allowed only to its author and admins');
  }
  await ctx.memory.delete(caller.project, id);
  return engram;
}

export async function listEngrams(ctx: MemoryContext, caller: Caller, input: { agent?: string; limit?: number } = {}): Promise<Engram[]> {
  if (input.agent !== undefined) assertName('agent', input.agent);
  const limit = input.limit ?? 50;
  if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new UsageError('--limit must be a whole number from 1 to 10000');
  return ctx.memory.list(
    { project: caller.project, viewer: await viewer(ctx, caller), includeSuperseded: true, ...(input.agent !== undefined ? { author: input.agent } : {}) },
    limit,
  );
}

/** Re-embeds every engram of the project with the configured embedder (after changing it). */
export async function reindex(ctx: MemoryContext, caller: Caller, onProgress?: (done: number) => void): Promise<{ reindexed: number; embedder: string }> {
  if (!isAdmin(caller)) await deny(ctx.store, caller, 'reindexing memory', 'needs an admin token or local operator access');
  let after: string | null = null;
  let done = 0;
  for (;;) {
    const ids = await ctx.memory.ids(caller.project, after, 256);
    if (ids.length === 0) break;
    const engrams = (await Promise.all(ids.map((id) => ctx.memory.get(caller.project, id)))).filter((e): e is Engram => e !== undefined);
    const vectors = await ctx.embedder.embed(engrams.map((e) => e.text));
    for (const [i, e] of engrams.entries()) {
      await ctx.memory.update(caller.project, e.id, { embedding: vectors[i]!, embedder: ctx.embedder.name, dim: ctx.embedder.dim, updatedAt: e.updatedAt });
    }
    done += engrams.length;
    onProgress?.(done);
    after = ids[ids.length - 1]!;
  }
  return { reindexed: done, embedder: ctx.embedder.name };
}

/** Stored embedders that differ from the configured one (for `sos doctor`). */
export async function embedderMismatch(ctx: MemoryContext, project: string): Promise<{ embedder: string; dim: number; count: number }[]> {
  return (await ctx.memory.embedders(project)).filter((e) => e.embedder !== ctx.embedder.name);
}

/**
 * The text an agent gets when it starts or recovers: who it is, the tasks it holds, a digest of
 * its unread messages, and the memories most relevant to its current work — within `maxChars`.
 */
export async function contextPack(ctx: MemoryContext, caller: Caller, agentName: string, maxChars = 4_000): Promise<string> {
  assertName('agent', agentName);
  if (!Number.isInteger(maxChars) || maxChars < 200 || maxChars > 200_000) throw new UsageError('--max-chars must be from 200 to 200000');
  if (agentName !== caller.agent && !isAdmin(caller)) await deny(ctx.store, caller, `reading ${agentName}'s context`, 'needs an admin token');
  const agent = await getAgent(ctx.store, caller, agentName);
  const allSquads = await listSquads(ctx.store, caller);
  const squads = allSquads.filter((s) => s.members.includes(agentName)).map((s) => s.name);
  const held = (await ctx.store.tasks.list(caller.project, { statuses: ['claimed', 'in_progress', 'review'], assignee: agentName }, now(ctx))).filter(
    (t) => t.claimant === agentName || t.handoff?.to === agentName,
  );
  const sections: string[] = [];
  sections.push(
    [
      `# Context for ${agent.name} (project ${caller.project})`,
      `You are ${agent.name}, a ${agent.role} (${agent.kind})${agent.capabilities.length ? ` with capabilities: ${agent.capabilities.join(', ')}` : ''}.`,
      squads.length ? `Squads: ${squads.join(', ')}.` : '',
    ]
      .filter(Boolean)
      .join('\n'),
  );
  sections.push(
    held.length
      ? `## Tasks you hold\n${held.map((t) => `- ${t.id} [${t.status}, fence ${t.attempt}] ${t.title}${t.handoff?.to === agentName ? ` (handoff from ${t.handoff.from}: ${t.handoff.summary})` : ''}`).join('\n')}`
      : '## Tasks you hold\n(none)',
  );
  if (ctx.bus) {
    const streams = streamsFrom(allSquads, agentName);
    const unread = (await ctx.bus.history(caller.project, agentName, streams, 200)).filter((i) => i.state === 'queued' || i.state === 'delivered');
    sections.push(
      unread.length
        ? `## Unread messages (${unread.length}; read them with \`sos inbox\`)\n${unread
            .slice(-10)
            .map((i) => `- ${i.message.id} from ${i.message.from}: ${i.message.text.split('\n')[0]!.slice(0, 160)}`)
            .join('\n')}`
        : '## Unread messages\n(none)',
    );
  }
  const query = held.map((t) => `${t.title} ${t.description ?? ''}`).join('\n') || `${agent.role} ${agent.capabilities.join(' ')}`;
  const memories = query.trim() ? await recall(ctx, { ...caller, agent: agentName }, { query, limit: 8 }).catch(() => []) : [];
  const header = '## Relevant memories';
  let text = sections.join('\n\n');
  const lines: string[] = [];
  for (const m of memories) {
    const line = `- ${m.engram.id} (${m.engram.kind}, ${m.engram.author}): ${m.engram.text.replace(/\s+/g, ' ')}`;
    const candidate = `${text}\n\n${header}\n${[...lines, line].join('\n')}`;
    if (candidate.length > maxChars) {
      const room = maxChars - `${text}\n\n${header}\n${lines.join('\n')}\n`.length;
      if (room > 80) lines.push(`${line.slice(0, room - 1)}…`);
      break;
    }
    lines.push(line);
  }
  text = `${text}\n\n${header}\n${lines.length ? lines.join('\n') : '(none yet)'}`;
  if (text.length > maxChars) text = `${text.slice(0, maxChars - 1)}…`;
  return text;
}

