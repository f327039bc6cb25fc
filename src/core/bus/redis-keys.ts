import { assertName } from '../names.js';
import { parseTargetKey, type Target } from './types.js';

/**
 * The Redis key and channel layout of the bus (docs/ARCHITECTURE.md, "Redis wire layout"). Streams keep the upstream SOS v1
 * names so old clients interoperate. Every key and channel of project `p` that sos needs matches
 * `sos:*:project:<p>:*`, the one pattern a per-project ACL user is confined to: names are checked
 * (no `:` or glob characters) and free-form parts (message ids, idempotency keys) are escaped, so
 * no key of one project can contain `:project:<other>:`. The upstream conventions at the end
 * that have no project in them (global) are used only by a connection allowed to reach them.
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
  for (const prefix of UPSTREAM_AGENT_STREAMS) {
    if (key.startsWith(prefix)) {
      const name = key.slice(prefix.length);
      return /^[a-z][a-z0-9-]{0,39}$/.test(name) ? { kind: 'agent', name } : undefined;
    }
  }
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

/** The `target` field sos wrote before it followed upstream's v1 schema (`squad:<s>`, `broadcast`). */
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

// ---------------------------------------------------------------- upstream SOS conventions
//
// Upstream SOS (the Python implementation) addresses the same streams, and a few keys and
// channels of its own. Those under `sos:*:project:<p>:*` are inside a project ACL user's pattern;
// the others (marked global) have no project in them, so only an unconfined connection reaches them.

/** The v1 `target` of a message: `agent:<a>`, or the channel of a squad or of the whole project. */
export function wireTarget(project: string, target: Target): string {
  switch (target.kind) {
    case 'agent':
      return `agent:${assertName('agent', target.name)}`;
    case 'squad':
      return `sos:channel:project:${assertName('project', project)}:squad:${assertName('squad', target.name)}`;
    case 'broadcast':
      return `sos:channel:project:${assertName('project', project)}:global`;
  }
}

/**
 * The pub/sub channel upstream publishes each message on (the message's JSON): per agent
 * `sos:channel:project:<p>:agent:<a>`, else the squad's or project's channel (= its v1 target).
 */
export function messageChannel(project: string, target: Target): string {
  return target.kind === 'agent'
    ? `sos:channel:project:${assertName('project', project)}:agent:${assertName('agent', target.name)}`
    : wireTarget(project, target);
}

/** Global: upstream's wake channel of an agent (its wake daemon listens on `sos:wake:*`). */
export function upstreamWakeChannel(agent: string): string {
  return `sos:wake:${assertName('agent', agent)}`;
}

/** Global: the other channels upstream's senders publish an agent's messages on (send.sh, kernel MessageBus). */
export function upstreamAgentChannels(agent: string): string[] {
  const a = assertName('agent', agent);
  return [`sos:channel:agent:${a}`, `sos:channel:private:agent:${a}`];
}

/**
 * Global: prefixes of the per-agent streams upstream writes outside any project, read as part of the
 * agent's inbox: `sos:stream:global:agent:<a>` (MCP send without a project, bridge, send.sh) and
 * `sos:stream:sos:channel:private:agent:<a>` (the kernel MessageBus).
 */
export const UPSTREAM_AGENT_STREAMS = ['sos:stream:global:agent:', 'sos:stream:sos:channel:private:agent:'] as const;

export function upstreamAgentStreams(agent: string): string[] {
  const a = assertName('agent', agent);
  return UPSTREAM_AGENT_STREAMS.map((prefix) => `${prefix}${a}`);
}

/**
 * The consumer group that is an agent's cursor on a global stream: it names the project, because
 * an agent of the same name in another project reads the same stream and must get every entry too.
 */
export function upstreamReaderGroup(project: string, agent: string): string {
  return `project:${assertName('project', project)}:agent:${assertName('agent', agent)}`;
}

/** Global: upstream's registry hash of an agent (`sos:registry:<p>:<a>`), which its `peers` reads. */
export function registryKey(project: string, agent: string): string {
  return `sos:registry:${assertName('project', project)}:${assertName('agent', agent)}`;
}

/** The SCAN pattern of the project's registry hashes. */
export function registryPattern(project: string): string {
  return `sos:registry:${assertName('project', project)}:*`;
}
