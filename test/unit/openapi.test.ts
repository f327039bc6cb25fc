import SwaggerParser from '@apidevtools/swagger-parser';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { openApiDocument } from '../../src/core/http/openapi.js';
import { OPERATIONS } from '../../src/core/http/operations/table.js';
import { resolveRoute } from '../../src/core/http/rest.js';
import { TOOLS } from '../../src/core/mcp/tools.js';

/**
 * The `/v1` OpenAPI document: valid OpenAPI 3.1 by a validator from npm, one entry per operation
 * of the table and nothing else, bodies and parameters generated from the same zod schemas the
 * routes validate with (the tools' own, for the operations that are tools).
 */

// The document is walked by path in the assertions; its type is the OpenAPI schema itself.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = Record<string, any>;
const doc = openApiDocument(OPERATIONS) as Json;
const METHODS = ['get', 'post', 'put', 'patch', 'delete'];

/** Every operation of the brief, by method and path. */
const EXPECTED = [
  'POST /v1/messages',
  'POST /v1/messages/broadcast',
  'POST /v1/inbox',
  'POST /v1/messages/{id}/ack',
  'GET /v1/peers',
  'POST /v1/squads/{workspace_id}/join',
  'POST /v1/squads/{workspace_id}/leave',
  'POST /v1/tasks',
  'GET /v1/tasks',
  'GET /v1/tasks/board',
  'GET /v1/tasks/{id}',
  'POST /v1/tasks/claim',
  'POST /v1/tasks/{id}/claim',
  'POST /v1/tasks/{id}/heartbeat',
  'POST /v1/tasks/{id}/complete',
  'POST /v1/tasks/{id}/fail',
  'POST /v1/tasks/{id}/handoff',
  'POST /v1/tasks/{id}/accept',
  'POST /v1/memory',
  'GET /v1/memory/recall',
  'GET /v1/memory/context',
  'GET /v1/agents',
  'GET /v1/usage',
  'POST /v1/usage',
  'GET /v1/budgets',
  'GET /v1/approvals',
  'GET /v1/approvals/{id}',
  'POST /v1/approvals/{id}/approve',
  'POST /v1/approvals/{id}/deny',
  'GET /v1/whoami',
  'GET /v1/openapi.json',
];

