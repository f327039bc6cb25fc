import { UUID_PATTERN, wireId } from './types.js';

/**
 * The ack protocol that SOS agents are taught to write in the text itself:
 *
 *   request:  "[request_id:<id>] Please analyze this log and report back."
 *   reply:    "{ack_for: <id>, ok: true} the log shows a disk-full at 03:12"
 *
 * Models write the reply loosely: quoted or bare keys, single or double quotes, either order,
 * extra spaces, a code fence around the object, Python's True. These readers take all of that
 * and nothing else: a reply must start with the object (after white space and a backtick fence),
 * so the same object quoted in the middle of a text is not an ack. Anything they do not read is
 * an ordinary message, never an error.
 */

/** What a request id may be: a UUID, sos's `req_…`, or any short token of these characters. */
const REF = '[A-Za-z0-9][A-Za-z0-9._:-]{0,127}';
const REQUEST_ID = new RegExp(`\\[\\s*request[_-]?id\\s*:\\s*(${REF})\\s*\\]`, 'i');

/** The request id a text asks an ack for (`[request_id:<id>]` anywhere in it), or null. */
export function requestIdIn(text: string): string | null {
  return REQUEST_ID.exec(text)?.[1] ?? null;
}

export interface TextAck {
  /** The request id (or message id) acknowledged. */
  ref: string;
  ok: boolean;
  /** What follows the object (or its `note`/`summary` key), trimmed; null when nothing. */
  note: string | null;
}

/** Longest object the reader looks at: an ack is a few dozen characters, not a document. */
const MAX_OBJECT = 400;

const unquote = (s: string) => s.trim().replace(/^(["'`])([\s\S]*)\1$/, '$2').trim();

/** The ack a text starts with, or null when it does not start with a well-formed one. */
export function ackIn(text: string): TextAck | null {
  // Leading white space, then an optional fence: ``` (with a language word) or single backticks.
  const head = /^\s*(`{3}[a-z]*\s*|`)?\s*\{/i.exec(text);
  if (!head) return null;
  const start = head[0].length;
  const end = text.indexOf('}', start);
  if (end < 0 || end - start > MAX_OBJECT) return null;
  const fields = new Map<string, string>();
  let last: string | undefined;
  for (const part of text.slice(start, end).split(',')) {
    const colon = part.indexOf(':');
    if (colon < 0) {
      // A comma inside a value (`note: "a, b"`): the part belongs to the key before it.
      if (last !== undefined) fields.set(last, `${fields.get(last)},${part}`);
      else if (part.trim() !== '') return null;
      continue;
    }
    const key = unquote(part.slice(0, colon)).toLowerCase().replace(/-/g, '_');
    last = key === 'ackfor' ? 'ack_for' : key;
    fields.set(last, part.slice(colon + 1));
  }
  for (const [key, value] of fields) fields.set(key, unquote(value));
  const ok = /^(true|false|yes|no)$/i.exec(fields.get('ok') ?? '')?.[1]?.toLowerCase();
  // `{ack_for: [request_id:X], …}` is read as X: a model may copy the request's tag whole.
  const ref = /^\[?\s*(?:request[_-]?id\s*:\s*)?([^\]\s]+?)\s*\]?$/i.exec(fields.get('ack_for') ?? '')?.[1];
  if (ok === undefined || ref === undefined || !new RegExp(`^${REF}$`).test(ref)) return null;
  let rest = text.slice(end + 1);
  if (head[1] !== undefined) rest = rest.replace(/^\s*`{1,3}/, '');
  const after = rest.replace(/^[\s\-–—:|]+/, '').trim();
  const inner = fields.get('note') ?? fields.get('summary') ?? fields.get('result');
  return { ref, ok: ok === 'true' || ok === 'yes', note: after !== '' ? after : inner ? inner : null };
}

/** One spelling for an id that may come as `msg_…`/`req_…` or as the UUID of the same bits. */
function canonical(id: string): string {
  return wireId(id) ?? (UUID_PATTERN.test(id) ? id.toLowerCase() : id);
}

/** Whether `ref` (as an agent wrote it) names `id` (as stored). */
export function sameRef(ref: string, id: string | null): boolean {
  return id !== null && (ref === id || canonical(ref) === canonical(id));
}
