import { type CommandSpec, lazy } from './define.js';

const load = () => import('./messaging.run.js');
const GROUP = 'Messaging';
const agentOption = { flags: '--agent <name>', summary: 'whose inbox (default: the caller)', complete: 'agents' } as const;

export const sendCommand: CommandSpec = {
  name: 'send',
  summary: 'send a message to an agent, a squad (squad:<name>) or everyone (all)',
  group: GROUP,
  args: [
    { name: 'to', summary: 'agent name, squad:<name>, or all', complete: 'agents' },
    { name: 'text', summary: 'the message (or --stdin)', required: false, variadic: true },
  ],
  options: [
    { flags: '--stdin', summary: 'read the body from standard input' },
    { flags: '--each-line', summary: 'send one message per line of standard input; prints one id per line' },
    { flags: '--reply-to <id>', summary: 'thread: the message this answers' },
    { flags: '--ack', summary: 'ask for an ack (routine: 60 s)' },
    { flags: '--critical', summary: 'critical priority; ack required within 30 s' },
    { flags: '--wait-ack <duration>', summary: 'block until acked (exit 0), refused (4) or timed out (1)' },
    { flags: '--priority <level>', summary: 'low, normal, high or critical', choices: ['low', 'normal', 'high', 'critical'] },
    { flags: '--expires <duration>', summary: 'drop it unread after this long (30s, 5m, 2h)' },
    { flags: '--idempotency-key <key>', summary: 'a repeat with the same key returns the first id and sends nothing' },
  ],
  handler: lazy(load, 'send'),
  examples: ['sos send kasra "deploy fixed"', 'sos send squad:core --ack "release at 5pm?"', 'git log -1 | sos send all --stdin'],
};

export const inboxCommand: CommandSpec = {
  name: 'inbox',
  summary: 'read your messages: unread first (and marked read), history with --all',
  group: GROUP,
  options: [
    agentOption,
    { flags: '--all', summary: 'also show earlier, already read messages' },
    { flags: '--limit <n>', summary: 'at most n messages of each kind (default 50)' },
    { flags: '--follow', summary: 'keep streaming new messages until interrupted' },
  ],
  handler: lazy(load, 'inbox'),
};

export const ackCommand: CommandSpec = {
  name: 'ack',
  summary: 'acknowledge a message: replies {ack_for, ok} to its sender',
  group: GROUP,
  args: [{ name: 'id', summary: 'message id (msg_…)' }],
  options: [
    { flags: '--ok', summary: 'accept (the default)' },
    { flags: '--refuse', summary: 'refuse: the sender sees ok:false' },
    { flags: '--note <text>', summary: 'a short reply' },
  ],
  handler: lazy(load, 'ack'),
};

export const messagesCommand: CommandSpec = {
  name: 'messages',
  summary: 'inspect messages: one envelope, acks pending, the ack sweep',
  group: GROUP,
  subcommands: [
    { name: 'show', summary: 'envelope and per-recipient delivery state', args: [{ name: 'id', summary: 'message id (msg_…)' }], handler: lazy(load, 'show') },
    {
      name: 'pending',
      summary: 'messages waiting for an ack',
      options: [{ flags: '--overdue', summary: 'only those past their timeout' }],
      handler: lazy(load, 'pending'),
    },
    { name: 'sweep', summary: 're-send overdue acks once, then escalate to coordinators', handler: lazy(load, 'sweep') },
  ],
};

export const peersCommand: CommandSpec = {
  name: 'peers',
  summary: 'agents of the project: online or not, last seen, unread messages',
  group: GROUP,
  handler: lazy(load, 'peers'),
};

export const heartbeatCommand: CommandSpec = {
  name: 'heartbeat',
  summary: 'mark an agent present (online until its presence TTL runs out)',
  group: GROUP,
  options: [{ flags: '--agent <name>', summary: 'the agent (default: the caller)', complete: 'agents' }],
  handler: lazy(load, 'heartbeat'),
};
