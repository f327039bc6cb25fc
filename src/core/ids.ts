import { randomBytes } from 'node:crypto';

const CROCKFORD = '0123456789abcdefghjkmnpqrstvwxyz';

let lastTime = -1;
let lastRandom: number[] = [];

/**
 * A sortable id: 48-bit millisecond time then 80 random bits, Crockford base32, lowercase, with a
 * short type prefix (`tok_01j…`). Sorting ids sorts by creation time, and ids made in one process
 * within the same millisecond still sort in the order they were made (the random part is
 * incremented, as monotonic ULIDs do): the Redis bus orders messages across streams by them.
 */
export function newId(prefix: string, now: number = Date.now()): string {
  let time = '';
  let t = now;
  for (let i = 0; i < 10; i++) {
    time = CROCKFORD[t % 32] + time;
    t = Math.floor(t / 32);
  }
  if (now === lastTime && lastRandom.length === 16) {
    for (let i = 15; i >= 0; i--) {
      lastRandom[i] = (lastRandom[i]! + 1) % 32;
      if (lastRandom[i] !== 0) break;
    }
    return `${prefix}_${time}${lastRandom.map((d) => CROCKFORD[d]).join('')}`;
  }
  const bytes = randomBytes(10);
  const digits: number[] = [];
  let rand = '';
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      digits.push((acc >> bits) & 31);
      rand += CROCKFORD[(acc >> bits) & 31];
    }
  }
  // Leave headroom so increments within one millisecond do not wrap.
  digits[0] = digits[0]! & 15;
  rand = CROCKFORD[digits[0]!] + rand.slice(1);
  lastTime = now;
  lastRandom = digits;
  return `${prefix}_${time}${rand}`;
}
