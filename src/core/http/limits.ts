import { isIP } from 'node:net';
import { UsageError } from '../errors.js';

/**
 * The HTTP server's bounds, as small pure pieces: where to listen, how large a body may be, and
 * the per-token rate and concurrency limits. Nothing here touches a socket, so each piece is
 * tested on its own (test/unit/http-limits.test.ts).
 */

/** The daemon's default address: loopback only, the port upstream SOS serves its bus on. */
export const DEFAULT_LISTEN = '127.0.0.1:6070';

export interface ListenAddress {
  host: string;
  port: number;
  /** True for 127.0.0.0/8, ::1 and `localhost`: reachable from this machine only. */
  loopback: boolean;
}

/**
 * `host:port`, `[v6]:port`, `:port` (loopback) or `off`. Returns null for `off`. Port 0 asks the
 * kernel for a free port (the tests use it); the address actually bound is reported after listen.
 */
export function parseListen(value: string): ListenAddress | null {
  const text = value.trim();
  if (text === 'off') return null;
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]*)):(\d{1,5})$/.exec(text);
  if (!match) {
    throw new UsageError(`invalid listen address "${text.slice(0, 100)}": expected host:port, [ipv6]:port or off`, {
      hint: `e.g. ${DEFAULT_LISTEN}`,
    });
  }
  const host = match[1] ?? (match[2] || '127.0.0.1');
  const port = Number(match[3]);
  if (port > 65_535) throw new UsageError(`invalid listen port ${port}: at most 65535`);
  if (match[1] !== undefined && isIP(host) !== 6) throw new UsageError(`invalid IPv6 address "${host}" in the listen address`);
  return { host, port, loopback: isLoopbackHost(host) };
}

export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return /^::ffff:127\./i.test(host);
}

/**
 * Refuses a non-loopback address unless the operator said `--allow-remote`: a token travels in
 * clear over plain HTTP, and TLS belongs to a reverse proxy in front of the daemon. Returns the
 * warning to print when remote binding is allowed.
 */
export function checkExposure(address: ListenAddress, allowRemote: boolean): string | null {
  if (address.loopback) return null;
  if (!allowRemote) {
    throw new UsageError(`refusing to listen on ${address.host}:${address.port}: it is reachable from other machines`, {
      hint: 'pass --allow-remote (and put a TLS reverse proxy in front), or listen on 127.0.0.1',
    });
  }
  return `listening on ${address.host}:${address.port}, beyond this machine: sos speaks plain HTTP and bearer tokens travel in clear; terminate TLS in a reverse proxy in front of it`;
}

/**
 * The largest request body accepted. Unless set, it is derived from the CLI's own text limits:
 * JSON escaping may grow text up to six times (`\u00XX` per control byte), so eight times the
 * largest message or engram, plus 64 KiB for the other fields, fits any valid request; and never
 * more than the line the stdio MCP transport accepts, so HTTP takes nothing stdio would refuse.
 */
export function maxBodyBytes(values: { httpMaxBodyBytes?: number | undefined; maxMessageBytes: number; maxEngramBytes: number }, stdioLineBytes: number): number {
  if (values.httpMaxBodyBytes !== undefined) return values.httpMaxBodyBytes;
  return Math.min(stdioLineBytes, 8 * Math.max(values.maxMessageBytes, values.maxEngramBytes) + 65_536);
}

/**
 * A token bucket per key: `ratePerSec` tokens a second, at most `burst` saved. `take` answers
 * whether a request may go now and, when not, how many whole seconds until one may (the
 * `Retry-After` value). Keys idle long enough to have refilled are dropped, so the map stays the
 * size of the active callers.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly ratePerSec: number,
    private readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {
    if (!(ratePerSec > 0) || !(burst >= 1)) throw new UsageError('the HTTP rate limit needs a rate above 0 and a burst of 1 or more');
  }

  take(key: string): { ok: true } | { ok: false; retryAfterSec: number } {
    const now = this.now();
    const bucket = this.buckets.get(key) ?? { tokens: this.burst, at: now };
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.ratePerSec);
    bucket.at = now;
    this.buckets.set(key, bucket);
    if (this.buckets.size > 1_000) this.prune(now);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryAfterSec: Math.max(1, Math.ceil((1 - bucket.tokens) / this.ratePerSec)) };
  }

  private prune(now: number): void {
    const full = (this.burst / this.ratePerSec) * 1000;
    for (const [key, b] of this.buckets) if (now - b.at >= full) this.buckets.delete(key);
  }
}

/** Requests in flight per key, at most `max` each; `enter` returns the release, or null when full. */
export class ConcurrencyLimiter {
  private readonly running = new Map<string, number>();

  constructor(private readonly max: number) {
    if (!(max >= 1)) throw new UsageError('the HTTP concurrency limit must be 1 or more');
  }

  enter(key: string): (() => void) | null {
    const n = this.running.get(key) ?? 0;
    if (n >= this.max) return null;
    this.running.set(key, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.running.get(key) ?? 1) - 1;
      if (left <= 0) this.running.delete(key);
      else this.running.set(key, left);
    };
  }

  inFlight(key: string): number {
    return this.running.get(key) ?? 0;
  }
}
