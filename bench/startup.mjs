#!/usr/bin/env node
// Startup cost of one-shot commands, as a ratio to bare `node -e 0` measured in the same run.
// Runs are interleaved (node, --help, agents list, node, …) so machine drift hits all equally.
//   node bench/startup.mjs [rounds]      (run `npm run build` first)
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const rounds = Number(process.argv[2] ?? 40);
const root = fileURLToPath(new URL('..', import.meta.url));
const bin = join(root, 'bin', 'sos');
const home = mkdtempSync(join(tmpdir(), 'sos-bench-'));
const env = {
  ...process.env,
  HOME: home,
  XDG_DATA_HOME: join(home, 'data'),
  XDG_CONFIG_HOME: join(home, 'config'),
};
for (const key of Object.keys(env)) if (key.startsWith('SOS_')) delete env[key];

function run(args) {
  const start = process.hrtime.bigint();
  const result = spawnSync(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (result.status !== 0) throw new Error(`${args.join(' ')} exited ${result.status}: ${result.stderr}`);
  return ms;
}

run([bin, 'init']);
run([bin, 'agents', 'add', 'kasra', '--kind', 'claude', '--cap', 'code']);

const cases = {
  'node -e 0': ['-e', '0'],
  'sos --help': [bin, '--help'],
  'sos agents list': [bin, 'agents', 'list'],
};
const samples = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
for (const args of Object.values(cases)) run(args); // warm the page cache
for (let i = 0; i < rounds; i++)
  for (const [name, args] of Object.entries(cases)) samples[name].push(run(args));
rmSync(home, { recursive: true, force: true });

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const base = pct(samples['node -e 0'], 50);
console.log(`startup, ${rounds} interleaved rounds, Node ${process.version}`);
console.log('case               p50 ms   p90 ms   ratio to node (p50)');
for (const [name, xs] of Object.entries(samples)) {
  const p50 = pct(xs, 50);
  console.log(
    `${name.padEnd(17)} ${p50.toFixed(1).padStart(7)} ${pct(xs, 90).toFixed(1).padStart(8)}   ${(p50 / base).toFixed(2)}x`,
  );
}
