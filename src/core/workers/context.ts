import type { Caller } from '../auth/caller.js';
import { contextPack, type MemoryContext, showEngram } from '../memory/service.js';
import type { Task } from '../tasks/types.js';
import { descriptionText } from './spec.js';

/**
 * The prompt of one run: the task, what it must meet, the handoff it came with, and the agent's
 * context pack (its tasks, unread messages and the memories relevant to them). It goes to the
 * CLI as its prompt, not as a file in the worktree, so nothing of it can be committed by accident.
 */

const PACK_CHARS = 6_000;

async function handoffText(memory: MemoryContext | null, caller: Caller, task: Task): Promise<string | null> {
  const h = task.handoff;
  if (!h) return null;
  const notes: string[] = [];
  for (const id of h.memories.slice(0, 10)) {
    if (!memory) break;
    try {
      const e = await showEngram(memory, caller, id);
      notes.push(`- ${e.id} (${e.kind}, ${e.author}): ${e.text.replace(/\s+/g, ' ').slice(0, 600)}`);
    } catch {
      notes.push(`- ${id} (not readable here)`);
    }
  }
  return [`## Handoff from ${h.from}`, h.summary, ...(notes.length ? ['', 'Memories it points to:', ...notes] : [])].join('\n');
}

export async function taskPrompt(input: {
  task: Task;
  caller: Caller;
  memory: MemoryContext | null;
  branch: string;
  base: string;
  repo: string;
}): Promise<string> {
  const { task, caller, memory } = input;
  const agent = caller.agent ?? 'operator';
  const description = descriptionText(task);
  const sections = [
    `# Task ${task.id}: ${task.title}`,
    [
      `You are ${agent}, running this task as a sos worker in a git worktree of ${input.repo}, on branch ${input.branch} (from ${input.base.slice(0, 12)}).`,
      'Work only inside this directory. Commit what you change on this branch (git add, git commit): the worker reports the branch, its commits and the diff stat.',
      'Your last message is the task’s result: say what you did and what is left.',
    ].join('\n'),
    `## What to do, and how it is accepted\n${description || '(the title says it all)'}`,
  ];
  if (task.labels.length) sections.push(`Labels: ${task.labels.join(', ')}.`);
  const handoff = await handoffText(memory, caller, task);
  if (handoff) sections.push(handoff);
  if (memory) {
    try {
      sections.push(await contextPack(memory, caller, agent, PACK_CHARS));
    } catch {
      // a context pack is help, not a precondition: the task still runs without it
    }
  }
  return sections.join('\n\n');
}
