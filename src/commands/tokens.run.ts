import { UsageError } from '../core/errors.js';
import { createToken, listTokens, revokeToken } from '../core/identity/tokens.js';
import type { TokenRecord } from '../core/store/types.js';
import type { Invocation, Output } from './define.js';
import { iso, table } from './format.js';
import { withSession } from './session.js';

const view = (t: TokenRecord) => ({
  id: t.id,
  project: t.project,
  agent: t.agent,
  role: t.role,
  prefix: t.prefix,
  createdAt: iso(t.createdAt),
  lastUsedAt: iso(t.lastUsedAt),
  revokedAt: iso(t.revokedAt),
});

export function create(inv: Invocation): Promise<Output> {
  if (typeof inv.options.agent !== 'string') {
    return Promise.reject(new UsageError('tokens create needs --agent <name>'));
  }
  const agent = inv.options.agent;
  const role = typeof inv.options.role === 'string' ? inv.options.role : undefined;
  return withSession(inv, async ({ store, caller }) => {
    const { token, secret } = await createToken(store, caller, { agent, ...(role ? { role } : {}) });
    return {
      data: { ...view(token), secret },
      human: [
        `token ${token.id} for ${token.agent} (${token.role}) in project "${token.project}":`,
        '',
        `  ${secret}`,
        '',
        'It is shown only now; sos keeps only its hash. Give it to the agent as SOS_TOKEN.',
      ].join('\n'),
      quiet: secret,
    };
  });
}

export function list(inv: Invocation): Promise<Output> {
  return withSession(inv, async ({ store, caller }) => {
    const tokens = await listTokens(store, caller);
    return {
      data: tokens.map(view),
      human: tokens.length
        ? table(
            ['id', 'prefix', 'agent', 'role', 'created', 'last used', 'revoked'],
            tokens.map((t) => [
              t.id,
              t.prefix,
              t.agent,
              t.role,
              iso(t.createdAt),
              iso(t.lastUsedAt),
              iso(t.revokedAt),
            ]),
          )
        : `no tokens in project "${caller.project}"`,
      quiet: tokens.map((t) => t.id).join('\n'),
    };
  });
}

export function revoke(inv: Invocation): Promise<Output> {
  return withSession(inv, async ({ store, caller }) => {
    const token = await revokeToken(store, caller, inv.args.token as string);
    return { data: view(token), human: `token ${token.id} (${token.agent}) revoked`, quiet: token.id };
  });
}
