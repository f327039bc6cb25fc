import { runChecks } from '../core/doctor/checks.js';
import type { Invocation, Output } from './define.js';
import { loadConfig } from './session.js';

const MARK = { ok: 'ok  ', warn: 'warn', fail: 'FAIL', skip: 'skip' } as const;

export async function doctor(inv: Invocation): Promise<Output> {
  const config = await loadConfig(inv);
  const checks = await runChecks(config.values, inv.cwd);
  const healthy = checks.every((c) => c.status !== 'fail');
  const width = Math.max(...checks.map((c) => c.name.length));
  const lines = checks.map((c) => {
    const line = `${MARK[c.status]}  ${c.name.padEnd(width)}  ${c.detail}`;
    return c.hint && c.status !== 'ok' ? `${line}\n${' '.repeat(width + 8)}→ ${c.hint}` : line;
  });
  return {
    data: { healthy, checks },
    human: lines.join('\n'),
    quiet: healthy
      ? ''
      : checks
          .filter((c) => c.status === 'fail')
          .map((c) => `${c.name}: ${c.detail}`)
          .join('\n'),
    exitCode: healthy ? 0 : 1,
  };
}
