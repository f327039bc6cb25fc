import { describe, expect, it } from 'vitest';
import { BreakerOpen, CircuitBreaker, type Permit } from '../../src/core/brain/index.js';
import { UsageError } from '../../src/core/errors.js';

/** The circuit breaker on a fake clock: every transition, counter and refusal, with no waiting. */

function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

function fail(b: CircuitBreaker, n = 1, info?: { timeout?: boolean; error?: string }) {
  for (let i = 0; i < n; i++) {
    const p = b.acquire();
    expect(p, 'a permit').not.toBeNull();
    p!.failure(info);
  }
}

describe('CircuitBreaker', () => {
  it('opens after 3 consecutive failures by default, and a success in between resets the count', () => {
    const c = clock();
    const b = new CircuitBreaker('a', { now: c.now });
    fail(b, 2);
    expect(b.state).toBe('closed');
    b.acquire()!.success();
    fail(b, 2);
    expect(b.state).toBe('closed');
    expect(b.snapshot().consecutiveFailures).toBe(2);
    fail(b, 1, { timeout: true, error: 'timed out' });
    expect(b.state).toBe('open');
    const s = b.snapshot();
    expect(s).toMatchObject({
      state: 'open',
      openedAt: c.now(),
      probeAt: c.now() + 60_000,
      probeInFlight: false,
      lastError: 'timed out',
      counters: { calls: 6, successes: 1, failures: 5, timeouts: 1, opens: 1, rejections: 0 },
    });
  });

  it('refuses calls while open and counts them as rejections', () => {
    const c = clock();
    const b = new CircuitBreaker('a', { now: c.now });
    fail(b, 3);
    expect(b.acquire()).toBeNull();
    c.advance(59_999);
    expect(b.state).toBe('open');
    expect(b.acquire()).toBeNull();
    expect(b.snapshot().counters).toMatchObject({ calls: 3, rejections: 2, opens: 1 });
  });

  it('half-opens after the cool-down and lets exactly one probe through', () => {
    const c = clock();
    const b = new CircuitBreaker('a', { now: c.now });
    fail(b, 3);
    c.advance(60_000);
    expect(b.state).toBe('half-open');
    const probe = b.acquire();
    expect(probe?.probe).toBe(true);
    expect(b.snapshot()).toMatchObject({ state: 'half-open', probeInFlight: true });
    // concurrent callers while the probe is in flight are refused, however long it takes
    expect(b.acquire()).toBeNull();
    c.advance(120_000);
    expect(b.acquire()).toBeNull();
    expect(b.snapshot().counters.rejections).toBe(2);
    probe!.success();
    expect(b.state).toBe('closed');
    expect(b.snapshot()).toMatchObject({ consecutiveFailures: 0, probeInFlight: false, probeAt: null });
    expect(b.acquire()?.probe).toBe(false);
  });

  it('a failed probe re-opens it for another full cool-down', () => {
    const c = clock();
    const b = new CircuitBreaker('a', { now: c.now, coolDownMs: 10_000 });
    fail(b, 3);
    c.advance(10_000);
    b.acquire()!.failure();
    expect(b.state).toBe('open');
    expect(b.snapshot()).toMatchObject({ openedAt: c.now(), probeAt: c.now() + 10_000, counters: { opens: 2 } });
    c.advance(9_999);
    expect(b.acquire()).toBeNull();
    c.advance(1);
    const probe = b.acquire();
    expect(probe?.probe).toBe(true);
    probe!.success();
    expect(b.state).toBe('closed');
    // closed again: it takes the full threshold to open once more
    fail(b, 2);
    expect(b.state).toBe('closed');
    fail(b, 1);
    expect(b.snapshot().counters.opens).toBe(3);
  });

  it('a cancelled probe is no verdict: the next caller probes', () => {
    const c = clock();
    const b = new CircuitBreaker('a', { now: c.now });
    fail(b, 3);
    c.advance(60_000);
    b.acquire()!.cancel();
    expect(b.state).toBe('half-open');
    const next = b.acquire();
    expect(next?.probe).toBe(true);
    expect(b.snapshot().counters).toMatchObject({ failures: 3, successes: 0, opens: 1 });
  });

  it('calls begun before it opened neither extend the cool-down nor close it', () => {
    const c = clock();
    const b = new CircuitBreaker('a', { now: c.now });
    const slow: Permit[] = [b.acquire()!, b.acquire()!];
    fail(b, 3);
    const openedAt = c.now();
    c.advance(30_000);
    slow[0]!.failure();
    expect(b.snapshot()).toMatchObject({ state: 'open', openedAt, counters: { failures: 4, opens: 1 } });
    slow[1]!.success();
    expect(b.snapshot()).toMatchObject({ state: 'open', counters: { successes: 1 } });
    c.advance(30_000);
    expect(b.state).toBe('half-open');
  });

  it('settles a permit once', () => {
    const b = new CircuitBreaker('a', { now: clock().now, failureThreshold: 1 });
    const p = b.acquire()!;
    p.success();
    p.failure();
    p.success();
    expect(b.snapshot().counters).toMatchObject({ calls: 1, successes: 1, failures: 0 });
    expect(b.state).toBe('closed');
  });

  it('run() wraps a call and throws BreakerOpen without calling when refused', async () => {
    const c = clock();
    const b = new CircuitBreaker('anthropic', { now: c.now, failureThreshold: 2 });
    await expect(b.run(async () => 7)).resolves.toBe(7);
    for (let i = 0; i < 2; i++) await expect(b.run(() => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    let called = false;
    const refused = b.run(async () => {
      called = true;
    });
    await expect(refused).rejects.toBeInstanceOf(BreakerOpen);
    await expect(refused).rejects.toMatchObject({ code: 'unavailable', breaker: 'anthropic', state: 'open', probeAt: c.now() + 60_000 });
    expect(called).toBe(false);
    // a cancelled call is not held against the provider
    c.advance(60_000);
    await expect(b.run(() => Promise.reject(new Error('shutdown')), () => 'cancel')).rejects.toThrow('shutdown');
    expect(b.state).toBe('half-open');
    await expect(b.run(() => Promise.reject(new Error('slow')), () => 'timeout')).rejects.toThrow('slow');
    expect(b.snapshot().counters).toMatchObject({ timeouts: 1, opens: 2, failures: 3 });
  });

  it('refuses nonsense options', () => {
    expect(() => new CircuitBreaker('a', { failureThreshold: 0 })).toThrow(UsageError);
    expect(() => new CircuitBreaker('a', { failureThreshold: 1.5 })).toThrow(UsageError);
    expect(() => new CircuitBreaker('a', { coolDownMs: -1 })).toThrow(UsageError);
  });
});
