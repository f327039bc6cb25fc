import { Conflict, NotFound, Unavailable } from '../errors.js';
import { SqlTaskRepo } from '../tasks/sql-tasks.js';
import { applyMigrations, readMigrationStatus, readPendingVersions } from './migrations.js';
import type { MigrationStatus, Store, StoreCapabilities } from './port.js';
import { type SqlDriver, SqlError, type SqlExecutor } from './sql/driver.js';
import type {
  Agent,
  AgentLifecycle,
  AgentPolicy,
  AgentKind,
  AgentRole,
  NewAgent,
  WakeMode,
  AgentPlan,
  NewToken,
  Project,
  SecurityEvent,
  Squad,
  TokenRecord,
  TokenRole,
} from './types.js';

const CAPABILITIES: Record<SqlDriver['dialect'], StoreCapabilities> = {
  sqlite: {
    dialect: 'sqlite',
    multiHost: false,
    concurrentWriters: false,
    skipLocked: false,
    listenNotify: false,
  },
  postgres: {
    dialect: 'postgres',
    multiHost: true,
    concurrentWriters: true,
    skipLocked: true,
    listenNotify: true,
  },
};

interface AgentRow {
  project: string;
  name: string;
  kind: AgentKind;
  role: AgentRole;
  session: string | null;
  created_at: number;
  updated_at: number;
  start_cmd: string | null;
  workdir: string | null;
  policy: AgentPolicy;
  tmux_socket: string | null;
  patterns: string | null;
  wake: WakeMode | null;
  plan: AgentPlan | null;
  transcripts: string | null;
}

const AGENT_COLUMNS = 'project, name, kind, role, session, created_at, updated_at, start_cmd, workdir, policy, tmux_socket, patterns, wake, plan, transcripts';

/** Lifecycle fields and their columns, in the order `agents.update` writes them. */
const LIFECYCLE_COLUMNS: [keyof AgentLifecycle, string][] = [
  ['startCmd', 'start_cmd'],
  ['workdir', 'workdir'],
  ['policy', 'policy'],
  ['tmuxSocket', 'tmux_socket'],
  ['patterns', 'patterns'],
  ['wake', 'wake'],
  ['plan', 'plan'],
  ['transcripts', 'transcripts'],
];

const columnValue = (key: keyof AgentLifecycle, value: unknown) => (key === 'patterns' && value !== null ? JSON.stringify(value) : value);

interface TokenRow {
  id: string;
  project: string;
  agent: string;
  role: TokenRole;
  prefix: string;
  created_at: number;
  last_used_at: number | null;
  revoked_at: number | null;
}

interface SquadRow {
  project: string;
  name: string;
  description: string | null;
  created_at: number;
}

const TOKEN_COLUMNS = 'id, project, agent, role, prefix, created_at, last_used_at, revoked_at';

function toToken(row: TokenRow): TokenRecord {
  return {
    id: row.id,
    project: row.project,
    agent: row.agent,
    role: row.role,
    prefix: row.prefix,
    createdAt: row.created_at,
    lastUsedAt: row.last_used_at,
    revokedAt: row.revoked_at,
  };
}

/**
 * Turns driver failures into the error taxonomy. `unique` and `foreign_key` get the caller's
 * wording because only the caller knows which name clashed or was missing. A locked, read-only or
 * unreachable database is already `unavailable` (exit 5) with the driver's message and hint
 * (an SqlError is a SosError), wherever it surfaces, in the Store or not.
 */
function translate(err: unknown, messages: { unique?: string; foreignKey?: string } = {}): never {
  if (err instanceof SqlError) {
    switch (err.kind) {
      case 'unique':
        if (messages.unique) throw new Conflict(messages.unique, { cause: err });
        break;
      case 'foreign_key':
        if (messages.foreignKey) throw new NotFound(messages.foreignKey, { cause: err });
        break;
      case 'missing':
        throw new Unavailable('the database is not initialised', { hint: 'run `sos init`', cause: err });
      default:
        break;
    }
  }
  throw err;
}

async function guarded<T>(
  fn: () => Promise<T>,
  messages?: { unique?: string; foreignKey?: string },
): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    translate(err, messages);
  }
}

/** The Store on any SQL driver; dialect differences live in the driver and the migration files. */
export class SqlStore implements Store {
  readonly capabilities: StoreCapabilities;
  readonly location: string;

  readonly tasks: SqlTaskRepo;

  constructor(private readonly db: SqlDriver) {
    this.capabilities = CAPABILITIES[db.dialect];
    this.location = db.location;
    this.tasks = new SqlTaskRepo(db);
  }

  get sql(): SqlDriver {
    return this.db;
  }

