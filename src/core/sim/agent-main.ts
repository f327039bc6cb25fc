import { UsageError } from '../errors.js';
import { runSimAgent } from './agent.js';

/**
 * `node dist/sim-agent.js --dir <sim dir> --name <agent>`: the simulated agent's entry point, the
 * start command `sos sim` registers for each agent (the supervisor starts and restarts it).
 */
const arg = (flag: string): string => {
  const i = process.argv.indexOf(flag);
  const v = i === -1 ? undefined : process.argv[i + 1];
  if (!v) throw new UsageError(`sim-agent: ${flag} is required`);
  return v;
};

await runSimAgent({ dir: arg('--dir'), name: arg('--name') });
