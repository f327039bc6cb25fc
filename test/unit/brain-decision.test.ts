import { describe, expect, it } from 'vitest';
import {
  DECISION_JSON_SCHEMA,
  DECISION_LIMITS,
  DECISION_STRICT_JSON_SCHEMA,
  DecisionSchema,
  extractJsonObject,
  parseDecision,
  type JsonSchema,
} from '../../src/core/brain/index.js';

/**
 * The decision is validated by zod and described to the providers by a hand-written JSON Schema;
 * these tests hold the two to the same verdict on every sample. The JSON Schema side is judged by
 * a small validator written here for exactly the keywords the schema uses (and the test refuses a
 * schema using any other keyword, so a keyword the validator would silently ignore cannot slip in).
 */

const KNOWN_KEYWORDS = new Set([
  'type', 'description', 'enum', 'anyOf', 'properties', 'required', 'additionalProperties', 'propertyNames',
  'maxProperties', 'minLength', 'maxLength', 'pattern', 'items', 'maxItems', 'minimum', 'maximum',
]);

function keywordsOf(schema: unknown, out = new Set<string>()): Set<string> {
  if (!schema || typeof schema !== 'object' || Array.isArray(schema)) return out;
  for (const [key, value] of Object.entries(schema)) {
    out.add(key);
    if (key === 'properties') for (const sub of Object.values(value as JsonSchema)) keywordsOf(sub, out);
    else if (key === 'anyOf') for (const sub of value as unknown[]) keywordsOf(sub, out);
    else if (key === 'items' || key === 'additionalProperties' || key === 'propertyNames') keywordsOf(value, out);
  }
  return out;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function hasType(value: unknown, type: string): boolean {
  switch (type) {
    case 'null': return value === null;
    case 'boolean': return typeof value === 'boolean';
    case 'string': return typeof value === 'string';
    case 'number': return typeof value === 'number' && Number.isFinite(value);
    case 'integer': return typeof value === 'number' && Number.isInteger(value);
    case 'array': return Array.isArray(value);
    case 'object': return isObject(value);
    default: throw new Error(`unknown type ${type}`);
  }
}

/** JSON Schema (2020-12) semantics for the keywords above; lengths in code points, as the spec says. */
function validates(schema: JsonSchema, value: unknown): boolean {
  const s = schema;
  if (s['type'] !== undefined) {
    const types = Array.isArray(s['type']) ? (s['type'] as string[]) : [s['type'] as string];
    if (!types.some((t) => hasType(value, t))) return false;
  }
  if (Array.isArray(s['enum']) && !s['enum'].some((e) => e === value)) return false;
  if (Array.isArray(s['anyOf']) && !s['anyOf'].some((sub) => validates(sub as JsonSchema, value))) return false;
  if (typeof value === 'string') {
    const length = [...value].length;
    if (typeof s['minLength'] === 'number' && length < s['minLength']) return false;
    if (typeof s['maxLength'] === 'number' && length > s['maxLength']) return false;
    if (typeof s['pattern'] === 'string' && !new RegExp(s['pattern'], 'u').test(value)) return false;
  }
  if (typeof value === 'number') {
    if (typeof s['minimum'] === 'number' && value < s['minimum']) return false;
    if (typeof s['maximum'] === 'number' && value > s['maximum']) return false;
  }
  if (Array.isArray(value)) {
    if (typeof s['maxItems'] === 'number' && value.length > s['maxItems']) return false;
    if (s['items'] !== undefined && !value.every((item) => validates(s['items'] as JsonSchema, item))) return false;
  }
  if (isObject(value)) {
    const properties = (s['properties'] ?? {}) as Record<string, JsonSchema>;
    const keys = Object.keys(value);
    if (typeof s['maxProperties'] === 'number' && keys.length > s['maxProperties']) return false;
    if (Array.isArray(s['required']) && !s['required'].every((k) => (k as string) in value)) return false;
    if (s['propertyNames'] !== undefined && !keys.every((k) => validates(s['propertyNames'] as JsonSchema, k))) return false;
    for (const key of keys) {
      const sub = properties[key];
      if (sub !== undefined) {
        if (!validates(sub, value[key])) return false;
      } else if (s['additionalProperties'] === false) {
        return false;
      } else if (isObject(s['additionalProperties']) && !validates(s['additionalProperties'], value[key])) {
        return false;
      }
    }
  }
  return true;
}

const base = {
  action: 'Create a task for the failing deploy and give it to the code squad.',
  goal_id: 'goal_01',
  agent: 'kasra',
  method: 'create_task',
  details: {},
  expected_progress: 'A queued task for the deploy fix.',
  risk: 'low',
};

const with_ = (patch: Record<string, unknown>) => ({ ...base, ...patch });
const details = (d: Record<string, unknown>) => ({ ...base, details: d });
const without = (key: string) => Object.fromEntries(Object.entries(base).filter(([k]) => k !== key));
const keys = (n: number, value: unknown = 1) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, value]));
const L = DECISION_LIMITS;

