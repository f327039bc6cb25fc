import { z } from 'zod';
import { NotFound, UsageError } from '../errors.js';
import { quote } from '../safe-text.js';
import { type Operation, type OperationInput, OPERATIONS } from './operations/table.js';
import { errorBody, errorReply } from './status.js';
import type { HttpHandler, HttpReply, HttpRequest } from './types.js';

/**
 * `/v1`: the REST API, routed and validated from the operation table (operations/table.ts). The
 * server has authenticated the caller, bounded and parsed the body before this runs; here the
 * path picks the operation (404 for no path, 405 with `Allow` for a known path and another
 * method), its path, query and body inputs are checked against its zod schemas with unknown
 * names refused, and its `run` calls the same core function as the CLI and the MCP tools.
 * Errors are the CLI's JSON error object with the status of its code (status.ts).
 */

type Segment = { literal: string } | { param: string };

interface Route {
  op: Operation;
  segments: Segment[];
  /** How many segments are literal: `/v1/tasks/board` owns its path over `/v1/tasks/{id}`. */
  literals: number;
}

function compile(op: Operation): Route {
  const segments = op.path
    .split('/')
    .slice(1)
    .map((s): Segment => {
      const param = /^\{(\w+)\}$/.exec(s);
      return param ? { param: param[1]! } : { literal: s };
    });
  return { op, segments, literals: segments.filter((s) => 'literal' in s).length };
}

const ROUTES: readonly Route[] = OPERATIONS.map(compile);

/** A request for a known path with a method it does not serve. */
class MethodNotAllowed extends Error {
  constructor(
    readonly method: string,
    readonly allow: string[],
  ) {
    super(`${method} is not allowed here; use ${allow.join(' or ')}`);
  }
}

function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new UsageError(`the path segment ${quote(segment)} is not valid percent-encoding`);
  }
}

/** The path parameters when `route` matches `parts`, else null. */
function matchRoute(route: Route, parts: string[]): Record<string, string> | null {
  if (route.segments.length !== parts.length) return null;
  const params: Record<string, string> = {};
  for (const [i, segment] of route.segments.entries()) {
    const part = parts[i]!;
    if ('literal' in segment) {
      if (segment.literal !== part) return null;
    } else {
      if (part === '') return null;
      params[segment.param] = decode(part);
    }
  }
  return params;
}

/**
 * The operation for a method and path. Of the patterns that match the path, only the most literal
 * own it, so `GET /v1/tasks/claim` is a 405 (claim is POST), not a read of a task named "claim".
 */
export function resolveRoute(method: string, path: string): { op: Operation; params: Record<string, string> } {
  const parts = path.split('/').slice(1);
  const matches = ROUTES.flatMap((route) => {
    const params = matchRoute(route, parts);
    return params ? [{ route, params }] : [];
  });
  if (matches.length === 0) throw new NotFound(`no route ${quote(path)} in /v1`, { hint: 'GET /v1/openapi.json lists every route' });
  const most = Math.max(...matches.map((m) => m.route.literals));
  const owners = matches.filter((m) => m.route.literals === most);
  // HEAD is GET without the body (the server leaves it out), so every GET route answers it.
  const wanted = method === 'HEAD' ? 'GET' : method;
  const found = owners.find((m) => m.route.op.method === wanted);
  if (!found) throw new MethodNotAllowed(method, [...new Set(owners.map((m) => m.route.op.method))].sort());
  return { op: found.route.op, params: found.params };
}

/** Most unknown names or schema issues one refusal lists (as the MCP server does). */
const MAX_LISTED = 5;

const listed = (items: string[]) =>
  items.length > MAX_LISTED ? `${items.slice(0, MAX_LISTED).join(', ')} and ${items.length - MAX_LISTED} more` : items.join(', ');

/**
 * Checks one part of the input against its schema: a name the schema does not know is refused (a
 * zod object would drop it silently, so a misspelt `lease_secnds` would claim with the default
 * lease), then the schema validates the rest. The same rule as `parseArguments` for MCP tools.
 */
function checked(op: Operation, where: 'path' | 'query' | 'body', schema: z.ZodObject | undefined, value: Record<string, unknown>): Record<string, unknown> {
  const shape = schema?.shape ?? {};
  const unknown = Object.keys(value).filter((key) => !Object.hasOwn(shape, key));
  if (unknown.length > 0) {
    const valid = Object.keys(shape);
    const noun = where === 'body' ? 'field' : where === 'query' ? 'query parameter' : 'path parameter';
    throw new UsageError(
      `unknown ${noun}${unknown.length > 1 ? 's' : ''} ${listed(unknown.map((k) => quote(k)))} for ${op.id}; ${valid.length ? `valid: ${valid.join(', ')}` : `it takes no ${noun}s`}`,
    );
  }
  if (!schema) return {};
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    // zod's messages name the expected type, not the value received, so they quote no input.
    const issues = parsed.error.issues.map((i) => (i.path.length ? `${i.path.map(String).join('.')}: ${i.message}` : i.message));
    throw new UsageError(`invalid ${where === 'path' ? 'path' : where} for ${op.id}: ${listed(issues)}`);
  }
  return parsed.data as Record<string, unknown>;
}

