import { createWriteStream, renameSync, statSync, type WriteStream } from 'node:fs';

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
    const size = typeof data === 'string' ? Buffer.byteLength(data) : data.length;
    if (this.bytes > 0 && this.bytes + size > this.maxBytes) this.rotate();
    this.stream.write(data);
    this.bytes += size;
  }

  end(): Promise<void> {
    return new Promise((resolve) => this.stream.end(resolve));
  }

  private open(): WriteStream {
    const stream = createWriteStream(this.path, { flags: 'a', mode: 0o600 });
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
