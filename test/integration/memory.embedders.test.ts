import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { OperationFailed, Unavailable, UsageError } from '../../src/core/errors.js';
import { LocalEmbedder } from '../../src/core/memory/embedder.js';
import { createEmbedder, OllamaEmbedder, OpenAIEmbedder } from '../../src/core/memory/http-embedders.js';

/**
 * Real HTTP servers on 127.0.0.1 that speak each wire format and refuse anything else, so the
 * embedders are tested against the bytes they put on the wire, not against a mocked fetch.
 */

interface Received {
  path: string;
  authorization: string | undefined;
  body: { model: string; input: string[] };
}

type Answer = (req: Received, res: ServerResponse) => void;

const servers: Server[] = [];

afterEach(async () => {
  await Promise.all(
    servers.splice(0).map(
      (server) =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    ),
  );
});

/** Unnormalised (scaled) vector from a hash of the text, so normalisation is visible. */
function rawVector(text: string, dim: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < dim; i++) {
    let h = 0x811c9dc5 ^ i;
    for (let j = 0; j < text.length; j++) h = Math.imul(h ^ text.charCodeAt(j), 0x01000193);
    out.push((((h >>> 0) % 2001) - 1000) / 100);
  }
  return out;
}

function unit(values: number[]): number[] {
  const norm = Math.sqrt(values.reduce((s, x) => s + x * x, 0));
  return values.map((x) => x / norm);
}

function expectUnitVectorsOf(vectors: Float32Array[], texts: string[], dim: number) {
  expect(vectors).toHaveLength(texts.length);
  vectors.forEach((v, i) => {
    expect(v).toBeInstanceOf(Float32Array);
    expect(v).toHaveLength(dim);
    expect(Math.hypot(...v)).toBeCloseTo(1, 5);
    const expected = unit(rawVector(texts[i]!, dim));
    v.forEach((x, k) => expect(x).toBeCloseTo(expected[k]!, 5));
  });
}

function send(res: ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
}

/** Checks the request is `POST <path>` with a JSON `{model, input: string[]}` body, then answers. */
async function serve(path: string, answer: Answer): Promise<{ url: string; received: Received[] }> {
  const received: Received[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== path) return send(res, 404, { error: `no route ${req.method} ${req.url}` });
      if (!req.headers['content-type']?.startsWith('application/json')) return send(res, 415, { error: 'want JSON' });
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return send(res, 400, { error: 'body is not JSON' });
      }
      const b = body as Record<string, unknown>;
      const shapeOk =
        Object.keys(b).sort().join(',') === 'input,model' &&
        typeof b.model === 'string' &&
        Array.isArray(b.input) &&
        b.input.every((t) => typeof t === 'string');
      if (!shapeOk) return send(res, 400, { error: `bad body shape: ${JSON.stringify(body).slice(0, 100)}` });
      const r: Received = { path: req.url, authorization: req.headers.authorization, body: b as Received['body'] };
      received.push(r);
      answer(r, res);
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received };
}

/** An Ollama `/api/embed` that answers with vectors of `dim()` dimensions. */
function ollama(dim: () => number) {
  return serve('/api/embed', (req, res) =>
    send(res, 200, { model: req.body.model, embeddings: req.body.input.map((t) => rawVector(t, dim())) }),
  );
}

