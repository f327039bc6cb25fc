import { describe, expect, it, type TestContext } from 'vitest';
import { enqueueApproval } from '../../src/core/brain/governance.js';
import { GOVERNANCE_TIERS, type GovernanceTier, MOTOR_METHODS, type MotorMethod } from '../../src/core/brain/motor.js';
import { openStore, parseStoreTarget } from '../../src/core/store/open.js';
import { governanceCommand } from '../../src/commands/governance.js';
import { isolatedEnv, sos } from '../helpers/cli.js';
import { ADAPTERS, type AdapterFixture, tempDir } from '../helpers/isolation.js';

/** `sos governance` and `sos approvals` through the built CLI, on SQLite and PostgreSQL. */

async function setup(ctx: TestContext, adapter: AdapterFixture) {
  const target = adapter.target(ctx);
  const env = isolatedEnv(tempDir(ctx), { ...target.env, SOS_DB: target.db });
  const run = (args: string[], extra: Record<string, string> = {}) => sos(args, { ...env, ...extra });
  expect((await run(['init'])).code).toBe(0);
  for (const a of ['kasra', 'boss']) expect((await run(['agents', 'add', a])).code).toBe(0);
  const agent = (await run(['tokens', 'create', '--agent', 'kasra', '-q'])).stdout.trim();
  const admin = (await run(['tokens', 'create', '--agent', 'boss', '--role', 'admin', '-q'])).stdout.trim();
  const admin2 = (await run(['tokens', 'create', '--agent', 'boss', '--role', 'admin', '-q'])).stdout.trim();
  expect(admin).toMatch(/^sos_/);
  /** Puts proposals in the queue as a gated brain cycle would (the brain loop is not a command yet). */
  const enqueue = async (items: { cycle: string; method: MotorMethod; tier: GovernanceTier; title: string }[]): Promise<string[]> => {
    const store = await openStore({ target: parseStoreTarget(target.db), pgSchema: target.env.SOS_PG_SCHEMA ?? 'sos', busyTimeoutMs: 5_000 });
    try {
      const ids: string[] = [];
      for (const it of items) {
        const a = await enqueueApproval(store.sql, 'default', { cycleId: it.cycle, method: it.method, tier: it.tier, proposal: { method: it.method, agent: null, goal_id: null, details: { title: it.title } }, at: Date.now() });
        ids.push(a.id);
      }
      return ids;
    } finally {
      await store.close();
    }
  };
  return { run, agent, admin, admin2, enqueue };
}

type ApprovalJson = { id: string; method: string; tier: string; status: string; needs: number; approves: number; outcome: string | null; reason: string | null; made: { tasks?: string[] } | null; votes: { approver: string; vote: string; note: string | null }[] };

