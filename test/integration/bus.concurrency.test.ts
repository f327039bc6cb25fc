import { describe, expect, it } from 'vitest';
import { isolatedEnv, sos, spawnSos } from '../helpers/cli.js';
import { services, tempDir } from '../helpers/isolation.js';
import { redisProject } from '../helpers/redis.js';

/**
 * Four sender processes × 2,500 messages to one recipient while a reader process consumes with
 * `inbox --follow`: every message read exactly once, none lost, none duplicated.
 */

const SENDERS = 4;
const PER_SENDER = 2_500;

const BACKENDS = [
  { name: 'sqlite', available: true, redis: false },
  { name: 'redis', available: services.redis !== null, redis: true },
] as const;

describe.each(BACKENDS)('bus under concurrent processes: $name', (backend) => {
  it.skipIf(!backend.available)(`${SENDERS} senders × ${PER_SENDER} messages, one reader: exactly once`, { timeout: 240_000 }, async (ctx) => {
    const project = backend.redis ? redisProject(ctx) : `p${Math.random().toString(36).slice(2, 10)}`;
    const env = isolatedEnv(tempDir(ctx), { SOS_PROJECT: project, ...(backend.redis ? { SOS_REDIS_URL: services.redisUrl } : {}) });
    expect((await sos(['init'], env)).code).toBe(0);
    for (const name of ['reader', ...Array.from({ length: SENDERS }, (_, i) => `sender-${i}`)]) {
      expect((await sos(['agents', 'add', name], env)).code).toBe(0);
    }

    const reader = spawnSos(['inbox', '--follow', '--json', '--as', 'reader'], env);
    const seen: string[] = [];
    let buffer = '';
    reader.stdout!.on('data', (d: Buffer) => {
      buffer += d.toString();
      const parts = buffer.split('\n');
      buffer = parts.pop()!;
      for (const line of parts) if (line) seen.push(JSON.parse(line).text);
    });
    const readerClosed = new Promise<number>((r) => reader.on('close', (c) => r(c ?? -1)));

    const senders = Array.from({ length: SENDERS }, (_, s) => {
      const body = Array.from({ length: PER_SENDER }, (_, n) => `s${s}-${n}`).join('\n');
      return sos(['send', 'reader', '--each-line', '--as', `sender-${s}`], env, { input: `${body}\n` });
    });
    const results = await Promise.all(senders);
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    const total = SENDERS * PER_SENDER;
    expect(results.reduce((n, r) => n + r.stdout.trim().split('\n').length, 0)).toBe(total);

    const deadline = Date.now() + 60_000;
    while (seen.length < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    reader.kill('SIGINT');
    expect(await readerClosed).toBe(0);

    expect(seen.length).toBe(total);
    expect(new Set(seen).size).toBe(total);
    // Per sender, the reader saw that sender's messages in the order they were sent.
    for (let s = 0; s < SENDERS; s++) {
      const mine = seen.filter((t) => t.startsWith(`s${s}-`)).map((t) => Number(t.split('-')[1]));
      expect(mine).toEqual(Array.from({ length: PER_SENDER }, (_, n) => n));
    }
    // Nothing left unread behind the cursor.
    const rest = (await sos(['inbox', '--as', 'reader', '--json'], env)).json<{ unread: unknown[] }>();
    expect(rest.unread).toEqual([]);
  });
});
