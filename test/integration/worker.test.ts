import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, type TestContext } from 'vitest';
import { BIN, isolatedEnv, ROOT, sos } from '../helpers/cli.js';
import { ADAPTERS, type AdapterFixture, tempDir } from '../helpers/isolation.js';

/**
 * `sos worker` through the built CLI with real git, a real SQLite Store and the real Claude Code
 * (node_modules/.bin/claude) against the scripted fake Anthropic server, offline; the shell
 * executor with real commands behind the governance gate.
 */

const CLAUDE = join(ROOT, 'node_modules', '.bin', 'claude');
const CODEX = join(ROOT, 'node_modules', '.bin', 'codex');
const CCUSAGE_CODEX = join(ROOT, 'node_modules', '.bin', 'ccusage-codex');

interface FakeServer {
  url: string;
  requests: { kind?: string; exhausted?: boolean }[];
  close(): Promise<void>;
}
const fake = (await import(new URL('../helpers/fake-models.mjs', import.meta.url).href)) as {
  startAnthropic(script: { turns: unknown[]; idPrefix?: string }): Promise<FakeServer>;
  startOpenAI(script: { turns: unknown[]; idPrefix?: string; model?: string }): Promise<FakeServer>;
};

interface Report {
  task: string;
  status: string;
  end: string;
  commits: string[];
  branch: string;
  error: string | null;
}
interface TaskJson {
  status: string;
  result: string | null;
  error: string | null;
  artifacts: string[];
  attempt: number;
  usage: { events: number; inputTokens: number; outputTokens: number; cacheReadTokens: number };
}

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', args, { cwd, encoding: 'utf8' }).trim();
}

