import { type CommandSpec, lazy } from './define.js';

const load = () => import('./agents.run.js');
const life = () => import('./lifecycle.run.js');

/** Lifecycle fields shared by `agents add` and `agents set`. */
const lifecycleOptions = [
  { flags: '--start-cmd <command>', summary: 'command that (re)starts it in its session, e.g. "claude --continue"' },
  { flags: '--workdir <dir>', summary: 'working directory of its session (absolute)', complete: 'files' },
  { flags: '--policy <policy>', summary: 'warm: restart when dead; cold: park when dead with no claimed work', choices: ['warm', 'cold'] },
  { flags: '--tmux-socket <path>', summary: 'tmux server socket (tmux -S) for a tmux: session', complete: 'files' },
  { flags: '--patterns <file>', summary: 'JSON pattern groups replacing its kind’s defaults (see README)', complete: 'files' },
  {
    flags: '--wake <mode>',
    summary: 'what a new message types into its session: text (first line), notify (a fixed line), off, or default (claude/codex/gemini: text; others: off)',
    choices: ['text', 'notify', 'off', 'default'],
  },
  {
    flags: '--plan <plan>',
    summary: 'how it pays: api (per token) or a flat-rate plan limited by 5-hour/weekly windows',
    choices: ['api', 'pro', 'max', 'team'],
  },
  { flags: '--transcripts <glob>', summary: 'its own transcript files, e.g. "/home/k/.claude/projects/-srv-app/*.jsonl" (usage import attributes them to it)' },
  { flags: '--i-understand-shell', summary: 'allow --wake text for a shell agent: whoever may send then runs commands in it' },
] as const;
const nameArg = { name: 'name', summary: 'agent name', complete: 'agents' } as const;

export const agentsCommand: CommandSpec = {
  name: 'agents',
  summary: 'register, list, show and remove agents',
  group: 'Identity',
  subcommands: [
    {
      name: 'add',
      summary: 'register an agent in the project',
      args: [{ name: 'name', summary: 'agent name: [a-z][a-z0-9-]{0,39}' }],
      options: [
        {
          flags: '--kind <kind>',
          summary: 'vendor or kind (default: custom)',
          choices: ['claude', 'codex', 'gemini', 'shell', 'custom'],
        },
        {
          flags: '--role <role>',
          summary: 'role (default: worker)',
          choices: ['coordinator', 'worker', 'specialist'],
        },
        {
          flags: '--cap <tag>',
          summary: 'capability tag, repeatable (code, seo, model:opus…)',
          repeatable: true,
        },
        {
          flags: '--session <spec>',
          summary: 'where it runs: tmux:<session>[:<window>.<pane>] or pty:<command>',
        },
        ...lifecycleOptions,
      ],
      handler: lazy(load, 'add'),
      examples: [
        'sos agents add kasra --kind claude --role coordinator --cap code --session tmux:kasra --start-cmd "claude --continue" --workdir /srv/app',
      ],
    },
    {
      name: 'set',
      summary: 'change an agent’s session and lifecycle settings',
      args: [nameArg],
      options: [
        { flags: '--session <spec>', summary: 'tmux:<target> or pty:<command> ("none" clears)' },
        ...lifecycleOptions,
        { flags: '--clear <field>', summary: 'clear start-cmd, workdir, tmux-socket, patterns, plan or transcripts (repeatable)', repeatable: true, choices: ['start-cmd', 'workdir', 'tmux-socket', 'patterns', 'plan', 'transcripts'] },
      ],
      handler: lazy(load, 'set'),
      examples: ['sos agents set kasra --start-cmd "claude --continue" --policy warm'],
    },
    {
      name: 'status',
      summary: 'every agent with its lifecycle state, since when, held tasks and unread messages',
      handler: lazy(life, 'status'),
    },
    {
      name: 'probe',
      summary: 'classify now: state, evidence and the action the supervisor would take (--act takes it)',
      args: [{ ...nameArg, required: false, summary: 'agent name (default: every agent with a session)' }],
      options: [{ flags: '--act', summary: 'take the planned actions (restart, interrupt, checkpoint, park, escalate)' }],
      handler: lazy(life, 'probe'),
      examples: ['sos agents probe kasra', 'sos agents probe --act --json'],
    },
    {
      name: 'history',
      summary: 'state changes (with evidence) and actions of one agent, newest first',
      args: [nameArg],
      options: [{ flags: '--limit <n>', summary: 'at most n of each (default 50)' }],
      handler: lazy(life, 'history'),
    },
    {
      name: 'park',
      summary: 'leave an agent alone: no restarts, no routing',
      args: [nameArg],
      options: [
        { flags: '--until <time>', summary: 'a duration (2h) or a date-time; default until unparked' },
        { flags: '--reason <text>', summary: 'why (shown in status and history)' },
        { flags: '--release', summary: 'also give its claimed tasks back to the queue' },
      ],
      handler: lazy(life, 'park'),
    },
    { name: 'unpark', summary: 'supervise a parked agent again', args: [nameArg], handler: lazy(life, 'unpark') },
    {
      name: 'attach',
      summary: 'attach this terminal to the agent’s session (tmux attach; pty: detach with Ctrl-])',
      args: [nameArg],
      handler: lazy(life, 'attach'),
    },
    { name: 'list', summary: 'list agents of the project', handler: lazy(load, 'list') },
    {
      name: 'show',
      summary: 'show one agent and its squads',
      args: [{ name: 'name', summary: 'agent name', complete: 'agents' }],
      handler: lazy(load, 'show'),
    },
    {
      name: 'remove',
      summary: 'remove an agent (its tokens and memberships go with it)',
      args: [{ name: 'name', summary: 'agent name', complete: 'agents' }],
      handler: lazy(load, 'remove'),
    },
  ],
};
