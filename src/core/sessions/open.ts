import { UsageError } from '../errors.js';
import type { DriverOptions, SessionDriver } from './port.js';

/** Opens the driver for an agent's session spec; each driver module loads only when used. */
export async function openSessionDriver(spec: string, options: DriverOptions = {}): Promise<SessionDriver> {
  const match = /^(tmux|pty):(.+)$/.exec(spec);
  if (!match) throw new UsageError(`invalid session ${JSON.stringify(spec)}: use tmux:<target> or pty:<command>`);
  if (match[1] === 'tmux') {
    const { TmuxDriver } = await import('./tmux.js');
    return new TmuxDriver(match[2]!, { socket: options.tmuxSocket ?? null });
  }
  if (!options.runDir || !options.owner) {
    throw new UsageError('a pty session needs a run directory and an owning agent');
  }
  const { PtyDriver } = await import('./pty.js');
  return new PtyDriver(match[2]!, { runDir: options.runDir, owner: options.owner });
}
