import type { ExecutorName } from './types.js';

/**
 * Each executor as an argument vector and a reader of its output. Nothing here goes through a
 * shell: the prompt is one argument or stdin, the shell executor's command is the task's own
 * vector.
 */

/**
 * What Claude Code may do unasked in a worktree: edit files, read, search, git, and the sos tools.
 * `--dangerously-skip-permissions` is refused under root and would allow any command.
 */
export const CLAUDE_TOOLS = 'Edit,Write,Read,Glob,Grep,Bash(git:*),mcp__sos__*';

export interface Launch {
  program: string;
  args: string[];
  /** Written to the CLI's stdin, then closed. */
  stdin: string;
}

/** Whether Codex arguments already name a sandbox (`codex exec` refuses a second `--sandbox`). */
function chosesSandbox(args: readonly string[]): boolean {
  return args.some((a) => a === '-s' || a === '--sandbox' || a.startsWith('--sandbox=') || a.startsWith('-s=') || a === '--dangerously-bypass-approvals-and-sandbox');
}

export function launchFor(
  executor: ExecutorName,
  input: { program?: string; prompt: string; cliArgs: readonly string[]; command: readonly string[] | null; mcpConfig: string | null },
): Launch {
  switch (executor) {
    case 'claude':
      return {
        program: input.program ?? 'claude',
        args: [
          '-p',
          '--output-format',
          'stream-json',
          '--verbose',
          '--permission-mode',
          'acceptEdits',
          '--allowedTools',
          CLAUDE_TOOLS,
          ...(input.mcpConfig ? ['--mcp-config', input.mcpConfig] : []),
          ...input.cliArgs,
        ],
        stdin: input.prompt,
      };
    case 'codex':
      // `-` reads the prompt from stdin. Codex's own `workspace-write` sandbox keeps a worktree's
      // git directory (under the repository's `.git/worktrees/`) read-only, even with `--add-dir`,
      // so nothing could be committed: the worker runs it without that sandbox unless the task's
      // `--cli-arg`s choose one (the worktree is then still where it edits, not what it may reach).
      return { program: input.program ?? 'codex', args: ['exec', '--json', ...(chosesSandbox(input.cliArgs) ? [] : ['--sandbox', 'danger-full-access']), ...input.cliArgs, '-'], stdin: input.prompt };
    case 'gemini':
      return { program: input.program ?? 'gemini', args: ['--output-format', 'stream-json', '--approval-mode', 'auto_edit', ...input.cliArgs, '-p', input.prompt], stdin: '' };
    case 'shell': {
      const [program, ...args] = input.command ?? [];
      return { program: program!, args, stdin: '' };
    }
  }
}

/** One model call the CLI's stream reported, keyed as the transcript importer keys it. */
export interface StreamUsage {
  sourceKey: string;
  model: string;
  inputTokens: number;
  outputTokens: number;
  cacheWriteTokens: number;
  cacheReadTokens: number;
}

/** What a run's stdout said: the final message, whether the CLI called it an error, its session. */
export interface StreamSummary {
  result: string | null;
  isError: boolean;
  sessionId: string | null;
  usage: StreamUsage[];
}

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.floor(v) : 0);
const rec = (v: unknown): Record<string, unknown> | undefined => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined);

/**
 * Reads stdout line by line as it arrives. Claude's `stream-json` gives `system/init` (the
 * session), one `assistant` line per message (with `message.id` and `request_id`: the importer's
 * key) and a final `result`; Codex's `--json` gives `thread.started` and `item.completed` agent
 * messages; Gemini's `stream-json` gives `init`, assistant `message` deltas and `result`. Anything
 * else, and the shell executor's output, is kept only as the tail.
 */
export class StreamReader {
  private partial = '';
  private readonly summary: StreamSummary = { result: null, isError: false, sessionId: null, usage: [] };
  private geminiText = '';
  constructor(private readonly executor: ExecutorName) {}

  push(chunk: string): void {
    if (this.executor === 'shell') return;
    const lines = (this.partial + chunk).split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) this.line(line);
  }

  end(): StreamSummary {
    if (this.partial) this.line(this.partial);
    this.partial = '';
    if (this.executor === 'gemini' && this.summary.result === null && this.geminiText) this.summary.result = this.geminiText;
    return this.summary;
  }

  private line(line: string): void {
    if (!line.startsWith('{')) return;
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    if (this.executor === 'claude') this.claude(o);
    else if (this.executor === 'codex') this.codex(o);
    else this.gemini(o);
  }

  private claude(o: Record<string, unknown>): void {
    if (typeof o.session_id === 'string') this.summary.sessionId ??= o.session_id;
    if (o.type === 'result') {
      this.summary.result = typeof o.result === 'string' ? o.result : null;
      this.summary.isError = o.is_error === true;
      return;
    }
    const message = rec(o.message);
    const usage = rec(message?.usage);
    if (o.type !== 'assistant' || !message || !usage || typeof message.id !== 'string' || typeof o.request_id !== 'string') return;
    const model = typeof message.model === 'string' ? message.model : null;
    if (!model || model === '<synthetic>') return;
    const key = `${message.id}:${o.request_id}`;
    const event: StreamUsage = {
      sourceKey: key,
      model,
      inputTokens: num(usage.input_tokens),
      outputTokens: num(usage.output_tokens),
      cacheWriteTokens: num(usage.cache_creation_input_tokens),
      cacheReadTokens: num(usage.cache_read_input_tokens),
    };
    // One line per content block, same ids: the last one wins, as in the importer.
    const at = this.summary.usage.findIndex((u) => u.sourceKey === key);
    if (at >= 0) this.summary.usage[at] = event;
    else this.summary.usage.push(event);
  }

  private codex(o: Record<string, unknown>): void {
    if (o.type === 'thread.started' && typeof o.thread_id === 'string') this.summary.sessionId = o.thread_id;
    const item = rec(o.item);
    if (o.type === 'item.completed' && item?.type === 'agent_message' && typeof item.text === 'string') this.summary.result = item.text;
    if (o.type === 'turn.failed' || o.type === 'error') this.summary.isError = true;
  }

  private gemini(o: Record<string, unknown>): void {
    if (o.type === 'init' && typeof o.session_id === 'string') this.summary.sessionId = o.session_id;
    if (o.type === 'message' && o.role === 'assistant' && typeof o.content === 'string') this.geminiText += o.content;
    if (o.type === 'result') {
      if (typeof o.response === 'string') this.summary.result = o.response;
      if (o.status === 'error') this.summary.isError = true;
    }
  }
}

/** The last `max` characters of a run's output, kept as it streams. */
export class Tail {
  private text = '';
  constructor(private readonly max = 8_000) {}
  push(chunk: string): void {
    this.text = (this.text + chunk).slice(-this.max);
  }
  toString(): string {
    return this.text;
  }
}
