import { assertName } from '../names.js';
import { parseTargetKey, type Target } from './types.js';

/**
 * The Redis key and channel layout of the bus (DESIGN.md §4). Streams keep the upstream SOS v1
 * names so old clients interoperate. Every key and channel of project `p` matches
 * `sos:*:project:<p>:*`, the one pattern a per-project ACL user is confined to: names are checked
 * (no `:` or glob characters) and free-form parts (message ids, idempotency keys) are escaped, so
 * no key of one project can contain `:project:<other>:`.
 */

/** Escapes a free-form key part: `:` and anything outside a safe set become `%XX`. */
function part(value: string): string {
  return value.replace(/[^A-Za-z0-9._~-]/g, (c) =>
    Array.from(Buffer.from(c, 'utf8'), (b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join(''),
  );
}

function projectPrefix(kind: string, project: string): string {
  return `sos:${kind}:project:${assertName('project', project)}`;
}

/** The stream a message to `target` lives in. */
export function streamKey(project: string, target: Target): string {
  const base = projectPrefix('stream', project);
  switch (target.kind) {
    case 'agent':
      return `${base}:agent:${assertName('agent', target.name)}`;
    case 'squad':
      return `${base}:squad:${assertName('squad', target.name)}`;
    case 'broadcast':
      return `${base}:broadcast`;
  }
}

/** The target a stream key of the project belongs to; undefined for a key that is not one. */
export function targetOfStream(project: string, key: string): Target | undefined {
  const prefix = `${projectPrefix('stream', project)}:`;
  if (!key.startsWith(prefix)) return undefined;
  const rest = key.slice(prefix.length);
  return rest === 'broadcast' || /^(agent|squad):[a-z][a-z0-9-]{0,39}$/.test(rest) ? parseTargetKey(rest) : undefined;
}

/** Hash of one message's delivery states: `r:<recipient>` → `<state>:<at>`, plus where it lives. */
export function deliveryKey(project: string, messageId: string): string {
  return `${projectPrefix('delivery', project)}:${part(messageId)}`;
}

/** `SET NX EX` guard of one idempotency key of one sender; holds the first message's id. */
export function idempotencyKey(project: string, sender: string, key: string): string {
  return `${projectPrefix('idem', project)}:${assertName('agent', sender)}:${part(key)}`;
}

/** Sorted set of the ids of messages that require an ack and are not acked by all (score: created). */
export function acksKey(project: string): string {
  return `${projectPrefix('acks', project)}:pending`;
}


/** Hash of heartbeats: agent → `<lastSeen>:<ttlMs>`. */
export function presenceKey(project: string): string {
  return `${projectPrefix('presence', project)}:agents`;
}

/** Pub/sub channel that wakes one agent. */
export function wakeChannel(project: string, agent: string): string {
  return `${projectPrefix('wake', project)}:agent:${assertName('agent', agent)}`;
}

/** The consumer group that is an agent's read cursor on each stream it reads. */
export function readerGroup(agent: string): string {
  return `agent:${agent}`;
}

/** The glob every key and channel of the project matches (the ACL user's one pattern). */
export function projectPattern(project: string): string {
  return `sos:*:project:${assertName('project', project)}:*`;
}

/** SOS v1 `target` / `source` field values. */
export function targetField(target: Target): string {
  return target.kind === 'broadcast' ? 'broadcast' : `${target.kind}:${target.name}`;
}

/** The project's event stream (`task.*`, …): `sos:stream:project:<p>:events`. */
export function eventsKey(project: string): string {
  return `${projectPrefix('stream', project)}:events`;
}

/** Published after each event, for waiters. */
export function eventsChannel(project: string): string {
  return `${projectPrefix('wake', project)}:events`;
}
