/**
 * `sos completion <shell>`: the shell scripts are generated from the same command registry that
 * builds the commander program, through one intermediate model (./model.ts), so help, parsing and
 * completion never drift. Pure functions: no I/O, deterministic output.
 */
import type { CommandSpec, OptionSpec } from '../define.js';
import { bashScript } from './bash.js';
import { fishScript } from './fish.js';
import { buildModel } from './model.js';
import { zshScript } from './zsh.js';

export type Shell = 'bash' | 'zsh' | 'fish';

export const SHELLS: readonly Shell[] = ['bash', 'zsh', 'fish'];

const EMITTERS = { bash: bashScript, zsh: zshScript, fish: fishScript } as const;

export function generateCompletion(
  shell: Shell,
  commands: readonly CommandSpec[],
  globals: readonly OptionSpec[],
): string {
  return EMITTERS[shell](buildModel(commands, globals));
}
