import { readdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Caller } from '../auth/caller.js';
import { parseClaude } from '../economy/importers/claude.js';
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
 * recorded under the same keys. Codex and Gemini runs are left to the importer: their keys
 * (thread plus cumulative totals, record ids) are not in their stream output.
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

export async function runUsage(executor: ExecutorName, summary: StreamSummary, env: NodeJS.ProcessEnv, at: { agent: string; task: string }): Promise<UsageInput[]> {
  if (executor !== 'claude' || summary.sessionId === null) return [];
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
