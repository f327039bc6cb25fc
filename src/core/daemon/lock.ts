import { hostname } from 'node:os';
import { Conflict } from '../errors.js';
import { newId } from '../ids.js';
import type { SqlDriver } from '../store/sql/driver.js';
import { momentText } from '../time.js';

/**
 * One daemon per installation, enforced by a lease row in the database (not a pid file), so it
 * holds across hosts sharing a PostgreSQL schema. A lease is taken over when it is stale (no
 * heartbeat for `staleMs`) or when its owner ran on this host and its process is gone (a
 * `kill -9`ed daemon is replaced at once).
 */

export interface DaemonLeaseRow {
  owner: string;
  pid: number;
  host: string;
  startedAt: number;
  heartbeatAt: number;
  status: unknown;
}

interface Row {
  owner: string;
  pid: number;
  host: string;
  started_at: number;
  heartbeat_at: number;
  status: string;
}

const toLease = (r: Row): DaemonLeaseRow => ({
  owner: r.owner,
  pid: Number(r.pid),
  host: r.host,
  startedAt: Number(r.started_at),
  heartbeatAt: Number(r.heartbeat_at),
  status: JSON.parse(r.status) as unknown,
});

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function readLease(db: SqlDriver): Promise<DaemonLeaseRow | undefined> {
  const row = await db.one<Row>('SELECT owner, pid, host, started_at, heartbeat_at, status FROM daemon_lease WHERE id = 1');
  return row && toLease(row);
}

export function leaseLive(lease: DaemonLeaseRow, now: number, staleMs: number): boolean {
  if (now - lease.heartbeatAt > staleMs) return false;
  return lease.host !== hostname() || processAlive(lease.pid);
}

export class DaemonLease {
  readonly owner = newId('dmn');
  private readonly host = hostname();

  constructor(
    private readonly db: SqlDriver,
    private readonly staleMs: number,
  ) {}

  /** Takes the lease or throws Conflict naming the running daemon. */
  async acquire(now = Date.now()): Promise<void> {
    await this.db.transaction(async (tx) => {
      const row = await tx.one<Row>('SELECT owner, pid, host, started_at, heartbeat_at, status FROM daemon_lease WHERE id = 1');
      if (row && leaseLive(toLease(row), now, this.staleMs)) {
        throw new Conflict(`a daemon is already running: pid ${row.pid} on ${row.host}, started ${momentText(Number(row.started_at))}`, {
          hint: 'stop it first (systemctl stop sos, or kill its pid); `sos daemon status` shows it',
        });
      }
      await tx.run(
        `INSERT INTO daemon_lease (id, owner, pid, host, started_at, heartbeat_at, status) VALUES (1, $1, $2, $3, $4, $4, '{}')
         ON CONFLICT (id) DO UPDATE SET owner = $1, pid = $2, host = $3, started_at = $4, heartbeat_at = $4, status = '{}'`,
        [this.owner, process.pid, this.host, now],
      );
    });
  }

  /** Renews the lease with the current status; false when another daemon took it over. */
  async renew(status: unknown, now = Date.now()): Promise<boolean> {
    return (await this.db.run('UPDATE daemon_lease SET heartbeat_at = $2, status = $3 WHERE id = 1 AND owner = $1', [this.owner, now, JSON.stringify(status)])) > 0;
  }

  async release(): Promise<void> {
    await this.db.run('DELETE FROM daemon_lease WHERE id = 1 AND owner = $1', [this.owner]);
  }
}
