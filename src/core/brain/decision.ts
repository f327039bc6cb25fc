import { z } from 'zod';
import { CAPABILITY_PATTERN, NAME_PATTERN } from '../names.js';

/**
 * The brain's decision (issue 14): the one next action a model proposes to the coordinator loop.
 *
 * - action: what the coordinator does next, in a short sentence, for the log and the operator.
 * - goal_id: the goal the action advances, or null when it serves none (housekeeping).
 * - agent: the agent the action targets (a task's assignee, a message's recipient), or null.
 * - method: the motor method that carries it out (`create_task`, `send_message`, …), as a
 *   snake_case name. The schema bounds its shape only: which methods exist is the motor's
 *   allow-list (`MOTOR_METHODS` in motor.ts), so an invented method reaches the motor and is
 *   refused and counted there (`rejected_unsupported`), not hidden as a parse error here.
 * - details: the method's arguments. The keys the motor's methods take are typed (title, text,
 *   to, squad, requires, labels, priority, plus task_id); any other key holds a bounded JSON value
 *   (a scalar, a list of scalars, or a flat object of scalars). This is an envelope: the motor
 *   checks each method's arguments itself (`rejected_schema`). A null value means "not given" and
 *   is dropped by `parseDecision`, because strict structured-output modes make every known key
 *   present.
 * - expected_progress: what should be observably different after the action.
 * - risk: the model's own estimate, which the motor's guard may weigh.
 *
 * Two copies of the schema are kept on purpose: the zod schema that validates, and the hand-written
 * JSON Schema that the providers are given (a tool's `input_schema`, a `response_format`).
 * test/unit/brain-decision.test.ts checks they accept and refuse the same samples.
 */

export const RISKS = ['low', 'medium', 'high'] as const;
export type Risk = (typeof RISKS)[number];
export const PRIORITY_WORDS = ['critical', 'high', 'normal', 'low'] as const;

/** Bounds, shared by the zod schema and the JSON Schema so they cannot drift apart. */
export const DECISION_LIMITS = {
  action: 200,
  method: 40,
  id: 100,
  expectedProgress: 500,
  title: 200,
  text: 8000,
  address: 100,
  listItems: 16,
  detailKeys: 24,
  detailString: 1000,
  nestedKeys: 16,
} as const;

const METHOD_SOURCE = '^[a-z][a-z0-9_]{0,39}$';
const KEY_SOURCE = '^[a-z][a-z0-9_]{0,39}$';
const CAPABILITY_SOURCE = CAPABILITY_PATTERN.source;
const NAME_SOURCE = NAME_PATTERN.source;

// ---------------------------------------------------------------------------------------------
// zod

const METHOD_RE = new RegExp(METHOD_SOURCE);
const KEY_RE = new RegExp(KEY_SOURCE);

const L = DECISION_LIMITS;
const scalar = z.union([z.string().max(L.detailString), z.number(), z.boolean(), z.null()]);
const flatObject = z
  .record(z.string().regex(KEY_RE, 'a key must be snake_case, 1-40 characters'), scalar)
  .refine((o) => Object.keys(o).length <= L.nestedKeys, `at most ${L.nestedKeys} keys`);
const detailValue = z.union([scalar, z.array(scalar).max(L.listItems), flatObject]);
const nullable = <T extends z.ZodType>(schema: T) => schema.nullable().optional();

const detailsZod = z
  .object({
    title: nullable(z.string().min(1).max(L.title)),
    text: nullable(z.string().max(L.text)),
    to: nullable(z.string().min(1).max(L.address)),
    squad: nullable(z.string().regex(NAME_PATTERN, 'not a squad name')),
    task_id: nullable(z.string().min(1).max(L.id)),
    requires: nullable(z.array(z.string().regex(CAPABILITY_PATTERN, 'not a capability')).max(L.listItems)),
    labels: nullable(z.array(z.string().regex(CAPABILITY_PATTERN, 'not a label')).max(L.listItems)),
    priority: nullable(z.enum(PRIORITY_WORDS)),
  })
  .catchall(detailValue)
  .superRefine((details, ctx) => {
    const keys = Object.keys(details);
    if (keys.length > L.detailKeys) ctx.addIssue({ code: 'custom', message: `at most ${L.detailKeys} keys` });
    for (const key of keys) {
      if (!KEY_RE.test(key)) ctx.addIssue({ code: 'custom', path: [key], message: 'a key must be snake_case, 1-40 characters' });
    }
  });

