import { describe, expect, it } from 'vitest';
import { checkExposure, ConcurrencyLimiter, maxBodyBytes, parseListen, RateLimiter } from '../../src/core/http/limits.js';

describe('HTTP limits', () => {
  it('parses listen addresses: host:port, [v6]:port, :port, off; loopback or not', () => {
    expect(parseListen('127.0.0.1:6070')).toEqual({ host: '127.0.0.1', port: 6070, loopback: true });
    expect(parseListen(':7000')).toEqual({ host: '127.0.0.1', port: 7000, loopback: true });
    expect(parseListen('[::1]:6070')).toEqual({ host: '::1', port: 6070, loopback: true });
    expect(parseListen('localhost:0')).toEqual({ host: 'localhost', port: 0, loopback: true });
    expect(parseListen('0.0.0.0:6070')).toEqual({ host: '0.0.0.0', port: 6070, loopback: false });
    expect(parseListen('[::]:6070')).toMatchObject({ host: '::', loopback: false });
    expect(parseListen('10.1.2.3:80')).toMatchObject({ loopback: false });
    expect(parseListen(' off ')).toBeNull();
    for (const bad of ['6070', 'host', 'a:b', '1.2.3.4:70000', '[nothex]:1', '::1:6070', '']) expect(() => parseListen(bad), bad).toThrow(/listen/);
  });

  it('refuses a non-loopback address without --allow-remote, and warns with it', () => {
    expect(checkExposure(parseListen('127.0.0.1:1')!, false)).toBeNull();
    expect(() => checkExposure(parseListen('0.0.0.0:6070')!, false)).toThrow(/reachable from other machines/);
    expect(checkExposure(parseListen('0.0.0.0:6070')!, true)).toMatch(/TLS in a reverse proxy/);
  });

  it('derives the body bound from the text limits, capped by the stdio line', () => {
    expect(maxBodyBytes({ maxMessageBytes: 65_536, maxEngramBytes: 32_768 }, 10 * 1024 * 1024)).toBe(8 * 65_536 + 65_536);
    expect(maxBodyBytes({ maxMessageBytes: 4 * 1024 * 1024, maxEngramBytes: 1 }, 10 * 1024 * 1024)).toBe(10 * 1024 * 1024);
    expect(maxBodyBytes({ httpMaxBodyBytes: 100, maxMessageBytes: 65_536, maxEngramBytes: 1 }, 1_000)).toBe(100);
  });

  it('rate: a burst, then the rate, per key, with the seconds to wait', () => {
    let now = 0;
    const rate = new RateLimiter(2, 3, () => now);
    for (let i = 0; i < 3; i++) expect(rate.take('a')).toEqual({ ok: true });
    expect(rate.take('a')).toEqual({ ok: false, retryAfterSec: 1 });
    expect(rate.take('b')).toEqual({ ok: true });
    now = 499;
    expect(rate.take('a').ok).toBe(false);
    now = 500;
    expect(rate.take('a')).toEqual({ ok: true });
    expect(rate.take('a').ok).toBe(false);
    now = 100_000; // refilled to the burst, never beyond it
    for (let i = 0; i < 3; i++) expect(rate.take('a').ok).toBe(true);
    expect(rate.take('a').ok).toBe(false);
    const slow = new RateLimiter(0.1, 1, () => now);
    slow.take('k');
    expect(slow.take('k')).toEqual({ ok: false, retryAfterSec: 10 });
    expect(() => new RateLimiter(0, 1)).toThrow();
  });

  it('concurrency: at most n in flight per key; a release frees one slot once', () => {
    const limit = new ConcurrencyLimiter(2);
    const a = limit.enter('k')!;
    const b = limit.enter('k')!;
    expect(limit.enter('k')).toBeNull();
    expect(limit.enter('other')).not.toBeNull();
    a();
    a();
    expect(limit.inFlight('k')).toBe(1);
    expect(limit.enter('k')).not.toBeNull();
    expect(limit.enter('k')).toBeNull();
    b();
    expect(limit.inFlight('k')).toBe(1);
  });
});
