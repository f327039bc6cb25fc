import { UsageError } from '../core/errors.js';
import type { Invocation, Output } from './define.js';

export async function completion(inv: Invocation): Promise<Output> {
  const shell = inv.args.shell as string;
  if (!['bash', 'zsh', 'fish'].includes(shell))
    throw new UsageError(`unknown shell "${shell}": use bash, zsh or fish`);
  throw new UsageError('completion is not generated yet');
}
