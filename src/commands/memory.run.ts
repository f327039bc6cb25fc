import { UsageError } from '../core/errors.js';
import { contextPack, forget, listEngrams, recall, reindex, remember, showEngram } from '../core/memory/service.js';
import type { Engram } from '../core/memory/types.js';
import { parseMoment } from '../core/time.js';
import { int, opt, readStdin, str, strings } from './args.js';
import type { Invocation, Output } from './define.js';
import { fields, iso, table } from './format.js';
import { withMemory } from './session.js';

/** The `--json` shape of an engram (stable). */
export function engramView(e: Engram) {
  return {
    id: e.id,
    project: e.project,
    text: e.text,
    kind: e.kind,
    scope: e.scope,
    author: e.author,
    tags: e.tags,
    task: e.taskId,
    message: e.messageId,
    embedder: e.embedder,
    dim: e.dim,
    createdAt: iso(e.createdAt),
    updatedAt: iso(e.updatedAt),
    supersededBy: e.supersededBy,
  };
}

const short = (text: string, n = 100) => {
  const flat = text.replace(/\s+/g, ' ');
  return flat.length > n ? `${flat.slice(0, n - 1)}…` : flat;
};

/** `7d`, `2h` (ago) or a date. */
function since(value: unknown): number | undefined {
  return typeof value === 'string' ? parseMoment(value, '--since', Date.now(), 'ago') : undefined;
}


export async function rememberCmd(inv: Invocation): Promise<Output> {
  const words = (inv.args.text as string[] | undefined) ?? [];
  if (inv.options.stdin === true && words.length) throw new UsageError('give the text as arguments or with --stdin, not both');
  const text = inv.options.stdin === true ? await readStdin(inv) : words.join(' ');
  return withMemory(inv, async ({ memory, caller }) => {
    const r = await remember(memory, caller, {
      text,
      ...opt('kind', str(inv.options.kind)),
      ...opt('scope', str(inv.options.scope)),
      ...opt('tags', strings(inv.options.tag)),
      ...opt('taskId', str(inv.options.task)),
      ...opt('supersedes', str(inv.options.supersedes)),
    });
    return { data: { ...engramView(r.engram), merged: r.merged }, human: r.merged ? `${r.id} (merged into an existing near-duplicate)` : r.id, quiet: r.id };
  });
}

export async function recallCmd(inv: Invocation): Promise<Output> {
  const query = ((inv.args.query as string[] | undefined) ?? []).join(' ');
  const o = inv.options;
  return withMemory(inv, async ({ memory, caller }) => {
    const results = await recall(memory, caller, {
      query,
      ...opt('limit', int(o.limit, '--limit')),
      ...opt('scope', str(o.scope)),
      ...opt('agent', str(o.agent)),
      ...opt('tags', strings(o.tag)),
      ...opt('kind', str(o.kind)),
      ...opt('since', since(o.since)),
      ...opt('mode', str(o.mode) as 'hybrid' | 'vector' | 'text' | undefined),
    });
    return {
      data: results.map((r) => ({ ...engramView(r.engram), score: r.score, similarity: r.similarity, vectorRank: r.vectorRank, textRank: r.textRank })),
      human: results.length
        ? table(
            ['score', 'id', 'kind', 'author', 'when', 'tags', 'text'],
            results.map((r) => [r.score.toFixed(4), r.engram.id, r.engram.kind, r.engram.author, iso(r.engram.updatedAt)?.slice(0, 10), r.engram.tags.join(','), short(r.engram.text)]),
          )
        : 'nothing recalled',
      quiet: results.map((r) => r.engram.id).join('\n'),
    };
  });
}

export const showCmd = (inv: Invocation) =>
  withMemory(inv, async ({ memory, caller }) => {
    const e = await showEngram(memory, caller, inv.args.id as string);
    return {
      data: engramView(e),
      human: `${fields([
        ['id', e.id],
        ['kind', e.kind],
        ['scope', e.scope],
        ['author', e.author],
        ['tags', e.tags.join(', ')],
        ['task', e.taskId],
        ['embedder', `${e.embedder} (${e.dim})`],
        ['created', iso(e.createdAt)],
        ['updated', iso(e.updatedAt)],
        ['superseded by', e.supersededBy],
      ])}\n\n${e.text}`,
      quiet: e.text,
    };
  });

export const forgetCmd = (inv: Invocation) =>
  withMemory(inv, async ({ memory, caller }) => {
    const e = await forget(memory, caller, inv.args.id as string);
    return { data: engramView(e), human: `forgot ${e.id}`, quiet: e.id };
  });

export const listCmd = (inv: Invocation) =>
  withMemory(inv, async ({ memory, caller }) => {
    const list = await listEngrams(memory, caller, { ...opt('agent', str(inv.options.agent)), ...opt('limit', int(inv.options.limit, '--limit')) });
    return {
      data: list.map(engramView),
      human: list.length ? table(['id', 'kind', 'scope', 'author', 'when', 'text'], list.map((e) => [e.id, e.kind, e.scope, e.author, iso(e.createdAt)?.slice(0, 16), short(e.text, 70)])) : 'no memories yet',
      quiet: list.map((e) => e.id).join('\n'),
    };
  });

export const reindexCmd = (inv: Invocation) =>
  withMemory(inv, async ({ memory, caller }) => {
    const r = await reindex(memory, caller);
    return { data: r, human: `re-embedded ${r.reindexed} engrams with ${r.embedder}` };
  });

export const contextCmd = (inv: Invocation) =>
  withMemory(inv, async ({ memory, caller }) => {
    const text = await contextPack(memory, caller, inv.args.agent as string, int(inv.options.maxChars, '--max-chars') ?? 4_000);
    return { data: { agent: inv.args.agent, text }, human: text, quiet: text };
  });
