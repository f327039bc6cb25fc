/**
 * Text typed into a session is one line of printable characters: drivers refuse control
 * characters, and a message or a context pack may contain anything. Tabs become spaces and the
 * lines of a multi-line text are joined with ` | `.
 */
export function sessionLine(text: string): string {
  return [...text]
    .map((c) => (c === '\t' ? ' ' : c))
    .filter((c) => {
      const n = c.codePointAt(0)!;
      return n === 10 || (n >= 32 && n !== 127);
    })
    .join('')
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .join(' | ');
}
