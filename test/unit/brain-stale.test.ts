import { describe, expect, it } from 'vitest';
import { BUILT_IN_MARKERS, isTaskCleanup, retiredIn, staleVerdict } from '../../src/core/brain/stale.js';

const markers = [...BUILT_IN_MARKERS, 'migration quest'];
const ctx = { markers, cleanupPending: false };

describe('the stale-directive guard', () => {
  it('finds retired markers whatever the case and spacing', () => {
    expect(retiredIn(markers, 'Finish the TEST  QUEST fixtures')).toBe('test quest');
    expect(retiredIn(markers, 'triage TC-G53 leftovers')).toBe('tc-g53');
    expect(retiredIn(markers, 'run delete_tasks_by_pattern on the queue')).toBe('delete_tasks_by_pattern');
    expect(retiredIn(markers, 'Migration Quest, part 2')).toBe('migration quest');
    expect(retiredIn(markers, 'ship the billing page')).toBeNull();
  });

  it('recognises a cleanup of tasks, and only that', () => {
    for (const t of ['Delete the 5,370 stale fixture tasks', 'clean up old tasks', 'Cleanup: purge the backlog', 'prune quests older than a week', 'bulk-close stale tickets', 'remove duplicate tasks from the queue']) {
      expect(isTaskCleanup(t), t).toBe(true);
    }
    for (const t of ['fix the flaky login test', 'delete the temp branch', 'write the cleanup guide for deploys', 'summarise the task board']) {
      expect(isTaskCleanup(t), t).toBe(false);
    }
  });

  it('applies the rules in order: retired marker, cleanup of cleanup, closed goal', () => {
    expect(staleVerdict('Clean up the global quest tasks', { ...ctx, cleanupPending: true, goalStatus: 'done' })).toMatchObject({ stale: true, rule: 'retired_marker' });
    expect(staleVerdict('Clean up stale tasks', { ...ctx, cleanupPending: true })).toMatchObject({ stale: true, rule: 'cleanup_of_cleanup' });
    // The first cleanup, with none recent or open, is allowed.
    expect(staleVerdict('Clean up stale tasks', ctx)).toEqual({ stale: false });
    expect(staleVerdict('ship the billing page', { ...ctx, goalStatus: 'dropped' })).toEqual({ stale: true, rule: 'closed_goal', reason: 'its goal is dropped' });
    expect(staleVerdict('ship the billing page', { ...ctx, goalStatus: 'open' })).toEqual({ stale: false });
  });
});
