import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { UsageError } from '../errors.js';
import { quote } from '../safe-text.js';
import BUILTIN from './prices.json' with { type: 'json' };
import type { TokenCounts } from './types.js';

/**
 * The price table is data (`prices.json`, list prices in USD per million tokens with the date
 * they were checked); `SOS_PRICES=<file>` overlays the operator's own entries on it.
 *
 * Cost arithmetic is integer: a price is held as micro-dollars per million tokens (at most six
 * decimals in the file), so one token of one kind costs `price` pico-dollars; an event's cost is
 * the exact sum over its token kinds in pico-dollars, rounded ONCE to the nearest micro-dollar,
 * halves up. Reports sum these per-event micro-dollars (no float ever touches money).
 */

export const PRICE_FIELDS = ['input', 'output', 'cache_write', 'cache_write_1h', 'cache_read'] as const;
export type PriceField = (typeof PRICE_FIELDS)[number];

/** USD per million tokens for each token kind. */
export interface ModelPrice {
  provider: string;
  input: number;
  output: number;
  /** Prompt-cache write with the 5-minute lifetime. */
  cache_write: number;
  cache_write_1h: number;
  cache_read: number;
}

export interface PriceTable {
  /** The base table's version, with `+<overlay version>` when an overlay is applied. */
  version: string;
  checked: string;
  note: string;
  models: Record<string, ModelPrice>;
  /** Where each overlay came from (file path) and what it changed. */
  overlays: { file: string; version: string; models: string[] }[];
}

const MAX_PRICE = 1_000_000;

/** USD per million tokens: non-negative, at most six decimals (a whole number of micro-dollars). */
const price = z
  .number()
  .min(0, 'a price is 0 or more')
  .max(MAX_PRICE, `a price is at most ${MAX_PRICE}`)
  .refine((v) => Math.abs(v * 1e6 - Math.round(v * 1e6)) < 1e-6, 'a price has at most six decimals');

const PROVIDER = /^[a-z0-9][a-z0-9._-]{0,39}$/;
const provider = z.string().regex(PROVIDER, 'a provider is lowercase letters, digits, . _ or -, at most 40');
const modelName = z.string().min(1).max(200).regex(/^[\x21-\x7e]+$/, 'a model name is printable characters without spaces');

const fullEntry = z.strictObject({
  provider,
  input: price,
  output: price,
  cache_write: price,
  cache_write_1h: price,
  cache_read: price,
});

const baseTable = z.object({
  version: z.string().min(1),
  checked: z.string().min(1),
  note: z.string(),
  models: z.record(modelName, fullEntry),
});

/**
 * An overlay entry may change only some fields of a model the table has. A model the table does
 * not have needs provider, input and output; its cache writes default to the input price and its
 * cache reads to the input price too (never cheaper than the operator said).
 */
const overlayEntry = z.strictObject({
  provider: provider.optional(),
  input: price.optional(),
  output: price.optional(),
  cache_write: price.optional(),
  cache_write_1h: price.optional(),
  cache_read: price.optional(),
});

const overlayFile = z.strictObject({
  version: z.string().min(1).max(100).optional(),
  checked: z.string().max(100).optional(),
  note: z.string().max(10_000).optional(),
  models: z.record(modelName, overlayEntry),
});

function fieldOf(path: readonly PropertyKey[]): string {
  return path.length === 0 ? '(the whole file)' : path.map(String).join('.');
}

/** The built-in table, checked once (a broken file in the build is a bug, not a usage error). */
function builtin(): PriceTable {
  const parsed = baseTable.parse(BUILTIN);
  return { ...parsed, overlays: [] };
}

let cached: PriceTable | undefined;

export function builtinPrices(): PriceTable {
  cached ??= builtin();
  return cached;
}

/**
 * The table in force: the built-in one with the overlay file (SOS_PRICES) applied. A missing,
 * unreadable or malformed file is a usage error naming the file and the field.
 */
