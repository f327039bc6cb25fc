import { PermissionDenied, UsageError } from '../errors.js';
import type { Store } from '../store/port.js';
import type { TokenRecord, TokenRole } from '../store/types.js';
import { hashTokenSecret } from './secrets.js';

/**
 * Who is calling. Every core operation takes one explicitly; nothing reads identity from globals.
 * - `token`: a bearer token's agent, in the token's project, with the token's role.
 * - `local`: the operator with direct access to the database (local trust). Acts as admin of any
 *   project and may act as any agent (`--as`).
 */
export interface Caller {
  project: string;
  /** The agent acting; null for the operator acting as nobody in particular. */
  agent: string | null;
  role: TokenRole | 'operator';
  via: 'token' | 'local';
  tokenId?: string;
}

export interface CallerRequest {
  token: string | undefined;
  /** Project asked for, and whether it was asked explicitly (flag, env, file) or is the default. */
  project: string;
  projectExplicit: boolean;
  /** `--as` / SOS_AGENT. */
  agent: string | undefined;
}

/** A token as the Store finds it by the hash of its secret. */
export type FoundToken = TokenRecord & { projectExists: boolean };

/**
 * The caller a request stands for. `find` is how the token is looked up: the Store by default;
 * the daemon's HTTP server passes its short-lived cache of valid tokens (auth/token-cache.ts), so
 * a burst of requests does not look the same token up once each. Whatever finds it, the rules
 * below judge it, and every refusal is recorded.
 */
export async function resolveCaller(
  store: Store,
  request: CallerRequest,
  find: (hash: string) => Promise<FoundToken | undefined> = (hash) => store.tokens.findByHash(hash),
): Promise<Caller> {
  if (request.token === undefined) {
    return { project: request.project, agent: request.agent ?? null, role: 'operator', via: 'local' };
  }
  const token = await find(hashTokenSecret(request.token));
  if (!token || token.revokedAt !== null || !token.projectExists) {
    await store.security.record({
      project: token?.project ?? request.project,
      kind: 'bad_token',
      actor: token ? `token:${token.id}` : 'unknown-token',
      detail: token ? 'revoked token presented' : 'unknown token presented',
    });
    throw new PermissionDenied(token ? 'this token has been revoked' : 'this token is not valid here', {
      hint: 'ask an admin for a new token (`sos tokens create`)',
    });
  }
  if (request.projectExplicit && request.project !== token.project) {
    await store.security.record({
      project: request.project,
      kind: 'cross_project',
      actor: `${token.project}/${token.agent}`,
      detail: `token of project "${token.project}" asked for project "${request.project}"`,
    });
    throw new PermissionDenied(`this token belongs to project "${token.project}", not "${request.project}"`);
  }
  let agent = token.agent;
  if (request.agent !== undefined && request.agent !== token.agent) {
    if (token.role !== 'admin') {
      await store.security.record({
        project: token.project,
        kind: 'forbidden',
        actor: `${token.project}/${token.agent}`,
        detail: `tried to act as "${request.agent}"`,
      });
      throw new PermissionDenied(
        `a ${token.role} token of "${token.agent}" cannot act as "${request.agent}"`,
      );
    }
    agent = request.agent;
  }
  return { project: token.project, agent, role: token.role, via: 'token', tokenId: token.id };
}

export function describeCaller(caller: Caller): string {
  if (caller.via === 'local') return caller.agent ? `operator as ${caller.agent}` : 'operator';
  return `${caller.agent} (${caller.role} token)`;
}

/** Operator or a project admin. */
export function isAdmin(caller: Caller): boolean {
  return caller.role === 'operator' || caller.role === 'admin';
}

/** Records the refusal, so refused attempts can be counted, then throws. */
export async function deny(store: Store, caller: Caller, action: string, reason: string): Promise<never> {
  await store.security.record({
    project: caller.project,
    kind: 'forbidden',
    actor: `${caller.project}/${caller.agent ?? 'operator'}`,
    detail: action,
  });
  throw new PermissionDenied(`${action} ${reason}`);
}

export async function requireAdmin(store: Store, caller: Caller, action: string): Promise<void> {
  if (isAdmin(caller)) return;
  await deny(
    store,
    caller,
    action,
    `needs an admin token or local operator access; ${describeCaller(caller)} has neither`,
  );
}

/** The agent a command acts for: `--agent`, else the caller's own agent. Non-admins only for themselves. */
export async function actingAgent(
  store: Store,
  caller: Caller,
  requested: string | undefined,
  action: string,
): Promise<string> {
  const agent = requested ?? caller.agent;
  if (agent === null || agent === undefined) {
    throw new UsageError(`${action}: no agent given`, { hint: 'pass --agent <name> or --as <name>' });
  }
  if (agent !== caller.agent) await requireAdmin(store, caller, `${action} for another agent`);
  if (caller.role === 'observer') await requireAdmin(store, caller, action);
  return agent;
}
