import { VARIABLES, type VariableKey } from '../core/config/variables.js';
import { redactUrl } from '../core/store/sql/driver.js';
import type { Invocation, Output } from './define.js';
import { table } from './format.js';
import { loadConfig } from './session.js';

function shown(key: VariableKey, value: unknown): string | null {
  if (value === undefined) return null;
  const spec = VARIABLES[key];
  if ('secret' in spec && spec.secret)
    return typeof value === 'string' && /^[a-z]+:\/\//.test(value) ? redactUrl(value) : '***';
  if (typeof value === 'string' && /^postgres(ql)?:\/\//.test(value)) return redactUrl(value);
  return String(value);
}

export async function config(inv: Invocation): Promise<Output> {
  const resolved = await loadConfig(inv);
  const keys = Object.keys(VARIABLES) as VariableKey[];
  const entries = keys.map((key) => {
    const spec = VARIABLES[key];
    return {
      name: spec.env,
      key: spec.key,
      flag: 'flag' in spec ? spec.flag : null,
      value: shown(key, resolved.values[key]),
      source: resolved.sources[key],
      doc: spec.doc,
    };
  });
  return {
    data: { file: resolved.file ?? null, variables: entries },
    human: [
      `config file: ${resolved.file ?? '(none)'}`,
      table(
        ['variable', 'value', 'from', 'meaning'],
        entries.map((e) => [e.name, e.value ?? '(unset)', e.source, e.doc]),
      ),
    ].join('\n'),
  };
}
