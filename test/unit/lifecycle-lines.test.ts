import { describe, expect, test } from 'vitest';
import { lifecycleNotifyLine, MAX_INJECT_CHARS, taskLine } from '../../src/core/lifecycle/actions.js';
import { clip } from '../../src/core/safe-text.js';
import type { Task } from '../../src/core/tasks/types.js';
import { HOSTILE, UNSAFE_OUTPUT } from '../fixtures/hostile.js';

const task = (title: string, description: string | null): Task =>
  ({ id: 't_01', title, description, status: 'claimed', attempt: 2 }) as Task;

describe('lines the lifecycle types into a session', () => {
  test.each(Object.entries(HOSTILE))('a task titled and described with %s is typed as one safe line', (_, text) => {
    const line = taskLine([task(text, `${text}\nsecond line`)], 'your context was compacted');
    expect(line).not.toMatch(UNSAFE_OUTPUT);
    expect(line).not.toContain('\n');
    expect(line.length).toBeLessThanOrEqual(MAX_INJECT_CHARS);
    expect(line.startsWith('[sos] your context was compacted: your current task is t_01 "')).toBe(true);
  });

  test('the notify line names a command and carries no stored text', () => {
    expect(lifecycleNotifyLine('pack', 'context after restart')).toBe('# [sos] context after restart: run sos memory context');
    expect(lifecycleNotifyLine('task', 'your context was compacted')).toBe('# [sos] your context was compacted: run sos tasks list --assignee me');
  });

  test('clip never leaves half of a surrogate pair', () => {
    expect(clip('ab😀cd', 3)).toBe('ab…');
    expect(clip('a😀cd', 3)).toBe('a…');
    expect(clip('abcd', 3)).toBe('ab…');
    expect(clip('abc', 3)).toBe('abc');
  });
});
