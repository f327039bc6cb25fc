import { execFileSync } from 'node:child_process';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { redisPing } from '../../src/core/doctor/redis-ping.js';

/**
 * Finds the real services once per run and hands their state to the tests (`inject('services')`).
 * A missing service skips its tests with a loud line — except under CI=true, where it fails the
 * run: a green CI that skipped the PostgreSQL suite would be a lie.
 */

export interface ServiceState {
  postgresUrl: string;
  redisUrl: string;
  postgres: string | null;
  pgvector: string | null;
  redis: string | null;
  /** Why each missing service is missing. */
  problems: string[];
}

declare module 'vitest' {
  export interface ProvidedContext {
    services: ServiceState;
  }
}

async function probePostgres(url: string): Promise<{ version: string; vector: string | null }> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 });
  await client.connect();
  try {
    const version = (await client.query<{ v: string }>("SELECT current_setting('server_version') AS v"))
      .rows[0]!.v;
    const vector = await client.query<{ default_version: string }>(
      "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'",
    );
    return { version, vector: vector.rows[0]?.default_version ?? null };
  } finally {
    await client.end();
  }
}

export default async function setup(project: TestProject): Promise<void> {
  const state: ServiceState = {
    postgresUrl: process.env.SOS_TEST_DATABASE_URL || 'postgres://sos_test:sos_test@127.0.0.1:5432/sos_test',
    redisUrl: process.env.SOS_TEST_REDIS_URL || 'redis://127.0.0.1:6379',
    postgres: null,
    pgvector: null,
    redis: null,
    problems: [],
  };
  try {
    const found = await probePostgres(state.postgresUrl);
    state.postgres = found.version;
    state.pgvector = found.vector;
    if (!found.vector) state.problems.push(`pgvector is not installed on ${state.postgresUrl}`);
  } catch (err) {
    state.problems.push(`PostgreSQL unreachable at ${state.postgresUrl}: ${(err as Error).message}`);
  }
  try {
    state.redis = await redisPing(state.redisUrl);
  } catch (err) {
    state.problems.push(`Redis unreachable at ${state.redisUrl}: ${(err as Error).message}`);
  }
  try {
    execFileSync('tmux', ['-V'], { stdio: 'ignore' });
  } catch {
    state.problems.push('tmux is not installed (tmux sessions and the lifecycle tests need it)');
  }
  project.provide('services', state);

  const line = '='.repeat(78);
  if (state.problems.length === 0) {
    console.log(`services: PostgreSQL ${state.postgres} (pgvector ${state.pgvector}), Redis ${state.redis}`);
    return;
  }
  const report = [line, ...state.problems.map((p) => `SERVICE MISSING: ${p}`), line].join('\n');
  if (process.env.CI === 'true') {
    throw new Error(`CI=true and a required service is missing; run scripts/install-services.sh\n${report}`);
  }
  console.warn(
    `${report}\nTests needing these services are SKIPPED. Install them: bash scripts/install-services.sh\n${line}`,
  );
}