  migrate(): Promise<{ applied: number[] }> {
    return guarded(async () => {
      try {
        return await applyMigrations(this.db);
      } catch (err) {
        const message = (err as Error).message ?? '';
        if (/extension "vector"|vector\.control|permission denied to create extension/i.test(message)) {
          throw new Unavailable(`PostgreSQL at ${this.location} cannot provide the pgvector extension: ${message}`, {
            hint: 'install pgvector with `bash scripts/install-services.sh`, or run `CREATE EXTENSION vector` as a superuser in this database',
            cause: err,
          });
        }
        throw err;
      }
    });
  }

  migrationStatus(): Promise<MigrationStatus> {
    return guarded(() => readMigrationStatus(this.db));
  }

  async assertReady(): Promise<void> {
    // Cheap on every command: file names and one query, no checksums (`sos doctor` checks drift).
    const status = await guarded(() => readPendingVersions(this.db));
    if (status.applied === 0) {
      throw new Unavailable(`the database at ${this.location} is not initialised`, {
        hint: 'run `sos init`',
      });
    }
    if (status.pending.length > 0) {
      const versions = status.pending.join(', ');
      throw new Unavailable(`the database at ${this.location} needs migrations ${versions}`, {
        hint: 'run `sos migrate`',
      });
    }
  }

  private async capabilitiesOf(
    db: SqlExecutor,
    project: string,
    names: string[],
  ): Promise<Map<string, string[]>> {
    const caps = new Map<string, string[]>(names.map((n) => [n, []]));
    if (names.length === 0) return caps;
    const rows = await db.all<{ agent: string; capability: string }>(
      'SELECT agent, capability FROM agent_capabilities WHERE project = $1 ORDER BY agent, capability',
      [project],
    );
    for (const row of rows) caps.get(row.agent)?.push(row.capability);
    return caps;
  }

  private async membersOf(project: string): Promise<Map<string, string[]>> {
    const rows = await this.db.all<{ squad: string; agent: string }>(
      'SELECT squad, agent FROM squad_members WHERE project = $1 ORDER BY squad, agent',
      [project],
    );
    const members = new Map<string, string[]>();
    for (const row of rows) {
      const list = members.get(row.squad) ?? [];
      list.push(row.agent);
      members.set(row.squad, list);
    }
    return members;
  }

  readonly projects: Store['projects'] = {
    create: (slug) =>
      guarded(
        async () => {
          const createdAt = Date.now();
          await this.db.run('INSERT INTO projects (slug, created_at) VALUES ($1, $2)', [slug, createdAt]);
          return { slug, createdAt };
        },
        { unique: `project "${slug}" already exists` },
      ),
    get: (slug) =>
      guarded(async () => {
        const row = await this.db.one<{ slug: string; created_at: number }>(
          'SELECT slug, created_at FROM projects WHERE slug = $1',
          [slug],
        );
        return row && { slug: row.slug, createdAt: row.created_at };
      }),
    list: () =>
      guarded(async () => {
        const rows = await this.db.all<{ slug: string; created_at: number }>(
          'SELECT slug, created_at FROM projects ORDER BY slug',
        );
        return rows.map((r): Project => ({ slug: r.slug, createdAt: r.created_at }));
      }),
  };

