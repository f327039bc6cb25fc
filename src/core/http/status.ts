import { type ErrorCode, type SosError, toSosError } from '../errors.js';

/**
 * The HTTP status for each error code: the same judgement as the CLI's exit code, so a REST
 * client, an MCP client and a shell script see one answer for one failure.
 */
export const HTTP_STATUS: Record<ErrorCode, number> = {
  usage: 400,
  permission_denied: 403,
  not_found: 404,
  conflict: 409,
  failed: 422,
  unavailable: 503,
  internal: 500,
};

/** The CLI's `--json` error object: `{"error":{"code","message","hint"?}}`. */
export function errorBody(error: SosError): { error: { code: ErrorCode; message: string; hint?: string } } {
  return { error: { code: error.code, message: error.message, ...(error.hint ? { hint: error.hint } : {}) } };
}

/** Any thrown value as a status and the CLI's error object. */
export function errorReply(err: unknown): { status: number; body: ReturnType<typeof errorBody> } {
  const error = toSosError(err);
  return { status: HTTP_STATUS[error.code], body: errorBody(error) };
}
