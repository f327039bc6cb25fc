import { readdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Caller } from '../auth/caller.js';
import { parseClaude } from '../economy/importers/claude.js';
import { parseCodex } from '../economy/importers/codex.js';
import { recordMany } from '../economy/service.js';
import type { UsageInput } from '../economy/types.js';
import type { Store } from '../store/port.js';
import type { StreamSummary } from './executors.js';
import type { ExecutorName } from './types.js';

/**
 * Usage of one run, recorded once. For Claude Code the events are keyed exactly as the
 * transcript importer keys them (`message.id:requestId`, source `claude`), so a later
 * `sos usage import` of the same transcript adds nothing (the ledger's unique source key). The
 * counts come from the session's transcript when it can be found, through the importer's own
 * parser: the stream's `assistant` lines carry the usage of the message's start (output tokens
 * not yet counted), the transcript the final one. Without a transcript, the stream's counts are
 * recorded under the same keys. For Codex the thread's rollout
 * (`$CODEX_HOME/sessions/YYYY/MM/DD/rollout-…-<thread>.jsonl`) is read through the Codex
 * importer's parser, so its keys (thread plus cumulative totals) are the importer's; its stream
 * gives only per-turn totals, which are not those keys, so without the rollout nothing is
 * recorded and the importer counts it later. Gemini runs are left to the importer.
 */

/** `<config dir>/projects/*\/<session>.jsonl`: Claude Code keeps one folder per working directory. */
async function claudeTranscript(configDir: string, sessionId: string): Promise<string | null> {
  const root = join(configDir, 'projects');
  let dirs: string[];
  try {
    dirs = await readdir(root);
  } catch {
    return null;
  }
  for (const d of dirs) {
    try {
      return await readFile(join(root, d, `${sessionId}.jsonl`), 'utf8');
    } catch {
      // not in this folder
    }
  }
  return null;
}

/** The rollout of a Codex thread: looked for in the three latest day folders (a run may cross midnight). */
async function codexRollout(home: string, thread: string): Promise<string | null> {
  const root = join(home, 'sessions');
  const desc = async (dir: string) => (await readdir(dir).catch(() => [] as string[])).filter((d) => /^\d+$/.test(d)).sort().reverse();
  const days: string[] = [];
  scan: for (const y of await desc(root))
    for (const m of await desc(join(root, y)))
      for (const d of await desc(join(root, y, m))) if (days.push(join(root, y, m, d)) >= 3) break scan;
  for (const day of days) {
    const file = (await readdir(day).catch(() => [] as string[])).find((f) => f.startsWith('rollout-') && f.endsWith(`-${thread}.jsonl`));
    if (file) return readFile(join(day, file), 'utf8').catch(() => null);
  }
  return null;
}

export async function runUsage(executor: ExecutorName, summary: StreamSummary, env: NodeJS.ProcessEnv, at: { agent: string; task: string }): Promise<UsageInput[]> {
  if (summary.sessionId === null) return [];
  if (executor === 'codex') {
    const rollout = await codexRollout(env.CODEX_HOME ?? join(env.HOME ?? homedir(), '.codex'), summary.sessionId);
    if (rollout === null) return [];
    return parseCodex(rollout.split('\n'), null).events.map(({ cwd: _cwd, ...e }) => ({ ...e, agent: at.agent, task: at.task, source: 'codex' as const, sourceFile: null }));
  }
  if (executor !== 'claude') return [];
  const base = { agent: at.agent, task: at.task, source: 'claude' as const, sessionId: summary.sessionId };
  const configDir = env.CLAUDE_CONFIG_DIR ?? join(env.HOME ?? homedir(), '.claude');
  const transcript = await claudeTranscript(configDir, summary.sessionId);
  if (transcript !== null) {
    const parsed = parseClaude(transcript.split('\n'), null).events;
    if (parsed.length > 0) return parsed.map(({ cwd: _cwd, ...e }) => ({ ...e, ...base, sourceFile: null }));
  }
  return summary.usage.map((u) => ({ ...u, ...base, provider: 'anthropic' }));
}

/** Records a run's usage as the agent, idempotently; returns how many events were new. */
export async function recordRunUsage(store: Store, caller: Caller, events: UsageInput[]): Promise<number> {
  if (events.length === 0) return 0;
  const results = await recordMany(store, caller, events);
  return results.filter((r) => !r.duplicate).length;
}
