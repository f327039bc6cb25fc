import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dollars } from '../../src/core/economy/format.js';
import { builtinPrices, costMicros, findPrice, loadPrices, type ModelPrice, modelCandidates, priceEvent } from '../../src/core/economy/prices.js';
import { UsageError } from '../../src/core/errors.js';

const tmp = mkdtempSync(join(tmpdir(), 'sos-prices-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const zero = { inputTokens: 0, outputTokens: 0, cacheWriteTokens: 0, cacheWrite1hTokens: 0, cacheReadTokens: 0 };
const flat = (usd: number): ModelPrice => ({ provider: 'x', input: usd, output: usd, cache_write: usd, cache_write_1h: usd, cache_read: usd });

describe('the built-in price table', () => {
  const table = builtinPrices();

  it('is dated, explains itself, and covers the current models of each provider', () => {
    expect(table.version).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(table.checked).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(table.note).toMatch(/list prices/i);
    for (const model of [
      'claude-opus-4-1', 'claude-opus-4-5', 'claude-sonnet-4', 'claude-sonnet-4-5', 'claude-haiku-4-5', 'claude-3-7-sonnet', 'claude-3-5-sonnet', 'claude-3-5-haiku',
      'gpt-5', 'gpt-5-codex', 'gpt-5-mini', 'gpt-5-nano', 'gpt-4.1', 'gpt-4.1-mini', 'gpt-4.1-nano', 'o3', 'o4-mini', 'codex-mini-latest',
      'gemini-2.5-pro', 'gemini-2.5-flash', 'gemini-2.5-flash-lite', 'gemini-2.0-flash',
    ]) {
      expect(table.models[model], model).toBeDefined();
    }
    expect(table.models['claude-sonnet-4-5']).toEqual({ provider: 'anthropic', input: 3, output: 15, cache_write: 3.75, cache_write_1h: 6, cache_read: 0.3 });
    expect(table.models['gpt-5']).toMatchObject({ provider: 'openai', input: 1.25, output: 10, cache_read: 0.125 });
    expect(table.models['gemini-2.5-pro']).toMatchObject({ provider: 'google', input: 1.25, output: 10 });
    expect(table.overlays).toEqual([]);
    // Anthropic's cache multipliers: 5-minute writes 1.25×, 1-hour writes 2×, reads 0.1× input
    // (Claude 3 Haiku, priced before them, is the exception: $0.30 and $0.03 on $0.25).
    for (const [name, p] of Object.entries(table.models).filter(([n, p]) => p.provider === 'anthropic' && n !== 'claude-3-haiku')) {
      expect(p.cache_write, name).toBeCloseTo(p.input * 1.25, 6);
      expect(p.cache_write_1h, name).toBeCloseTo(p.input * 2, 6);
      expect(p.cache_read, name).toBeCloseTo(p.input * 0.1, 6);
    }
  });
});

describe('model name matching', () => {
  const table = builtinPrices();
  const match = (model: string) => findPrice(table, model)?.name;

  it('tries the name as given, then trimmed lower case, without provider prefixes, date suffix and -latest', () => {
    expect(modelCandidates('anthropic/Claude-Sonnet-4-5-20250929')).toEqual([
      'anthropic/Claude-Sonnet-4-5-20250929',
      'anthropic/claude-sonnet-4-5-20250929',
      'claude-sonnet-4-5-20250929',
      'claude-sonnet-4-5',
    ]);
    expect(match('claude-sonnet-4-5')).toBe('claude-sonnet-4-5');
    expect(match('claude-sonnet-4-5-20250929')).toBe('claude-sonnet-4-5');
    expect(match('claude-opus-4-20250514')).toBe('claude-opus-4');
    expect(match('claude-opus-4-1-20250805')).toBe('claude-opus-4-1');
    expect(match('claude-3-5-haiku-latest')).toBe('claude-3-5-haiku');
    expect(match('anthropic/claude-haiku-4-5-20251001')).toBe('claude-haiku-4-5');
    expect(match('openai/gpt-5')).toBe('gpt-5');
    expect(match('openai/models/gpt-4.1-2025-04-14')).toBe('gpt-4.1');
    expect(match('  GPT-5-Codex ')).toBe('gpt-5-codex');
    expect(match('codex-mini-latest')).toBe('codex-mini-latest');
    expect(match('models/gemini-2.5-flash')).toBe('gemini-2.5-flash');
    expect(match('gemini/gemini-2.5-pro')).toBe('gemini-2.5-pro');
  });

  it('never guesses a family: an unknown or merely similar name is unpriced', () => {
    expect(match('claude-sonnet-9')).toBeUndefined();
    expect(match('gpt-5-turbo-ultra')).toBeUndefined();
    expect(match('sonnet')).toBeUndefined();
    expect(match('constructor')).toBeUndefined();
    expect(match('__proto__')).toBeUndefined();
    expect(priceEvent(table, 'mystery', { ...zero, inputTokens: 10 })).toEqual({ costMicros: null, priceVersion: null, provider: null });
  });
});

describe('cost arithmetic (integer micro-dollars)', () => {
  it('is tokens × USD per million = micro-dollars, exactly', () => {
    const sonnet = builtinPrices().models['claude-sonnet-4-5']!;
    expect(costMicros({ ...zero, inputTokens: 1_000_000 }, sonnet)).toBe(3_000_000);
    expect(costMicros({ inputTokens: 1_000, outputTokens: 200, cacheWriteTokens: 100, cacheWrite1hTokens: 10, cacheReadTokens: 10_000 }, sonnet)).toBe(9_435);
    expect(costMicros(zero, sonnet)).toBe(0);
    // 0.1 + 0.2 is not 0.3 in floating point; here it is.
    const cheap = { provider: 'x', input: 0.1, output: 0.2, cache_write: 0, cache_write_1h: 0, cache_read: 0 };
    expect(costMicros({ ...zero, inputTokens: 10, outputTokens: 10 }, cheap)).toBe(3);
    expect(costMicros({ ...zero, inputTokens: 1_000_000_000, outputTokens: 1_000_000_000 }, builtinPrices().models['claude-opus-4-1']!)).toBe(90_000_000_000);
  });

  it('sums every kind exactly, then rounds once to the micro-dollar, halves up', () => {
    // 1 token at $0.5/M is half a micro-dollar: rounds up to 1.
    expect(costMicros({ ...zero, inputTokens: 1 }, flat(0.5))).toBe(1);
    expect(costMicros({ ...zero, inputTokens: 1 }, flat(0.499999))).toBe(0);
    // Each kind alone is 0.4 micro-dollars (would round to 0 five times); together 2.
    expect(costMicros({ inputTokens: 1, outputTokens: 1, cacheWriteTokens: 1, cacheWrite1hTokens: 1, cacheReadTokens: 1 }, flat(0.4))).toBe(2);
    // gpt-5-nano cached input at $0.005/M: 299 tokens are 1.495 micro-dollars.
    expect(costMicros({ ...zero, cacheReadTokens: 299 }, builtinPrices().models['gpt-5-nano']!)).toBe(1);
    expect(costMicros({ ...zero, cacheReadTokens: 300 }, builtinPrices().models['gpt-5-nano']!)).toBe(2);
  });

  it('shows money to the cent, halves up, with thousands separators', () => {
    expect(dollars(0)).toBe('$0.00');
    expect(dollars(4_999)).toBe('$0.00');
    expect(dollars(5_000)).toBe('$0.01');
    expect(dollars(9_435)).toBe('$0.01');
    expect(dollars(1_234_567_890)).toBe('$1,234.57');
    expect(dollars(90_000_000_000)).toBe('$90,000.00');
  });
});

describe('SOS_PRICES overlays', () => {
  const write = (name: string, body: unknown) => {
    const file = join(tmp, name);
    writeFileSync(file, typeof body === 'string' ? body : JSON.stringify(body));
    return file;
  };

  it('adds models, changes fields of known ones, and names itself in the version', () => {
    const file = write('ours.json', { version: 'acme-7', models: { 'claude-sonnet-4-5': { input: 2.4 }, 'local-llama': { provider: 'ollama', input: 0, output: 0 } } });
    const table = loadPrices(file);
    expect(table.version).toBe(`${builtinPrices().version}+acme-7`);
    expect(table.models['claude-sonnet-4-5']).toEqual({ provider: 'anthropic', input: 2.4, output: 15, cache_write: 3.75, cache_write_1h: 6, cache_read: 0.3 });
    expect(table.models['local-llama']).toEqual({ provider: 'ollama', input: 0, output: 0, cache_write: 0, cache_write_1h: 0, cache_read: 0 });
    expect(table.overlays).toEqual([{ file, version: 'acme-7', models: ['claude-sonnet-4-5', 'local-llama'] }]);
    // The built-in table is untouched.
    expect(builtinPrices().models['claude-sonnet-4-5']!.input).toBe(3);
    expect(loadPrices(undefined)).toBe(builtinPrices());
  });

  it('versions an overlay without a version by its content', () => {
    const a = loadPrices(write('a.json', { models: { 'gpt-5': { input: 1 } } }));
    const b = loadPrices(write('b.json', { models: { 'gpt-5': { input: 1 } } }));
    const c = loadPrices(write('c.json', { models: { 'gpt-5': { input: 1.1 } } }));
    expect(a.version).toMatch(/\+sha256:[0-9a-f]{12}$/);
    expect(a.version).toBe(b.version);
    expect(c.version).not.toBe(a.version);
  });

  it('refuses a malformed file naming the file and the field', () => {
    const cases: [unknown, RegExp][] = [
      ['{ "models": ', /not JSON/],
      [{ models: { 'gpt-5': { input: -1 } } }, /"models\.gpt-5\.input": a price is 0 or more/],
      [{ models: { 'gpt-5': { input: '1.25' } } }, /"models\.gpt-5\.input"/],
      [{ models: { 'gpt-5': { input: 0.0000001 } } }, /"models\.gpt-5\.input": a price has at most six decimals/],
      [{ models: { 'gpt-5': { inptu: 1 } } }, /"models\.gpt-5"/],
      [{ models: { 'gpt-5': { provider: 'Open AI' } } }, /"models\.gpt-5\.provider"/],
      [{ models: { 'new-one': { provider: 'x', input: 1 } } }, /"models\.new-one\.output": required for a model the built-in table does not have/],
      [{ model: {} }, /SOS_PRICES/],
      [[], /\(the whole file\)/],
    ];
    for (const [body, message] of cases) {
      const file = write('bad.json', body);
      let err: unknown;
      try {
        loadPrices(file);
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(body)).toBeInstanceOf(UsageError);
      expect((err as Error).message).toContain(file);
      expect((err as Error).message).toMatch(message);
    }
    expect(() => loadPrices(join(tmp, 'absent.json'))).toThrow(/cannot read the price file/);
  });
});