const VALID: [string, unknown][] = [
  ['the minimal decision', base],
  ['null goal and agent', with_({ goal_id: null, agent: null })],
  ['every risk', with_({ risk: 'high' })],
  ['medium risk', with_({ risk: 'medium' })],
  [
    'every known detail',
    details({
      title: 'Fix deploy',
      text: 'The deploy fails on step 3.',
      to: 'codex',
      squad: 'code',
      task_id: 'tsk_01',
      requires: ['code', 'model:opus', 'lang.ts'],
      labels: ['deploy', 'p1'],
      priority: 'critical',
    }),
  ],
  ['every priority word', details({ priority: 'low' })],
  ['an invented method (the motor refuses it, not the schema)', with_({ method: 'delete_everything' })],
  ['known details null (strict mode)', details({ title: null, text: null, to: null, squad: null, task_id: null, requires: null, labels: null, priority: null })],
  ['extra scalar details', details({ deadline: '2026-01-01', count: 3.5, urgent: true, note: null })],
  ['extra list detail', details({ files: ['a.ts', 'b.ts', 1, false, null] })],
  ['extra flat object detail', details({ env: { node: '20', ci: true, retries: 2, none: null } })],
  ['empty text', details({ text: '' })],
  ['longest strings', with_({ method: `a${'b'.repeat(L.method - 1)}`, action: 'a'.repeat(L.action), expected_progress: 'e'.repeat(L.expectedProgress), goal_id: 'g'.repeat(L.id) })],
  ['longest detail strings', details({ title: 't'.repeat(L.title), text: 'x'.repeat(L.text), extra: 'y'.repeat(L.detailString) })],
  ['as many detail keys as allowed', details(keys(L.detailKeys))],
  ['as many list items as allowed', details({ requires: Array.from({ length: L.listItems }, (_, i) => `cap${i}`) })],
  ['as many nested keys as allowed', details({ env: keys(L.nestedKeys, 'v') })],
  ['agent name with digits and dashes', with_({ agent: 'codex-2' })],
];

const INVALID: [string, unknown][] = [
  ['a string', 'create_task'],
  ['a JSON string of an empty object', '{}'],
  ['an array', [base]],
  ['null', null],
  ['missing action', without('action')],
  ['missing goal_id', without('goal_id')],
  ['missing agent', without('agent')],
  ['missing method', without('method')],
  ['missing details', without('details')],
  ['missing expected_progress', without('expected_progress')],
  ['missing risk', without('risk')],
  ['an extra top-level key', with_({ reasoning: 'because' })],
  ['method in capitals', with_({ method: 'Create_Task' })],
  ['method with a space', with_({ method: 'create task' })],
  ['method with a dash', with_({ method: 'create-task' })],
  ['method too long', with_({ method: 'a'.repeat(L.method + 1) })],
  ['method empty', with_({ method: '' })],
  ['method a number', with_({ method: 7 })],
  ['action too long', with_({ action: 'a'.repeat(L.action + 1) })],
  ['action empty', with_({ action: '' })],
  ['action a number', with_({ action: 7 })],
  ['unknown risk', with_({ risk: 'extreme' })],
  ['risk null', with_({ risk: null })],
  ['empty expected_progress', with_({ expected_progress: '' })],
  ['empty goal_id', with_({ goal_id: '' })],
  ['goal_id too long', with_({ goal_id: 'g'.repeat(L.id + 1) })],
  ['agent not a name', with_({ agent: 'Bad Name' })],
  ['agent too long', with_({ agent: `a${'b'.repeat(40)}` })],
  ['details an array', with_({ details: [] })],
  ['details null', with_({ details: null })],
  ['details a string', with_({ details: 'x' })],
  ['title too long', details({ title: 't'.repeat(L.title + 1) })],
  ['title empty', details({ title: '' })],
  ['text a number', details({ text: 3 })],
  ['text too long', details({ text: 'x'.repeat(L.text + 1) })],
  ['squad not a name', details({ squad: 'Code Squad' })],
  ['requires a string', details({ requires: 'code' })],
  ['requires a bad capability', details({ requires: ['Code!'] })],
  ['requires too many', details({ requires: Array.from({ length: L.listItems + 1 }, (_, i) => `cap${i}`) })],
  ['labels with an empty label', details({ labels: [''] })],
  ['labels with a space', details({ labels: ['p1 urgent'] })],
  ['priority a number', details({ priority: 70 })],
  ['priority unknown word', details({ priority: 'urgent' })],
  ['a detail key in capitals', details({ Deadline: 'x' })],
  ['a detail key with a dash', details({ 'dead-line': 'x' })],
  ['too many detail keys', details(keys(L.detailKeys + 1))],
  ['an extra detail string too long', details({ note: 'y'.repeat(L.detailString + 1) })],
  ['a list of objects', details({ files: [{ name: 'a' }] })],
  ['a list of lists', details({ files: [['a']] })],
  ['a list too long', details({ files: Array.from({ length: L.listItems + 1 }, () => 1) })],
  ['an object nested twice', details({ env: { inner: { deep: 1 } } })],
  ['a nested object with a list', details({ env: { list: [1] } })],
  ['a nested object too wide', details({ env: keys(L.nestedKeys + 1, 'v') })],
  ['a nested key in capitals', details({ env: { NODE: '20' } })],
  ['a nested string too long', details({ env: { a: 'y'.repeat(L.detailString + 1) } })],
];

