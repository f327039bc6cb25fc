import { type CommandSpec, lazy } from './define.js';

const load = () => import('./usage.run.js');

export const usageCommand: CommandSpec = {
  name: 'usage',
  summary: 'the ledger: tokens and cost by agent, model, task, squad or day; record, prices, recompute',
  group: 'Work',
  options: [
    { flags: '--by <dimension>', summary: 'group by agent (default), model, project, task, squad or day', choices: ['agent', 'model', 'project', 'task', 'squad', 'day'] },
    { flags: '--since <duration|date>', summary: 'only events since 7d, 2h ago or a date-time' },
    { flags: '--until <duration|date>', summary: 'only events before this date-time (or duration ago)' },
    { flags: '--agent <name>', summary: 'only this agent', complete: 'agents' },
  ],
  handler: lazy(load, 'report'),
  subcommands: [
    {
      name: 'record',
      summary: 'record one model call: tokens in and out, priced from the table (prints its id)',
      options: [
        { flags: '--model <model>', summary: 'model id, e.g. claude-sonnet-4-5 (required)' },
        { flags: '--input <n>', summary: 'input tokens not read from the cache (required)' },
        { flags: '--output <n>', summary: 'output tokens, reasoning included (required)' },
        { flags: '--cache-read <n>', summary: 'input tokens read from the prompt cache' },
        { flags: '--cache-write <n>', summary: 'tokens written to the 5-minute prompt cache' },
        { flags: '--cache-write-1h <n>', summary: 'tokens written to the 1-hour prompt cache' },
        { flags: '--reasoning <n>', summary: 'reasoning tokens (informational: already in --output)' },
        { flags: '--provider <name>', summary: "provider (default: the price table's for the model)" },
        { flags: '--task <id>', summary: 'task it was spent on (default: the one task you hold, if exactly one)' },
        { flags: '--key <idempotency-key>', summary: 'a repeat with the same key is recorded once' },
        { flags: '--at <time>', summary: 'when it happened: a date-time or a duration ago (default now)' },
        { flags: '--stdin', summary: 'record JSON lines from standard input instead, one event per line' },
      ],
      handler: lazy(load, 'record'),
      examples: ['sos usage record --model claude-sonnet-4-5 --input 1200 --output 350 --cache-read 40000 --as kasra'],
    },
    { name: 'prices', summary: 'the price table in force: its date, each model, and the overlays (SOS_PRICES)', handler: lazy(load, 'prices') },
    {
      name: 'import',
      summary: "import the agent CLIs' transcripts (Claude Code, Codex, Gemini CLI) incrementally, each response once (admin)",
      options: [
        { flags: '--source <source>', summary: 'claude, codex, gemini or all (default)', choices: ['claude', 'codex', 'gemini', 'all'] },
        { flags: '--path <dir>', summary: 'the source\'s root instead of ~/.claude ($CLAUDE_CONFIG_DIR), ~/.codex ($CODEX_HOME) or ~/.gemini' },
      ],
      handler: lazy(load, 'importLogs'),
      examples: ['sos usage import', 'sos usage import --source claude --path /srv/claude-config --json'],
    },
    {
      name: 'windows',
      summary: 'the 5-hour and 7-day quota windows of agents on a subscription plan: used, burn rate, projected limit, routable',
      options: [{ flags: '--agent <name>', summary: 'only this agent (on any plan)', complete: 'agents' }],
      handler: lazy(() => import('./windows.run.js'), 'windows'),
      examples: ['sos usage windows', 'sos usage windows --agent kasra --json'],
    },
    { name: 'recompute', summary: "re-price every event of the project with the table in force (admin)", handler: lazy(load, 'recompute') },
  ],
  examples: ['sos usage --by model --since 7d', 'sos usage --by day --agent kasra --json'],
};