export function loadPrices(overlayPath?: string): PriceTable {
  const base = builtinPrices();
  if (overlayPath === undefined || overlayPath === '') return base;
  let text: string;
  try {
    text = readFileSync(overlayPath, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read the price file ${quote(overlayPath, 200)} (SOS_PRICES): ${(err as Error).message}`, { cause: err });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`the price file ${quote(overlayPath, 200)} (SOS_PRICES) is not JSON: ${(err as Error).message}`, { cause: err });
  }
  const parsed = overlayFile.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new UsageError(`the price file ${quote(overlayPath, 200)} (SOS_PRICES) is invalid at ${quote(fieldOf(issue.path))}: ${issue.message}`, {
      hint: 'each entry of "models" gives USD per million tokens: {"provider": "openai", "input": 1.25, "output": 10, "cache_write": 1.25, "cache_write_1h": 1.25, "cache_read": 0.125}',
    });
  }
  const models: Record<string, ModelPrice> = { ...base.models };
  for (const [name, entry] of Object.entries(parsed.data.models)) {
    const known = models[name];
    if (!known) {
      for (const field of ['provider', 'input', 'output'] as const) {
        if (entry[field] === undefined) {
          throw new UsageError(`the price file ${quote(overlayPath, 200)} (SOS_PRICES) is invalid at ${quote(`models.${name}.${field}`)}: required for a model the built-in table does not have`);
        }
      }
    }
    const input = entry.input ?? known!.input;
    models[name] = {
      provider: entry.provider ?? known!.provider,
      input,
      output: entry.output ?? known!.output,
      cache_write: entry.cache_write ?? known?.cache_write ?? input,
      cache_write_1h: entry.cache_write_1h ?? known?.cache_write_1h ?? entry.cache_write ?? input,
      cache_read: entry.cache_read ?? known?.cache_read ?? input,
    };
  }
  const overlayVersion = parsed.data.version ?? `sha256:${createHash('sha256').update(text).digest('hex').slice(0, 12)}`;
  return {
    version: `${base.version}+${overlayVersion}`,
    checked: parsed.data.checked ?? base.checked,
    note: base.note,
    models,
    overlays: [{ file: overlayPath, version: overlayVersion, models: Object.keys(parsed.data.models).sort() }],
  };
}

const PROVIDER_PREFIX = /^(anthropic|openai|google|gemini|vertex_ai|models)\//;
const DATE_SUFFIX = /-(\d{8}|\d{4}-\d{2}-\d{2})$/;

/**
 * The names a model id is looked up under, in order, first match wins:
 * 1. exactly as given;
 * 2. trimmed and lower-cased;
 * 3. without provider prefixes (`anthropic/`, `openai/`, `google/`, `gemini/`, `vertex_ai/`,
 *    `models/`, repeated: `openai/models/x` is `x`);
 * 4. without a date suffix `-YYYYMMDD` or `-YYYY-MM-DD` (`claude-sonnet-4-5-20250929`,
 *    `gpt-4.1-2025-04-14`);
 * 5. without a `-latest` suffix (`claude-3-5-haiku-latest`).
 */
export function modelCandidates(model: string): string[] {
  const out = [model];
  let name = model.trim().toLowerCase();
  out.push(name);
  while (PROVIDER_PREFIX.test(name)) name = name.replace(PROVIDER_PREFIX, '');
  out.push(name);
  name = name.replace(DATE_SUFFIX, '');
  out.push(name);
  name = name.replace(/-latest$/, '');
  out.push(name);
  return [...new Set(out)];
}

/** The table entry for a model id, and the name it matched; undefined when unpriced. */
export function findPrice(table: PriceTable, model: string): { name: string; price: ModelPrice } | undefined {
  for (const name of modelCandidates(model)) {
    const price = Object.hasOwn(table.models, name) ? table.models[name] : undefined;
    if (price) return { name, price };
  }
  return undefined;
}

/** A price in USD per million tokens as whole micro-dollars per million tokens (= pico-dollars per token). */
function picoPerToken(usdPerMillion: number): bigint {
  return BigInt(Math.round(usdPerMillion * 1e6));
}

const TOKEN_FIELDS: readonly [keyof TokenCounts, PriceField][] = [
  ['inputTokens', 'input'],
  ['outputTokens', 'output'],
  ['cacheWriteTokens', 'cache_write'],
  ['cacheWrite1hTokens', 'cache_write_1h'],
  ['cacheReadTokens', 'cache_read'],
];

/**
 * Cost in whole micro-dollars: Σ tokens × price exactly (pico-dollars), then rounded once to the
 * nearest micro-dollar, halves up. Reasoning tokens are not charged apart: they are inside
 * output where the provider bills them.
 */
export function costMicros(tokens: TokenCounts, price: ModelPrice): number {
  let pico = 0n;
  for (const [count, field] of TOKEN_FIELDS) pico += BigInt(tokens[count]) * picoPerToken(price[field]);
  return Number((pico + 500_000n) / 1_000_000n);
}

/** Prices an event: cost and the table version, or both null for a model the table lacks. */
export function priceEvent(table: PriceTable, model: string, tokens: TokenCounts): { costMicros: number | null; priceVersion: string | null; provider: string | null } {
  const found = findPrice(table, model);
  if (!found) return { costMicros: null, priceVersion: null, provider: null };
  return { costMicros: costMicros(tokens, found.price), priceVersion: table.version, provider: found.price.provider };
}
