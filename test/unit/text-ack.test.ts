import { describe, expect, it } from 'vitest';
import { ackIn, requestIdIn, sameRef } from '../../src/core/bus/text-ack.js';
import { wireId } from '../../src/core/bus/types.js';
import { newId } from '../../src/core/ids.js';

const ID = '0b7c9a52-51c4-4e0e-9d55-2f1f0d8a6c11';

describe('the ack protocol written in the text', () => {
  it('finds [request_id:<id>] anywhere in a text, in the spellings models use', () => {
    expect(requestIdIn(`[request_id:${ID}] Please analyze this log and report back.`)).toBe(ID);
    expect(requestIdIn(`Please analyze this log. [request_id: ${ID}]`)).toBe(ID);
    expect(requestIdIn('first line\n[ Request-ID : req_42 ] then more')).toBe('req_42');
    expect(requestIdIn('[requestid:abc.def:1]')).toBe('abc.def:1');
    expect(requestIdIn('no tag here')).toBeNull();
    expect(requestIdIn('[request_id:]')).toBeNull();
    expect(requestIdIn('[request_id: has spaces inside]')).toBeNull();
    expect(requestIdIn(`request_id:${ID} without brackets`)).toBeNull();
  });

  // Ten loose forms a model writes, each read as the same ack.
  const loose: [string, boolean, string | null][] = [
    [`{ack_for: ${ID}, ok: true} the log shows a disk-full at 03:12`, true, 'the log shows a disk-full at 03:12'],
    [`{"ack_for": "${ID}", "ok": true} done`, true, 'done'],
    [`{'ack_for': '${ID}', 'ok': false} cannot reach the host`, false, 'cannot reach the host'],
    [`  {  ack_for :  ${ID} ,  ok :  true  }   — deployed`, true, 'deployed'],
    [`{ok: true, ack_for: ${ID}}`, true, null],
    [`{ack_for: ${ID}, ok: True}: summary follows`, true, 'summary follows'],
    ['```json\n{"ack_for": "' + ID + '", "ok": true}\n```\nAll green.', true, 'All green.'],
    ['`{ack_for: ' + ID + ', ok: yes}` merged', true, 'merged'],
    [`{ack_for: [request_id:${ID}], ok: true} copied the tag`, true, 'copied the tag'],
    [`{ackFor: ${ID}, ok: no, note: "disk full, retry later"}`, false, 'disk full, retry later'],
    [`{ack-for: ${ID}, ok: TRUE, summary: fixed} | more`, true, 'more'],
  ];
  it.each(loose)('reads %j', (text, ok, note) => {
    expect(ackIn(text)).toEqual({ ref: ID, ok, note });
  });

  it('reads nothing that is not an ack at the start of the text', () => {
    const not = [
      `as I said, {ack_for: ${ID}, ok: true} was my answer`,
      `Re: {ack_for: ${ID}, ok: true}`,
      `{ack_for: ${ID}}`,
      `{ok: true}`,
      `{ack_for: ${ID}, ok: maybe}`,
      `{ack_for: , ok: true}`,
      `{ack_for: ${ID}, ok: true`,
      `{ack_for: has spaces in it, ok: true}`,
      `{"ack_for": "${ID}", "ok": true, ${'"pad": "x", '.repeat(40)}} long`,
      '{}',
      '',
      'plain text',
    ];
    for (const text of not) expect(ackIn(text), text).toBeNull();
  });

  it('matches a reference across the msg_ and UUID spellings of one id', () => {
    const msg = newId('msg');
    const uuid = wireId(msg)!;
    expect(uuid).toMatch(/^[0-9a-f-]{36}$/);
    expect(sameRef(uuid, msg)).toBe(true);
    expect(sameRef(uuid.toUpperCase(), msg)).toBe(true);
    expect(sameRef(msg, msg)).toBe(true);
    expect(sameRef('req_1', 'req_1')).toBe(true);
    expect(sameRef('req_1', 'req_2')).toBe(false);
    expect(sameRef('req_1', null)).toBe(false);
  });
});