describe('the /v1 OpenAPI document', () => {
  it('is valid OpenAPI 3.1 (swagger-parser), and the validator does refuse a broken one', async () => {
    expect(doc.openapi).toBe('3.1.0');
    await expect(SwaggerParser.validate(structuredClone(doc) as never)).resolves.toBeTruthy();
    const broken = structuredClone(doc);
    broken.paths['/v1/tasks'].get.parameters[0].in = 'body';
    await expect(SwaggerParser.validate(broken as never)).rejects.toThrow();
    const dangling = structuredClone(doc);
    dangling.paths['/v1/tasks'].get.responses['404'] = { $ref: '#/components/responses/Nope' };
    await expect(SwaggerParser.validate(dangling as never)).rejects.toThrow();
  });

  it('has schemas that compile as JSON Schema 2020-12 under ajv strict mode (the OpenAPI validator does not look inside them)', () => {
    const ajv = new Ajv2020({ strict: true, allowUnionTypes: true });
    ajv.addSchema({ ...doc.components.schemas.Error, $id: 'error' });
    let compiled = 0;
    for (const item of Object.values(doc.paths as Json)) {
      for (const o of METHODS.map((m) => item[m]).filter(Boolean)) {
        const schemas = [
          ...Object.values(o.responses as Json).flatMap((r: Json) => (r.content ? [r.content['application/json'].schema] : [])),
          ...(o.requestBody ? [o.requestBody.content['application/json'].schema] : []),
          ...((o.parameters ?? []) as Json[]).map((p) => p.schema),
        ].filter((s: Json) => !s.$ref);
        for (const schema of schemas) {
          ajv.compile(schema);
          compiled++;
        }
      }
    }
    expect(compiled).toBeGreaterThan(OPERATIONS.length * 2);
    expect(() => ajv.compile({ type: 'object', properties: { a: { type: 'no-such-type' } } })).toThrow();
  });

  it('lists every operation of the table, and only those', () => {
    const listed = Object.entries(doc.paths as Json).flatMap(([path, item]) =>
      METHODS.filter((m) => item[m]).map((m) => `${m.toUpperCase()} ${path}`),
    );
    expect(listed.sort()).toEqual(OPERATIONS.map((op) => `${op.method} ${op.path}`).sort());
    expect(listed.sort()).toEqual([...EXPECTED].sort());
    expect(new Set(OPERATIONS.map((op) => op.id)).size).toBe(OPERATIONS.length);
    for (const op of OPERATIONS) expect(doc.paths[op.path][op.method.toLowerCase()].operationId).toBe(op.id);
  });

  it('has the bearer scheme, and for each operation its success schema and the error object for every error status', () => {
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.security).toEqual([{ bearer: [] }]);
    expect(doc.components.schemas.Error.properties.error.required).toEqual(['code', 'message']);
    for (const op of OPERATIONS) {
      const o = doc.paths[op.path][op.method.toLowerCase()];
      const ok = o.responses[op.created ? '201' : '200'];
      expect(ok.content['application/json'].schema, op.id).toEqual(expect.objectContaining({}));
      expect(ok.content['application/json'].schema.$schema).toBeUndefined();
      for (const status of ['400', '401', '403', '404', '409', '413', '429']) {
        const ref = o.responses[status].$ref as string;
        expect(ref, `${op.id} ${status}`).toMatch(/^#\/components\/responses\/\w+$/);
        expect(doc.components.responses[ref.split('/').pop()!].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/Error' });
      }
      expect(o['x-sos-mutates']).toBe(op.mutates);
      expect(op.mutates, op.id).toBe(op.method !== 'GET');
    }
    expect(doc.paths['/v1/tasks'].post.responses['201']).toBeDefined();
    expect(doc.paths['/v1/tasks'].get.responses['200'].content['application/json'].schema).toMatchObject({ type: 'array', items: { type: 'object', additionalProperties: false } });
  });

  it("documents a tool's operation with the tool's own schema: body fields, path parameters and query parameters", () => {
    const tool = (name: string) => TOOLS.find((t) => t.name === name)!;
    const complete = doc.paths['/v1/tasks/{id}/complete'].post;
    const fromTool = z.toJSONSchema(tool('task_complete').input.omit({ id: true }), { io: 'input' }) as Json;
    const { $schema: _d, ...expected } = fromTool;
    expect(complete['x-sos-mcp-tool']).toBe('task_complete');
    expect(complete.requestBody.content['application/json'].schema).toEqual({ ...expected, additionalProperties: false });
    expect(complete.requestBody.required).toBe(true);
    expect(complete.parameters).toEqual([{ name: 'id', in: 'path', required: true, description: 'task id (tsk_…)', schema: { type: 'string' } }]);

    // task_list's arguments are query parameters: a list is the name repeated; limit keeps its bounds.
    const list = doc.paths['/v1/tasks'].get.parameters as Json[];
    expect(list.find((p) => p.name === 'status')).toMatchObject({ in: 'query', required: false, style: 'form', explode: true, schema: { type: 'array', items: { type: 'string' } } });
    expect(list.find((p) => p.name === 'limit')).toMatchObject({ in: 'query', required: false, schema: { type: 'integer', minimum: 1, maximum: 1000 } });
    expect(doc.paths['/v1/memory/recall'].get.parameters.find((p: Json) => p.name === 'query')).toMatchObject({ required: true });

    // Claiming the next task takes no id in its body (the path form does).
    expect(Object.keys(doc.paths['/v1/tasks/claim'].post.requestBody.content['application/json'].schema.properties)).not.toContain('id');
    expect(doc.paths['/v1/tasks/claim'].post.requestBody.required).toBe(false);
  });

  it('has an operation for every MCP tool, running the tool itself', () => {
    const covered = new Set(OPERATIONS.flatMap((op) => (op.tool ? [op.tool] : [])));
    expect([...covered].sort()).toEqual(TOOLS.map((t) => t.name).sort());
  });

  it('serves itself as GET /v1/openapi.json', async () => {
    const op = OPERATIONS.find((o) => o.id === 'openapi')!;
    const served = (await op.run({} as never, { project: 'p', agent: null, role: 'operator', via: 'local' }, { params: {}, query: {}, body: {} })) as Json;
    expect(served).toEqual(doc);
  });
});

describe('routing /v1', () => {
  it('picks the operation by path and method; the most literal pattern owns a path', () => {
    expect(resolveRoute('GET', '/v1/tasks/board').op.id).toBe('tasks.board');
    expect(resolveRoute('GET', '/v1/tasks/tsk_1').op.id).toBe('tasks.get');
    expect(resolveRoute('GET', '/v1/tasks/tsk_1').params).toEqual({ id: 'tsk_1' });
    expect(resolveRoute('POST', '/v1/tasks/tsk_1/claim').op.id).toBe('tasks.claim_one');
    expect(resolveRoute('POST', '/v1/tasks/claim').op.id).toBe('tasks.claim');
    expect(resolveRoute('POST', '/v1/messages/msg%2F1/ack').params).toEqual({ id: 'msg/1' });
    expect(resolveRoute('HEAD', '/v1/tasks/board').op.id).toBe('tasks.board');
  });

  it('refuses an unknown path (not found) and a known path with another method (the allowed ones listed)', () => {
    expect(() => resolveRoute('GET', '/v1/nope')).toThrow(expect.objectContaining({ code: 'not_found' }));
    expect(() => resolveRoute('GET', '/v1/tasks/')).toThrow(expect.objectContaining({ code: 'not_found' }));
    expect(() => resolveRoute('GET', '/v2/tasks')).toThrow(expect.objectContaining({ code: 'not_found' }));
    expect(() => resolveRoute('GET', '/v1/tasks/claim')).toThrow(expect.objectContaining({ allow: ['POST'] }));
    expect(() => resolveRoute('DELETE', '/v1/tasks')).toThrow(expect.objectContaining({ allow: ['GET', 'POST'] }));
    expect(() => resolveRoute('GET', '/v1/tasks/%E0%A4%A/claim')).toThrow(expect.objectContaining({ code: 'usage' }));
  });
});
