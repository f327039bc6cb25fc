import { UsageError } from '../core/errors.js';
import { generateCompletion, SHELLS, type Shell } from './completion/generate.js';
import { GLOBAL_OPTIONS, type Invocation, type Output } from './define.js';
import { COMMANDS } from './registry.js';

export async function completion(inv: Invocation): Promise<Output> {
  const shell = inv.args.shell as string;
  if (!SHELLS.includes(shell as Shell))
    throw new UsageError(`unknown shell "${shell}": use bash, zsh or fish`);
  const script = generateCompletion(shell as Shell, COMMANDS, GLOBAL_OPTIONS);
  return { data: { shell, script }, human: script, quiet: script };
}
