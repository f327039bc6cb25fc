import { afterAll, beforeAll, expect } from 'vitest';

/**
 * Tests that fail on leaks: when a test file ends, every database pool, socket
 * and child process a test opened must be gone. Per-test resources are released by the
 * helpers' `onTestFinished` hooks, which have all run by `afterAll`.
 */

// Timers are left out: the runner's own test-timeout timers come and go and would mask a leak.
const WATCHED = new Set(['TCPSocketWrap', 'TCPWRAP', 'PipeWrap', 'ProcessWrap', 'FSEventWrap']);

function watched(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo()) if (WATCHED.has(kind)) counts[kind] = (counts[kind] ?? 0) + 1;
  return counts;
}

let baseline: Record<string, number> = {};
beforeAll(() => {
  baseline = watched();
});

afterAll(async () => {
  // pg's pool.end() and child 'close' events settle on the next turns of the loop.
  for (let i = 0; i < 20; i++) {
    const now = watched();
    if (Object.entries(now).every(([kind, n]) => n <= (baseline[kind] ?? 0))) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  expect(watched(), 'resources left open by this file (baseline before its tests in the message)').toEqual(baseline);
});
