import { abortableSleep } from '../time.js';

/**
 * One shape for every background loop: `while (!stopping)`, run one iteration,
 * sleep for the interval unless woken, count errors and never die of them, and an idempotent
 * `stop()` that awaits the iteration in flight.
 */

export type LoopState = 'idle' | 'running' | 'sleeping' | 'stopping' | 'stopped';

export interface LoopStatus {
  name: string;
  state: LoopState;
  intervalMs: number;
  runs: number;
  errors: number;
  lastRunAt: number | null;
  lastDurationMs: number | null;
  lastError: string | null;
}

export interface LoopOptions {
  name: string;
  intervalMs: number;
  /** One iteration. Throwing counts an error; the loop goes on. */
  run: (signal: AbortSignal) => Promise<void>;
  /** Optional wake source: resolves true when there may be work before the interval ends. */
  waitForWake?: (timeoutMs: number, signal: AbortSignal) => Promise<boolean>;
  onError?: (name: string, err: unknown) => void;
}

export class Loop {
  private state: LoopState = 'idle';
  private readonly controller = new AbortController();
  private done: Promise<void> | null = null;
  private kick: (() => void) | null = null;
  private readonly stats = { runs: 0, errors: 0, lastRunAt: null as number | null, lastDurationMs: null as number | null, lastError: null as string | null };

  constructor(private readonly options: LoopOptions) {}

  start(): void {
    if (this.done) return;
    this.done = this.main();
  }

  /** Runs the next iteration now instead of after the interval. */
  wake(): void {
    // A wake during an iteration is kept: the next sleep is skipped (it may be for what that
    // iteration already read past).
    if (this.kick) this.kick();
    else this.pending = true;
  }

  private pending = false;

  private async main(): Promise<void> {
    const signal = this.controller.signal;
    while (!signal.aborted) {
      this.state = 'running';
      this.pending = false; // this iteration covers every wake before it
      const started = Date.now();
      try {
        await this.options.run(signal);
      } catch (err) {
        this.stats.errors += 1;
        this.stats.lastError = err instanceof Error ? err.message : String(err);
        this.options.onError?.(this.options.name, err);
      }
      this.stats.runs += 1;
      this.stats.lastRunAt = started;
      this.stats.lastDurationMs = Date.now() - started;
      if (signal.aborted) break;
      this.state = 'sleeping';
      await this.sleep(signal);
    }
    this.state = 'stopped';
  }

  private async sleep(signal: AbortSignal): Promise<void> {
    if (this.pending) {
      this.pending = false;
      return;
    }
    const kicked = new AbortController();
    this.kick = () => kicked.abort();
    const both = AbortSignal.any([signal, kicked.signal]);
    try {
      if (this.options.waitForWake) {
        // A wake source that fails must not spin the loop: fall back to the plain interval.
        await this.options.waitForWake(this.options.intervalMs, both).catch(() => abortableSleep(this.options.intervalMs, both));
      } else {
        await abortableSleep(this.options.intervalMs, both);
      }
    } finally {
      this.kick = null;
    }
  }

  /** Stops after the iteration in flight; safe to call twice. */
  async stop(): Promise<void> {
    if (this.state !== 'stopped') this.state = 'stopping';
    this.controller.abort();
    await this.done;
    this.state = 'stopped';
  }

  status(): LoopStatus {
    return { name: this.options.name, state: this.state, intervalMs: this.options.intervalMs, ...this.stats };
  }
}
