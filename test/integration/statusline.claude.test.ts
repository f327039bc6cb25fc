import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, isolatedEnv, ROOT, sos } from '../helpers/cli.js';
import { tempDir } from '../helpers/isolation.js';
import { tmuxAvailable } from '../helpers/lifecycle.js';

/**
 * `sos statusline` as Claude Code's status-line command, run by the real Claude Code (the pinned
 * devDependency) in a real tmux pane against the fake Anthropic server, offline: Claude Code
 * hands it the session on stdin and shows the line it prints. With an API key Claude Code passes
 * no `rate_limits` (they are for subscription sessions; test/fixtures/statusline/ holds the real
 * input of 2.1.332, and the rate_limits shape is tested in cli.usage.test.ts).
 */

const CLAUDE = join(ROOT, 'node_modules', '.bin', 'claude');
const KEY = 'sk-test-statusline-0123456789abcdef';
const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'statusline', 'claude-2.1.332-api-key.json');

const fake = (await import(new URL('../helpers/fake-models.mjs', import.meta.url).href)) as {
  startAnthropic(script: { turns: unknown[] }): Promise<{ url: string; close(): Promise<void> }>;
};

async function until<T>(what: string, fn: () => T | undefined, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe.skipIf(!tmuxAvailable)('sos statusline in the real Claude Code', () => {
  it('is run by Claude Code with its session and shows the agent, model and spend in its status line', async (ctx) => {
    const dir = tempDir(ctx);
    const work = join(dir, 'work');
    const config = join(dir, 'claude');
    mkdirSync(work, { recursive: true });
    mkdirSync(config, { recursive: true });
    const env = isolatedEnv(join(dir, 'home'), { SOS_DB: join(dir, 'sos.db') });
    for (const args of [['init'], ['agents', 'add', 'kasra', '--kind', 'claude', '--workdir', work, '--plan', 'max']]) {
      const r = await sos(args, env);
      expect(r.code, r.stderr).toBe(0);
    }
    expect((await sos(['usage', 'record', '--model', 'claude-sonnet-4-5', '--input', '100000', '--output', '10000', '--as', 'kasra'], env)).code).toBe(0);

    const server = await fake.startAnthropic({ turns: [] });
    ctx.onTestFinished(() => server.close());
    // What a user writes in settings.json, and the answers to Claude Code's first-run questions.
    writeFileSync(join(config, 'settings.json'), JSON.stringify({ statusLine: { type: 'command', command: `${process.execPath} ${BIN} statusline` } }));
    writeFileSync(
      join(config, '.claude.json'),
      JSON.stringify({
        hasCompletedOnboarding: true,
        theme: 'dark',
        customApiKeyResponses: { approved: [KEY.slice(-20)], rejected: [] },
        projects: { [work]: { hasTrustDialogAccepted: true, hasCompletedProjectOnboarding: true } },
      }),
    );
    const socket = join(dir, 'tmux.sock');
    ctx.onTestFinished(() => {
      try {
        execFileSync('tmux', ['-S', socket, 'kill-server'], { stdio: 'ignore' });
      } catch {
        // already gone
      }
    });
    const vars = { ...env, CLAUDE_CONFIG_DIR: config, ANTHROPIC_BASE_URL: server.url, ANTHROPIC_API_KEY: KEY, DISABLE_AUTOUPDATER: '1' };
    const envArgs = Object.entries(vars).flatMap(([k, v]) => (v === undefined ? [] : ['-e', `${k}=${v}`]));
    execFileSync('tmux', ['-S', socket, 'new-session', '-d', '-s', 'claude', '-x', '140', '-y', '30', '-c', work, ...envArgs, CLAUDE]);
    const screen = () => execFileSync('tmux', ['-S', socket, 'capture-pane', '-p', '-t', 'claude'], { encoding: 'utf8' });
    const line = await until('the sos status line in Claude Code', () => screen().split('\n').find((l) => l.includes('kasra ·')), 45_000);
    // The model is Claude Code's default, by its display name; 110,000 counted tokens of the max
    // plan's estimated 220,000 in the window just opened; $0.30 + $0.15 of claude-sonnet-4-5 today.
    expect(line.trim()).toMatch(/^kasra · [A-Z][a-z]+ [0-9.]+ · 5h 50% \(resets \d\d:\d\dZ\) · today \$0\.45( |$)/);

    // The fixture is the input Claude Code 2.1.332 really sends (captured the same way).
    const input = JSON.parse(readFileSync(FIXTURE, 'utf8')) as { model: { display_name: string }; workspace: { current_dir: string } };
    const r = await sos(['statusline', '--json'], env, { input: JSON.stringify({ ...input, workspace: { ...input.workspace, current_dir: work } }) });
    expect(r.code, r.stderr).toBe(0);
    expect(r.json()).toMatchObject({ agent: 'kasra', model: input.model.display_name, readings: 0, todayCostMicros: 450_000 });
  });
});