export const DecisionSchema = z.strictObject({
  action: z.string().min(1).max(L.action),
  goal_id: z.string().min(1).max(L.id).nullable(),
  agent: z.string().regex(NAME_PATTERN, 'not an agent name').nullable(),
  method: z.string().regex(METHOD_RE, 'must be a motor method name: snake_case, 1-40 characters'),
  details: detailsZod,
  expected_progress: z.string().min(1).max(L.expectedProgress),
  risk: z.enum(RISKS),
});

export type Scalar = string | number | boolean | null;
export type DetailValue = Scalar | Scalar[] | { [key: string]: Scalar };

export interface DecisionDetails {
  title?: string;
  text?: string;
  to?: string;
  squad?: string;
  task_id?: string;
  requires?: string[];
  labels?: string[];
  priority?: (typeof PRIORITY_WORDS)[number];
  [key: string]: DetailValue | undefined;
}

export interface Decision {
  action: string;
  goal_id: string | null;
  agent: string | null;
  method: string;
  details: DecisionDetails;
  expected_progress: string;
  risk: Risk;
}

// ---------------------------------------------------------------------------------------------
// JSON Schema (draft 2020-12 subset that Anthropic tools, OpenAI structured outputs and Ollama take)

export type JsonSchema = { [key: string]: unknown };

const SCALAR_SCHEMA = { type: ['string', 'number', 'boolean', 'null'], maxLength: L.detailString } as const;

export const DECISION_JSON_SCHEMA: JsonSchema = {
  type: 'object',
  description: 'The one next action the coordinator takes.',
  properties: {
    action: { type: 'string', minLength: 1, maxLength: L.action, description: `What you do next, in a short sentence (at most ${L.action} characters).` },
    goal_id: { type: ['string', 'null'], minLength: 1, maxLength: L.id, description: 'The goal this action advances, or null.' },
    agent: { type: ['string', 'null'], pattern: NAME_SOURCE, description: 'The agent the action targets (assignee or recipient), or null.' },
    method: { type: 'string', pattern: METHOD_SOURCE, description: 'The method that carries the action out: one of the methods you were given, e.g. create_task.' },
    details: {
      type: 'object',
      description: "The method's arguments; null or absent for what does not apply.",
      properties: {
        title: { type: ['string', 'null'], minLength: 1, maxLength: L.title, description: `At most ${L.title} characters.` },
        text: { type: ['string', 'null'], maxLength: L.text, description: `A task's or message's text, at most ${L.text} characters.` },
        to: { type: ['string', 'null'], minLength: 1, maxLength: L.address, description: "A message's recipient agent (default: agent)." },
        squad: { type: ['string', 'null'], pattern: NAME_SOURCE },
        task_id: { type: ['string', 'null'], minLength: 1, maxLength: L.id },
        requires: { type: ['array', 'null'], maxItems: L.listItems, items: { type: 'string', pattern: CAPABILITY_SOURCE }, description: 'Required capabilities.' },
        labels: { type: ['array', 'null'], maxItems: L.listItems, items: { type: 'string', pattern: CAPABILITY_SOURCE } },
        priority: { type: ['string', 'null'], enum: [...PRIORITY_WORDS, null] },
      },
      propertyNames: { pattern: KEY_SOURCE },
      maxProperties: L.detailKeys,
      additionalProperties: {
        anyOf: [
          SCALAR_SCHEMA,
          { type: 'array', maxItems: L.listItems, items: SCALAR_SCHEMA },
          { type: 'object', propertyNames: { pattern: KEY_SOURCE }, maxProperties: L.nestedKeys, additionalProperties: SCALAR_SCHEMA },
        ],
      },
    },
    expected_progress: { type: 'string', minLength: 1, maxLength: L.expectedProgress, description: `What should be observably different afterwards (at most ${L.expectedProgress} characters).` },
    risk: { type: 'string', enum: [...RISKS] },
  },
  required: ['action', 'goal_id', 'agent', 'method', 'details', 'expected_progress', 'risk'],
  additionalProperties: false,
};

/** Keywords OpenAI's strict mode refuses ("… is not permitted"); the zod check still applies them. */
const STRICT_UNSUPPORTED = new Set(['minLength', 'maxLength', 'minProperties', 'maxProperties', 'propertyNames']);