  readonly agents: Store['agents'] = {
    add: (agent: NewAgent) =>
      guarded(
        () =>
          this.db.transaction(async (tx) => {
            const now = Date.now();
            const life: AgentLifecycle = {
              startCmd: agent.startCmd ?? null,
              workdir: agent.workdir ?? null,
              policy: agent.policy ?? 'warm',
              tmuxSocket: agent.tmuxSocket ?? null,
              patterns: agent.patterns ?? null,
              wake: agent.wake ?? null,
              plan: agent.plan ?? null,
              transcripts: agent.transcripts ?? null,
            };
            await tx.run(
              `INSERT INTO agents (project, name, kind, role, session, created_at, updated_at, ${LIFECYCLE_COLUMNS.map(([, c]) => c).join(', ')})
               VALUES ($1, $2, $3, $4, $5, $6, $6, ${LIFECYCLE_COLUMNS.map((_, i) => `$${i + 7}`).join(', ')})`,
              [agent.project, agent.name, agent.kind, agent.role, agent.session, now, ...LIFECYCLE_COLUMNS.map(([k]) => columnValue(k, life[k]))],
            );
            for (const cap of new Set(agent.capabilities)) {
              await tx.run(
                'INSERT INTO agent_capabilities (project, agent, capability) VALUES ($1, $2, $3)',
                [agent.project, agent.name, cap],
              );
            }
            return {
              ...agent,
              ...life,
              capabilities: [...new Set(agent.capabilities)].sort(),
              createdAt: now,
              updatedAt: now,
            };
          }),
        {
          unique: `agent "${agent.name}" already exists in project "${agent.project}"`,
          foreignKey: `project "${agent.project}" does not exist`,
        },
      ),
    get: (project, name) =>
      guarded(async () => {
        const row = await this.db.one<AgentRow>(
          `SELECT ${AGENT_COLUMNS} FROM agents WHERE project = $1 AND name = $2`,
          [project, name],
        );
        if (!row) return undefined;
        const caps = await this.db.all<{ capability: string }>(
          'SELECT capability FROM agent_capabilities WHERE project = $1 AND agent = $2 ORDER BY capability',
          [project, name],
        );
        return this.toAgent(
          row,
          caps.map((c) => c.capability),
        );
      }),
    exists: (project, name) =>
      guarded(async () => (await this.db.one('SELECT 1 AS ok FROM agents WHERE project = $1 AND name = $2', [project, name])) !== undefined),
    list: (project) =>
      guarded(async () => {
        const rows = await this.db.all<AgentRow>(
          `SELECT ${AGENT_COLUMNS} FROM agents WHERE project = $1 ORDER BY name`,
          [project],
        );
        const caps = await this.capabilitiesOf(
          this.db,
          project,
          rows.map((r) => r.name),
        );
        return rows.map((row) => this.toAgent(row, caps.get(row.name) ?? []));
      }),
    update: (project, name, patch) =>
      guarded(async () => {
        const sets: string[] = ['updated_at = $3'];
        const params: unknown[] = [project, name, Date.now()];
        if (patch.session !== undefined) {
          params.push(patch.session);
          sets.push(`session = $${params.length}`);
        }
        for (const [key, column] of LIFECYCLE_COLUMNS) {
          if (patch[key] === undefined) continue;
          params.push(columnValue(key, patch[key]));
          sets.push(`${column} = $${params.length}`);
        }
        return (await this.db.run(`UPDATE agents SET ${sets.join(', ')} WHERE project = $1 AND name = $2`, params)) > 0;
      }),
    remove: (project, name) =>
      guarded(
        async () =>
          (await this.db.run('DELETE FROM agents WHERE project = $1 AND name = $2', [project, name])) > 0,
      ),
  };

  private toAgent(row: AgentRow, capabilities: string[]): Agent {
    return {
      project: row.project,
      name: row.name,
      kind: row.kind,
      role: row.role,
      capabilities,
      session: row.session,
      createdAt: row.created_at,
      updatedAt: row.updated_at,
      startCmd: row.start_cmd,
      workdir: row.workdir,
      policy: row.policy,
      tmuxSocket: row.tmux_socket,
      patterns: row.patterns === null ? null : (JSON.parse(row.patterns) as Record<string, unknown>),
      wake: row.wake,
      plan: row.plan,
      transcripts: row.transcripts,
    };
  }

  readonly tokens: Store['tokens'] = {
    create: (token: NewToken) =>
      guarded(
        async () => {
          const createdAt = Date.now();
          await this.db.run(
            'INSERT INTO tokens (id, project, agent, role, prefix, hash, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)',
            [token.id, token.project, token.agent, token.role, token.prefix, token.hash, createdAt],
          );
          return {
            id: token.id,
            project: token.project,
            agent: token.agent,
            role: token.role,
            prefix: token.prefix,
            createdAt,
            lastUsedAt: null,
            revokedAt: null,
          };
        },
        { foreignKey: `agent "${token.agent}" does not exist in project "${token.project}"` },
      ),
    findByHash: (hash) =>
      guarded(async () => {
        const row = await this.db.one<TokenRow>(`SELECT ${TOKEN_COLUMNS} FROM tokens WHERE hash = $1`, [
          hash,
        ]);
        if (!row) return undefined;
        const now = Date.now();
        // Touch at most once a minute so reads stay reads.
        if (row.revoked_at === null && (row.last_used_at === null || now - row.last_used_at > 60_000)) {
          await this.db.run('UPDATE tokens SET last_used_at = $1 WHERE id = $2', [now, row.id]);
          row.last_used_at = now;
        }
        const project = await this.db.one('SELECT 1 AS ok FROM projects WHERE slug = $1', [row.project]);
        return { ...toToken(row), projectExists: project !== undefined };
      }),
    list: (project) =>
      guarded(async () =>
        (
          await this.db.all<TokenRow>(
            `SELECT ${TOKEN_COLUMNS} FROM tokens WHERE project = $1 ORDER BY created_at, id`,
            [project],
          )
        ).map(toToken),
      ),
    revoke: (project, idOrPrefix) =>
      guarded(() =>
        this.db.transaction(async (tx) => {
          const rows = await tx.all<TokenRow>(
            `SELECT ${TOKEN_COLUMNS} FROM tokens WHERE project = $1 AND (id = $2 OR prefix = $2)`,
            [project, idOrPrefix],
          );
          if (rows.length > 1) {
            throw new Conflict(`"${idOrPrefix}" matches ${rows.length} tokens`, {
              hint: 'revoke by token id',
            });
          }
          const row = rows[0];
          if (!row) return undefined;
          if (row.revoked_at === null) {
            row.revoked_at = Date.now();
            await tx.run('UPDATE tokens SET revoked_at = $1 WHERE id = $2', [row.revoked_at, row.id]);
          }
          return toToken(row);
        }),
      ),
  };

