/**
 * Commands are data. Each noun module exports a `CommandSpec` tree; `src/cli.ts` turns the tree
 * into commander commands and `sos completion` turns the same tree into shell completions, so help,
 * parsing and completion never drift. Handlers are imported lazily: building the program for
 * `sos --help` loads no handler, no core module and no backend.
 */

/** What a shell may offer for an argument or option value. */
export type Completer = 'agents' | 'squads' | 'projects' | 'files';

export interface ArgSpec {
  name: string;
  summary: string;
  /** Default true. */
  required?: boolean;
  variadic?: boolean;
  choices?: readonly string[];
  complete?: Completer;
}

export interface OptionSpec {
  /** Commander flags, e.g. `--kind <kind>` or `--json`. */
  flags: string;
  summary: string;
  choices?: readonly string[];
  /** May be given several times; the handler receives an array. */
  repeatable?: boolean;
  complete?: Completer;
}

export interface GlobalOptions {
  db?: string;
  project?: string;
  as?: string;
  token?: string;
  json: boolean;
  quiet: boolean;
}

export interface Invocation {
  args: Record<string, string | string[] | undefined>;
  options: Record<string, unknown>;
  globals: GlobalOptions;
  env: NodeJS.ProcessEnv;
  cwd: string;
  stdin: NodeJS.ReadableStream;
  /** Where streaming commands (`--follow`) write as they go. */
  stdout: NodeJS.WritableStream;
}

/** A handler returns data; the CLI prints it as JSON (`--json`) or as the human text. */
export interface Output {
  data: unknown;
  /** Human rendering; when absent, the data is printed as indented JSON. */
  human?: string;
  /** What `--quiet` prints (e.g. just an id); when absent `--quiet` prints nothing. */
  quiet?: string;
  /** Non-zero exit without an error (e.g. `sos doctor` finding something broken). */
  exitCode?: number;
}

export type Handler = (inv: Invocation) => Promise<Output>;

export interface CommandSpec {
  name: string;
  summary: string;
  /** Help group for top-level commands. */
  group?: string;
  args?: readonly ArgSpec[];
  options?: readonly OptionSpec[];
  subcommands?: readonly CommandSpec[];
  /** Loads the handler on demand. Absent on a noun that only groups verbs. */
  handler?: () => Promise<Handler>;
  examples?: readonly string[];
}

/** `lazy(() => import('./agents.run.js'), 'list')`: the module loads only when the verb runs. */
export function lazy<M extends Record<string, unknown>, K extends keyof M & string>(
  load: () => Promise<M>,
  name: K,
): () => Promise<Handler> {
  return async () => (await load())[name] as unknown as Handler;
}

export const GLOBAL_OPTIONS: readonly OptionSpec[] = [
  {
    flags: '--db <path|url>',
    summary: 'Store database: SQLite file or postgres:// URL (SOS_DB)',
    complete: 'files',
  },
  { flags: '--project <slug>', summary: 'project to act in (SOS_PROJECT)', complete: 'projects' },
  { flags: '--as <agent>', summary: 'act as this agent, in local trust (SOS_AGENT)', complete: 'agents' },
  { flags: '--token <token>', summary: 'bearer token; identity and project come from it (SOS_TOKEN)' },
  { flags: '--json', summary: 'machine-readable output (errors too)' },
  { flags: '-q, --quiet', summary: 'print only what scripts need' },
];
