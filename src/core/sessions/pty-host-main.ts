import { appendFileSync } from 'node:fs';
import { PtyHost, type PtyHostOptions } from './pty-host.js';

/**
 * The pty host process (bundled as dist/pty-host.js): `node pty-host.js '<JSON config>'`, where the
 * config is PtyHostOptions without `env`; the child gets this process's own environment. Started
 * detached with stdio ignored, so anything that goes wrong is written to the session's log.
 */

type HostConfig = Omit<PtyHostOptions, 'env'>;

function parseConfig(raw: string | undefined): HostConfig {
  const config = JSON.parse(raw ?? '') as Partial<HostConfig>;
  for (const key of ['command', 'workdir', 'socketPath', 'logPath'] as const) {
    if (typeof config[key] !== 'string' || config[key] === '') throw new Error(`pty host config lacks ${key}`);
  }
  return config as HostConfig;
}

function report(logPath: string, what: string, err: unknown): void {
  const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
  try {
    appendFileSync(logPath, `\n[sos pty host] ${what}: ${message}\n`);
  } catch {
    // nowhere left to report to
  }
}

const config = parseConfig(process.argv[2]);
const env = Object.fromEntries(
  Object.entries(process.env).filter((entry): entry is [string, string] => entry[1] !== undefined),
);

let host: PtyHost;
try {
  host = await PtyHost.start({ ...config, env });
} catch (err) {
  report(config.logPath, 'could not start', err);
  process.exit(1);
}

process.on('uncaughtException', (err) => {
  report(config.logPath, 'crashed', err);
  void host.close().finally(() => process.exit(1));
});
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => void host.close());
// Detached, the host has no terminal to lose; a stray hangup must not take the agent down.
process.on('SIGHUP', () => {});

await host.closed;
process.exit(0);
