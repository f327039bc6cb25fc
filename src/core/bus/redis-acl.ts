import { randomBytes } from 'node:crypto';
import { assertName } from '../names.js';
import { projectPattern } from './redis-keys.js';
import { openRedis, redisError } from './redis-bus.js';

/**
 * Per-project Redis ACL users, for isolation: `sos-<project>` may touch only the
 * project's keys and channels, so isolation holds even for a client talking to Redis directly.
 */

export function projectAclUser(project: string): string {
  return `sos-${assertName('project', project)}`;
}

/**
 * The `ACL SETUSER` rules of a project's user, in order (later rules win). Without a password the
 * list has no password rule: such a user cannot log in (handy to show or test the rules).
 */
export function projectAclRules(project: string, password?: string): string[] {
  const pattern = projectPattern(project);
  return [
    'reset', // no old password, key, channel or command survives a re-run
    'on',
    ...(password === undefined ? [] : [`>${password}`]),
    'resetkeys',
    `~${pattern}`,
    'resetchannels',
    `&${pattern}`,
    '-@all',
    '+@read',
    '+@write',
    '+@stream',
    '+@pubsub',
    '+@connection',
    '+@scripting', // the bus's single-key Lua scripts; Redis checks the keys they touch
    '-@dangerous', // FLUSH*, KEYS, CONFIG, ACL SETUSER, CLIENT LIST/KILL, INFO, MONITOR, SORT…
    // Keyless commands that would list or change what other projects have.
    '-scan',
    '-randomkey',
    '-dbsize',
    '-pubsub',
    '-function',
    '-fcall',
    '-fcall_ro',
    '-script|flush',
    '-script|kill',
    '-script|debug',
    '-client|tracking',
    '-acl',
  ];
}

export interface ProjectAcl {
  user: string;
  password: string;
  /** `url` with the project user's credentials in place of the admin's. */
  url: string;
  /** False when Redis has no ACL file: the user lasts until Redis restarts (re-run to recreate). */
  persisted: boolean;
}

/**
 * Creates the project's ACL user, or resets its password and rules, through an admin connection
 * at `url`. Returns a new random password; the old one stops working at once.
 */
export async function createProjectAcl(url: string, project: string): Promise<ProjectAcl> {
  const user = projectAclUser(project);
  const password = randomBytes(24).toString('base64url');
  const redis = await openRedis(url, 'sos-acl');
  try {
    await redis.call('ACL', 'SETUSER', user, ...projectAclRules(project, password));
    let persisted = true;
    try {
      await redis.call('ACL', 'SAVE');
    } catch (err) {
      if (!/ACL file/i.test((err as Error).message)) throw err;
      persisted = false;
    }
    const projectUrl = new URL(url);
    projectUrl.username = encodeURIComponent(user);
    projectUrl.password = encodeURIComponent(password);
    return { user, password, url: projectUrl.toString(), persisted };
  } catch (err) {
    throw redisError(err, url);
  } finally {
    redis.disconnect();
  }
}

/** Deletes the project's ACL user; true when it existed. */
export async function deleteProjectAcl(url: string, project: string): Promise<boolean> {
  const redis = await openRedis(url, 'sos-acl');
  try {
    const deleted = Number(await redis.call('ACL', 'DELUSER', projectAclUser(project)));
    try {
      await redis.call('ACL', 'SAVE');
    } catch (err) {
      if (!/ACL file/i.test((err as Error).message)) throw err;
    }
    return deleted > 0;
  } catch (err) {
    throw redisError(err, url);
  } finally {
    redis.disconnect();
  }
}
