import { type Caller, requireAdmin } from '../auth/caller.js';
import { hashTokenSecret, newTokenSecret, tokenPrefix } from '../auth/secrets.js';
import { NotFound, UsageError } from '../errors.js';
import { newId } from '../ids.js';
import { assertName } from '../names.js';
import type { Store } from '../store/port.js';
import { TOKEN_ROLES, type TokenRecord, type TokenRole } from '../store/types.js';
import { getAgent } from './agents.js';

export interface CreatedToken {
  token: TokenRecord;
  /** Shown once; only its hash is stored. */
  secret: string;
}

export async function createToken(
  store: Store,
  caller: Caller,
  input: { agent: string; role?: string },
): Promise<CreatedToken> {
  assertName('agent', input.agent);
  const role = (input.role ?? 'agent') as TokenRole;
  if (!TOKEN_ROLES.includes(role)) {
    throw new UsageError(
      `invalid token role ${JSON.stringify(input.role)}: use one of ${TOKEN_ROLES.join(', ')}`,
    );
  }
  await requireAdmin(store, caller, 'creating a token');
  await getAgent(store, caller, input.agent);
  const secret = newTokenSecret();
  const token = await store.tokens.create({
    id: newId('tok'),
    project: caller.project,
    agent: input.agent,
    role,
    prefix: tokenPrefix(secret),
    hash: hashTokenSecret(secret),
  });
  return { token, secret };
}

export async function listTokens(store: Store, caller: Caller): Promise<TokenRecord[]> {
  await requireAdmin(store, caller, 'listing tokens');
  return store.tokens.list(caller.project);
}

export async function revokeToken(store: Store, caller: Caller, idOrPrefix: string): Promise<TokenRecord> {
  if (idOrPrefix.trim() === '') throw new UsageError('give a token id or prefix to revoke');
  await requireAdmin(store, caller, 'revoking a token');
  const token = await store.tokens.revoke(caller.project, idOrPrefix);
  if (!token) {
    throw new NotFound(`no token "${idOrPrefix}" in project "${caller.project}"`, {
      hint: 'see `sos tokens list`',
    });
  }
  return token;
}
