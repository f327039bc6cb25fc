import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = join(ROOT, 'bin', 'sos');

export interface SosResult {
  code: number;
  stdout: string;
  stderr: string;
  json<T = unknown>(): T;
}

/** An environment with no SOS_* leaking in from the caller, and XDG dirs inside `home`. */
export function isolatedEnv(home: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SOS_') && k !== 'NO_COLOR') env[k] = v;
  mkdirSync(home, { recursive: true });
  return {
    ...env,
    HOME: home,
    XDG_DATA_HOME: join(home, 'data'),
    XDG_CONFIG_HOME: join(home, 'config'),
    ...extra,
  };
}

export function spawnSos(args: string[], env: NodeJS.ProcessEnv, nodeArgs: string[] = []): ChildProcess {
  if (!existsSync(join(ROOT, 'dist', 'cli.js')))
    throw new Error('dist/cli.js is missing: run `npm run build` first');
  return spawn(process.execPath, [...nodeArgs, BIN, ...args], {
    env,
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

/** Runs `sos` as a user would (the built launcher, a separate process). */
export function sos(
  args: string[],
  env: NodeJS.ProcessEnv,
  options: { input?: string; nodeArgs?: string[] } = {},
): Promise<SosResult> {
  const child = spawnSos(args, env, options.nodeArgs);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  child.stdin!.end(options.input ?? '');
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) =>
      resolve({
        code: code ?? -1,
        stdout,
        stderr,
        json<T>() {
          try {
            return JSON.parse(stdout) as T;
          } catch {
            throw new Error(
              `sos ${args.join(' ')} did not print JSON.\nstdout: ${stdout}\nstderr: ${stderr}`,
            );
          }
        },
      }),
    );
  });
}