describe('decision schema: zod and JSON Schema agree', () => {
  it('the JSON Schema uses only keywords the agreement validator understands', () => {
    const used = keywordsOf(DECISION_JSON_SCHEMA);
    expect([...used].filter((k) => !KNOWN_KEYWORDS.has(k))).toEqual([]);
    expect([...keywordsOf(DECISION_STRICT_JSON_SCHEMA)].filter((k) => !KNOWN_KEYWORDS.has(k))).toEqual([]);
  });

  it.each(VALID)('both accept %s', (_name, sample) => {
    expect(validates(DECISION_JSON_SCHEMA, sample), 'JSON Schema').toBe(true);
    const zod = DecisionSchema.safeParse(sample);
    expect(zod.success, zod.success ? '' : JSON.stringify(zod.error.issues)).toBe(true);
    expect(parseDecision(sample).ok).toBe(true);
  });

  it.each(INVALID)('both refuse %s', (_name, sample) => {
    expect(validates(DECISION_JSON_SCHEMA, sample), 'JSON Schema').toBe(false);
    expect(DecisionSchema.safeParse(sample).success, 'zod').toBe(false);
    const parsed = parseDecision(sample);
    expect(parsed.ok).toBe(false);
  });

  it('is strict at the top level and describes every field the zod schema has', () => {
    expect(DECISION_JSON_SCHEMA['additionalProperties']).toBe(false);
    const properties = Object.keys(DECISION_JSON_SCHEMA['properties'] as JsonSchema).sort();
    expect(properties).toEqual(Object.keys(DecisionSchema.shape).sort());
    expect([...(DECISION_JSON_SCHEMA['required'] as string[])].sort()).toEqual(properties);
  });
});

describe('the strict form (OpenAI structured outputs)', () => {
  function objects(schema: unknown, out: JsonSchema[] = []): JsonSchema[] {
    if (!isObject(schema)) return out;
    const type = schema['type'];
    if (type === 'object' || (Array.isArray(type) && type.includes('object'))) out.push(schema);
    for (const [key, value] of Object.entries(schema)) {
      if (key === 'properties') for (const sub of Object.values(value as JsonSchema)) objects(sub, out);
      else if (key === 'anyOf') for (const sub of value as unknown[]) objects(sub, out);
      else if (key === 'items' || key === 'additionalProperties') objects(value, out);
    }
    return out;
  }

  it('closes every object, requires every property and drops the keywords strict mode refuses', () => {
    const all = objects(DECISION_STRICT_JSON_SCHEMA);
    expect(all.length).toBe(2);
    for (const o of all) {
      expect(o['additionalProperties']).toBe(false);
      expect([...(o['required'] as string[])].sort()).toEqual(Object.keys(o['properties'] as JsonSchema).sort());
    }
    const used = keywordsOf(DECISION_STRICT_JSON_SCHEMA);
    for (const k of ['minLength', 'maxLength', 'maxProperties', 'propertyNames']) expect(used.has(k), k).toBe(false);
    const detailProps = ((DECISION_STRICT_JSON_SCHEMA['properties'] as JsonSchema)['details'] as JsonSchema)['properties'] as JsonSchema;
    expect(Object.keys(detailProps).sort()).toEqual(['labels', 'priority', 'requires', 'squad', 'task_id', 'text', 'title', 'to']);
  });

  it('admits only decisions the canonical schema and zod admit too', () => {
    const strictSamples = [
      details({ title: null, text: null, to: null, squad: null, task_id: null, requires: null, labels: null, priority: null }),
      details({ title: 'Fix', text: 'x', to: 'kasra', squad: 'code', task_id: 't', requires: ['code'], labels: ['a'], priority: 'high' }),
    ];
    for (const sample of strictSamples) {
      expect(validates(DECISION_STRICT_JSON_SCHEMA, sample)).toBe(true);
      expect(validates(DECISION_JSON_SCHEMA, sample)).toBe(true);
      expect(DecisionSchema.safeParse(sample).success).toBe(true);
    }
    // What strict mode cannot carry: extra detail keys, omitted known keys.
    expect(validates(DECISION_STRICT_JSON_SCHEMA, details({ deadline: 'x' }))).toBe(false);
    expect(validates(DECISION_STRICT_JSON_SCHEMA, base)).toBe(false);
    for (const [, sample] of INVALID) {
      if (validates(DECISION_STRICT_JSON_SCHEMA, sample)) {
        // only the length bounds strict mode cannot express may pass it; zod still refuses them
        expect(DecisionSchema.safeParse(sample).success).toBe(false);
      }
    }
  });
});

