import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/**
 * What a simulator run cost the machine, to say what limited it: the machine's CPU (busy share
 * from /proc/stat, the 1-minute load) and, per process the run owns, its CPU (share of one core,
 * from /proc/<pid>/stat) and its peak RSS. Sampled every few seconds; a process that restarts
 * (the daemon after its kill -9) is followed by name. On a system without /proc the figures are
 * null: not measured, never zero.
 */
export interface ProcessUse {
  name: string;
  /** CPU time over the wall time it was followed, as a share of one core (100 = one full core). */
  cpuPct: number | null;
  rssMaxMiB: number | null;
}

export interface Resources {
  samples: number;
  load1Max: number | null;
  load1Mean: number | null;
  /** Share of all CPUs busy (not idle or waiting on I/O) over the run, and in its busiest interval. */
  machineBusyPct: number | null;
  machineBusyMaxPct: number | null;
  processes: ProcessUse[];
}

interface Followed {
  pid: number;
  ticks: number;
  cpuTicks: number;
  wallMs: number;
  rssMaxKiB: number | null;
}

const clockTicks = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

function procTicks(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command (which may hold spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]); // utime + stime (fields 14 and 15)
  } catch {
    return null;
  }
}

function procRssKiB(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

function machineTicks(): { busy: number; total: number } | null {
  try {
    const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
    const total = cpu.reduce((a, b) => a + b, 0);
    return { busy: total - cpu[3]! - cpu[4]!, total };
  } catch {
    return null;
  }
}

function load1(): number | null {
  try {
    return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  } catch {
    return null;
  }
}

const round1 = (n: number) => Math.round(n * 10) / 10;

export class ResourceSampler {
  private readonly followed = new Map<string, Followed>();
  private readonly loads: number[] = [];
  private firstMachine: { busy: number; total: number } | null = null;
  private lastMachine: { busy: number; total: number } | null = null;
  private busiest: number | null = null;
  private lastAt = Date.now();
  private samples = 0;
  private timer: NodeJS.Timeout | null = null;

  /** `pids` names the processes to follow now (null: not running at the moment). */
  constructor(
    private readonly pids: () => Record<string, number | null>,
    private readonly intervalMs = 5_000,
  ) {}

  start(): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
  }

  sample(): void {
    const now = Date.now();
    const wall = now - this.lastAt;
    this.lastAt = now;
    this.samples++;
    const l = load1();
    if (l !== null) this.loads.push(l);
    const m = machineTicks();
    if (m) {
      if (this.lastMachine && m.total > this.lastMachine.total) {
        const share = ((m.busy - this.lastMachine.busy) / (m.total - this.lastMachine.total)) * 100;
        this.busiest = Math.max(this.busiest ?? 0, share);
      }
      this.firstMachine ??= m;
      this.lastMachine = m;
    }
    for (const [name, pid] of Object.entries(this.pids())) {
      const f = this.followed.get(name) ?? { pid: 0, ticks: 0, cpuTicks: 0, wallMs: 0, rssMaxKiB: null };
      this.followed.set(name, f);
      if (pid === null || pid <= 0) {
        f.pid = 0;
        continue;
      }
      const ticks = procTicks(pid);
      if (ticks === null) continue;
      // The same process since the last sample: count what it used in between.
      if (f.pid === pid) {
        f.cpuTicks += ticks - f.ticks;
        f.wallMs += wall;
      }
      f.pid = pid;
      f.ticks = ticks;
      const rss = procRssKiB(pid);
      if (rss !== null) f.rssMaxKiB = Math.max(f.rssMaxKiB ?? 0, rss);
    }
  }

  stop(): Resources {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.sample();
    const m0 = this.firstMachine;
    const m1 = this.lastMachine;
    return {
      samples: this.samples,
      load1Max: this.loads.length ? Math.max(...this.loads) : null,
      load1Mean: this.loads.length ? round1(this.loads.reduce((a, b) => a + b, 0) / this.loads.length) : null,
      machineBusyPct: m0 && m1 && m1.total > m0.total ? round1(((m1.busy - m0.busy) / (m1.total - m0.total)) * 100) : null,
      machineBusyMaxPct: this.busiest === null ? null : round1(this.busiest),
      processes: [...this.followed.entries()].map(([name, f]) => ({
        name,
        cpuPct: f.wallMs > 0 ? round1((f.cpuTicks / clockTicks / (f.wallMs / 1000)) * 100) : null,
        rssMaxMiB: f.rssMaxKiB === null ? null : round1(f.rssMaxKiB / 1024),
      })),
    };
  }
}
