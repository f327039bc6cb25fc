import { expect } from 'vitest';
import type { SosError } from '../../src/core/errors.js';

/** Awaits a promise that must reject with `type` (and, optionally, a message matching `message`). */
export async function fails(promise: Promise<unknown>, type: new (...args: never[]) => SosError, message?: RegExp): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(type);
  if (message) expect((err as Error).message).toMatch(message);
}
