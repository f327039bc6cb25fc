import { Command, CommanderError, Option } from 'commander';
import pkg from '../package.json' with { type: 'json' };
import {
  type CommandSpec,
  GLOBAL_OPTIONS,
  type GlobalOptions,
  type Invocation,
  type OptionSpec,
  type Output,
} from './commands/define.js';
import { COMMANDS } from './commands/registry.js';
import type { ErrorCode } from './core/errors.js';
import { clip, neutralise } from './core/safe-text.js';

/** The one place where errors become exit codes (docs/ARCHITECTURE.md, "Exit codes"). */
export const EXIT_CODES: Record<ErrorCode, number> = {
  failed: 1,
  internal: 1,
  usage: 2,
  not_found: 3,
  conflict: 4,
  unavailable: 5,
  permission_denied: 6,
};

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function toOption(spec: OptionSpec): Option {
  const option = new Option(spec.flags, spec.summary);
  if (spec.choices) option.choices(spec.choices);
  if (spec.repeatable) option.argParser(collect);
  return option;
}

function addCommand(
  parent: Command,
  spec: CommandSpec,
  run: (spec: CommandSpec, cmd: Command) => Promise<void>,
): void {
  const cmd = parent.command(spec.name).description(spec.summary);
  if (spec.group) cmd.helpGroup(spec.group);
  for (const arg of spec.args ?? []) {
    const label = `${arg.name}${arg.variadic ? '...' : ''}`;
    cmd.argument(arg.required === false ? `[${label}]` : `<${label}>`, arg.summary);
  }
  for (const option of spec.options ?? []) cmd.addOption(toOption(option));
  if (spec.examples?.length)
    cmd.addHelpText('after', `\nExamples:\n${spec.examples.map((e) => `  $ ${e}`).join('\n')}`);
  for (const sub of spec.subcommands ?? []) addCommand(cmd, sub, run);
  if (spec.handler) cmd.action(async (...params: unknown[]) => run(spec, params.at(-1) as Command));
}

export function buildProgram(run: (spec: CommandSpec, cmd: Command) => Promise<void>): Command {
  const program = new Command('sos')
    .description('sos — a sovereign operating system for AI agents: bus, memory, tasks, lifecycle, economy.')
    .version(pkg.version, '-V, --version')
    .showSuggestionAfterError(true)
    .configureHelp({ showGlobalOptions: true, sortSubcommands: false });
  for (const option of GLOBAL_OPTIONS) program.addOption(toOption(option));
  for (const spec of COMMANDS) addCommand(program, spec, run);
  return program;
}

async function render(output: Output, globals: GlobalOptions): Promise<void> {
  let text: string | undefined;
  if (globals.json) text = JSON.stringify(output.data, null, 2);
  // Human output carries untrusted text (messages, titles, screen lines): no control byte reaches the terminal.
  else if (globals.quiet) text = output.quiet === undefined ? undefined : neutralise(output.quiet);
  else text = output.human === undefined ? JSON.stringify(output.data, null, 2) : neutralise(output.human);
  if (text !== undefined && text !== '') process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

/** The longest error message printed: one that quotes a 5 MB argument is cut. */
const MAX_ERROR_CHARS = 2_000;

async function report(err: unknown, json: boolean): Promise<number> {
  const { toSosError } = await import('./core/errors.js');
  const error = toSosError(err);
  // Errors may quote input: shown cut short, and never with a control byte.
  const message = neutralise(clip(error.message, MAX_ERROR_CHARS));
  const hint = error.hint === undefined ? undefined : neutralise(clip(error.hint, MAX_ERROR_CHARS));
  const { VARIABLES } = await import('./core/config/variables.js');
  const debug = VARIABLES.debug.schema.safeParse(process.env.SOS_DEBUG ?? '').data === true;
  if (json) {
    const body = {
      error: { code: error.code, message: clip(error.message, MAX_ERROR_CHARS), ...(hint ? { hint: clip(error.hint!, MAX_ERROR_CHARS) } : {}) },
    };
    process.stdout.write(`${JSON.stringify(body)}\n`);
  } else {
    process.stderr.write(`sos: ${error.code === 'internal' ? 'internal error: ' : ''}${message}\n`);
    if (hint) process.stderr.write(`  hint: ${hint}\n`);
  }
  if (debug) process.stderr.write(`${(error.cause as Error | undefined)?.stack ?? error.stack}\n`);
  else if (error.code === 'internal') process.stderr.write('  (set SOS_DEBUG=1 for the stack trace)\n');
  return EXIT_CODES[error.code];
}

export async function main(argv: string[]): Promise<void> {
  // `sos … | head`: the reader went away; stop quietly as other Unix tools do.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  const wantsJson = argv.includes('--json');
  const run = async (spec: CommandSpec, cmd: Command): Promise<void> => {
    const all = cmd.optsWithGlobals() as Record<string, unknown>;
    const globals: GlobalOptions = {
      json: all.json === true,
      quiet: all.quiet === true,
      ...(typeof all.db === 'string' ? { db: all.db } : {}),
      ...(typeof all.project === 'string' ? { project: all.project } : {}),
      ...(typeof all.as === 'string' ? { as: all.as } : {}),
      ...(typeof all.token === 'string' ? { token: all.token } : {}),
    };
    const args: Invocation['args'] = {};
    (spec.args ?? []).forEach((arg, i) => {
      args[arg.name] = cmd.processedArgs[i] as string | string[] | undefined;
    });
    const handler = await spec.handler!();
    // An option both a noun and its verb declare (`usage --agent`, `usage windows --agent`) is
    // parsed by the noun wherever it is written: the verb takes the noun's value as its own.
    const options: Record<string, unknown> = { ...cmd.opts() };
    const parent = cmd.parent?.opts() ?? {};
    for (const key of cmd.options.map((o) => o.attributeName())) if (options[key] === undefined && parent[key] !== undefined) options[key] = parent[key];
    const output = await handler({
      args,
      options,
      globals,
      env: process.env,
      cwd: process.cwd(),
      stdin: process.stdin,
      stdout: process.stdout,
    });
    await render(output, globals);
    if (output.exitCode) process.exitCode = output.exitCode;
  };

  const program = buildProgram(run);
  program.exitOverride();
  program.configureOutput({
    // Commander's own usage errors are reported below, in the same shape as every other error.
    outputError: () => undefined,
  });
  for (const cmd of allCommands(program)) {
    cmd.exitOverride();
    cmd.configureOutput({ outputError: () => undefined });
  }
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return;
      if (err.code === 'commander.help') {
        process.exitCode = EXIT_CODES.usage;
        return;
      }
      const { UsageError } = await import('./core/errors.js');
      const message = err.message.replace(/^error: /, '');
      process.exitCode = await report(new UsageError(message, { hint: 'see `sos --help`' }), wantsJson);
      return;
    }
    process.exitCode = await report(err, wantsJson);
  }
}

function allCommands(root: Command): Command[] {
  return root.commands.flatMap((c) => [c, ...allCommands(c)]);
}
