import { describe, expect, it } from 'vitest';
import { notifyLine, wakeLine } from '../../src/core/daemon/wake.js';
import type { Envelope } from '../../src/core/bus/types.js';
import { readEnvelope } from '../../src/core/bus/types.js';
import { UsageError } from '../../src/core/errors.js';
import { clip, neutralise, refuseNul } from '../../src/core/safe-text.js';
import { sessionLine } from '../../src/core/sessions/line.js';
import { HOSTILE, UNSAFE_OUTPUT } from '../fixtures/hostile.js';

const envelope = (text: string, from = 'kasra'): Envelope => ({
  id: 'msg_01m7yk94nck940yha99amqj40s',
  project: 'default',
  from,
  target: { kind: 'agent', name: 'codex' },
  type: 'message',
  text,
  contentType: 'text/plain',
  replyTo: null,
  requestId: null,
  ackRequired: false,
  ackTimeoutMs: null,
  priority: 'normal',
  createdAt: Date.parse('2026-12-05T12:00:00Z'),
  expiresAt: null,
  recipients: ['codex'],
  ackFor: null,
  ackOk: null,
  resendOf: null,
});

describe('neutralise: untrusted text on a human surface', () => {
  it.each(Object.entries(HOSTILE))('%s: no control, C1 or bidi character survives', (_name, text) => {
    const out = neutralise(text);
    expect(out).not.toMatch(UNSAFE_OUTPUT);
    // Nothing is hidden: every unsafe character is shown as a visible escape.
    expect(out.length).toBeGreaterThanOrEqual(text.length);
  });

  it('shows escapes as visible text and leaves printable text, tabs and newlines alone', () => {
    expect(neutralise('hi \x1b]0;pwned\x07')).toBe('hi \\x1b]0;pwned\\x07');
    expect(neutralise('x \u009b2J')).toBe('x \\x9b2J');
    expect(neutralise('innocent \u202etxt.exe')).toBe('innocent \\u202etxt.exe');
    expect(neutralise('a\rb\bc\x7f')).toBe('a\\x0db\\x08c\\x7f');
    expect(neutralise('half \ud83d pair')).toBe('half \ufffd pair');
    const plain = 'déployé ✓ 部署 🚀\tcol\nnext line';
    expect(neutralise(plain)).toBe(plain);
  });

  it('refuses NUL with a usage error, and clips long text', () => {
    expect(() => refuseNul('a\0b', 'the message')).toThrow(UsageError);
    expect(() => refuseNul('a\0b', 'the message')).toThrow(/NUL/);
    expect(refuseNul('fine', 'x')).toBe('fine');
    expect(clip('x'.repeat(10), 5)).toBe('xxxx…');
  });
});

describe('the line typed into a session', () => {
  it.each(Object.entries(HOSTILE))('%s: the wake line carries no ESC, CR, Ctrl-C/D/Z, C1 or bidi character', (_name, text) => {
    for (const line of [wakeLine([envelope(text)]), wakeLine([envelope('first'), envelope(text)]), sessionLine(text)]) {
      expect(line).not.toMatch(UNSAFE_OUTPUT);
      expect(line).not.toContain('\n');
    }
  });

  it('notify types a fixed line: nothing the sender wrote, whatever they wrote', () => {
    expect(notifyLine(1)).toBe('# [sos] 1 new message: run sos inbox');
    expect(notifyLine(3)).toBe('# [sos] 3 new messages: run sos inbox');
    expect(notifyLine(2)).not.toMatch(UNSAFE_OUTPUT);
  });
});

describe('reading a stored envelope', () => {
  it('reads a good one, makes an impossible expiry none, and names what is wrong with a bad one', () => {
    const good = envelope('hello');
    expect(readEnvelope(JSON.stringify(good))).toEqual(good);
    expect(readEnvelope(JSON.stringify({ ...good, expiresAt: 8.64e18 }))).toMatchObject({ text: 'hello', expiresAt: null });
    expect(readEnvelope('{"id":')).toBe('the stored envelope is not JSON');
    expect(readEnvelope('[]')).toBe('the stored envelope is not an object');
    expect(readEnvelope(JSON.stringify({ ...good, text: 5 }))).toBe('the stored envelope has no text');
    expect(readEnvelope(JSON.stringify({ ...good, createdAt: 1e300 }))).toBe('the stored envelope has no valid creation time');
    expect(readEnvelope(JSON.stringify({ ...good, target: { kind: 'agent' } }))).toBe('the stored envelope has no valid target');
  });
});
