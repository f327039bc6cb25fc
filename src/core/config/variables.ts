import { z } from 'zod';
import { NAME_PATTERN } from '../names.js';

/**
 * Every `SOS_*` variable, declared once: its config-file key, the global flag that overrides it,
 * its schema, default and one line of doc. `sos config`, the help text and the README print from
 * this table; nothing else reads `SOS_*` from the environment.
 */

export interface DefaultContext {
  /** `$XDG_DATA_HOME/sos` (or `~/.local/share/sos`) unless SOS_DATA_DIR says otherwise. */
  dataDir: string;
}

export interface VariableSpec<T> {
  env: `SOS_${string}`;
  /** Key in the config file (`config.json` / `config.toml`). */
  key: string;
  /** Global CLI flag that overrides the variable, if any. */
  flag?: string;
  schema: z.ZodType<T>;
  default: (ctx: DefaultContext) => T;
  doc: string;
  /** Printed redacted by `sos config`. */
  secret?: boolean;
}

const booleanish = z
  .union([z.boolean(), z.enum(['1', '0', 'true', 'false', 'yes', 'no', 'on', 'off', ''])])
  .transform((v) => v === true || v === '1' || v === 'true' || v === 'yes' || v === 'on');

const positiveInt = z.coerce.number().int().positive();

const slug = z
  .string()
  .regex(NAME_PATTERN, 'lowercase letters, digits and -, starting with a letter, ≤ 40 chars');

function variable<T>(spec: VariableSpec<T>): VariableSpec<T> {
  return spec;
}

