import { createWriteStream, openSync, renameSync, statSync, type WriteStream } from 'node:fs';

/**
 * An append-only log file that never grows past `maxBytes`: when a write would take it past
 * that, the file becomes `<path>.1` (replacing the previous one) and a new file is started, so a
 * chatty agent that runs for weeks holds at most twice `maxBytes` on disk. Writes never block.
 */
export class RotatingLog {
  private stream: WriteStream;
  private bytes: number;

  constructor(
    private readonly path: string,
    private readonly maxBytes: number,
  ) {
    this.bytes = statSync(path, { throwIfNoEntry: false })?.size ?? 0;
    this.stream = this.open();
  }

  write(data: string | Buffer): void {
    let rest = typeof data === 'string' ? Buffer.from(data) : data;
    // One chunk from a pty can be larger than the whole log: it is cut, at a character
    // boundary, across as many parts as it needs, so no file ever passes `maxBytes`.
    while (rest.length > 0) {
      if (this.bytes >= this.maxBytes) this.rotate();
      const cut = utf8Boundary(rest, this.maxBytes - this.bytes);
      if (cut === 0 && this.bytes > 0) {
        this.rotate();
        continue;
      }
      // A character wider than the whole log (only with a tiny maxBytes) goes in whole.
      const part = rest.subarray(0, cut === 0 ? characterEnd(rest) : cut);
      this.stream.write(part);
      this.bytes += part.length;
      rest = rest.subarray(part.length);
    }
  }

  end(): Promise<void> {
    return new Promise((resolve) => this.stream.end(resolve));
  }

  private open(): WriteStream {
    // The file is opened now, not on a later tick: a rotation that follows at once must rename
    // this file, and what this stream still has queued must land in it, wherever it is renamed.
    let stream: WriteStream;
    try {
      stream = createWriteStream('', { fd: openSync(this.path, 'a', 0o600) });
    } catch {
      // Cannot open (directory removed, disk full): a stream whose writes fail, quietly.
      stream = createWriteStream(this.path, { flags: 'a', mode: 0o600 });
    }
    // A full disk or a removed directory must not take the agent down with the host.
    stream.on('error', () => {});
    return stream;
  }

  private rotate(): void {
    // The old stream keeps its descriptor: what it still has queued lands in the renamed file.
    this.stream.end();
    try {
      renameSync(this.path, `${this.path}.1`);
    } catch {
      // the file is gone (removed by hand): start afresh all the same
    }
    this.stream = this.open();
    this.bytes = 0;
  }
}

/** The largest cut of `buffer` at most `room` bytes long that does not split a UTF-8 character. */
function utf8Boundary(buffer: Buffer, room: number): number {
  if (buffer.length <= room) return buffer.length;
  let cut = Math.max(0, room);
  // Continuation bytes are 10xxxxxx: step back to the start of the character they belong to.
  while (cut > 0 && (buffer[cut]! & 0xc0) === 0x80) cut -= 1;
  return cut;
}

/** Where the first character of `buffer` ends. */
function characterEnd(buffer: Buffer): number {
  let end = 1;
  while (end < buffer.length && (buffer[end]! & 0xc0) === 0x80) end += 1;
  return end;
}
