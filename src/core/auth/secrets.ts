import { createHash, randomBytes } from 'node:crypto';

/** Token secrets: `sos_` + 32 random bytes, base64url. Only the SHA-256 of the secret is stored. */
export function newTokenSecret(): string {
  return `sos_${randomBytes(32).toString('base64url')}`;
}

/** A fast hash is right here: secrets have 256 bits of entropy, so there is nothing to brute-force. */
export function hashTokenSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** What listings show so an operator can tell tokens apart without the secret. */
export function tokenPrefix(secret: string): string {
  return secret.slice(0, 12);
}