type Kind = 'array' | 'number' | 'boolean' | 'string';

const kinds = new WeakMap<z.ZodObject, Record<string, Kind>>();

/** What each query parameter holds, read from its JSON Schema once per schema. */
function kindsOf(schema: z.ZodObject): Record<string, Kind> {
  let known = kinds.get(schema);
  if (!known) {
    const properties = (z.toJSONSchema(schema, { io: 'input' }) as { properties?: Record<string, { type?: unknown }> }).properties ?? {};
    known = Object.fromEntries(
      Object.entries(properties).map(([name, p]): [string, Kind] => [
        name,
        p.type === 'array' ? 'array' : p.type === 'number' || p.type === 'integer' ? 'number' : p.type === 'boolean' ? 'boolean' : 'string',
      ]),
    );
    kinds.set(schema, known);
  }
  return known;
}

/**
 * A query value as the type its schema wants: numbers and `true`/`false` are read, a list is the
 * name repeated. Anything else is left a string for the schema to refuse in its own words.
 */
function typed(kind: Kind, value: string): unknown {
  if (kind === 'number' && value.trim() !== '' && Number.isFinite(Number(value))) return Number(value);
  if (kind === 'boolean' && (value === 'true' || value === 'false')) return value === 'true';
  return value;
}

function queryArgs(op: Operation, query: URLSearchParams): Record<string, unknown> {
  const known = op.query ? kindsOf(op.query) : {};
  const raw: Record<string, unknown> = {};
  for (const name of new Set(query.keys())) {
    const values = query.getAll(name);
    const kind = known[name] ?? 'string';
    if (kind === 'array') raw[name] = values;
    else if (values.length > 1) throw new UsageError(`give the query parameter ${quote(name)} once`);
    else raw[name] = typed(kind, values[0]!);
  }
  return checked(op, 'query', op.query, raw);
}

function bodyArgs(op: Operation, body: unknown): Record<string, unknown> {
  if (body === undefined) return checked(op, 'body', op.body, {});
  if (!op.body) throw new UsageError(`${op.method} ${op.path} takes no body`);
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new UsageError(`the body of ${op.id} must be a JSON object`);
  return checked(op, 'body', op.body, body as Record<string, unknown>);
}

/** What an audit row names: the path's id, else what the operation made or read (a task, a message, an inbox's agent). */
function targetOf(input: OperationInput | undefined, result: unknown): string | undefined {
  const inPath = Object.values(input?.params ?? {}).find((v) => typeof v === 'string');
  if (inPath !== undefined) return inPath as string;
  if (result !== null && typeof result === 'object' && !Array.isArray(result)) {
    const r = result as { id?: unknown; agent?: unknown };
    if (typeof r.id === 'string') return r.id;
    if (typeof r.agent === 'string') return r.agent;
  }
  return undefined;
}

const opt = (target: string | undefined) => (target === undefined ? {} : { target });

/**
 * The `/v1` route module the server mounts. A mutating operation's reply carries `audit` even
 * when it is refused, so the audit table also records what was tried.
 */
export const restHandler: HttpHandler = async (deps, request: HttpRequest): Promise<HttpReply> => {
  let op: Operation | undefined;
  let input: OperationInput | undefined;
  const audit = (result?: unknown) => (op?.mutates ? { audit: { action: op.id, ...opt(targetOf(input, result)) } } : {});
  try {
    const found = resolveRoute(request.method, request.path);
    op = found.op;
    input = {
      params: checked(op, 'path', op.params, found.params),
      query: queryArgs(op, request.query),
      body: bodyArgs(op, request.body),
    };
    const result = await op.run({ ...deps, signal: request.signal }, request.caller, input);
    return { status: op.created ? 201 : 200, body: result, ...audit(result) };
  } catch (err) {
    if (err instanceof MethodNotAllowed) {
      return { status: 405, headers: { Allow: err.allow.join(', ') }, body: errorBody(new UsageError(err.message, { hint: 'GET /v1/openapi.json lists every route' })) };
    }
    return { ...errorReply(err), ...audit() };
  }
};
