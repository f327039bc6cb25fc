import { z } from 'zod';
import type { Operation } from './operations/table.js';
import { errorOut } from './operations/views.js';

/**
 * The OpenAPI 3.1 document of `/v1`, generated from the operation table: every parameter, body
 * and response schema is zod 4's `z.toJSONSchema` of the schema that validates or shapes it, so
 * the document is never written by hand and cannot disagree with what the routes do.
 */

type Json = Record<string, unknown>;

/** A zod schema as a 2020-12 JSON Schema without its `$schema` line (the document names the dialect once). */
function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): Json {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io, target: 'draft-2020-12' }) as Json;
  return rest;
}

/** The error statuses every operation may answer: the status, its response's name, and what it means here. */
const ERRORS: readonly [status: string, name: string, description: string][] = [
  ['400', 'BadRequest', 'usage: the input is malformed (an unknown field, a bad value); the message says which'],
  ['401', 'Unauthorized', 'no bearer token, or one that is not valid here'],
  ['403', 'Forbidden', 'permission_denied: the token may not do this (another agent, another project, an observer writing)'],
  ['404', 'NotFound', 'not_found: no such task, message, approval or agent in this project'],
  ['409', 'Conflict', 'conflict: nothing to claim, a stale fence, a duplicate'],
  ['413', 'TooLarge', 'the request body is over the limit'],
  ['422', 'Failed', 'failed: the operation was attempted and did not succeed'],
  ['429', 'TooManyRequests', 'too many requests for this token; retry after the Retry-After header'],
  ['500', 'Internal', 'internal: an unexpected error'],
  ['503', 'Unavailable', 'unavailable: a backend (database, Redis) cannot be reached, or the daemon is stopping'],
];

/** Each error response once, in components; operations refer to them. */
const errorComponents = (): Json =>
  Object.fromEntries(
    ERRORS.map(([status, name, description]) => [
      name,
      {
        description,
        content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
        ...(status === '429' || status === '503' ? { headers: { 'Retry-After': { description: 'seconds to wait', schema: { type: 'integer', minimum: 0 } } } } : {}),
      },
    ]),
  );

const errorResponses = (): Json => Object.fromEntries(ERRORS.map(([status, name]) => [status, { $ref: `#/components/responses/${name}` }]));

/** Path and query parameters, each with its own schema, description and whether it is required. */
function parameters(op: Operation): Json[] {
  const out: Json[] = [];
  for (const [where, schema] of [
    ['path', op.params],
    ['query', op.query],
  ] as const) {
    if (!schema) continue;
    const object = jsonSchema(schema, 'input');
    const properties = (object.properties ?? {}) as Record<string, Json>;
    const required = new Set((object.required ?? []) as string[]);
    for (const [name, property] of Object.entries(properties)) {
      const { description, ...rest } = property;
      out.push({
        name,
        in: where,
        required: where === 'path' || required.has(name),
        ...(typeof description === 'string' ? { description } : {}),
        schema: rest,
        // A list in the query string is the name repeated: ?status=queued&status=claimed.
        ...(rest.type === 'array' ? { style: 'form', explode: true } : {}),
      });
    }
  }
  return out;
}

function operationObject(op: Operation): Json {
  const params = parameters(op);
  let requestBody: Json | undefined;
  if (op.body) {
    // Fields the schema does not name are refused (rest.ts), which the document says.
    const schema: Json = { ...jsonSchema(op.body, 'input'), additionalProperties: false };
    requestBody = { required: Array.isArray(schema.required) && schema.required.length > 0, content: { 'application/json': { schema } } };
  }
  return {
    operationId: op.id,
    summary: op.summary,
    tags: [op.tag],
    ...(params.length ? { parameters: params } : {}),
    ...(requestBody ? { requestBody } : {}),
    responses: {
      [op.created ? '201' : '200']: { description: op.created ? 'created' : 'done', content: { 'application/json': { schema: jsonSchema(op.output, 'output') } } },
      ...errorResponses(),
    },
    'x-sos-mutates': op.mutates,
    ...(op.tool ? { 'x-sos-mcp-tool': op.tool } : {}),
  };
}

/** The whole document: one path item per path, one operation per method. */
export function openApiDocument(operations: readonly Operation[]): Json {
  const paths: Record<string, Json> = {};
  for (const op of operations) (paths[op.path] ??= {})[op.method.toLowerCase()] = operationObject(op);
  return {
    openapi: '3.1.0',
    info: {
      title: 'sos REST API',
      version: 'v1',
      description:
        'The sos bus, tasks, memory, agents, usage and approvals over HTTP, served by `sos daemon`. Every route runs the same core function as the CLI and the MCP tools; errors are the CLI\'s JSON error object, with the HTTP status that matches its exit code.',
    },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    security: [{ bearer: [] }],
    tags: [...new Set(operations.map((op) => op.tag))].map((name) => ({ name })),
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'an sos token (`sos tokens create`); it decides the project, agent and role' } },
      schemas: { Error: jsonSchema(errorOut, 'output') },
      responses: errorComponents(),
    },
  };
}
