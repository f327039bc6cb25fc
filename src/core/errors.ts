/**
 * The one error taxonomy of sos. Core code throws these; only `src/cli.ts` turns them into an exit
 * code and a message (and the MCP layer into tool errors), so every surface reports the same thing.
 */

export type ErrorCode =
  | 'failed'
  | 'usage'
  | 'not_found'
  | 'conflict'
  | 'unavailable'
  | 'permission_denied'
  | 'internal';

export class SosError extends Error {
  readonly code: ErrorCode;
  /** One line telling the user what to do next, printed after the message. */
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.hint = options.hint;
  }
}

/** The operation was attempted and did not succeed. */
export class OperationFailed extends SosError {
  constructor(message: string, options?: { hint?: string; cause?: unknown }) {
    super('failed', message, options);
  }
}

/** The input is malformed: a bad name, an unknown option value, a missing argument. */
export class UsageError extends SosError {
  constructor(message: string, options?: { hint?: string; cause?: unknown }) {
    super('usage', message, options);
  }
}

export class NotFound extends SosError {
  constructor(message: string, options?: { hint?: string; cause?: unknown }) {
    super('not_found', message, options);
  }
}

/** The request clashes with current state: a duplicate, a stale fence, nothing to claim. */
export class Conflict extends SosError {
  constructor(message: string, options?: { hint?: string; cause?: unknown }) {
    super('conflict', message, options);
  }
}

/** A backend (database, Redis, tmux) cannot be reached or lacks something it needs. */
export class Unavailable extends SosError {
  constructor(message: string, options?: { hint?: string; cause?: unknown }) {
    super('unavailable', message, options);
  }
}

export class PermissionDenied extends SosError {
  constructor(message: string, options?: { hint?: string; cause?: unknown }) {
    super('permission_denied', message, options);
  }
}

/** Wraps anything that is not a SosError, so the boundary always has a code. */
export function toSosError(err: unknown): SosError {
  if (err instanceof SosError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new SosError('internal', message, { cause: err });
}