describe('parseDecision', () => {
  it('returns the decision with null details dropped', () => {
    const parsed = parseDecision(details({ title: 'Fix', text: null, priority: null, extra: null, files: ['a'] }));
    expect(parsed).toEqual({ ok: true, decision: { ...base, details: { title: 'Fix', files: ['a'] } } });
  });

  it('reads a text answer that is exactly one JSON object, fenced or not', () => {
    expect(parseDecision(JSON.stringify(base))).toEqual({ ok: true, decision: base });
    expect(parseDecision(`  \n${JSON.stringify(base, null, 2)}\n`)).toEqual({ ok: true, decision: base });
    expect(parseDecision(`\`\`\`json\n${JSON.stringify(base)}\n\`\`\``)).toEqual({ ok: true, decision: base });
    expect(parseDecision(`\`\`\`\n${JSON.stringify(base)}\n\`\`\``)).toEqual({ ok: true, decision: base });
  });

  it('refuses prose around the object, with a reason for the retry prompt', () => {
    const json = JSON.stringify(base);
    for (const text of [`Here is my decision: ${json}`, `${json}\nI hope this helps.`, `Sure!\n\`\`\`json\n${json}\n\`\`\``, `\`\`\`json\n${json}\n\`\`\`\nDone.`]) {
      const parsed = parseDecision(text);
      expect(parsed.ok, text).toBe(false);
      if (!parsed.ok) expect(parsed.error).toMatch(/text (around|outside)/);
    }
    const two = parseDecision(`${json}\n${json}`);
    expect(two.ok).toBe(false);
    if (!two.ok) expect(two.error).toMatch(/not one valid JSON object/);
  });

  it('says what is wrong, briefly', () => {
    const cases: [unknown, RegExp][] = [
      ['', /empty/],
      ['I will wait.', /holds no JSON object: "I will wait\."/],
      ['{"action": ', /incomplete/], ['{"action": 1 x}', /not one valid JSON object/],
      ['[1, 2]', /holds no JSON object|text around/],
      [42, /must be a JSON object, not number/],
      [null, /not null/],
      [without('risk'), /^invalid decision: risk: missing$/],
      [with_({ risk: 'extreme' }), /risk: must be one of low, medium, high/],
      [with_({ reasoning: 'x' }), /unexpected key "reasoning"/],
      [with_({ action: 'a'.repeat(300) }), /action: longer than 200 characters/],
      [with_({ method: 'Create Task' }), /method: must be a motor method name/],
      [details({ priority: 70 }), /details\.priority: /],
      [details({ title: 't'.repeat(300) }), /details\.title: longer than 200 characters/],
      [details({ requires: ['ok', 'Bad!'] }), /details\.requires\[1\]: not a capability/],
    ];
    for (const [raw, pattern] of cases) {
      const parsed = parseDecision(raw);
      expect(parsed.ok, JSON.stringify(raw)?.slice(0, 80)).toBe(false);
      if (!parsed.ok) expect(parsed.error).toMatch(pattern);
    }
  });

  it('keeps the error short however much is wrong', () => {
    const parsed = parseDecision({ action: 1, goal_id: 2, agent: 3, method: 4, details: 5, expected_progress: 6, risk: 7, x: 8 });
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) {
      expect(parsed.error.length).toBeLessThanOrEqual(400);
      expect(parsed.error).toMatch(/and \d+ more/);
    }
  });

  it('extractJsonObject refuses a top-level array and a bare scalar', () => {
    expect(extractJsonObject('[{"a":1}]').ok).toBe(false);
    expect(extractJsonObject('true').ok).toBe(false);
    expect(extractJsonObject('{"a":1}')).toEqual({ ok: true, value: { a: 1 } });
  });
});
