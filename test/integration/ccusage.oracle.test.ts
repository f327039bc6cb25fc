import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ccusageTotals, type ModelTotals } from '../helpers/ccusage.js';

/**
 * Proves the transcript fixtures and the oracle harness against each other: ccusage, which
 * nobody here wrote, must read from the real CLIs' files exactly the token counts the fake
 * model servers reported (expected.json). Where ccusage is known to count differently, the
 * test pins what it reports instead, so a change in either shows.
 */

const fixtures = join(dirname(fileURLToPath(import.meta.url)), '../fixtures/transcripts');

interface Fixture {
  source: 'claude' | 'codex' | 'gemini';
  ccusage: 'equal' | 'differs' | 'none';
  models: Record<string, ModelTotals>;
  ccusageObserved?: Record<string, ModelTotals>;
}
const expected = JSON.parse(readFileSync(join(fixtures, 'expected.json'), 'utf8')) as { fixtures: Record<string, Fixture> };

function tokensOf(totals: Record<string, ModelTotals>): Record<string, Omit<ModelTotals, 'cost'>> {
  const out: Record<string, Omit<ModelTotals, 'cost'>> = {};
  for (const [model, t] of Object.entries(totals)) {
    out[model] = { input: t.input, output: t.output, cacheCreation: t.cacheCreation, cacheRead: t.cacheRead };
    if (t.reasoning !== undefined) out[model].reasoning = t.reasoning;
  }
  return out;
}

function expectSame(actual: Record<string, ModelTotals>, want: Record<string, ModelTotals>): void {
  expect(tokensOf(actual)).toEqual(tokensOf(want));
  for (const [model, t] of Object.entries(want)) expect(actual[model]?.cost, `cost of ${model}`).toBeCloseTo(t.cost, 9);
}

describe('ccusage oracle on the real-CLI transcript fixtures', () => {
  for (const [name, fx] of Object.entries(expected.fixtures)) {
    if (fx.source === 'gemini' || fx.ccusage === 'none') continue;
    const source = fx.source;

    if (fx.ccusage === 'equal') {
      it(`${name}: ccusage's per-model totals equal the fake server's`, { timeout: 60_000 }, async () => {
        expectSame(await ccusageTotals(source, join(fixtures, name)), fx.models);
      });
    } else {
      it(`${name}: ccusage overcounts as documented (repeated token_count events, fork replay)`, { timeout: 60_000 }, async () => {
        const got = await ccusageTotals(source, join(fixtures, name));
        expectSame(got, fx.ccusageObserved ?? {});
        expect(tokensOf(got)).not.toEqual(tokensOf(fx.models));
      });
    }
  }
});
