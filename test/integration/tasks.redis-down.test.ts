import { describe, expect, it } from 'vitest';
import { RedisBus } from '../../src/core/bus/redis-bus.js';
import { createTask, getTask } from '../../src/core/tasks/service.js';
import { ADAPTERS, services, tempDir } from '../helpers/isolation.js';
import { freePort, startRedisServer } from '../helpers/redis.js';

/**
 * A task change is committed in the Store before its event goes to the Redis bus. When Redis is
 * down at that moment the call must still report the change it made (a caller told "failed"
 * retries and creates the task twice); the lost event is counted.
 */
describe('task events with the Redis bus down', () => {
  it.skipIf(services.redis === null)('createTask succeeds and counts task_events_unpublished when Redis dies after the commit', async (ctx) => {
    const store = await ADAPTERS[0]!.open(ctx);
    await store.projects.create('p');
    const redis = await startRedisServer(ctx, tempDir(ctx), await freePort());
    const bus = new RedisBus({ url: redis.url, maxLen: 1_000 });
    ctx.onTestFinished(() => bus.close());
    await bus.connect();
    const tasks = { store, bus, maxTextBytes: 65_536 };
    const admin = { project: 'p', agent: null, role: 'admin' as const, via: 'token' as const, tokenId: 'tok_admin' };
    const first = await createTask(tasks, admin, { title: 'with Redis up' });
    expect((await store.counters.all('p')).task_events_unpublished ?? 0).toBe(0);
    await redis.kill();
    const second = await createTask(tasks, admin, { title: 'with Redis down' });
    expect((await getTask(tasks, admin, second.task.id)).title).toBe('with Redis down');
    expect((await getTask(tasks, admin, first.task.id)).title).toBe('with Redis up');
    expect((await store.counters.all('p')).task_events_unpublished).toBe(1);
  });
});
