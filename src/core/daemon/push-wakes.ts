import type { Bus } from '../bus/port.js';

/**
 * The daemon's pushed wake source on Redis and PostgreSQL: one `onWake` subscription per project,
 * each push waking the wake loop at once instead of at its next interval (which stays, as the
 * fallback for what no push covers: upstream senders' own channels, held messages, a refused
 * subscription). `sync` follows the project list; a project whose subscription failed is retried
 * at the next sync, and its failure is reported once.
 */
export class PushWakes {
  private readonly stops = new Map<string, () => Promise<void>>();
  private readonly failed = new Set<string>();
  private closed = false;

  constructor(
    private readonly bus: Bus,
    private readonly wake: (project: string, agent: string) => void,
    private readonly onError: (project: string, err: unknown) => void,
  ) {}

  /** True when the bus can push at all. */
  get available(): boolean {
    return this.bus.onWake !== undefined;
  }

  async sync(projects: readonly string[]): Promise<void> {
    const onWake = this.bus.onWake?.bind(this.bus);
    if (!onWake || this.closed) return;
    const wanted = new Set(projects);
    for (const [project, stop] of this.stops) {
      if (wanted.has(project)) continue;
      this.stops.delete(project);
      await stop();
    }
    for (const project of wanted) {
      if (this.stops.has(project)) continue;
      try {
        const stop = await onWake(project, (agent) => this.wake(project, agent));
        if (this.closed) await stop();
        else this.stops.set(project, stop);
        this.failed.delete(project);
      } catch (err) {
        if (!this.failed.has(project)) this.onError(project, err);
        this.failed.add(project);
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const stops = [...this.stops.values()];
    this.stops.clear();
    await Promise.all(stops.map((stop) => stop().catch(() => undefined)));
  }
}
