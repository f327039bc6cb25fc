/**
 * The completion model: the command registry flattened into one node per command path, with
 * everything a shell needs to complete there. Each shell emitter reads only this model, so the
 * three scripts agree on paths, options and values.
 */
import type { ArgSpec, CommandSpec, Completer, OptionSpec } from '../define.js';

export interface CompletionOption {
  /** Every spelling, short first as in the flags: `['-q', '--quiet']`. */
  names: readonly string[];
  summary: string;
  /** The option consumes the next word (`--kind <kind>`, `--db <path|url>`). */
  takesValue: boolean;
  choices?: readonly string[];
  complete?: Completer;
}

export interface CompletionArg {
  name: string;
  summary: string;
  variadic: boolean;
  choices?: readonly string[];
  complete?: Completer;
}

export interface CompletionNode {
  /** Command words after `sos`; `[]` is the top level. */
  path: readonly string[];
  subcommands: readonly { name: string; summary: string }[];
  /** Options valid at this path besides the global ones: its own, then its ancestors'. */
  options: readonly CompletionOption[];
  args: readonly CompletionArg[];
}

export interface CompletionModel {
  /** The program name completed, and run for dynamic values. */
  program: string;
  /** Valid at every path (commander parses program options before and after subcommands). */
  globals: readonly CompletionOption[];
  /** Depth-first, the top level first. */
  nodes: readonly CompletionNode[];
}

/** Global options whose value changes what `sos <noun> list` returns, so dynamic values forward them. */
export const FORWARDED_GLOBALS: readonly string[] = ['--db', '--project', '--token'];

/** Commander adds `-h, --help` to every command and `-V, --version` to the program. */
const HELP: OptionSpec = { flags: '-h, --help', summary: 'display help for command' };
const VERSION: OptionSpec = { flags: '-V, --version', summary: 'output the version number' };

export function toCompletionOption(spec: OptionSpec): CompletionOption {
  const words = spec.flags.split(/[\s,]+/).filter(Boolean);
  return {
    names: words.filter((w) => w.startsWith('-')),
    summary: spec.summary,
    takesValue: words.some((w) => w.startsWith('<') || w.startsWith('[')),
    ...(spec.choices ? { choices: spec.choices } : {}),
    ...(spec.complete ? { complete: spec.complete } : {}),
  };
}

function toCompletionArg(spec: ArgSpec): CompletionArg {
  return {
    name: spec.name,
    summary: spec.summary,
    variadic: spec.variadic === true,
    ...(spec.choices ? { choices: spec.choices } : {}),
    ...(spec.complete ? { complete: spec.complete } : {}),
  };
}

export function buildModel(
  commands: readonly CommandSpec[],
  globals: readonly OptionSpec[],
  program = 'sos',
): CompletionModel {
  const nodes: CompletionNode[] = [
    { path: [], subcommands: commands.map(summaryOf), options: [toCompletionOption(VERSION)], args: [] },
  ];
  const visit = (
    spec: CommandSpec,
    parentPath: readonly string[],
    inherited: readonly CompletionOption[],
  ) => {
    const path = [...parentPath, spec.name];
    const options = [...(spec.options ?? []).map(toCompletionOption), ...inherited];
    nodes.push({
      path,
      subcommands: (spec.subcommands ?? []).map(summaryOf),
      options,
      args: (spec.args ?? []).map(toCompletionArg),
    });
    for (const sub of spec.subcommands ?? []) visit(sub, path, options);
  };
  for (const spec of commands) visit(spec, [], []);
  return { program, globals: [...globals, HELP].map(toCompletionOption), nodes };
}

const summaryOf = (spec: CommandSpec) => ({ name: spec.name, summary: spec.summary });

/** POSIX shell single quoting (bash and zsh). */
export function shq(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}

/** The `case` pattern/key of a command path: words joined by spaces, `''` for the top level. */
export const pathKey = (path: readonly string[]): string => path.join(' ');

/**
 * The two `case PATH|OPTION` helpers that bash and zsh scripts share word for word: whether an
 * option takes a value, and how to complete that value. `valueTail` ends the second function.
 */
export function optionCaseFunctions(p: string, takesValueRows: readonly string[], valueRows: readonly string[], valueTail: string): string {
  return `# _${p}_takes_value PATH OPTION: succeeds when the option consumes the next word at that path.
_${p}_takes_value() {
  case $1'|'$2 in
${takesValueRows.join('\n')}
  esac
  return 1
}

# _${p}_value PATH OPTION: completes the value of an option.
_${p}_value() {
  case $1'|'$2 in
${valueRows.join('\n')}
  esac${valueTail}
}`;
}

/**
 * The `PATH|OPTION` case rows both shells need: whether an option consumes the next word, and
 * how its value completes. `value` renders a row's action, or undefined to leave the row out;
 * `kind` says whose row it is: a command's own option, a command's option shadowing a global one
 * of the same name, or a global option (matched at any path).
 */
export function optionCaseRows(
  model: CompletionModel,
  value: (option: CompletionOption, kind: 'command' | 'shadow' | 'global') => string | undefined,
): { takesValueRows: string[]; valueRows: string[] } {
  const takesValueRows: string[] = [];
  const valueRows: string[] = [];
  const globalValueNames = new Set(model.globals.filter((o) => o.takesValue).flatMap((o) => o.names));
  for (const node of model.nodes) {
    for (const option of node.options) {
      for (const name of option.names) {
        const key = shq(`${pathKey(node.path)}|${name}`);
        // A command's own option shadows a global one of the same name.
        if (option.takesValue || globalValueNames.has(name)) {
          takesValueRows.push(`    ${key}) return ${option.takesValue ? 0 : 1} ;;`);
        }
        const action = option.takesValue ? value(option, globalValueNames.has(name) ? 'shadow' : 'command') : undefined;
        if (action !== undefined) valueRows.push(`    ${key}) ${action} ;;`);
      }
    }
  }
  for (const option of model.globals.filter((o) => o.takesValue)) {
    const patterns = option.names.map((n) => `*${shq(`|${n}`)}`).join(' | ');
    takesValueRows.push(`    ${patterns}) return 0 ;;`);
    const action = value(option, 'global');
    if (action !== undefined) valueRows.push(`    ${patterns}) ${action} ;;`);
  }
  return { takesValueRows, valueRows };
}