  readonly squads: Store['squads'] = {
    create: (project, name, description) =>
      guarded(
        async () => {
          const createdAt = Date.now();
          await this.db.run(
            'INSERT INTO squads (project, name, description, created_at) VALUES ($1, $2, $3, $4)',
            [project, name, description, createdAt],
          );
          return { project, name, description, members: [], createdAt };
        },
        {
          unique: `squad "${name}" already exists in project "${project}"`,
          foreignKey: `project "${project}" does not exist`,
        },
      ),
    get: (project, name) =>
      guarded(async () => {
        const row = await this.db.one<SquadRow>(
          'SELECT project, name, description, created_at FROM squads WHERE project = $1 AND name = $2',
          [project, name],
        );
        if (!row) return undefined;
        const members = await this.db.all<{ agent: string }>(
          'SELECT agent FROM squad_members WHERE project = $1 AND squad = $2 ORDER BY agent',
          [project, name],
        );
        return this.toSquad(
          row,
          members.map((m) => m.agent),
        );
      }),
    list: (project) =>
      guarded(async () => {
        const rows = await this.db.all<SquadRow>(
          'SELECT project, name, description, created_at FROM squads WHERE project = $1 ORDER BY name',
          [project],
        );
        const members = await this.membersOf(project);
        return rows.map((row) => this.toSquad(row, members.get(row.name) ?? []));
      }),
    join: (project, squad, agent) =>
      guarded(
        async () => {
          const existing = await this.db.one(
            'SELECT 1 AS ok FROM squad_members WHERE project = $1 AND squad = $2 AND agent = $3',
            [project, squad, agent],
          );
          if (existing) return false;
          await this.db.run(
            'INSERT INTO squad_members (project, squad, agent, joined_at) VALUES ($1, $2, $3, $4)',
            [project, squad, agent, Date.now()],
          );
          return true;
        },
        // A concurrent join of the same pair lost the race: it is a member either way.
        { foreignKey: `squad "${squad}" or agent "${agent}" does not exist in project "${project}"` },
      ).catch((err: unknown) => {
        if (err instanceof SqlError && err.kind === 'unique') return false;
        throw err;
      }),
    leave: (project, squad, agent) =>
      guarded(
        async () =>
          (await this.db.run('DELETE FROM squad_members WHERE project = $1 AND squad = $2 AND agent = $3', [
            project,
            squad,
            agent,
          ])) > 0,
      ),
  };

  private toSquad(row: SquadRow, members: string[]): Squad {
    return {
      project: row.project,
      name: row.name,
      description: row.description,
      members,
      createdAt: row.created_at,
    };
  }

  readonly counters: Store['counters'] = {
    add: (project, name, by = 1) =>
      guarded(async () => {
        await this.db.run(
          `INSERT INTO counters (project, name, value) VALUES ($1, $2, $3)
           ON CONFLICT (project, name) DO UPDATE SET value = counters.value + excluded.value`,
          [project, name, by],
        );
      }),
    all: (project) =>
      guarded(async () => {
        const rows = await this.db.all<{ name: string; value: number }>('SELECT name, value FROM counters WHERE project = $1 ORDER BY name', [project]);
        return Object.fromEntries(rows.map((r) => [r.name, Number(r.value)]));
      }),
  };

  readonly security: Store['security'] = {
    record: (event: SecurityEvent) =>
      guarded(async () => {
        await this.db.run(
          'INSERT INTO security_events (project, kind, actor, detail, at) VALUES ($1, $2, $3, $4, $5)',
          [event.project, event.kind, event.actor, event.detail, Date.now()],
        );
      }),
    count: (project) =>
      guarded(async () => {
        const rows = await this.db.all<{ kind: SecurityEvent['kind']; n: number }>(
          project === undefined
            ? 'SELECT kind, COUNT(*) AS n FROM security_events GROUP BY kind'
            : 'SELECT kind, COUNT(*) AS n FROM security_events WHERE project = $1 GROUP BY kind',
          project === undefined ? [] : [project],
        );
        const counts: Record<SecurityEvent['kind'], number> = {
          cross_project: 0,
          bad_token: 0,
          forbidden: 0,
        };
        for (const row of rows) counts[row.kind] = Number(row.n);
        return counts;
      }),
  };

  close(): Promise<void> {
    return this.db.close();
  }
}
