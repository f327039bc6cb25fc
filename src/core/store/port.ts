import type { SqlTaskRepo } from '../tasks/sql-tasks.js';
import type { SqlDriver } from './sql/driver.js';
import type { Agent, AgentPatch, NewAgent, NewToken, Project, SecurityEvent, Squad, TokenRecord } from './types.js';

/**
 * What each Store adapter can do. Callers branch on these flags, never on the adapter's class, so
 * a new adapter only has to fill in the table (later: the claim path picks SKIP LOCKED from it).
 */
export interface StoreCapabilities {
  dialect: 'sqlite' | 'postgres';
  /** Several hosts can share the database. */
  multiHost: boolean;
  /** More than one writer transaction can run at once. */
  concurrentWriters: boolean;
  /** `SELECT … FOR UPDATE SKIP LOCKED`. */
  skipLocked: boolean;
  /** `LISTEN/NOTIFY` for cross-process wake-ups. */
  listenNotify: boolean;
}

export interface MigrationStatus {
  /** Versions recorded as applied, ascending. */
  applied: { version: number; name: string; checksum: string; appliedAt: number }[];
  /** Migration files this build ships that are not applied yet. */
  pending: { version: number; name: string }[];
  /** Applied migrations whose file changed since (checksum mismatch). */
  drifted: number[];
}

export interface Store {
  readonly capabilities: StoreCapabilities;
  /** Where the data lives, with any password removed. */
  readonly location: string;
  /** The SQL database under this Store, shared by adapters of other ports (the SQL bus). */
  readonly sql: SqlDriver;

  /** Applies pending migrations; safe to run twice and from several processes at once. */
  migrate(): Promise<{ applied: number[] }>;
  migrationStatus(): Promise<MigrationStatus>;
  /** Refuses (Unavailable) unless the schema exists and no migration is pending. */
  assertReady(): Promise<void>;

  projects: {
    create(slug: string): Promise<Project>;
    get(slug: string): Promise<Project | undefined>;
    list(): Promise<Project[]>;
  };
  agents: {
    add(agent: NewAgent): Promise<Agent>;
    get(project: string, name: string): Promise<Agent | undefined>;
    /** One cheap query, for hot paths that only need to know the agent is registered. */
    exists(project: string, name: string): Promise<boolean>;
    list(project: string): Promise<Agent[]>;
    /** Changes the session and lifecycle fields given (null clears one); false when no such agent. */
    update(project: string, name: string, patch: AgentPatch): Promise<boolean>;
    remove(project: string, name: string): Promise<boolean>;
  };
  tokens: {
    create(token: NewToken): Promise<TokenRecord>;
    /** Looks a token up by the hash of its secret; touches `last_used_at`. */
    findByHash(hash: string): Promise<(TokenRecord & { projectExists: boolean }) | undefined>;
    list(project: string): Promise<TokenRecord[]>;
    /** Revokes by id or by prefix; returns the revoked record, undefined when nothing matched. */
    revoke(project: string, idOrPrefix: string): Promise<TokenRecord | undefined>;
  };
  squads: {
    create(project: string, name: string, description: string | null): Promise<Squad>;
    get(project: string, name: string): Promise<Squad | undefined>;
    list(project: string): Promise<Squad[]>;
    /** Returns false when the agent already was a member. */
    join(project: string, squad: string, agent: string): Promise<boolean>;
    /** Returns false when the agent was not a member. */
    leave(project: string, squad: string, agent: string): Promise<boolean>;
  };
  /** Tasks and their claim engine (every Store is SQL; the claim statement is per dialect). */
  readonly tasks: SqlTaskRepo;
  /**
   * Named per-project counters that only go up (`sos metrics`): duplicate claims refused, stale
   * fences, leases renewed and expired, wake deliveries…
   */
  counters: {
    add(project: string, name: string, by?: number): Promise<void>;
    all(project: string): Promise<Record<string, number>>;
  };
  security: {
    record(event: SecurityEvent): Promise<void>;
    count(project?: string): Promise<Record<SecurityEvent['kind'], number>>;
  };

  close(): Promise<void>;
}
