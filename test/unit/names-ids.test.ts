import { describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../src/cli.js';
import { hashTokenSecret, newTokenSecret, tokenPrefix } from '../../src/core/auth/secrets.js';
import { UsageError } from '../../src/core/errors.js';
import { newId } from '../../src/core/ids.js';
import { assertCapability, assertName } from '../../src/core/names.js';

describe('names, ids, secrets, exit codes', () => {
  it('accepts valid names and refuses everything else', () => {
    for (const ok of ['a', 'kasra', 'worker-3', 'a'.repeat(40)]) expect(assertName('agent', ok)).toBe(ok);
    for (const bad of ['', 'Bad Name', '3x', '-x', 'a_b', 'a'.repeat(41), 'Kasra', 'é']) {
      expect(() => assertName('agent', bad), bad).toThrow(UsageError);
    }
    expect(assertCapability('model:opus')).toBe('model:opus');
    expect(() => assertCapability('has space')).toThrow(UsageError);
  });

  it('makes sortable, unique ids', () => {
    const a = newId('tok', 1_000);
    const b = newId('tok', 2_000);
    expect(a).toMatch(/^tok_[0-9a-z]{26}$/);
    expect(a < b).toBe(true);
    expect(new Set(Array.from({ length: 1000 }, () => newId('x'))).size).toBe(1000);
  });

  it('hashes secrets one way and shows only a prefix', () => {
    const secret = newTokenSecret();
    expect(hashTokenSecret(secret)).toMatch(/^[0-9a-f]{64}$/);
    expect(hashTokenSecret(secret)).toBe(hashTokenSecret(secret));
    expect(hashTokenSecret(secret)).not.toContain(secret.slice(4, 12));
    expect(tokenPrefix(secret)).toHaveLength(12);
    expect(newTokenSecret()).not.toBe(secret);
  });

  it('maps the taxonomy to the documented exit codes', () => {
    expect(EXIT_CODES).toEqual({
      failed: 1,
      internal: 1,
      usage: 2,
      not_found: 3,
      conflict: 4,
      unavailable: 5,
      permission_denied: 6,
    });
  });
});

describe('monotonic ids', () => {
  it('orders ids made in the same millisecond by creation', () => {
    const ids = Array.from({ length: 500 }, () => newId('msg', 42_000));
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(500);
  });
});
