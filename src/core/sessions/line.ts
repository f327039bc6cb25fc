import { neutralise } from '../safe-text.js';

/**
 * Text typed into a session is one line of printable characters: drivers refuse control
 * characters, and a message or a context pack may contain anything. C0 controls and DEL (ESC,
 * CR, Ctrl-C/D/Z) are dropped, C1 controls and bidi overrides typed as visible escapes
 * (`\x9b`, `\u202e`), tabs become spaces and the lines of a multi-line text are joined with ` | `.
 */
export function sessionLine(text: string): string {
  const printable = [...text]
    .map((c) => (c === '\t' ? ' ' : c))
    .filter((c) => {
      const n = c.codePointAt(0)!;
      return n === 10 || (n >= 32 && n !== 127);
    })
    .join('');
  return neutralise(printable)
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .join(' | ');
}
