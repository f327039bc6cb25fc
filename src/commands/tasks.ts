import { type CommandSpec, lazy, type OptionSpec } from './define.js';

const load = () => import('./tasks.run.js');
const id = { name: 'id', summary: 'task id (tsk_…)' } as const;
const idem: OptionSpec = { flags: '--idempotency-key <key>', summary: 'a repeat with the same key returns the first result and changes nothing' };
const fence: OptionSpec = { flags: '--fence <n>', summary: 'the fencing token from your claim (refused if stale)' };
const squad: OptionSpec = { flags: '--squad <name>', summary: 'squad', complete: 'squads' };

export const tasksCommand: CommandSpec = {
  name: 'tasks',
  summary: 'claimable work: create, claim with a lease, complete, retry, hand off',
  group: 'Work',
  subcommands: [
    {
      name: 'create',
      summary: 'create a task; prints its id',
      args: [{ name: 'title', summary: 'what to do', variadic: true }],
      options: [
        { flags: '--description <text>', summary: 'details (or --stdin)' },
        { flags: '--stdin', summary: 'read the description from standard input' },
        { flags: '--priority <p>', summary: 'critical, high, normal (default), low, or 0-100' },
        squad,
        { flags: '--label <label>', summary: 'free tag, repeatable', repeatable: true },
        { flags: '--requires <cap>', summary: 'capability the claimant must hold, repeatable', repeatable: true },
        { flags: '--depends-on <id>', summary: 'task that must be done first, repeatable', repeatable: true },
        { flags: '--assignee <agent>', summary: 'only this agent may claim it', complete: 'agents' },
        { flags: '--max-attempts <n>', summary: 'claims before it goes dead (default 3)' },
        { flags: '--lease <duration>', summary: 'lease per claim (default 10m)' },
        { flags: '--budget <tokens|$>', summary: 'token (50000) or dollar ($2.50) budget' },
        { flags: '--status <status>', summary: 'queued (default) or backlog', choices: ['queued', 'backlog'] },
        idem,
      ],
      handler: lazy(load, 'create'),
      examples: ['sos tasks create "fix the login redirect" --priority high --requires code --squad web'],
    },
    {
      name: 'list',
      summary: 'list tasks',
      options: [
        { flags: '--status <status>', summary: 'only this status, repeatable', repeatable: true },
        squad,
        { flags: '--assignee <agent>', summary: 'assigned to or claimed by', complete: 'agents' },
        { flags: '--ready', summary: 'only claimable work' },
        { flags: '--limit <n>', summary: 'at most n (default 1000)' },
      ],
      handler: lazy(load, 'list'),
    },
    { name: 'show', summary: 'one task, with --events its history', args: [id], options: [{ flags: '--events', summary: 'the event log' }], handler: lazy(load, 'show') },
    {
      name: 'board',
      summary: 'ready work ranked by priority, what it unblocks, age',
      options: [squad, { flags: '--limit <n>', summary: 'at most n (default 50)' }],
      handler: lazy(load, 'board'),
    },
    {
      name: 'claim',
      summary: 'claim the best ready task you may take (exit 4 when there is none)',
      options: [
        { flags: '--id <id>', summary: 'claim this task only' },
        squad,
        { flags: '--wait <duration>', summary: 'block until something is claimable' },
        { flags: '--lease <duration>', summary: 'lease for this claim' },
        idem,
      ],
      handler: lazy(load, 'claim'),
    },
    { name: 'start', summary: 'mark a claimed task in progress (renews the lease)', args: [id], options: [fence, idem], handler: lazy(load, 'start') },
    {
      name: 'heartbeat',
      summary: 'renew the lease of a task you hold',
      args: [id],
      options: [fence, { flags: '--lease <duration>', summary: 'new lease length' }],
      handler: lazy(load, 'heartbeat'),
    },
    {
      name: 'complete',
      summary: 'finish a task you hold',
      args: [id],
      options: [
        { flags: '--result <text>', summary: 'what came of it (or --stdin)' },
        { flags: '--stdin', summary: 'read the result from standard input' },
        { flags: '--artifact <path-or-url>', summary: 'produced artifact, repeatable', repeatable: true },
        { flags: '--usage <tokens>', summary: 'tokens spent' },
        fence,
        idem,
      ],
      handler: lazy(load, 'complete'),
    },
    {
      name: 'fail',
      summary: 'fail a task you hold (--retryable: back to the queue while attempts remain)',
      args: [id],
      options: [{ flags: '--error <text>', summary: 'what went wrong (required)' }, { flags: '--retryable', summary: 'retry after a backoff' }, fence, idem],
      handler: lazy(load, 'fail'),
    },
    { name: 'release', summary: 'give a task you hold back to the queue', args: [id], options: [fence, idem], handler: lazy(load, 'release') },
    {
      name: 'cancel',
      summary: 'cancel a task (its dependents are blocked, or canceled with --cascade)',
      args: [id],
      options: [{ flags: '--cascade', summary: 'also cancel everything that depends on it' }, { flags: '--reason <text>', summary: 'why' }, idem],
      handler: lazy(load, 'cancel'),
    },
    { name: 'block', summary: 'hold a queued task back', args: [id], options: [{ flags: '--reason <text>', summary: 'why' }, idem], handler: lazy(load, 'block') },
    { name: 'unblock', summary: 'return a blocked task to the queue', args: [id], options: [idem], handler: lazy(load, 'unblock') },
    {
      name: 'redrive',
      summary: 'send a dead or failed task back to the queue',
      args: [id],
      options: [{ flags: '--attempts <n>', summary: 'tries it gets (default 3)' }, idem],
      handler: lazy(load, 'redrive'),
    },
    {
      name: 'comment',
      summary: 'add a comment to the task history',
      args: [id, { name: 'text', summary: 'the comment', variadic: true }],
      options: [idem],
      handler: lazy(load, 'comment'),
    },
    {
      name: 'handoff',
      summary: 'hand a task you hold to another agent with a context package',
      args: [id],
      options: [
        { flags: '--to <agent>', summary: 'the receiver (required)', complete: 'agents' },
        { flags: '--summary <text>', summary: 'where it stands (required)' },
        { flags: '--memory <engram-id>', summary: 'relevant memory, repeatable', repeatable: true },
        fence,
        idem,
      ],
      handler: lazy(load, 'handoff'),
    },
    { name: 'accept', summary: 'accept a handoff addressed to you: you become the claimant', args: [id], options: [idem], handler: lazy(load, 'accept') },
    {
      name: 'reject',
      summary: 'reject a handoff addressed to you: it returns to the sender',
      args: [id],
      options: [{ flags: '--reason <text>', summary: 'why (required)' }, idem],
      handler: lazy(load, 'reject'),
    },
    { name: 'sweep', summary: 'requeue tasks whose lease ran out, or make them dead', handler: lazy(load, 'sweep') },
    { name: 'stats', summary: 'task counters: duplicate claims and stale fences refused, leases expired', handler: lazy(load, 'stats') },
  ],
};
