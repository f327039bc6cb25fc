import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { RotatingLog } from '../../src/core/sessions/rotating-log.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function logIn(max: number): { log: RotatingLog; path: string } {
  const dir = mkdtempSync(join(tmpdir(), 'sos-log-'));
  dirs.push(dir);
  const path = join(dir, 'session.log');
  return { log: new RotatingLog(path, max), path };
}

describe('RotatingLog', () => {
  test('a single chunk larger than the log is cut across parts; no part passes the size', async () => {
    const { log, path } = logIn(4_096);
    const lines = Array.from({ length: 2_600 }, (_, i) => `line ${String(i + 1).padStart(5, '0')}\n`).join('');
    log.write(lines); // ~29 kB in one write, as a pty can deliver it
    await log.end();
    const current = readFileSync(path, 'utf8');
    const previous = readFileSync(`${path}.1`, 'utf8');
    expect(statSync(path).size).toBeLessThanOrEqual(4_096);
    expect(statSync(`${path}.1`).size).toBe(4_096);
    // The two kept parts are the tail of what was written, in order, nothing lost between them.
    expect(lines.endsWith(previous + current)).toBe(true);
    expect((previous + current).length).toBeGreaterThan(4_096);
  });

  test('never splits a UTF-8 character between parts', async () => {
    const { log, path } = logIn(10);
    log.write('ab€€€€€'); // 2 + 5×3 bytes
    await log.end();
    // 'ab€€' is 8 bytes; a third € would straddle byte 10, so it starts the next part.
    expect(readFileSync(`${path}.1`, 'utf8')).toBe('ab€€');
    expect(readFileSync(path, 'utf8')).toBe('€€€');
  });

  test('small writes rotate at the boundary and keep counting across a reopen', async () => {
    const { log, path } = logIn(100);
    for (let i = 0; i < 30; i++) log.write('0123456789');
    await log.end();
    expect(statSync(path).size).toBe(100);
    expect(statSync(`${path}.1`).size).toBe(100);
    const again = new RotatingLog(path, 100);
    again.write('x');
    await again.end();
    expect(readFileSync(path, 'utf8')).toBe('x');
    expect(statSync(`${path}.1`).size).toBe(100);
  });
});
