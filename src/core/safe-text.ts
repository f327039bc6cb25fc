import { UsageError } from './errors.js';

/**
 * Untrusted text (a message, a task title, an engram, a screen line an agent printed) on a human
 * surface. A terminal obeys control bytes: ESC and 8-bit CSI sequences retitle windows, clear the
 * screen, write the clipboard (OSC 52) or disguise links (OSC 8); CR and backspace overwrite what
 * was printed; bidi overrides make a command read as another. Every human surface prints text
 * through `neutralise`; `--json` stays exact (JSON escapes control characters itself).
 */

// C0 controls but tab and newline, DEL, C1 controls, bidi embeddings/overrides/isolates and marks,
// and lone surrogates (invalid UTF-16, what invalid UTF-8 becomes once decoded loosely).
const UNSAFE =
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

function visible(c: string): string {
  const n = c.charCodeAt(0);
  if (n >= 0xd800 && n <= 0xdfff) return '\ufffd';
  return n < 0x100 ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u${n.toString(16).padStart(4, '0')}`;
}

/** The text with every byte a terminal would obey shown as a visible escape (`\x1b`, `\u202e`). */
export function neutralise(text: string): string {
  UNSAFE.lastIndex = 0;
  return UNSAFE.test(text) ? text.replace(UNSAFE, visible) : text;
}

/** True when `neutralise` would change nothing. */
export function isSafe(text: string): boolean {
  UNSAFE.lastIndex = 0;
  return !UNSAFE.test(text);
}

/**
 * NUL ends a C string: stored, it truncates the text in every tool downstream (and in a terminal
 * it hides what follows). Refused wherever text is taken: names, titles, labels, message and
 * engram text.
 */
export function refuseNul<T extends string | undefined | null>(text: T, what: string): T {
  if (typeof text === 'string' && text.includes('\0')) {
    throw new UsageError(`${what} contains a NUL byte (\\x00)`, { hint: 'remove it: sos stores text, not binary data' });
  }
  return text;
}

/** `refuseNul` for each of a list (labels, tags, capabilities). */
export function refuseNuls(list: readonly string[] | undefined, what: string): void {
  for (const item of list ?? []) refuseNul(item, what);
}

/** At most `max` characters, with `…` where it was cut: for error messages that quote input. */
export function clip(text: string, max: number): string {
  if (text.length <= max) return text;
  let cut = max - 1;
  // Never leave half of a surrogate pair at the cut.
  if (cut > 0 && /[\ud800-\udbff]/.test(text[cut - 1]!)) cut -= 1;
  return `${text.slice(0, cut)}…`;
}

/** Input quoted in an error: JSON-escaped (no control byte reaches a terminal) and cut short. */
export function quote(text: unknown, max = 80): string {
  const value = typeof text === 'string' ? text : String(text);
  return JSON.stringify(clip(value, max + 1));
}
