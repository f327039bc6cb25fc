import { UsageError } from '../errors.js';
import { findPrice, type PriceTable } from '../economy/prices.js';
import { CLAUDE_CLI_DEFAULT_TIMEOUT_MS, ClaudeCliProvider } from './providers/claude-cli.js';
import { AnthropicProvider } from './providers/anthropic.js';
import { OpenAIProvider } from './providers/openai.js';
import type { Provider, ProviderKind } from './provider.js';
import type { ChainEntry } from './chain.js';

/**
 * Model tiers as data, and the brain's routing among its providers (issue 14).
 *
 * A tier names how capable a model the work needs: `cheap`, `standard`, `strong`. Each provider
 * kind lists its models per tier; the price table (prices.json, SOS_PRICES) says what each costs.
 * `routeEntries` orders the configured [provider, model] entries for one decision: the entries of
 * the tier the work needs, cheapest first (an entry the price table does not know goes after the
 * priced ones, in configuration order), then every other entry as a fallback, so that an outage of
 * every provider of the tier degrades to the rest instead of stopping the brain. The chain then
 * skips an entry whose breaker is open.
 */

export const TIERS = ['cheap', 'standard', 'strong'] as const;
export type Tier = (typeof TIERS)[number];

/** The models of each provider kind per tier (the `claude` CLI takes its aliases). */
export const MODEL_TIERS: Record<ProviderKind, Record<Tier, readonly string[]>> = {
  anthropic: { cheap: ['claude-haiku-4-5'], standard: ['claude-sonnet-4-5'], strong: ['claude-opus-4-1'] },
  openai: { cheap: ['gpt-5-mini'], standard: ['gpt-5'], strong: ['gpt-5.1'] },
  'claude-cli': { cheap: ['haiku'], standard: ['sonnet'], strong: ['opus'] },
};

/** The `claude` CLI's aliases, for pricing. */
const CLI_ALIASES: Record<string, string> = { haiku: 'claude-haiku-4-5', sonnet: 'claude-sonnet-4-5', opus: 'claude-opus-4-1' };

/** The tier a named model belongs to, from the table (a dated or prefixed name matches its base); else null. */
export function tierOf(kind: ProviderKind, model: string): Tier | null {
  const m = model.toLowerCase();
  for (const tier of TIERS) if (MODEL_TIERS[kind][tier].some((name) => m === name || m.startsWith(`${name}-`) || m.endsWith(`/${name}`))) return tier;
  return null;
}

/** What a million input plus a million output tokens cost, in USD; null when unpriced. */
export function unitPrice(prices: PriceTable, kind: ProviderKind, model: string): number | null {
  const found = findPrice(prices, kind === 'claude-cli' ? (CLI_ALIASES[model] ?? model) : model);
  if (!found) return null;
  return found.price.input + found.price.output;
}

/** One configured provider, and the model it was told to use (absent: its tier's models). */
export interface ConfiguredProvider {
  provider: Provider;
  model?: string;
}

export interface RoutedEntry extends ChainEntry {
  tier: Tier | null;
  /** USD per million input + a million output tokens, or null when unpriced. */
  unitPrice: number | null;
}

/** The chain's entries for a decision that needs `tier`, in the order they are tried. */
export function routeEntries(configured: readonly ConfiguredProvider[], tier: Tier, prices: PriceTable): RoutedEntry[] {
  const all: RoutedEntry[] = [];
  for (const { provider, model } of configured) {
    const models = model ? [model] : [...MODEL_TIERS[provider.kind][tier], ...TIERS.filter((t) => t !== tier).flatMap((t) => MODEL_TIERS[provider.kind][t])];
    for (const m of models) all.push({ provider, model: m, tier: tierOf(provider.kind, m), unitPrice: unitPrice(prices, provider.kind, m) });
  }
  // A model given by name whose tier the table does not know is taken to be of the tier asked for:
  // the operator chose it for this work.
  const fits = (e: RoutedEntry) => e.tier === tier || (e.tier === null && configured.some((c) => c.provider === e.provider && c.model === e.model));
  const byPrice = (a: RoutedEntry, b: RoutedEntry) => (a.unitPrice ?? Infinity) - (b.unitPrice ?? Infinity);
  const first = all.filter(fits).sort(byPrice); // stable: equal prices keep configuration order
  return [...first, ...all.filter((e) => !fits(e))];
}

export interface BrainProviderValues {
  brainProvider?: string | undefined;
  brainModel?: string | undefined;
  brainUrl?: string | undefined;
  brainKey?: string | undefined;
  brainTimeoutMs?: number | undefined;
}

/** A comma list aligned with `n` providers: one value applies to all; empty items are absent. */
function aligned(name: string, raw: string | undefined, n: number): (string | undefined)[] {
  if (raw === undefined) return Array.from({ length: n }, () => undefined);
  const items = raw.split(',').map((s) => s.trim());
  if (items.length === 1) return Array.from({ length: n }, () => items[0] || undefined);
  if (items.length !== n) throw new UsageError(`${name} lists ${items.length} values for ${n} brain providers`, { hint: 'give one value for all, or one per provider in SOS_BRAIN_PROVIDER order (empty for none)' });
  return items.map((s) => s || undefined);
}

/**
 * The providers configured by SOS_BRAIN_PROVIDER/MODEL/URL/KEY, in chain order; empty when the
 * brain is off. Names are the kinds, numbered when a kind repeats (`openai`, `openai-2`).
 */
export function providersFromValues(v: BrainProviderValues, env: NodeJS.ProcessEnv = process.env): ConfiguredProvider[] {
  if (!v.brainProvider) return [];
  const kinds = v.brainProvider.split(',').map((s) => s.trim()) as ProviderKind[];
  const models = aligned('SOS_BRAIN_MODEL', v.brainModel, kinds.length);
  const urls = aligned('SOS_BRAIN_URL', v.brainUrl, kinds.length);
  const keys = aligned('SOS_BRAIN_KEY', v.brainKey, kinds.length);
  const seen = new Map<string, number>();
  return kinds.map((kind, i) => {
    const n = (seen.get(kind) ?? 0) + 1;
    seen.set(kind, n);
    const name = n === 1 ? kind : `${kind}-${n}`;
    const timeoutMs = v.brainTimeoutMs;
    let provider: Provider;
    if (kind === 'anthropic') {
      if (!keys[i]) throw new UsageError(`brain provider ${name} needs an API key`, { hint: 'set SOS_BRAIN_KEY' });
      provider = new AnthropicProvider({ name, apiKey: keys[i]!, ...(urls[i] ? { baseUrl: urls[i]! } : {}), ...(timeoutMs ? { timeoutMs } : {}) });
    } else if (kind === 'openai') {
      const baseUrl = urls[i] ?? 'https://api.openai.com/v1';
      if (!models[i] && urls[i]) throw new UsageError(`brain provider ${name} (${baseUrl}) needs a model`, { hint: 'set SOS_BRAIN_MODEL to a model that server serves' });
      // OpenAI's own reasoning models refuse max_tokens; other servers know only max_tokens.
      provider = new OpenAIProvider({ name, baseUrl, ...(urls[i] ? {} : { maxTokensField: 'max_completion_tokens' as const }), ...(keys[i] ? { apiKey: keys[i]! } : {}), ...(timeoutMs ? { timeoutMs } : {}) });
    } else {
      provider = new ClaudeCliProvider({ name, executable: urls[i] ?? 'claude', env, timeoutMs: timeoutMs ?? CLAUDE_CLI_DEFAULT_TIMEOUT_MS });
    }
    return { provider, ...(models[i] ? { model: models[i]! } : {}) };
  });
}