function nullableSchema(schema: JsonSchema): JsonSchema {
  const type = schema['type'];
  if (typeof type === 'string') return type === 'null' ? schema : { ...schema, type: [type, 'null'] };
  if (Array.isArray(type)) return type.includes('null') ? schema : { ...schema, type: [...type, 'null'] };
  const anyOf = schema['anyOf'];
  if (Array.isArray(anyOf)) {
    const hasNull = anyOf.some((s) => typeof s === 'object' && s !== null && (s as JsonSchema)['type'] === 'null');
    return hasNull ? schema : { ...schema, anyOf: [...anyOf, { type: 'null' }] };
  }
  return { anyOf: [schema, { type: 'null' }] };
}

/**
 * The schema as OpenAI's strict structured outputs take it: every object closed
 * (`additionalProperties: false`), every property required (optional ones made nullable), and the
 * keywords strict mode refuses removed. What it admits is a subset of `DECISION_JSON_SCHEMA`
 * (extra detail keys are lost, length bounds are checked afterwards by `parseDecision`).
 */
export function toStrictJsonSchema(schema: JsonSchema): JsonSchema {
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(schema)) {
    if (STRICT_UNSUPPORTED.has(key)) continue;
    if (key === 'properties' && value && typeof value === 'object') {
      out[key] = Object.fromEntries(Object.entries(value as JsonSchema).map(([k, v]) => [k, toStrictJsonSchema(v as JsonSchema)]));
    } else if ((key === 'items' || key === 'additionalProperties') && value && typeof value === 'object') {
      out[key] = toStrictJsonSchema(value as JsonSchema);
    } else if (key === 'anyOf' && Array.isArray(value)) {
      out[key] = value.map((v) => toStrictJsonSchema(v as JsonSchema));
    } else {
      out[key] = value;
    }
  }
  const type = out['type'];
  const isObject = type === 'object' || (Array.isArray(type) && type.includes('object'));
  if (isObject) {
    const properties = (out['properties'] ?? {}) as JsonSchema;
    const required = new Set(Array.isArray(out['required']) ? (out['required'] as string[]) : []);
    const closed: JsonSchema = {};
    for (const [k, v] of Object.entries(properties)) closed[k] = required.has(k) ? v : nullableSchema(v as JsonSchema);
    out['properties'] = closed;
    out['required'] = Object.keys(closed);
    out['additionalProperties'] = false;
  }
  return out;
}

export const DECISION_STRICT_JSON_SCHEMA: JsonSchema = toStrictJsonSchema(DECISION_JSON_SCHEMA);

// ---------------------------------------------------------------------------------------------
// parsing

export type ParsedDecision = { ok: true; decision: Decision } | { ok: false; error: string };
export type ExtractedObject = { ok: true; value: Record<string, unknown> } | { ok: false; error: string };

const MAX_ERROR = 400;
const MAX_ISSUES = 4;
const FENCE = /^```[a-zA-Z]*[ \t]*\r?\n([\s\S]*?)\r?\n?[ \t]*```$/;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function preview(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return JSON.stringify(line.length > 60 ? `${line.slice(0, 60)}…` : line);
}

/** Index of the brace closing the object that opens at 0, skipping strings; -1 when it never closes. */
function objectEnd(text: string): number {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') {
      depth--;
      if (depth === 0) return i;
    }
  }
  return -1;
}

/**
 * A model's text answer as exactly one JSON object: the whole text (trimmed), or the whole of one
 * ```json fence. Prose before or after it is refused, not skipped: a model that talks around its
 * answer is asked again, so what the motor runs is never a guess at which braces were meant.
 */
