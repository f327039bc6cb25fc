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
  brainProvider: variable({
    env: 'SOS_BRAIN_PROVIDER',
    key: 'brain_provider',
    schema: z
      .string()
      .regex(/^(anthropic|openai|claude-cli)(,(anthropic|openai|claude-cli))*$/, 'anthropic, openai or claude-cli, or a comma-separated fallback chain of them')
      .optional(),
    default: () => undefined,
    doc: 'How the brain reaches its model: anthropic (Messages API), openai (any OpenAI-compatible chat completions server) or claude-cli; a comma-separated list is a fallback chain. Absent: the brain is off.',
  }),
  brainModel: variable({
    env: 'SOS_BRAIN_MODEL',
    key: 'brain_model',
    schema: z.string().min(1).max(1000).optional(),
    default: () => undefined,
    doc: "The model each provider is asked for, comma-separated in the chain's order (one value applies to all; empty or absent: the provider's models of SOS_BRAIN_TIER; required for an openai server other than OpenAI's).",
  }),
  brainUrl: variable({
    env: 'SOS_BRAIN_URL',
    key: 'brain_url',
    schema: z.string().min(1).max(2000).optional(),
    default: () => undefined,
    doc: "Each provider's base URL, comma-separated in the chain's order (anthropic: without /v1; openai: with the version path, e.g. http://127.0.0.1:11434/v1 for Ollama; claude-cli: the executable, default claude).",
  }),
  brainKey: variable({
    env: 'SOS_BRAIN_KEY',
    key: 'brain_key',
    schema: z.string().min(1).max(4000).optional(),
    default: () => undefined,
    doc: "Each provider's API key, comma-separated in the chain's order (required for anthropic; sent as a bearer token to openai when set).",
    secret: true,
  }),
  brainTier: variable({
    env: 'SOS_BRAIN_TIER',
    key: 'brain_tier',
    schema: z.enum(['cheap', 'standard', 'strong']),
    default: () => 'standard' as const,
    doc: "The model tier the brain's decisions need (cheap, standard, strong); a spent downgrade budget on the project uses cheap.",
  }),
  brainDebounceMs: variable({
    env: 'SOS_BRAIN_DEBOUNCE_MS',
    key: 'brain_debounce_ms',
    schema: z.coerce.number().int().min(0).max(3_600_000),
    default: () => 30_000,
    doc: 'How long the daemon waits after a triggering event for more before it runs one brain cycle, in milliseconds.',
  }),
  brainIntervalMs: variable({
    env: 'SOS_BRAIN_INTERVAL_MS',
    key: 'brain_interval_ms',
    schema: z.coerce.number().int().min(1_000).max(86_400_000),
    default: () => 900_000,
    doc: 'The slow timer: a brain cycle runs at least this often when nothing triggered one, in milliseconds.',
  }),
  brainCoolDownMs: variable({
    env: 'SOS_BRAIN_COOL_DOWN_MS',
    key: 'brain_cool_down_ms',
    schema: z.coerce.number().int().min(0).max(86_400_000),
    default: () => 60_000,
    doc: "How long a brain provider's open circuit breaker waits before one probe call, in milliseconds.",
  }),
  brainFailures: variable({
    env: 'SOS_BRAIN_FAILURES',
    key: 'brain_failures',
    schema: z.coerce.number().int().min(1).max(100),
    default: () => 3,
    doc: "Consecutive failures or timeouts that open a brain provider's circuit breaker.",
  }),
  brainTimeoutMs: variable({
    env: 'SOS_BRAIN_TIMEOUT_MS',
    key: 'brain_timeout_ms',
    schema: z.coerce.number().int().min(100).max(3_600_000).optional(),
    default: () => undefined,
    doc: 'Per call timeout of a brain provider, in milliseconds (default 120 s for HTTP providers, 300 s for claude-cli).',
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
  listen: variable({
    env: 'SOS_LISTEN',
    key: 'listen',
    schema: z.string().min(1),
    default: () => '127.0.0.1:6070',
    doc: "Where `sos daemon` serves HTTP (MCP at /mcp, /v1, /metrics, health): host:port, or off. A non-loopback host needs --allow-remote.",
  }),
  httpRate: variable({
    env: 'SOS_HTTP_RATE',
    key: 'http_rate',
    schema: z.coerce.number().positive(),
    default: () => 20,
    doc: 'Requests a second each token may make to the daemon over HTTP (a token bucket; over it, 429 with Retry-After).',
  }),
  httpBurst: variable({
    env: 'SOS_HTTP_BURST',
    key: 'http_burst',
    schema: positiveInt,
    default: () => 40,
    doc: 'Requests a token may make at once over HTTP before SOS_HTTP_RATE applies (the bucket size).',
  }),
  httpConcurrency: variable({
    env: 'SOS_HTTP_CONCURRENCY',
    key: 'http_concurrency',
    schema: positiveInt,
    default: () => 16,
    doc: 'Requests one token may have in flight over HTTP at once; more get 429.',
  }),
  httpMaxBodyBytes: variable({
    env: 'SOS_HTTP_MAX_BODY_BYTES',
    key: 'http_max_body_bytes',
    schema: positiveInt.optional(),
    default: () => undefined,
    doc: 'Largest HTTP request body, in bytes (413 past it). Default: 8 × the larger of SOS_MAX_MESSAGE_BYTES and SOS_MAX_ENGRAM_BYTES, plus 64 KiB.',
  }),
  mcpSessions: variable({
    env: 'SOS_MCP_SESSIONS',
    key: 'mcp_sessions',
    schema: positiveInt,
    default: () => 256,
    doc: 'Most MCP sessions open over HTTP at once; a new one past it gets 503 until an idle one expires.',
  }),
  mcpSessionIdleMs: variable({
    env: 'SOS_MCP_SESSION_IDLE_MS',
    key: 'mcp_session_idle_ms',
    schema: positiveInt,
    default: () => 30 * 60_000,
    doc: 'An MCP session over HTTP with no request for this long is closed, in milliseconds.',
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
