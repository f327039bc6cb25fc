import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { UsageError } from '../errors.js';
import { type ConfigValues, VARIABLES, type VariableKey, type VariableSpec } from './variables.js';

export type ConfigSource = 'flag' | 'env' | 'file' | 'default';

export interface ResolvedConfig {
  values: ConfigValues;
  sources: Record<VariableKey, ConfigSource>;
  /** The config file that was read, if any. */
  file: string | undefined;
}

export interface ResolveInput {
  env: NodeJS.ProcessEnv;
  /** Values from global flags, keyed by variable key (`db`, `project`, `agent`, `token`). */
  flags: Partial<Record<VariableKey, string>>;
}

export function xdgDataDir(env: NodeJS.ProcessEnv): string {
  return join(env.XDG_DATA_HOME || join(env.HOME || homedir(), '.local', 'share'), 'sos');
}

export function xdgConfigDir(env: NodeJS.ProcessEnv): string {
  return join(env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config'), 'sos');
}

/** `config.json` wins over `config.toml` when both exist; SOS_CONFIG names another file. */
export function configFilePath(env: NodeJS.ProcessEnv): string | undefined {
  if (env.SOS_CONFIG) return env.SOS_CONFIG;
  const dir = xdgConfigDir(env);
  for (const name of ['config.json', 'config.toml']) {
    const path = join(dir, name);
    if (existsSync(path)) return path;
  }
  return undefined;
}

async function readConfigFile(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  try {
    if (path.endsWith('.toml')) {
      const { parse } = await import('smol-toml');
      return parse(text) as Record<string, unknown>;
    }
    const parsed: unknown = JSON.parse(text);
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new Error('expected an object at the top level');
    }
    return parsed as Record<string, unknown>;
  } catch (err) {
    throw new UsageError(`config file ${path} is not valid: ${(err as Error).message}`);
  }
}

/** Precedence: flag > environment > config file > default. Invalid values are usage errors. */
export async function resolveConfig(input: ResolveInput): Promise<ResolvedConfig> {
  const file = configFilePath(input.env);
  const fileValues = file ? await readConfigFile(file) : {};
  const specs = Object.entries(VARIABLES) as [VariableKey, VariableSpec<unknown>][];
  const knownKeys = new Set(specs.map(([, spec]) => spec.key));
  for (const key of Object.keys(fileValues)) {
    if (!knownKeys.has(key)) {
      throw new UsageError(`config file ${file} has an unknown key "${key}"`, {
        hint: `known keys: ${[...knownKeys].join(', ')}`,
      });
    }
  }

  const values: Record<string, unknown> = {};
  const sources: Record<string, ConfigSource> = {};
  // data_dir first: other defaults derive from it.
  const ordered = specs.sort(([a], [b]) => (a === 'dataDir' ? -1 : b === 'dataDir' ? 1 : 0));
  for (const [key, spec] of ordered) {
    const flagValue = input.flags[key];
    const envValue = input.env[spec.env];
    const fileValue = fileValues[spec.key];
    let raw: unknown;
    let source: ConfigSource;
    let origin: string;
    if (flagValue !== undefined) {
      [raw, source, origin] = [flagValue, 'flag', spec.flag ?? key];
    } else if (envValue !== undefined && envValue !== '') {
      [raw, source, origin] = [envValue, 'env', spec.env];
    } else if (fileValue !== undefined) {
      [raw, source, origin] = [fileValue, 'file', `${spec.key} in ${file}`];
    } else {
      values[key] = spec.default({
        dataDir: (values.dataDir as string | undefined) ?? xdgDataDir(input.env),
      });
      sources[key] = 'default';
      continue;
    }
    const parsed = spec.schema.safeParse(raw);
    if (!parsed.success) {
      const reason = parsed.error.issues[0]?.message ?? 'invalid value';
      throw new UsageError(`invalid value for ${origin}: ${reason}`);
    }
    values[key] = parsed.data;
    sources[key] = source;
  }
  return { values: values as ConfigValues, sources: sources as Record<VariableKey, ConfigSource>, file };
}