describe.each(ADAPTERS)('sos governance and sos approvals on $name', (adapter) => {
  describe.skipIf(!adapter.available)(adapter.name, () => {
    it('lists the tiers in force and sets a method’s tier (admin only, methods and tiers checked)', async (ctx) => {
      const { run, agent, admin } = await setup(ctx, adapter);
      // The command's completion choices are the core's lists.
      expect(governanceCommand.subcommands![0]!.args!.map((a) => a.choices)).toEqual([MOTOR_METHODS, GOVERNANCE_TIERS]);
      const before = (await run(['governance', 'list', '--json'])).json<{ method: string; tier: string; source: string; updatedBy: string | null }[]>();
      expect(before.map((t) => `${t.method} ${t.tier} ${t.source}`)).toEqual([
        'create_task act_freely default',
        'send_message act_freely default',
        'research act_freely default',
        'fix_code act_freely default',
        'health_check act_freely default',
        'post_content human_gate default',
        'send_outreach human_gate default',
      ]);
      expect((await run(['governance', 'set', 'create_task', 'human_gate'])).stdout).toBe('create_task is human_gate in project "default"\n');
      expect((await run(['governance', 'set', 'send_outreach', 'dual_approval', '--json'], { SOS_TOKEN: admin })).json()).toMatchObject({ method: 'send_outreach', tier: 'dual_approval', source: 'project', defaultTier: 'human_gate', updatedBy: 'boss' });
      const after = (await run(['governance', 'list', '-q'], { SOS_TOKEN: agent })).stdout.trim().split('\n');
      expect(after).toContain('create_task human_gate');
      expect(after).toContain('send_outreach dual_approval');
      const human = (await run(['governance', 'list'])).stdout;
      expect(human).toMatch(/^METHOD\s+TIER\s+SOURCE\s+BY\s+SINCE\n/);
      expect(human).toMatch(/create_task\s+human_gate\s+project \(default act_freely\)\s+operator/);

      expect((await run(['governance', 'set', 'create_task', 'act_freely'], { SOS_TOKEN: agent })).code).toBe(6);
      const badMethod = await run(['governance', 'set', 'run_shell', 'act_freely', '--json']);
      expect(badMethod.code).toBe(2);
      expect(badMethod.json<{ error: { code: string; message: string } }>().error).toMatchObject({ code: 'usage', message: '"run_shell" is not a motor method' });
      expect((await run(['governance', 'set', 'create_task', 'sometimes'])).code).toBe(2);
      expect((await run(['governance', 'list', '--json'])).json<{ method: string; tier: string }[]>().find((t) => t.method === 'create_task')!.tier).toBe('human_gate');
    });

    it('lists, shows, approves once, refuses the same approver twice on dual approval, denies, and approves batches', async (ctx) => {
      const { run, agent, admin, admin2, enqueue } = await setup(ctx, adapter);
      const [gate, dual, denied, b1, b2] = await enqueue([
        { cycle: 'cyc_1', method: 'post_content', tier: 'human_gate', title: 'Announce the release' },
        { cycle: 'cyc_2', method: 'send_outreach', tier: 'dual_approval', title: 'Email the beta list' },
        { cycle: 'cyc_3', method: 'post_content', tier: 'human_gate', title: 'Post the teaser' },
        { cycle: 'cyc_4', method: 'research', tier: 'batch_approve', title: 'Compare vector indexes' },
        { cycle: 'cyc_5', method: 'research', tier: 'batch_approve', title: 'Survey queue designs' },
      ]);
      const listed = (await run(['approvals', 'list', '--json'])).json<ApprovalJson[]>();
      expect(listed.map((a) => [a.id, a.method, a.tier, a.status, a.needs])).toEqual([
        [gate, 'post_content', 'human_gate', 'pending', 1],
        [dual, 'send_outreach', 'dual_approval', 'pending', 2],
        [denied, 'post_content', 'human_gate', 'pending', 1],
        [b1, 'research', 'batch_approve', 'pending', 1],
        [b2, 'research', 'batch_approve', 'pending', 1],
      ]);
      expect((await run(['approvals', 'list', '-q'], { SOS_TOKEN: agent })).stdout.trim().split('\n')).toEqual([gate, dual, denied, b1, b2]);
      expect((await run(['approvals', 'list'])).stdout).toMatch(/^ID\s+METHOD\s+TIER\s+STATUS\s+APPROVES\s+CREATED\s+PROPOSAL\n/);
      expect((await run(['approvals', 'show', gate!, '--json'])).json()).toMatchObject({ id: gate, status: 'pending', approves: 0, proposal: { method: 'post_content', details: { title: 'Announce the release' } }, votes: [] });
      expect((await run(['approvals', 'show', gate!])).stdout).toMatch(/status:\s+pending/);
      expect((await run(['approvals', 'show', 'apr_nope'])).code).toBe(2);
      expect((await run(['approvals', 'show', 'apr_00000000000000000000000000'])).code).toBe(3);

      // human_gate: an agent token may not approve; the operator's approve executes it, once.
      expect((await run(['approvals', 'approve', gate!], { SOS_TOKEN: agent })).code).toBe(6);
      const approved = await run(['approvals', 'approve', gate!, '--note', 'ship it', '--json']);
      expect(approved.code).toBe(0);
      const a = approved.json<ApprovalJson & { verdict: { outcome: string; made: { tasks: string[] } } }>();
      expect(a).toMatchObject({ status: 'executed', outcome: 'executed', verdict: { outcome: 'executed' }, votes: [{ approver: 'operator', vote: 'approve', note: 'ship it' }] });
      const taskId = a.verdict.made.tasks[0]!;
      expect(a.made).toEqual({ tasks: [taskId] });
      const again = await run(['approvals', 'approve', gate!]);
      expect(again.code).toBe(2);
      expect(again.stderr).toMatch(/is executed already/);
      expect((await run(['approvals', 'approve', gate!], { SOS_TOKEN: admin })).code).toBe(2);
      expect((await run(['tasks', 'list', '-q'])).stdout.trim().split('\n').filter(Boolean)).toEqual([taskId]);

      // dual_approval: one admin, the same admin again (another of its tokens) refused with exit 4, then the operator.
      expect((await run(['approvals', 'approve', dual!], { SOS_TOKEN: admin })).stdout).toBe(`approval ${dual}: approved 1/2, waiting for 1 more approver(s)\n`);
      const twice = await run(['approvals', 'approve', dual!, '--json'], { SOS_TOKEN: admin2 });
      expect(twice.code).toBe(4);
      expect(twice.json<{ error: { code: string; message: string } }>().error).toMatchObject({ code: 'conflict', message: expect.stringMatching(/^boss has already approved apr_/) });
      expect((await run(['approvals', 'show', dual!, '--json'])).json<ApprovalJson>()).toMatchObject({ status: 'pending', approves: 1 });
      expect((await run(['approvals', 'approve', dual!, '-q'])).stdout).toBe('executed\n');
      expect((await run(['tasks', 'list', '-q'])).stdout.trim().split('\n')).toHaveLength(2);

      // deny: never executes.
      expect((await run(['approvals', 'deny', denied!, '--note', 'not yet'], { SOS_TOKEN: agent })).code).toBe(6);
      expect((await run(['approvals', 'deny', denied!, '--note', 'not yet'], { SOS_TOKEN: admin })).stdout).toBe(`approval ${denied} denied: it will not execute\n`);
      expect((await run(['approvals', 'show', denied!, '--json'])).json()).toMatchObject({ status: 'denied', reason: 'denied by boss: not yet', votes: [{ approver: 'boss', vote: 'deny', note: 'not yet' }] });
      expect((await run(['approvals', 'approve', denied!])).code).toBe(2);
      expect((await run(['approvals', 'deny', denied!])).code).toBe(2);

      // approve needs an id or --all, not both.
      expect((await run(['approvals', 'approve'])).code).toBe(2);
      expect((await run(['approvals', 'approve', b1!, '--all'])).code).toBe(2);
      // --all approves every pending batch_approve item.
      const batch = (await run(['approvals', 'approve', '--all', '--json'], { SOS_TOKEN: admin })).json<{ id: string; approval: ApprovalJson; verdict: { outcome: string }; error: null }[]>();
      expect(batch.map((r) => [r.id, r.approval.status, r.verdict.outcome, r.error])).toEqual([
        [b1, 'executed', 'executed', null],
        [b2, 'executed', 'executed', null],
      ]);
      const none = await run(['approvals', 'approve', '--all']);
      expect([none.code, none.stdout, none.stderr]).toEqual([0, 'no pending batch_approve approvals in project "default"\n', '']);
      expect((await run(['tasks', 'list', '-q'])).stdout.trim().split('\n')).toHaveLength(4);

      expect((await run(['approvals', 'list'])).stdout).toBe('no pending approvals in project "default"\n');
      expect((await run(['approvals', 'list', '--status', 'executed', '-q'])).stdout.trim().split('\n')).toEqual([gate, dual, b1, b2]);
      expect((await run(['approvals', 'list', '--all', '--json'])).json<ApprovalJson[]>().map((x) => x.status)).toEqual(['executed', 'executed', 'denied', 'executed', 'executed']);
      expect((await run(['approvals', 'list', '--status', 'waiting'])).code).toBe(2);
    });
  });
});
