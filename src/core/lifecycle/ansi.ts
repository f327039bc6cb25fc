/**
 * Strip terminal escape sequences from captured screen text: CSI (colours, cursor moves),
 * OSC (titles, hyperlinks; ended by BEL or ST), DCS/SOS/PM/APC strings, and the remaining
 * two-byte ESC sequences. Lone control characters other than tab and newline are dropped too,
 * and CRLF is normalised to LF.
 */
const ESCAPES = new RegExp(
  [
    '\\u001b\\][\\s\\S]*?(?:\\u0007|\\u001b\\\\)', // OSC … BEL | ST
    '\\u001b[PX^_][\\s\\S]*?\\u001b\\\\', // DCS, SOS, PM, APC … ST
    '\\u009b[0-?]*[ -/]*[@-~]', // 8-bit CSI
    '\\u001b\\[[0-?]*[ -/]*[@-~]', // CSI
    '\\u001b[ -/]*[0-~]', // other ESC sequences (charset selection, keypad modes, …)
  ].join('|'),
  'g',
);

// eslint-disable-next-line no-control-regex
const CONTROLS = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g;

export function stripAnsi(text: string): string {
  return text.replace(/\r\n/g, '\n').replace(ESCAPES, '').replace(/\r/g, '').replace(CONTROLS, '');
}
