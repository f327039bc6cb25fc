import { projectAclUser } from './redis-acl.js';
import { openRedis, redisError } from './redis-bus.js';
import { projectPattern } from './redis-keys.js';

/**
 * Deletes every key and channel state of a project on a Redis (SCAN over the project's one
 * pattern, never KEYS), and with `acl` its ACL user too. For throwaway projects: the simulator's,
 * the benchmarks', the tests'. Needs a connection that may see the whole keyspace (admin).
 */
export async function dropRedisProject(url: string, project: string, options: { acl?: boolean } = {}): Promise<number> {
  const redis = await openRedis(url, 'sos-drop');
  let deleted = 0;
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', projectPattern(project), 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) deleted += await redis.del(...keys);
    } while (cursor !== '0');
    if (options.acl) await redis.call('ACL', 'DELUSER', projectAclUser(project));
    return deleted;
  } catch (err) {
    throw redisError(err, url);
  } finally {
    redis.disconnect();
  }
}
