import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { TestContext } from 'vitest';
import { RedisBus, type RedisBusOptions } from '../../src/core/bus/redis-bus.js';
import { dropRedisProject as dropProject } from '../../src/core/bus/redis-drop.js';
import { freePort, startRedis } from '../../src/core/sim/redis-server.js';
import { services } from './isolation.js';

/**
 * Redis isolation per test: a project slug of its own, so its keys
 * (`sos:*:project:<slug>:*`) and ACL user (`sos-<slug>`) never meet another test's; removed when
 * the test passes, kept (and printed) when it fails. Every connection opened here is closed at
 * the end of the test.
 */

function failed(ctx: TestContext): boolean {
  return ctx.task.result?.state === 'fail' || (ctx.task.result?.errors?.length ?? 0) > 0;
}

/**
 * A fresh project slug (`t-<random>`, or `name`) whose keys and ACL user are dropped when the test
 * passes.
 */
export function redisProject(ctx: TestContext, options: { url?: string; name?: string } = {}): string {
  const project = options.name ?? `t-${randomBytes(5).toString('hex')}`;
  const url = options.url ?? services.redisUrl;
  ctx.onTestFinished(async () => {
    if (failed(ctx)) {
      console.warn(`kept Redis keys sos:*:project:${project}:* on ${url} for the failed test "${ctx.task.name}"`);
      return;
    }
    await dropRedisProject(url, project);
  });
  return project;
}

/** Deletes every key of the project (SCAN, never KEYS) and its ACL user. */
export function dropRedisProject(url: string, project: string): Promise<number> {
  return dropProject(url, project, { acl: true });
}

/** A raw ioredis connection (admin unless `url` says otherwise), closed when the test ends. */
export async function rawRedis(ctx: TestContext, url = services.redisUrl): Promise<Redis> {
  const redis = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    enableReadyCheck: false, // INFO is refused to project ACL users
    retryStrategy: () => null,
  });
  redis.on('error', () => undefined);
  ctx.onTestFinished(() => {
    redis.disconnect();
  });
  await redis.connect();
  return redis;
}

/** A connected RedisBus closed when the test ends. */
export async function openRedisBus(ctx: TestContext, options: Partial<RedisBusOptions> = {}): Promise<RedisBus> {
  const bus = new RedisBus({ url: options.url ?? services.redisUrl, maxLen: options.maxLen ?? 10_000 });
  ctx.onTestFinished(() => bus.close());
  await bus.connect();
  return bus;
}

export { freePort };

export interface RedisServer {
  url: string;
  pid: number;
  /** SIGKILLs this server (only this PID) and waits until the process is gone. */
  kill(): Promise<void>;
}

/**
 * Starts a private `redis-server` on 127.0.0.1:`port` with an fsync-always AOF in `dir`; it is
 * killed when the test ends, pass or fail.
 */
export async function startRedisServer(ctx: TestContext, dir: string, port: number): Promise<RedisServer> {
  const server = await startRedis(dir, port);
  ctx.onTestFinished(() => server.kill());
  return { url: server.url, pid: server.pid(), kill: () => server.kill() };
}
