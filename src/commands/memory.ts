import { type CommandSpec, lazy } from './define.js';

const load = () => import('./memory.run.js');
const id = { name: 'id', summary: 'engram id (eng_…)' } as const;

export const memoryCommand: CommandSpec = {
  name: 'memory',
  summary: 'shared memory: remember, recall by meaning, context packs',
  group: 'Work',
  subcommands: [
    {
      name: 'remember',
      summary: 'store an engram; prints its id (or the id it merged into)',
      args: [{ name: 'text', summary: 'what to remember (or --stdin)', required: false, variadic: true }],
      options: [
        { flags: '--stdin', summary: 'read the text from standard input' },
        { flags: '--kind <kind>', summary: 'observation (default), decision, handoff, finding, checkpoint', choices: ['observation', 'decision', 'handoff', 'finding', 'checkpoint', 'cycle'] },
        { flags: '--scope <scope>', summary: 'private, project (default) or squad:<name>' },
        { flags: '--tag <tag>', summary: 'tag, repeatable', repeatable: true },
        { flags: '--task <id>', summary: 'the task this came from' },
        { flags: '--supersedes <id>', summary: 'an engram this replaces' },
      ],
      handler: lazy(load, 'rememberCmd'),
      examples: ['sos memory remember "the 502s came from the LB idle timeout; raised to 120s" --kind finding --tag infra --as kasra'],
    },
    {
      name: 'recall',
      summary: 'find engrams by meaning and words, best first',
      args: [{ name: 'query', summary: 'what you are looking for', variadic: true }],
      options: [
        { flags: '--limit <n>', summary: 'how many (default 10)' },
        { flags: '--scope <scope>', summary: 'private, project or squad:<name>' },
        { flags: '--agent <name>', summary: 'only engrams by this author', complete: 'agents' },
        { flags: '--tag <tag>', summary: 'must carry this tag, repeatable', repeatable: true },
        { flags: '--kind <kind>', summary: 'only this kind' },
        { flags: '--since <duration|date>', summary: 'only newer than 7d, 2h, or 2026-11-01' },
        { flags: '--mode <mode>', summary: 'hybrid (default), vector or text', choices: ['hybrid', 'vector', 'text'] },
      ],
      handler: lazy(load, 'recallCmd'),
    },
    { name: 'show', summary: 'one engram', args: [id], handler: lazy(load, 'showCmd') },
    { name: 'forget', summary: 'delete an engram (its author or an admin)', args: [id], handler: lazy(load, 'forgetCmd') },
    {
      name: 'list',
      summary: 'newest engrams you can see',
      options: [
        { flags: '--agent <name>', summary: 'only by this author', complete: 'agents' },
        { flags: '--limit <n>', summary: 'how many (default 50)' },
      ],
      handler: lazy(load, 'listCmd'),
    },
    { name: 'reindex', summary: 're-embed every engram with the configured embedder', handler: lazy(load, 'reindexCmd') },
    {
      name: 'context',
      summary: 'the bounded context pack for an agent starting or recovering',
      args: [{ name: 'agent', summary: 'agent name', complete: 'agents' }],
      options: [{ flags: '--max-chars <n>', summary: 'bound on the text (default 4000)' }],
      handler: lazy(load, 'contextCmd'),
    },
  ],
};
