/**
 * One signal for a provider call that fires on the provider's own deadline or on the caller's
 * cancellation, and remembers which, so a timeout (the provider's failure) is never confused with a
 * shutdown (nobody's failure). `clear()` must be called when the call settles: it drops the timer
 * and the listener on the caller's signal.
 */

export type DeadlineReason = 'timeout' | 'aborted';

export interface Deadline {
  readonly signal: AbortSignal;
  /** Why the signal fired, or null while it has not. */
  reason(): DeadlineReason | null;
  clear(): void;
}

export function deadline(timeoutMs: number, outer?: AbortSignal): Deadline {
  const controller = new AbortController();
  let why: DeadlineReason | null = null;
  const fire = (reason: DeadlineReason) => {
    if (why !== null) return;
    why = reason;
    controller.abort(reason === 'timeout' ? new DOMException('the provider did not answer in time', 'TimeoutError') : outer?.reason);
  };
  const onAbort = () => fire('aborted');
  if (outer?.aborted) fire('aborted');
  else outer?.addEventListener('abort', onAbort, { once: true });
  const timer = why === null ? setTimeout(() => fire('timeout'), timeoutMs) : undefined;
  return {
    signal: controller.signal,
    reason: () => why,
    clear: () => {
      if (timer !== undefined) clearTimeout(timer);
      outer?.removeEventListener('abort', onAbort);
    },
  };
}