/** An OpenAI `/v1/embeddings` that wants `Bearer test-key` and answers in reverse index order. */
function openai(dim: number) {
  return serve('/v1/embeddings', (req, res) => {
    if (req.authorization !== 'Bearer test-key') {
      return send(res, 401, { error: { message: 'Incorrect API key provided', type: 'invalid_request_error' } });
    }
    const data = req.body.input.map((t, index) => ({ object: 'embedding', index, embedding: rawVector(t, dim) }));
    send(res, 200, { object: 'list', model: req.body.model, data: data.reverse() });
  });
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

const texts = ['the 502s came from the ingress', 'we chose Postgres over Mongo', 'handoff to kasra'];

describe('Ollama embedder', () => {
  it('returns unit vectors of the server’s dimension, in input order, and learns dim', async () => {
    const server = await ollama(() => 24);
    const embedder = new OllamaEmbedder({ model: 'nomic-embed-text', baseUrl: server.url });
    expect(embedder.name).toBe('ollama:nomic-embed-text');
    expect(() => embedder.dim).toThrow(OperationFailed);
    expectUnitVectorsOf(await embedder.embed(texts), texts, 24);
    expect(embedder.dim).toBe(24);
    expect(server.received[0]).toMatchObject({ body: { model: 'nomic-embed-text', input: texts } });

    const fresh = new OllamaEmbedder({ model: 'nomic-embed-text', baseUrl: `${server.url}/` });
    expect(await fresh.probe()).toBe(24);
    expect(fresh.dim).toBe(24);
    expect(await fresh.embed([])).toEqual([]);
    expect(server.received).toHaveLength(2);
  });

  it('splits large inputs into batches of 64 and keeps the order across them', async () => {
    const server = await ollama(() => 8);
    const embedder = new OllamaEmbedder({ model: 'm', baseUrl: server.url });
    const many = Array.from({ length: 150 }, (_, i) => `engram number ${i}`);
    expectUnitVectorsOf(await embedder.embed(many), many, 8);
    expect(server.received.map((r) => r.body.input.length)).toEqual([64, 64, 22]);
    expect(server.received.flatMap((r) => r.body.input)).toEqual(many);
  });

  it('refuses a dimension change between calls', async () => {
    let dim = 16;
    const server = await ollama(() => dim);
    const embedder = new OllamaEmbedder({ model: 'm', baseUrl: server.url });
    await embedder.embed(['first']);
    dim = 32;
    const err = await rejection(embedder.embed(['second']));
    expect(err).toBeInstanceOf(OperationFailed);
    expect(err.message).toMatch(/32-dimensional.*earlier ones had 16/);
    expect(embedder.dim).toBe(16);
  });

  it('turns a 500 into OperationFailed carrying the status and the server’s error text (≤ 200 chars)', async () => {
    const server = await serve('/api/embed', (_req, res) =>
      send(res, 500, { error: `model "nope" not found, try pulling it first ${'x'.repeat(400)}` }),
    );
    const err = await rejection(new OllamaEmbedder({ model: 'nope', baseUrl: server.url }).embed(['hi']));
    expect(err).toBeInstanceOf(OperationFailed);
    expect(err.message).toContain('HTTP 500');
    expect(err.message).toContain('model "nope" not found, try pulling it first');
    expect(err.message).not.toContain('x'.repeat(200));
    expect(err.message).toContain('x'.repeat(150));

    const plain = await serve('/api/embed', (_req, res) => {
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end('Bad Gateway from the proxy');
    });
    const err2 = await rejection(new OllamaEmbedder({ model: 'm', baseUrl: plain.url }).embed(['hi']));
    expect(err2).toBeInstanceOf(OperationFailed);
    expect(err2.message).toMatch(/HTTP 502: Bad Gateway from the proxy/);
  });

  it('reports an unreachable server as Unavailable, naming the URL and SOS_EMBEDDER_URL', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));

    const err = await rejection(new OllamaEmbedder({ model: 'm', baseUrl: `http://127.0.0.1:${port}` }).embed(['hi']));
    expect(err).toBeInstanceOf(Unavailable);
    expect((err as Unavailable).code).toBe('unavailable');
    expect(err.message).toContain(`http://127.0.0.1:${port}/api/embed`);
    expect(err.message).toContain('SOS_EMBEDDER_URL');
    expect(err.message).toContain('ECONNREFUSED');
  });

  it('gives up on a slow server after the timeout', async () => {
    const server = await serve('/api/embed', () => {
      // never answers
    });
    const embedder = new OllamaEmbedder({ model: 'm', baseUrl: server.url, timeoutMs: 200 });
    const started = Date.now();
    const err = await rejection(embedder.embed(['hi']));
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(err).toBeInstanceOf(Unavailable);
    expect(err.message).toMatch(/did not answer within 200 ms/);
    expect(server.received).toHaveLength(1);
  });
});