export const VARIABLES = {
  dataDir: variable({
    env: 'SOS_DATA_DIR',
    key: 'data_dir',
    schema: z.string().min(1),
    default: (ctx) => ctx.dataDir,
    doc: 'Directory for the embedded database and logs (default $XDG_DATA_HOME/sos).',
  }),
  db: variable({
    env: 'SOS_DB',
    key: 'db',
    flag: '--db',
    schema: z.string().min(1),
    default: (ctx) => `${ctx.dataDir}/sos.db`,
    doc: 'Store database: a SQLite file path or sqlite: URL, or a postgres:// URL.',
  }),
  pgSchema: variable({
    env: 'SOS_PG_SCHEMA',
    key: 'pg_schema',
    schema: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'a lowercase PostgreSQL identifier'),
    default: () => 'sos',
    doc: 'PostgreSQL schema that holds this installation (one schema per installation).',
  }),
  memoryDb: variable({
    env: 'SOS_MEMORY_DB',
    key: 'memory_db',
    schema: z.string().min(1).optional(),
    default: () => undefined,
    doc: 'Memory database (SQLite path or postgres:// URL); defaults to SOS_DB.',
  }),
  embedder: variable({
    env: 'SOS_EMBEDDER',
    key: 'embedder',
    schema: z.string().min(1).optional(),
    default: () => undefined,
    doc: 'Embedder: local (default), ollama:<model> or openai:<model>.',
  }),
  embedderUrl: variable({
    env: 'SOS_EMBEDDER_URL',
    key: 'embedder_url',
    schema: z
      .string()
      .regex(/^https?:\/\/[^\s/]+/, 'an http:// or https:// URL')
      .optional(),
    default: () => undefined,
    doc: 'Base URL of the HTTP embedder (Ollama default http://127.0.0.1:11434; required for openai:).',
  }),
  embedderKey: variable({
    env: 'SOS_EMBEDDER_KEY',
    key: 'embedder_key',
    schema: z.string().min(1).optional(),
    default: () => undefined,
    doc: 'API key sent as a Bearer token to an OpenAI-compatible embedder.',
    secret: true,
  }),
  maxEngramBytes: variable({
    env: 'SOS_MAX_ENGRAM_BYTES',
    key: 'max_engram_bytes',
    schema: positiveInt,
    default: () => 32_768,
    doc: 'Largest engram text accepted by `sos memory remember`, in bytes.',
  }),
  prices: variable({
    env: 'SOS_PRICES',
    key: 'prices',
    schema: z.string().min(1).optional(),
    default: () => undefined,
    doc: 'JSON file of model prices (USD per million tokens) overlaid on the built-in table (`sos usage prices`).',
  }),
  planLimits: variable({
    env: 'SOS_PLAN_LIMITS',
    key: 'plan_limits',
    schema: z.string().min(1).optional(),
    default: () => undefined,
    doc: 'JSON token limits of subscription plans, e.g. {"max":{"five_hour_tokens":220000,"weekly_tokens":5000000}} (defaults are estimates).',
  }),
  quotaMarginMs: variable({
    env: 'SOS_QUOTA_MARGIN_MS',
    key: 'quota_margin_ms',
    schema: positiveInt,
    default: () => 15 * 60_000,
    doc: 'An agent whose 5-hour window is projected to run out within this is parked until it resets, in milliseconds.',
  }),
  importTranscripts: variable({
    env: 'SOS_IMPORT',
    key: 'import',
    schema: booleanish,
    default: () => true,
    doc: 'Whether the daemon imports Claude Code, Codex and Gemini transcripts into the ledger on a loop.',
  }),
  importIntervalMs: variable({
    env: 'SOS_IMPORT_INTERVAL_MS',
    key: 'import_interval_ms',
    schema: positiveInt,
    default: () => 30_000,
    doc: 'How often the daemon re-reads transcripts when no file-system event woke it, in milliseconds.',
  }),
  redisUrl: variable({
    env: 'SOS_REDIS_URL',
    key: 'redis_url',
    schema: z
      .string()
      .regex(/^rediss?:\/\//, 'a redis:// or rediss:// URL')
      .optional(),
    default: () => undefined,
    doc: 'Redis URL for the bus; absent means the bus uses the Store database.',
    secret: true,
  }),
  token: variable({
    env: 'SOS_TOKEN',
    key: 'token',
    flag: '--token',
    schema: z.string().min(1).optional(),
    default: () => undefined,
    doc: 'Bearer token; the caller and project are taken from it.',
    secret: true,
  }),
  project: variable({
    env: 'SOS_PROJECT',
    key: 'project',
    flag: '--project',
    schema: slug,
    default: () => 'default',
    doc: 'Project to act in when no token is given (local trust).',
  }),
  agent: variable({
    env: 'SOS_AGENT',
    key: 'agent',
    flag: '--as',
    schema: slug.optional(),
    default: () => undefined,
    doc: 'Agent to act as in local trust (the operator may act as any agent).',
  }),
  busMaxLen: variable({
    env: 'SOS_BUS_MAXLEN',
    key: 'bus_maxlen',
    schema: positiveInt,
    default: () => 100_000,
    doc: 'Approximate cap on each Redis stream (XADD MAXLEN ~); streams never grow unbounded.',
  }),
  maxMessageBytes: variable({
    env: 'SOS_MAX_MESSAGE_BYTES',
    key: 'max_message_bytes',
    schema: positiveInt,
    default: () => 65_536,
    doc: 'Largest message body accepted by `sos send`, in bytes (UTF-8).',
  }),
  presenceTtlMs: variable({
    env: 'SOS_PRESENCE_TTL_MS',
    key: 'presence_ttl_ms',
    schema: positiveInt,
    default: () => 90_000,
    doc: 'An agent is online while its last heartbeat is younger than this, in milliseconds.',
  }),
  busyTimeoutMs: variable({
    env: 'SOS_BUSY_TIMEOUT_MS',
    key: 'busy_timeout_ms',
    schema: positiveInt,
    default: () => 10_000,
    doc: 'How long a SQLite writer waits for the lock before giving up, in milliseconds.',
  }),
  stuckAfterMs: variable({
    env: 'SOS_STUCK_AFTER_MS',
    key: 'stuck_after_ms',
    schema: positiveInt,
    default: () => 30 * 60_000,
    doc: 'An agent holding a claim whose screen has not changed for this long is stuck, in milliseconds.',
  }),
  restartLimit: variable({
    env: 'SOS_RESTART_LIMIT',
    key: 'restart_limit',
    schema: positiveInt,
    default: () => 3,
    doc: 'Restarts of one agent allowed per SOS_RESTART_WINDOW_MS before the supervisor escalates instead.',
  }),
  restartWindowMs: variable({
    env: 'SOS_RESTART_WINDOW_MS',
    key: 'restart_window_ms',
    schema: positiveInt,
    default: () => 60 * 60_000,
    doc: 'The window of the per-agent restart limit, in milliseconds.',
  }),
  restartCooldownMs: variable({
    env: 'SOS_RESTART_COOLDOWN_MS',
    key: 'restart_cooldown_ms',
    schema: positiveInt,
    default: () => 60_000,
    doc: 'No second restart of an agent sooner than this after the last, in milliseconds.',
  }),
  recoveryTimeoutMs: variable({
    env: 'SOS_RECOVERY_TIMEOUT_MS',
    key: 'recovery_timeout_ms',
    schema: positiveInt,
    default: () => 120_000,
    doc: 'A recovery action succeeded if the agent reaches idle or busy within this, in milliseconds.',
  }),
  debug: variable({
    env: 'SOS_DEBUG',
    key: 'debug',
    schema: booleanish,
    default: () => false,
    doc: 'Print stack traces with errors.',
  }),
} as const;

export type VariableKey = keyof typeof VARIABLES;

export type ConfigValues = {
  [K in VariableKey]: (typeof VARIABLES)[K] extends VariableSpec<infer T> ? T : never;
};