async function world(adapter: AdapterFixture, ctx: TestContext) {
  const dir = tempDir(ctx);
  const target = adapter.name === 'sqlite' ? { db: join(dir, 'sos.db'), env: {} as Record<string, string> } : adapter.target(ctx);
  const env = isolatedEnv(join(dir, 'home'), {
    ...target.env,
    SOS_DB: target.db,
    CLAUDE_CONFIG_DIR: join(dir, 'claude'),
    CODEX_HOME: join(dir, 'codex'),
    SOS_FAKE_OPENAI_KEY: 'dummy',
    ANTHROPIC_API_KEY: 'dummy',
    DISABLE_AUTOUPDATER: '1',
    DISABLE_TELEMETRY: '1',
    DISABLE_ERROR_REPORTING: '1',
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    HTTPS_PROXY: 'http://127.0.0.1:9',
    HTTP_PROXY: 'http://127.0.0.1:9',
    NO_PROXY: '127.0.0.1,localhost',
    TERM: 'dumb',
  });
  mkdirSync(join(dir, 'claude'), { recursive: true });
  mkdirSync(join(dir, 'codex'), { recursive: true });
  const run = async (args: string[], extra: Record<string, string> = {}) => sos(args, { ...env, ...extra });
  for (const a of [['init'], ['agents', 'add', 'kasra', '--cap', 'code']]) expect((await run(a)).code).toBe(0);
  const repo = join(dir, 'repo');
  mkdirSync(repo);
  git(repo, 'init', '-q', '-b', 'main');
  git(repo, 'config', 'user.email', 'w@example.test');
  git(repo, 'config', 'user.name', 'worker test');
  execFileSync('sh', ['-c', 'echo hello > a.txt'], { cwd: repo });
  git(repo, 'add', 'a.txt');
  git(repo, 'commit', '-qm', 'init');
  const worktrees = join(dir, 'home', 'data', 'sos', 'worktrees', 'default');
  /** `sos worker … --once` as a separate process (never spawnSync: the fake model lives in this process). */
  const worker = (args: string[], extra: Record<string, string> = {}) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const c = spawn(process.execPath, [BIN, '--json', 'worker', '--agent', 'kasra', '--repo', repo, '--once', ...args], { env: { ...env, ...extra }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      c.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      c.on('error', reject);
      c.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  const show = async (id: string) => (await run(['--json', 'tasks', 'show', id])).json<TaskJson>();
  return { dir, env, run, repo, worktrees, worker, show };
}

describe.each(ADAPTERS)('sos worker on $name', (adapter) => {
describe.skipIf(!adapter.available)(adapter.name, () => {
  it('Claude Code edits a file and commits in the task’s worktree: task done with the commit, usage once, worktree removed, branch kept', { timeout: 120_000 }, async (ctx) => {
    expect(existsSync(CLAUDE), 'node_modules/.bin/claude: run `npm ci`').toBe(true);
    const w = await world(adapter, ctx);
    const id = (await w.run(['tasks', 'create', 'add b.txt', '--description', 'Create b.txt saying "made by the worker" and commit it.', '-q'])).stdout.trim();
    const usage = { input_tokens: 100, output_tokens: 20 };
    // The file goes where Claude Code says its working directory is: the worktree.
    const cwdOf = (body: unknown) => /Primary working directory: ([^\s"\\]+)/.exec(JSON.stringify(body))?.[1] ?? 'missing';
    const server = await fake.startAnthropic({
      idPrefix: 'wk',
      turns: [
        { tool: { name: 'Write', input: (body: unknown) => ({ file_path: `${cwdOf(body)}/b.txt`, content: 'made by the worker\n' }) }, usage },
        { tool: { name: 'Bash', input: { command: 'git add b.txt && git commit -qm "add b.txt"', description: 'commit' } }, usage },
        { text: 'Added b.txt and committed it.', usage },
      ],
    });
    ctx.onTestFinished(() => server.close());
    const r = await w.worker(['--program', CLAUDE, '--task-timeout', '90s'], { ANTHROPIC_BASE_URL: server.url });
    expect(r.code, r.stderr).toBe(0);
    const [report] = (JSON.parse(r.stdout) as { tasks: Report[] }).tasks;
    expect(report, r.stderr).toMatchObject({ task: id, status: 'done', end: 'exited', branch: `sos/${id}` });
    const last = (server.requests.filter((q) => q.kind === 'main').at(-1) as { body?: unknown } | undefined)?.body;
    expect(report!.commits, JSON.stringify(last).slice(-3000)).toHaveLength(1);
    // The branch holds the file; the main checkout does not; the worktree is gone.
    expect(git(w.repo, 'show', `sos/${id}:b.txt`)).toBe('made by the worker');
    expect(existsSync(join(w.repo, 'b.txt'))).toBe(false);
    expect(git(w.repo, 'rev-list', `main..sos/${id}`)).toBe(report!.commits[0]);
    expect(git(w.repo, 'worktree', 'list')).not.toContain(id);
    expect(existsSync(join(w.worktrees, id))).toBe(false);
    const task = await w.show(id);
    expect(task).toMatchObject({ status: 'done', result: 'Added b.txt and committed it.' });
    expect(task.artifacts).toContain(`branch:sos/${id}`);
    expect(task.artifacts).toContain(`commit:${report!.commits[0]}`);
    expect(task.artifacts.find((a) => a.startsWith('diffstat:'))).toMatch(/b\.txt \| 1 \+/);
    // Three model calls, each counted once with the transcript's final counts (20 output tokens, not the stream's 1).
    expect(task.usage).toMatchObject({ events: 3, inputTokens: 300, outputTokens: 60 });
    // The transcript importer, run over the same transcript, adds nothing.
    const imported = await w.run(['--json', 'usage', 'import', '--source', 'claude', '--path', join(w.dir, 'claude')]);
    expect(imported.code, imported.stderr).toBe(0);
    const ledger = (await w.run(['--json', 'usage', '--by', 'project'])).stdout;
    expect(ledger, imported.stdout).toMatch(/"events":\s*3\b/);
    expect(ledger).not.toMatch(/"events":\s*[4-9]/);
    // A handoff engram says what was done.
    const memories = await w.run(['--json', 'memory', 'recall', `task ${id} b.txt`]);
    expect(memories.stdout).toContain(`Task ${id}`);
  });

  it('Codex edits a file and commits in the task’s worktree with its shell tool: task done with the commit, usage once (the rollout’s, as ccusage-codex counts it), worktree removed', { timeout: 120_000 }, async (ctx) => {
    expect(existsSync(CODEX), 'node_modules/.bin/codex: run `npm ci`').toBe(true);
    const w = await world(adapter, ctx);
    const id = (await w.run(['tasks', 'create', 'add c.txt', '--description', 'Create c.txt saying "made by codex" and commit it.', '-q'])).stdout.trim();
    const server = await fake.startOpenAI({
      idPrefix: 'cx',
      model: 'gpt-5-codex',
      turns: [
        { tool: { name: ['exec_command', 'shell_command', 'shell'], input: { cmd: 'printf "made by codex\\n" > c.txt && git add c.txt && git commit -qm "add c.txt"' } }, usage: { input_tokens: 1_000, cached_tokens: 200, output_tokens: 40 } },
        { text: 'Added c.txt and committed it.', usage: { input_tokens: 1_300, cached_tokens: 1_000, output_tokens: 15, reasoning_tokens: 5 } },
      ],
    });
    ctx.onTestFinished(() => server.close());
    // Codex's model provider: the fake server, speaking the Responses API over SSE.
    const config = [
      'model = "gpt-5-codex"',
      'model_provider = "fake"',
      '[model_providers.fake]',
      'name = "fake"',
      `base_url = "${server.url}/v1"`,
      'wire_api = "responses"',
      'env_key = "SOS_FAKE_OPENAI_KEY"',
      '',
    ].join('\n');
    writeFileSync(join(w.dir, 'codex', 'config.toml'), config);
    const r = await w.worker(['--exec', 'codex', '--program', CODEX, '--task-timeout', '90s']);
    expect(r.code, r.stderr).toBe(0);
    const [report] = (JSON.parse(r.stdout) as { tasks: Report[] }).tasks;
    expect(report, r.stderr).toMatchObject({ task: id, status: 'done', end: 'exited', branch: `sos/${id}` });
    expect(server.requests.filter((q) => q.kind === 'main' && !q.exhausted)).toHaveLength(2);
    expect(report!.commits, JSON.stringify(server.requests.at(-1)).slice(-3000)).toHaveLength(1);
    expect(git(w.repo, 'show', `sos/${id}:c.txt`)).toBe('made by codex');
    expect(git(w.repo, 'log', '-1', '--format=%s', `sos/${id}`)).toBe('add c.txt');
    expect(existsSync(join(w.repo, 'c.txt'))).toBe(false);
    expect(git(w.repo, 'worktree', 'list')).not.toContain(id);
    expect(existsSync(join(w.worktrees, id))).toBe(false);
    const task = await w.show(id);
    expect(task).toMatchObject({ status: 'done', result: 'Added c.txt and committed it.' });
    expect(task.artifacts).toContain(`commit:${report!.commits[0]}`);
    expect(task.artifacts.find((a) => a.startsWith('diffstat:'))).toMatch(/c\.txt \| 1 \+/);
    // Two model responses, once each: OpenAI's input includes the cached part, stored apart.
    expect(task.usage).toMatchObject({ events: 2, inputTokens: 2_300 - 1_200, cacheReadTokens: 1_200, outputTokens: 55 });
    // The oracle: ccusage-codex over the same CODEX_HOME counts the same tokens.
    const oracle = JSON.parse(execFileSync(CCUSAGE_CODEX, ['session', '--json', '--offline'], { env: { ...w.env, CODEX_HOME: join(w.dir, 'codex') }, encoding: 'utf8' })) as {
      sessions: { inputTokens: number; cachedInputTokens: number; outputTokens: number }[];
    };
    expect(oracle.sessions).toHaveLength(1);
    expect(oracle.sessions[0]).toMatchObject({ inputTokens: task.usage.inputTokens + task.usage.cacheReadTokens, cachedInputTokens: task.usage.cacheReadTokens, outputTokens: task.usage.outputTokens });
    // The Codex importer over the same rollouts adds nothing.
    const imported = await w.run(['--json', 'usage', 'import', '--source', 'codex', '--path', join(w.dir, 'codex')]);
    expect(imported.code, imported.stderr).toBe(0);
    expect((await w.show(id)).usage.events).toBe(2);
    const ledger = (await w.run(['--json', 'usage', '--by', 'project'])).stdout;
    expect(ledger, imported.stdout).toMatch(/"events":\s*2\b/);
  });

  it('a shell task is refused (not retryable) until its shell execution is approved, then runs its argv in the worktree', { timeout: 60_000 }, async (ctx) => {
    const w = await world(adapter, ctx);
    const spec = '```sos-worker\n{"command": ["git", "commit", "--allow-empty", "-qm", "checked by shell"]}\n```';
    const id = (await w.run(['tasks', 'create', 'record a check', '--description', `An empty commit.\n\n${spec}`, '-q'])).stdout.trim();
    const first = await w.worker(['--exec', 'shell']);
    expect(first.code, first.stderr).toBe(0);
    expect((JSON.parse(first.stdout) as { tasks: Report[] }).tasks[0]).toMatchObject({ task: id, status: 'refused' });
    const refused = await w.show(id);
    expect(refused.status).toBe('failed');
    expect(refused.error).toMatch(/is not approved: approval apr_\w+ is pending/);
    const approval = /approval (apr_\w+)/.exec(refused.error!)![1]!;
    const pending = (await w.run(['--json', 'approvals', 'show', approval])).json<{ method: string; status: string; proposal: { details: { task: string; command: string[] } } }>();
    expect(pending).toMatchObject({ method: 'shell', status: 'pending', proposal: { details: { task: id, command: ['git', 'commit', '--allow-empty', '-qm', 'checked by shell'] } } });
    expect(git(w.repo, 'branch', '--list', `sos/${id}`)).toBe(''); // nothing ran: no worktree was made

    expect((await w.run(['approvals', 'approve', approval])).code).toBe(0);
    expect((await w.run(['--json', 'approvals', 'show', approval])).json<{ status: string }>().status).toBe('approved');
    expect((await w.run(['tasks', 'redrive', id])).code).toBe(0);
    const second = await w.worker(['--exec', 'shell']);
    expect(second.code, second.stderr).toBe(0);
    const [report] = (JSON.parse(second.stdout) as { tasks: Report[] }).tasks;
    expect(report).toMatchObject({ task: id, status: 'done' });
    expect(git(w.repo, 'log', '-1', '--format=%s', `sos/${id}`)).toBe('checked by shell');
    expect((await w.run(['--json', 'approvals', 'show', approval])).json<{ status: string; outcome: string }>()).toMatchObject({ status: 'executed', outcome: 'exit 0' });
  });

  it('a string command is refused: it would need a shell', { timeout: 30_000 }, async (ctx) => {
    const w = await world(adapter, ctx);
    const id = (await w.run(['tasks', 'create', 'pipe', '--description', '```sos-worker\n{"command": "ls | wc -l"}\n```', '-q'])).stdout.trim();
    const r = await w.worker(['--exec', 'shell']);
    expect(r.code, r.stderr).toBe(0);
    const task = await w.show(id);
    expect(task.status).toBe('failed');
    expect(task.error).toMatch(/JSON array of arguments: a string would need a shell/);
  });

  it('a hung run is killed at --task-timeout with its process group, and the task fails retryable with the output tail', { timeout: 60_000 }, async (ctx) => {
    const w = await world(adapter, ctx);
    const marker = join(w.dir, 'child.pid');
    const script = `echo started; echo $$ > ${marker}; sleep 60 & wait`;
    const id = (await w.run(['tasks', 'create', 'hang', '--description', '```sos-worker\n' + JSON.stringify({ command: ['sh', '-c', script] }) + '\n```', '-q'])).stdout.trim();
    const approval = (await w.worker(['--exec', 'shell'])).stdout;
    expect(approval).toContain('refused');
    const apr = /approval (apr_\w+)/.exec((await w.show(id)).error!)![1]!;
    expect((await w.run(['approvals', 'approve', apr])).code).toBe(0);
    expect((await w.run(['tasks', 'redrive', id])).code).toBe(0);
    const started = Date.now();
    const r = await w.worker(['--exec', 'shell', '--task-timeout', '2s']);
    expect(r.code, r.stderr).toBe(0);
    expect(Date.now() - started).toBeLessThan(20_000);
    expect((JSON.parse(r.stdout) as { tasks: Report[] }).tasks[0]).toMatchObject({ task: id, status: 'retrying', end: 'timeout' });
    const task = await w.show(id);
    expect(task.status).toBe('queued');
    expect(task.error).toMatch(/killed after --task-timeout 2s\n--- last output ---\nstarted/);
    const pid = Number(readFileSync(marker, 'utf8'));
    expect(() => process.kill(pid, 0)).toThrow(); // the shell and its sleep are gone
    expect(existsSync(join(w.worktrees, id))).toBe(false);
  });
});
});