describe('OpenAI-compatible embedder', () => {
  it('sends the bearer key and orders the answer by index even when the server does not', async () => {
    const server = await openai(12);
    const embedder = new OpenAIEmbedder({ model: 'text-embedding-3-small', baseUrl: server.url, apiKey: 'test-key' });
    expect(embedder.name).toBe('openai:text-embedding-3-small');
    expectUnitVectorsOf(await embedder.embed(texts), texts, 12);
    expect(embedder.dim).toBe(12);
    expect(server.received[0]).toMatchObject({
      path: '/v1/embeddings',
      authorization: 'Bearer test-key',
      body: { model: 'text-embedding-3-small', input: texts },
    });
  });

  it('batches, accepts a base URL ending in /v1, and keeps order across out-of-order batches', async () => {
    const server = await openai(6);
    const embedder = new OpenAIEmbedder({ model: 'm', baseUrl: `${server.url}/v1/`, apiKey: 'test-key' });
    const many = Array.from({ length: 130 }, (_, i) => `note ${i}`);
    expectUnitVectorsOf(await embedder.embed(many), many, 6);
    expect(server.received.map((r) => r.body.input.length)).toEqual([64, 64, 2]);
  });

  it('sends no Authorization without a key, and reports the 401 with the server’s message', async () => {
    const server = await openai(4);
    const err = await rejection(new OpenAIEmbedder({ model: 'm', baseUrl: server.url }).embed(['hi']));
    expect(server.received[0]?.authorization).toBeUndefined();
    expect(err).toBeInstanceOf(OperationFailed);
    expect(err.message).toMatch(/HTTP 401: Incorrect API key provided/);
    expect((err as OperationFailed).hint).toContain('SOS_EMBEDDER_KEY');
  });

  it('refuses answers whose indexes are not a permutation of the inputs', async () => {
    const server = await serve('/v1/embeddings', (req, res) =>
      send(res, 200, { data: req.body.input.map((t) => ({ index: 0, embedding: rawVector(t, 4) })) }),
    );
    const err = await rejection(new OpenAIEmbedder({ model: 'm', baseUrl: server.url }).embed(['a', 'b']));
    expect(err).toBeInstanceOf(OperationFailed);
    expect(err.message).toMatch(/indexes/);
  });

  it('requires a configured base URL', () => {
    expect(() => new OpenAIEmbedder({ model: 'm' })).toThrow(UsageError);
    expect(() => new OpenAIEmbedder({ model: 'm' })).toThrow(/no base URL/);
  });
});

describe('createEmbedder', () => {
  it('parses local, ollama:<model> and openai:<model>', () => {
    expect(createEmbedder(undefined, {})).toBeInstanceOf(LocalEmbedder);
    expect(createEmbedder('local', {})).toBeInstanceOf(LocalEmbedder);
    const o = createEmbedder('ollama:nomic-embed-text', {});
    expect(o).toBeInstanceOf(OllamaEmbedder);
    expect(o.name).toBe('ollama:nomic-embed-text');
    const withTag = createEmbedder('ollama:mxbai-embed-large:latest', { baseUrl: 'http://127.0.0.1:9' });
    expect(withTag.name).toBe('ollama:mxbai-embed-large:latest');
    const a = createEmbedder('openai:text-embedding-3-small', { baseUrl: 'http://127.0.0.1:9', apiKey: 'k', timeoutMs: 5 });
    expect(a).toBeInstanceOf(OpenAIEmbedder);
    expect(a.name).toBe('openai:text-embedding-3-small');
  });

  it('rejects unknown forms with a UsageError listing the accepted ones', () => {
    for (const bad of ['bert', 'ollama:', 'openai', 'huggingface:all-MiniLM', 'LOCAL']) {
      expect(() => createEmbedder(bad, {}), bad).toThrow(UsageError);
      expect(() => createEmbedder(bad, {}), bad).toThrow(/local, ollama:<model> or openai:<model>/);
    }
    expect(() => createEmbedder('openai:m', {})).toThrow(UsageError);
    expect(() => createEmbedder('ollama:m', { baseUrl: 'ftp://127.0.0.1' })).toThrow(UsageError);
    expect(() => createEmbedder('ollama:m', { baseUrl: 'not a url' })).toThrow(UsageError);
    expect(() => createEmbedder('ollama:m', { timeoutMs: 0 })).toThrow(UsageError);
  });
});
