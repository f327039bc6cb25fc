import { connect, type Socket } from 'node:net';
import { Conflict, OperationFailed, type SosError, Unavailable, UsageError } from '../errors.js';
import type { ExitStatus } from './port.js';

/**
 * The pty host's wire protocol, shared by the host, the driver and `attachPty`.
 *
 * One Unix socket per host; each line a JSON request `{id, op, ...}` answered by one line
 * `{id, ok: true, result}` or `{id, ok: false, error: {code, message}}` (code: an ErrorCode).
 * Ops: hello, snapshot {lines}, submit {text}, interrupt, resize {cols, rows}, stop, and
 * attach {cols?, rows?}: after its answer the connection carries raw bytes both ways (the ring
 * buffer replayed, then live output; client bytes go to the pty). A resize while attached is sent
 * as a `resize` request on a second connection, so the raw stream never needs framing.
 */

export interface HelloResult {
  pid: number;
  childPid: number;
  command: string;
  startedAt: number;
  exited: ExitStatus | null;
}

export interface SnapshotResult {
  exited: ExitStatus | null;
  /** Screen lines, already rendered by the host's terminal emulator. */
  screen: string;
  title: string;
  cwd: string | null;
  lastOutputAt: number | null;
}

export type PtyRequest =
  | { id: number; op: 'hello' }
  | { id: number; op: 'snapshot'; lines: number }
  | { id: number; op: 'submit'; text: string }
  | { id: number; op: 'interrupt' }
  | { id: number; op: 'resize'; cols: number; rows: number }
  | { id: number; op: 'stop' }
  | { id: number; op: 'attach'; cols?: number; rows?: number };

export type PtyResponse =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: { code: string; message: string } };

/** Splits a byte stream into lines; `rest()` hands back what followed the last newline. */
export class LineReader {
  private buffered = Buffer.alloc(0);

  push(chunk: Buffer): string[] {
    this.buffered = Buffer.concat([this.buffered, chunk]);
    const lines: string[] = [];
    for (let nl = this.buffered.indexOf(10); nl >= 0; nl = this.buffered.indexOf(10)) {
      lines.push(this.buffered.subarray(0, nl).toString('utf8'));
      this.buffered = this.buffered.subarray(nl + 1);
    }
    return lines;
  }

  rest(): Buffer {
    const rest = this.buffered;
    this.buffered = Buffer.alloc(0);
    return rest;
  }
}

/** Turns a host error back into the taxonomy, so callers see the same error class as in-process. */
export function errorFromHost(error: { code: string; message: string }): SosError {
  if (error.code === 'usage') return new UsageError(error.message);
  if (error.code === 'conflict') return new Conflict(error.message);
  if (error.code === 'unavailable') return new Unavailable(error.message);
  return new OperationFailed(error.message);
}

/** The host is not there: no socket file, or a file nobody listens on. */
export class HostGone extends Unavailable {}

/**
 * A timeout for socket I/O that a stalled process does not turn into a false failure: when the
 * timer fires it waits one more turn of the event loop (setImmediate runs after the poll phase),
 * so an answer that arrived while the process was descheduled or the machine paused is still
 * taken. Returns the function that cancels it.
 */
export function ioTimeout(ms: number, onTimeout: () => void): () => void {
  let immediate: NodeJS.Immediate | undefined;
  const timer = setTimeout(() => (immediate = setImmediate(onTimeout)), ms);
  return () => {
    clearTimeout(timer);
    if (immediate) clearImmediate(immediate);
  };
}

/** Connects to a host's socket; HostGone when nothing listens there. */
export function connectHost(socketPath: string, timeoutMs = 2_000): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    const cancel = ioTimeout(timeoutMs, () => {
      socket.destroy();
      reject(new Unavailable(`the pty host at ${socketPath} did not answer within ${timeoutMs} ms`));
    });
    socket.once('connect', () => {
      cancel();
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      cancel();
      const gone = err.code === 'ENOENT' || err.code === 'ECONNREFUSED' || err.code === 'ENOTSOCK';
      reject(gone ? new HostGone(`no pty host at ${socketPath} (${err.code})`, { cause: err }) : err);
    });
  });
}

/** Reads one response line from a connected socket; resolves with it and anything after it. */
export function readResponse(socket: Socket, timeoutMs: number): Promise<{ response: PtyResponse; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    // Only the first line is the answer: after an attach, what follows is raw output.
    let buffered = Buffer.alloc(0);
    const done = (err: Error | null, response?: PtyResponse): void => {
      cancel();
      socket.off('data', onData).off('error', done).off('close', onClose);
      if (err || !response) reject(err ?? new Unavailable('the pty host closed the connection'));
      else resolve({ response, rest: buffered });
    };
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      const nl = buffered.indexOf(10);
      if (nl < 0) return;
      const line = buffered.subarray(0, nl).toString('utf8');
      buffered = buffered.subarray(nl + 1);
      done(null, JSON.parse(line) as PtyResponse);
    };
    const onClose = (): void => done(new Unavailable('the pty host closed the connection before answering'));
    const cancel = ioTimeout(timeoutMs, () => done(new Unavailable(`the pty host did not answer within ${timeoutMs} ms`)));
    socket.on('data', onData).on('error', done).on('close', onClose);
  });
}

type WithoutId<R> = R extends unknown ? Omit<R, 'id'> : never;
export type RequestBody = WithoutId<PtyRequest>;

/** One request on a short-lived connection; throws the host's error as a SosError. */
export async function requestHost<T>(socketPath: string, body: RequestBody, timeoutMs = 5_000): Promise<T> {
  const socket = await connectHost(socketPath, Math.min(timeoutMs, 2_000));
  try {
    socket.write(`${JSON.stringify({ id: 1, ...body })}\n`);
    const { response } = await readResponse(socket, timeoutMs);
    if (!response.ok) throw errorFromHost(response.error);
    return response.result as T;
  } finally {
    socket.destroy();
  }
}
