import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, type TestContext } from 'vitest';
import { classify, PATTERN_GROUPS, type LifecycleState, type PatternSet } from '../../src/core/lifecycle/classifier.js';
import type { SessionDriver } from '../../src/core/sessions/port.js';
import { tempDir } from '../helpers/isolation.js';
import { atPrompt, FAKE_AGENT_PATTERNS, fakeAgentCommand, TMUX_ADAPTER, waitFor } from '../helpers/sessions.js';

/**
 * test/fixtures/fake-agent.patterns.json against the screens the fake agent really draws: each
 * case runs the agent in a private tmux server, drives it, captures the screen and classifies
 * it as the lifecycle would (kind `custom` with the file as overrides). Real tmux, so the
 * screens stay honest when the fake agent changes.
 */

const overrides = JSON.parse(readFileSync(FAKE_AGENT_PATTERNS, 'utf8')) as Partial<PatternSet>;

interface Case {
  name: string;
  /** Lines to type, each with text that must be on screen before the next step. */
  steps: Array<[line: string, shown: string]>;
  /** Whether the screen must end at the prompt after the last step before it is captured. */
  prompt: boolean;
  state: LifecycleState;
  signal?: string;
}

const CASES: Case[] = [
  { name: 'the ready prompt', steps: [], prompt: true, state: 'idle' },
  { name: 'an answered line', steps: [['hello', 'ok: hello']], prompt: true, state: 'idle' },
  { name: 'the spinner', steps: [['/busy 5', 'Working…']], prompt: false, state: 'busy', signal: 'screen.busy' },
  { name: 'finished work', steps: [['/busy 0.5', 'done']], prompt: true, state: 'idle' },
  { name: 'a hang', steps: [['/hang', 'Working…']], prompt: false, state: 'busy' },
  { name: 'a question', steps: [['/ask', '2. No']], prompt: false, state: 'waiting', signal: 'screen.waiting' },
  { name: 'an answered question', steps: [['/ask', '2. No'], ['yes', 'ok\n']], prompt: true, state: 'idle' },
  { name: 'the compaction notice', steps: [['/compact', 'compacted']], prompt: true, state: 'compacted' },
  { name: 'the usage limit', steps: [['/quota', 'Usage limit']], prompt: true, state: 'quota' },
  { name: 'the sign-in notice', steps: [['/login', 'Not signed in']], prompt: true, state: 'waiting', signal: 'login' },
  { name: 'a crash', steps: [['/crash', '    at main']], prompt: false, state: 'dead', signal: 'screen.crash' },
];

async function startAgent(ctx: TestContext): Promise<SessionDriver> {
  const dir = tempDir(ctx);
  const workdir = join(dir, 'work');
  mkdirSync(workdir);
  const command = fakeAgentCommand(join(dir, 'in.log'));
  const driver = await TMUX_ADAPTER.open(ctx, dir, command);
  await driver.start({ command, workdir, env: {} });
  return driver;
}

describe.skipIf(!TMUX_ADAPTER.available())('fake agent patterns', () => {
  it('gives every group, so no default pattern of kind custom applies', () => {
    expect(Object.keys(overrides).filter((k) => (PATTERN_GROUPS as readonly string[]).includes(k)).sort()).toEqual(
      [...PATTERN_GROUPS].sort(),
    );
  });

  it.for(CASES)('classifies $name as $state', async ({ steps, prompt, state, signal }, ctx) => {
    const driver = await startAgent(ctx);
    let screen = (await waitFor('the prompt', () => driver.snapshot(), (s) => atPrompt(s.screen))).screen;
    for (const [i, [line, shown]] of steps.entries()) {
      await driver.submit(line);
      const last = i === steps.length - 1;
      const seen = (s: string) => s.includes(shown) && (!last || !prompt || atPrompt(s));
      screen = (await waitFor(`${JSON.stringify(shown)} after ${line}`, () => driver.snapshot(), (s) => seen(s.screen))).screen;
    }
    // The screen alone (exited: null): a crashed agent must read dead from its screen too, for a
    // driver that cannot see the exit status.
    const reading = classify({ kind: 'custom', overrides, screen, sessionExists: true });
    expect(reading.state, `screen:\n${screen}`).toBe(state);
    if (signal) expect(reading.evidence.map((e) => e.signal)).toContain(signal);
  });
});
