import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { redisPing } from '../doctor/redis-ping.js';
import { Unavailable } from '../errors.js';

/**
 * `sos sim --redis local`: a redis-server of the run's own on a free 127.0.0.1 port, with an
 * fsync-always append-only file in the run's dir, so a kill -9 loses nothing acknowledged. It is
 * the only Redis the simulator restarts (kill -9 of its PID, then the same server on the same
 * port and file); it is killed by its PID when the run ends. The tests start theirs with it too.
 */
export interface OwnRedis {
  url: string;
  pid(): number;
  restart(): Promise<void>;
  kill(): Promise<void>;
}

/** A port free on 127.0.0.1 right now (the kernel's pick). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export async function startRedis(dir: string, port?: number): Promise<OwnRedis> {
  mkdirSync(dir, { recursive: true });
  port ??= await freePort();
  const url = `redis://127.0.0.1:${port}`;
  let child: ChildProcess;
  let exited: Promise<void>;
  const launch = async () => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--dir', dir], { stdio: 'ignore' });
    exited = new Promise<void>((resolve) => {
      child.once('close', () => resolve());
      child.once('error', () => resolve());
    });
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (child.exitCode !== null || child.pid === undefined) throw new Unavailable(`sos sim: redis-server on port ${port} did not start (is redis-server installed?)`);
      try {
        await redisPing(url, 500);
        return;
      } catch (err) {
        if (Date.now() > deadline) throw new Unavailable(`sos sim: redis-server on port ${port} did not answer: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  };
  const kill = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  try {
    await launch();
  } catch (err) {
    await kill();
    throw err;
  }
  return {
    url,
    pid: () => child.pid ?? 0,
    kill,
    async restart() {
      await kill();
      await new Promise((r) => setTimeout(r, 1_000));
      await launch();
    },
  };
}
