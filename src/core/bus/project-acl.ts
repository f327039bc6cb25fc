import { type Caller, deny } from '../auth/caller.js';
import { UsageError } from '../errors.js';
import { requireProject } from '../identity/projects.js';
import { assertName } from '../names.js';
import type { Store } from '../store/port.js';

export interface ProjectCredentials {
  project: string;
  user: string;
  password: string;
  url: string;
  persisted: boolean;
}

/**
 * Creates (or resets) the Redis ACL user confined to one project's keys and channels, so the
 * project's isolation holds even for a client that talks to Redis directly. Operator only.
 */
export async function grantProjectRedisAcl(
  store: Store,
  caller: Caller,
  redisUrl: string | undefined,
  slug: string,
): Promise<ProjectCredentials> {
  assertName('project', slug);
  if (caller.via !== 'local') await deny(store, caller, 'creating Redis credentials', 'needs local operator access');
  if (redisUrl === undefined) {
    throw new UsageError('there is no Redis to create a user in', { hint: 'set SOS_REDIS_URL to an admin connection' });
  }
  await requireProject(store, slug);
  const { createProjectAcl } = await import('./redis-acl.js');
  const acl = await createProjectAcl(redisUrl, slug);
  return { project: slug, ...acl };
}

export async function revokeProjectRedisAcl(store: Store, caller: Caller, redisUrl: string | undefined, slug: string): Promise<boolean> {
  assertName('project', slug);
  if (caller.via !== 'local') await deny(store, caller, 'revoking Redis credentials', 'needs local operator access');
  if (redisUrl === undefined) throw new UsageError('there is no Redis configured', { hint: 'set SOS_REDIS_URL' });
  const { deleteProjectAcl } = await import('./redis-acl.js');
  return deleteProjectAcl(redisUrl, slug);
}
