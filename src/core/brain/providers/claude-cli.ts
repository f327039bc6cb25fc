import { spawn } from 'node:child_process';
import { UsageError } from '../../errors.js';
import { extractJsonObject } from '../decision.js';
import { deadline } from '../deadline.js';
import {
  type DecideRequest,
  type DecideResponse,
  type Provider,
  ProviderError,
  promptWithRetry,
  retryableStatus,
} from '../provider.js';
import { anthropicUsage } from './anthropic.js';

/**
 * The `claude` CLI in print mode, for an operator whose models come with a Claude subscription
 * rather than an API key: `claude -p --output-format json --model <m> [--append-system-prompt <s>]
 * --no-session-persistence`, run as an argument vector (never a shell), with the prompt on stdin
 * (never in argv, where `ps` shows it and its length is capped). The CLI has no forced tool call,
 * so the decision is read from its result text, which must be exactly one JSON object (a ```json
 * fence is tolerated; prose around it is refused by `parseDecision` with a reason for the retry).
 *
 * - `--no-session-persistence` (unless `persistSession`): a brain call is not a conversation to
 *   resume, and a transcript it left would be imported again by `sos usage import`.
 * - The output limit goes in `CLAUDE_CODE_MAX_OUTPUT_TOKENS`, the CLI having no flag for it.
 * - The child leads its own process group; on the deadline or the caller's cancellation the whole
 *   group is killed (SIGKILL), so nothing it started (tools, MCP servers) outlives the call.
 * - A failed API call shows as `is_error` with `api_error_status`; that status is the error's.
 */

export const CLAUDE_CLI_DEFAULT_TIMEOUT_MS = 300_000;
const MAX_STDOUT = 8 * 1024 * 1024;
const MAX_STDERR = 64 * 1024;

export interface ClaudeCliOptions {
  /** Default `claude-cli`. */
  name?: string;
  /** Path of the executable, or a name looked up on PATH (default `claude`). */
  executable?: string;
  /** Per call, in milliseconds (default 300 s: the CLI starts, then retries on its own). */
  timeoutMs?: number;
  /** The child's environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Keep the CLI's session transcript (default false: `--no-session-persistence`). */
  persistSession?: boolean;
  /** Appended after the standard arguments, e.g. `['--tools', '']`. */
  extraArgs?: string[];
}

interface CliResult {
  type?: unknown;
  subtype?: unknown;
  is_error?: unknown;
  result?: unknown;
  usage?: unknown;
  total_cost_usd?: unknown;
  modelUsage?: unknown;
  api_error_status?: unknown;
  stop_reason?: unknown;
}

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function tail(text: string, n = 300): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > n ? `…${line.slice(-n)}` : line;
}

/** The model that did the work: the one with the most tokens in `modelUsage`. */
function mainModel(modelUsage: unknown, fallback: string): string {
  if (!modelUsage || typeof modelUsage !== 'object') return fallback;
  let best: string | undefined;
  let most = -1;
  for (const [model, u] of Object.entries(modelUsage as Record<string, unknown>)) {
    const r = (u && typeof u === 'object' ? u : {}) as Record<string, unknown>;
    const n = (Number(r['inputTokens']) || 0) + (Number(r['outputTokens']) || 0) + (Number(r['cacheReadInputTokens']) || 0);
    if (n > most) [best, most] = [model, n];
  }
  return best ?? fallback;
}

export class ClaudeCliProvider implements Provider {
  readonly kind = 'claude-cli' as const;
  readonly name: string;
  private readonly executable: string;
  private readonly timeoutMs: number;
  private readonly env: NodeJS.ProcessEnv;
  private readonly cwd: string | undefined;
  private readonly persistSession: boolean;
  private readonly extraArgs: string[];

  constructor(options: ClaudeCliOptions = {}) {
    this.name = options.name ?? 'claude-cli';
    this.executable = options.executable ?? 'claude';
    if (!this.executable.trim()) throw new UsageError(`${this.name}: the executable path is empty`);
    this.timeoutMs = options.timeoutMs ?? CLAUDE_CLI_DEFAULT_TIMEOUT_MS;
    if (!Number.isInteger(this.timeoutMs) || this.timeoutMs <= 0) {
      throw new UsageError(`${this.name}: the timeout must be a positive number of milliseconds`);
    }
    this.env = options.env ?? process.env;
    this.cwd = options.cwd;
    this.persistSession = options.persistSession ?? false;
    this.extraArgs = [...(options.extraArgs ?? [])];
  }

  /** The argument vector (no prompt: it goes on stdin). */
  args(req: DecideRequest): string[] {
    return [
      '-p',
      '--output-format',
      'json',
      '--model',
      req.model,
      ...(req.system ? ['--append-system-prompt', req.system] : []),
      ...(this.persistSession ? [] : ['--no-session-persistence']),
      ...this.extraArgs,
    ];
  }