export function extractJsonObject(text: string): ExtractedObject {
  let body = text.trim();
  if (body === '') return { ok: false, error: 'the answer is empty; answer with one JSON object' };
  const fenced = FENCE.exec(body);
  if (fenced) body = fenced[1]!.trim();
  else if (body.includes('```')) {
    return { ok: false, error: 'the answer has text outside its code fence; answer with only the JSON object' };
  }
  const first = body.indexOf('{');
  if (first === -1) return { ok: false, error: `the answer holds no JSON object: ${preview(body)}` };
  if (first > 0) return { ok: false, error: 'the answer has text around the JSON object; answer with only the JSON object' };
  const end = objectEnd(body);
  if (end === -1) return { ok: false, error: 'the JSON object is incomplete (cut off?); answer with one complete JSON object' };
  if (end < body.length - 1) {
    const rest = body.slice(end + 1).trimStart();
    return rest.startsWith('{')
      ? { ok: false, error: 'the answer is not one valid JSON object: it holds more than one; answer with exactly one' }
      : { ok: false, error: 'the answer has text around the JSON object; answer with only the JSON object' };
  }
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    return { ok: false, error: `the answer is not one valid JSON object (${why.slice(0, 120)})` };
  }
  if (!isPlainObject(value)) return { ok: false, error: 'the answer is not one valid JSON object' };
  return { ok: true, value };
}

function where(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : out === '' ? String(part) : `.${String(part)}`;
  return out === '' ? 'the decision' : out;
}

/** True when the issue's path names a key its parent object does not have. */
function isMissing(root: unknown, path: readonly PropertyKey[]): boolean {
  if (path.length === 0) return false;
  let parent: unknown = root;
  for (const part of path.slice(0, -1)) {
    if (!parent || typeof parent !== 'object') return false;
    parent = (parent as Record<PropertyKey, unknown>)[part];
  }
  return isPlainObject(parent) && !Object.prototype.hasOwnProperty.call(parent, path[path.length - 1]!);
}

function describe(issue: z.core.$ZodIssue, root: unknown): string {
  const at = where(issue.path);
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((k) => JSON.stringify(k)).join(', ');
    return `${at === 'the decision' ? 'unexpected key' : `${at}: unexpected key`}${issue.keys.length > 1 ? 's' : ''} ${keys}`;
  }
  if (issue.code !== 'custom' && isMissing(root, issue.path)) return `${at}: missing`;
  if (issue.code === 'too_big' && issue.origin === 'string') return `${at}: longer than ${String(issue.maximum)} characters`;
  if (issue.code === 'too_small' && issue.origin === 'string') return `${at}: empty`;
  if (issue.code === 'too_big' && issue.origin === 'array') return `${at}: more than ${String(issue.maximum)} items`;
  if (issue.code === 'invalid_value') return `${at}: must be one of ${issue.values.map((v) => String(v)).join(', ')}`;
  if (issue.code === 'invalid_union') {
    if (issue.path[0] === 'details') return `${at}: must be a string, number, boolean or null, a list of those, or a flat object of those`;
    return `${at}: not an allowed value`;
  }
  return `${at}: ${issue.message.replace(/^Invalid input: /, '')}`;
}

function withoutNulls(details: Record<string, unknown>): DecisionDetails {
  const out: DecisionDetails = {};
  for (const [key, value] of Object.entries(details)) if (value !== null && value !== undefined) out[key] = value as DetailValue;
  return out;
}

/**
 * Validates what a provider returned: the structured object, or a text answer that must be exactly
 * one JSON object. The error is one short line meant for the retry prompt (`retryError`).
 */
export function parseDecision(raw: unknown): ParsedDecision {
  let candidate: unknown = raw;
  if (typeof raw === 'string') {
    const extracted = extractJsonObject(raw);
    if (!extracted.ok) return { ok: false, error: extracted.error };
    candidate = extracted.value;
  }
  if (!isPlainObject(candidate)) {
    const kind = candidate === null ? 'null' : Array.isArray(candidate) ? 'an array' : typeof candidate;
    return { ok: false, error: `the decision must be a JSON object, not ${kind}` };
  }
  const result = DecisionSchema.safeParse(candidate);
  if (!result.success) {
    const issues = result.error.issues;
    const shown = issues.slice(0, MAX_ISSUES).map((issue) => describe(issue, candidate));
    if (issues.length > MAX_ISSUES) shown.push(`and ${issues.length - MAX_ISSUES} more`);
    let error = `invalid decision: ${shown.join('; ')}`;
    if (error.length > MAX_ERROR) error = `${error.slice(0, MAX_ERROR - 1)}…`;
    return { ok: false, error };
  }
  const d = result.data;
  return {
    ok: true,
    decision: {
      action: d.action,
      goal_id: d.goal_id,
      agent: d.agent,
      method: d.method,
      details: withoutNulls(d.details),
      expected_progress: d.expected_progress,
      risk: d.risk,
    },
  };
}
