import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { BrainAnswer } from './scenario.js';

/**
 * The brain's model during a simulation: a local HTTP server on 127.0.0.1 that speaks the
 * Anthropic Messages API (non-streaming JSON, `POST /v1/messages`) and answers every call with a
 * forced `decide` tool call taken in turn from the scenario's scripted proposals. It is the only
 * stand-in of a simulation: the daemon's brain loop, provider, breaker, motor and governance that
 * judge these proposals are the real ones. No API key leaves the machine (the key is a dummy).
 */

export interface ModelServer {
  /** The base URL for SOS_BRAIN_URL (without /v1). */
  url: string;
  /** How many decisions of each scripted kind were answered. */
  answered: Record<BrainAnswer, number>;
  calls: number;
  close(): Promise<void>;
}

/** The title of the one task proposal the motor executes (the report recognises the brain's tasks by it). */
export const BRAIN_TASK_TITLE = "Review the restarted agents' work";

/** The proposal for one scripted answer; `stale_cleanup` names the retired fixture marker. */
export function proposal(kind: BrainAnswer, n: number): Record<string, unknown> {
  const base = { goal_id: null, agent: null, expected_progress: 'Progress the team can see.', risk: 'low' };
  switch (kind) {
    case 'stale_cleanup':
      return { ...base, action: 'Clean up the old test quest tasks that clutter the queue.', method: 'create_task', details: { title: `Delete the test quest fixture tasks (pass ${n})`, priority: 'low' } };
    case 'invented_method':
      return { ...base, action: 'Remove the fixture tasks by pattern.', method: 'delete_tasks_by_pattern', details: { pattern: 'test quest%' } };
    case 'create_task':
      return { ...base, action: 'Queue a follow-up for the agents that were restarted.', method: 'create_task', details: { title: `${BRAIN_TASK_TITLE} (cycle ${n})`, priority: 'normal' } };
    case 'message_coordinator':
      return { ...base, action: 'Tell the coordinator how the run goes.', method: 'send_message', details: { to: 'boss', text: `status note ${n}: the queue is moving` } };
    case 'health_check':
      return { ...base, action: 'Check the installation.', method: 'health_check', details: {} };
  }
}

function messageBody(input: Record<string, unknown>, model: string): string {
  return JSON.stringify({
    id: `msg_sim${Date.now().toString(36)}`,
    type: 'message',
    role: 'assistant',
    model,
    content: [{ type: 'tool_use', id: `toolu_sim${Date.now().toString(36)}`, name: 'decide', input }],
    stop_reason: 'tool_use',
    stop_sequence: null,
    usage: { input_tokens: 1_800, output_tokens: 160, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
  });
}

export async function startModelServer(script: readonly BrainAnswer[]): Promise<ModelServer> {
  const answered = Object.fromEntries(['stale_cleanup', 'invented_method', 'create_task', 'health_check', 'message_coordinator'].map((k) => [k, 0])) as Record<BrainAnswer, number>;
  let calls = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/messages' || script.length === 0) {
        const body = JSON.stringify({ type: 'error', error: { type: 'not_found_error', message: `no route ${req.method} ${req.url}` } });
        res.writeHead(404, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
        return;
      }
      let model = 'claude-haiku-4-5';
      try {
        const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { model?: unknown };
        if (typeof parsed.model === 'string') model = parsed.model;
      } catch {
        // the provider always sends JSON; a bad body still gets an answer
      }
      const kind = script[calls % script.length]!;
      calls += 1;
      answered[kind] += 1;
      const body = messageBody(proposal(kind, calls), model);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    answered,
    get calls() {
      return calls;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
