import { type CommandSpec, lazy } from './define.js';

const load = () => import('./sim.run.js');

export const simCommand: CommandSpec = {
  name: 'sim',
  summary: 'run a throwaway installation with simulated agents through failures, and print the observables',
  group: 'Agents',
  options: [
    { flags: '--agents <n>', summary: 'simulated agents (default 12)' },
    { flags: '--tasks <n>', summary: 'tasks to work through (default 500)' },
    { flags: '--minutes <n>', summary: 'length of the scenario before it settles (default 5)' },
    { flags: '--seed <n>', summary: 'seed of the failure schedule (default 1)' },
    { flags: '--backend <backend>', summary: 'Store: sqlite (a file in the data dir) or postgres (a fresh schema; --db or SOS_DB names the server)', choices: ['sqlite', 'postgres'] },
    { flags: '--redis <url>', summary: 'use a Redis bus at this URL (a project of its own, removed after), or `local`: a redis-server of the run\'s own, which the scenario restarts' },
    { flags: '--scenario <file>', summary: 'a scenario file, JSON or YAML (.yaml, .yml); fields as the default one, unknown fields refused', complete: 'files' },
    { flags: '--keep', summary: 'leave the data dir, the tmux server and the schema for inspection' },
  ],
  handler: lazy(load, 'sim'),
  examples: ['sos sim', 'sos sim --minutes 2 --seed 7 --json', 'sos sim --backend postgres --redis redis://127.0.0.1:6379', 'sos sim --scenario crash-heavy.json --keep'],
};

export const demoCommand: CommandSpec = {
  name: 'demo',
  summary: 'a short friendly simulation (6 agents, 2 squads, about 3 minutes) watched in sos top; no API key needed',
  group: 'Agents',
  options: [
    { flags: '--minutes <n>', summary: 'length of the scenario (default 3)' },
    { flags: '--no-top', summary: 'do not open sos top; print the report at the end' },
  ],
  handler: lazy(load, 'demo'),
  examples: ['sos demo', 'sos demo --no-top'],
};