  async decide(req: DecideRequest): Promise<DecideResponse> {
    const run = await this.run(req);
    let parsed: CliResult | undefined;
    try {
      const value: unknown = JSON.parse(run.stdout.trim());
      if (value && typeof value === 'object' && !Array.isArray(value)) parsed = value as CliResult;
    } catch {
      parsed = undefined;
    }
    const how = run.signal ? `was killed by ${run.signal}` : `exited with ${run.code}`;
    if (!parsed) {
      const said = tail(run.stderr) || tail(run.stdout) || '(no output)';
      throw new ProviderError(this.name, 'exit', `${this.name}: ${this.executable} ${how} without its JSON result: ${said}`, {
        hint: 'Run the same command by hand to see what it says (is it logged in, is it Claude Code?).',
      });
    }
    if (parsed.is_error === true || run.code !== 0) {
      const status = typeof parsed.api_error_status === 'number' ? parsed.api_error_status : 'exit';
      const said = typeof parsed.result === 'string' ? tail(parsed.result) : tail(run.stderr) || String(parsed.subtype ?? 'error');
      throw new ProviderError(this.name, status, `${this.name}: ${this.executable} ${run.code === 0 ? 'reported an error' : how}: ${said}`, {
        retryable: retryableStatus(status),
      });
    }
    const text = typeof parsed.result === 'string' ? parsed.result : null;
    const extracted = text === null ? undefined : extractJsonObject(text);
    const out: DecideResponse = {
      raw: extracted?.ok ? extracted.value : (text ?? ''),
      text,
      usage: anthropicUsage(parsed.usage),
      model: mainModel(parsed.modelUsage, req.model),
    };
    if (typeof parsed.total_cost_usd === 'number' && Number.isFinite(parsed.total_cost_usd)) out.costUsd = parsed.total_cost_usd;
    if (typeof parsed.stop_reason === 'string') out.stopReason = parsed.stop_reason;
    return out;
  }

  private run(req: DecideRequest): Promise<Run> {
    const limit = deadline(this.timeoutMs, req.signal);
    if (limit.reason() === 'aborted') {
      limit.clear();
      return Promise.reject(new ProviderError(this.name, 'aborted', `${this.name}: the call was cancelled before it started`));
    }
    const env: NodeJS.ProcessEnv = { ...this.env, CLAUDE_CODE_MAX_OUTPUT_TOKENS: String(req.maxTokens) };
    return new Promise<Run>((resolve, reject) => {
      const child = spawn(this.executable, this.args(req), {
        cwd: this.cwd,
        env,
        stdio: ['pipe', 'pipe', 'pipe'],
        detached: true,
        windowsHide: true,
      });
      let stdout = '';
      let stderr = '';
      let overflow = false;

      const killGroup = () => {
        if (child.pid === undefined) return;
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // the group is gone already (or was never made): the child alone
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        }
      };
      const stop = () => {
        killGroup();
        child.stdout.destroy();
        child.stderr.destroy();
      };
      limit.signal.addEventListener('abort', stop, { once: true });

      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        stdout += chunk;
        if (stdout.length > MAX_STDOUT && !overflow) {
          overflow = true;
          stop();
        }
      });
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
        if (stderr.length < MAX_STDERR) stderr += chunk.slice(0, MAX_STDERR - stderr.length);
      });
      child.stdin.on('error', () => undefined); // EPIPE when the child exits without reading

      let settled = false;
      const settle = (outcome: () => void) => {
        if (settled) return;
        settled = true;
        limit.signal.removeEventListener('abort', stop);
        limit.clear();
        outcome();
      };
      child.on('error', (err: NodeJS.ErrnoException) => {
        // A child that never started has no 'close' to wait for.
        if (child.pid !== undefined) return;
        const options: ConstructorParameters<typeof ProviderError>[3] = { cause: err };
        if (err.code === 'ENOENT') options.hint = 'Install Claude Code or configure the path of its executable.';
        settle(() => reject(new ProviderError(this.name, 'exit', `${this.name}: cannot run ${this.executable}: ${err.message}`, options)));
      });
      // Whatever the child left in its group (tools, MCP servers) goes with it.
      child.on('exit', () => killGroup());
      child.on('close', (code, signal) => {
        const reason = limit.reason();
        settle(() => {
          if (reason === 'timeout') {
            reject(new ProviderError(this.name, 'timeout', `${this.name}: ${this.executable} did not finish within ${this.timeoutMs} ms and was killed`));
          } else if (reason === 'aborted') {
            reject(new ProviderError(this.name, 'aborted', `${this.name}: the call was cancelled and ${this.executable} was killed`));
          } else if (overflow) {
            reject(new ProviderError(this.name, 'exit', `${this.name}: ${this.executable} printed more than ${MAX_STDOUT} bytes and was killed`));
          } else {
            resolve({ code, signal, stdout, stderr });
          }
        });
      });
      child.stdin.end(promptWithRetry(req.prompt, req.retryError));
    });
  }
}
