import { execFile } from 'node:child_process';
import { mkdir, open, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import type { ResolvedConfig } from '../config/resolve.js';
import { VARIABLES, type VariableKey, type VariableSpec } from '../config/variables.js';
import { UsageError } from '../errors.js';

/**
 * Running `sos daemon` under systemd: the unit file and its environment file, where they go, and
 * the sd_notify readiness messages. Everything here is plain text generation plus two file writes;
 * nothing talks to systemd except `systemd-notify`, so it works (and is testable) on hosts where
 * systemd is not PID 1.
 */

export type UnitScope = 'user' | 'system';

export interface UnitInput {
  scope: UnitScope;
  /** Absolute path of the executable first (the node binary), then its arguments. */
  execStart: string[];
  environmentFile: string;
  workingDirectory?: string;
  /** System scope only: the account the daemon runs as. */
  user?: string;
  description?: string;
}

export interface InstallInput {
  scope: UnitScope;
  /** Only render; write nothing (allowed for system scope without root). */
  print: boolean;
  env: NodeJS.ProcessEnv;
  execStart: string[];
  /** The SOS_* values to seed the environment file with (see `settingsInForce`). */
  values: Record<string, string>;
  /** Effective uid, for the root check; defaults to this process's. Tests pass it to reach the refusal. */
  uid?: number;
}

export interface InstallResult {
  unitPath: string;
  envPath: string;
  unit: string;
  /** True when the files were written (false with `print`). */
  written: boolean;
  /** An environment file already existed and was left untouched (it may hold edited settings). */
  envFileKept: boolean;
  /** Commands the user runs next, in order. */
  next: string[];
}

const UNIT_NAME = 'sos.service';

function xdgConfigHome(env: NodeJS.ProcessEnv): string {
  // The XDG spec says a relative XDG_CONFIG_HOME is invalid and must be ignored.
  const configured = env.XDG_CONFIG_HOME;
  return configured && isAbsolute(configured) ? configured : join(env.HOME || homedir(), '.config');
}

export function unitPath(scope: UnitScope, env: NodeJS.ProcessEnv): string {
  return scope === 'user'
    ? join(xdgConfigHome(env), 'systemd', 'user', UNIT_NAME)
    : join('/etc/systemd/system', UNIT_NAME);
}

export function environmentFilePath(scope: UnitScope, env: NodeJS.ProcessEnv): string {
  return scope === 'user' ? join(xdgConfigHome(env), 'sos', 'sos.env') : '/etc/sos/sos.env';
}

function rejectControl(what: string, value: string): void {
  // A newline would end the unit-file line and start a new (attacker-chosen) setting.
  if (/[\0\n\r]/.test(value)) throw new UsageError(`${what} must not contain a newline or NUL: ${JSON.stringify(value)}`);
}

/**
 * Specifiers (`%n`, `%h`, …) are expanded in nearly every unit setting, so a literal `%` must be
 * written `%%` wherever a value lands in the unit file.
 */
function escapeSpecifiers(value: string): string {
  return value.replace(/%/g, '%%');
}

/** Characters that need no quoting in a command line (systemd.syntax / systemd.service "Command lines"). */
const BARE_WORD = /^[A-Za-z0-9_@+=:,./-]+$/;

/**
 * Quotes one command-line argument for `ExecStart=`: systemd splits on whitespace, honours double
 * quotes with C-style escapes, expands `$VAR`/`${VAR}` from the environment and `%` specifiers.
 * So a word is left bare when it is plainly safe, otherwise double-quoted with `\` and `"`
 * escaped, `$` doubled (literal dollar) and `%` doubled (literal percent).
 */
export function quoteExecArg(arg: string): string {
  rejectControl('A command-line argument', arg);
  // A lone `;` would separate two commands; systemd.service documents `\;` for a literal one.
  if (arg === ';') return '\\;';
  if (BARE_WORD.test(arg)) return arg;
  const body = arg
    .replace(/\\/g, '\\\\')
    .replace(/"/g, '\\"')
    .replace(/\t/g, '\\t')
    .replace(/\$/g, '$$$$')
    .replace(/%/g, '%%');
  return `"${body}"`;
}

export function renderUnit(input: UnitInput): string {
  const [command] = input.execStart;
  if (command === undefined || !isAbsolute(command)) {
    throw new UsageError('ExecStart needs an absolute executable path first', {
      hint: 'pass process.execPath and the absolute path of bin/sos',
    });
  }
  // systemd expands `$VAR` in the arguments but takes the executable path literally (verified with
  // systemd-analyze 252: `$$` there is looked up as two dollars), so no escape is right for both
  // places; refuse rather than depend on the version.
  if (command.includes('$')) {
    throw new UsageError(`The executable path must not contain "$": ${command}`, {
      hint: 'install node under a path without "$" or point at a symlink to it',
    });
  }
  const description = input.description ?? 'sos daemon (bus, tasks, memory, lifecycle)';
  rejectControl('Description', description);
  rejectControl('EnvironmentFile', input.environmentFile);
  if (!isAbsolute(input.environmentFile)) throw new UsageError('EnvironmentFile must be an absolute path');

  const unit: string[] = ['[Unit]', `Description=${escapeSpecifiers(description)}`];
  // network-online is wanted so a remote PostgreSQL/Redis URL resolves at start; in user scope it
  // is only an ordering hint (user managers cannot pull in system targets) but costs nothing.
  unit.push('Wants=network-online.target');
  if (input.scope === 'system') {
    // Ordering only, no Wants=/Requires=: local PostgreSQL/Redis are optional backends and may be
    // absent or remote; if they are installed here, start after them. After= on a missing unit is a no-op.
    unit.push('After=network-online.target postgresql.service redis-server.service');
  } else {
    unit.push('After=network-online.target');
  }

  const service: string[] = [
    '',
    '[Service]',
    // sos reports readiness once its loops and HTTP surface are up, so dependants start after that.
    'Type=notify',
    // The READY=1 datagram comes from a `systemd-notify` child, not the main PID; systemd drops
    // messages from other processes unless NotifyAccess=all.
    'NotifyAccess=all',
    `ExecStart=${input.execStart.map(quoteExecArg).join(' ')}`,
    // The leading `-` makes a missing file non-fatal: every SOS_* has a default.
    `EnvironmentFile=-${escapeSpecifiers(input.environmentFile)}`,
  ];
  if (input.workingDirectory !== undefined) {
    rejectControl('WorkingDirectory', input.workingDirectory);
    if (!isAbsolute(input.workingDirectory)) throw new UsageError('WorkingDirectory must be an absolute path');
    // WorkingDirectory= takes the rest of the line verbatim, so spaces need no quoting.
    service.push(`WorkingDirectory=${escapeSpecifiers(input.workingDirectory)}`);
  }
  if (input.scope === 'system' && input.user !== undefined) {
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$/.test(input.user)) throw new UsageError(`Not a valid user name: ${input.user}`);
    service.push(`User=${escapeSpecifiers(input.user)}`);
  }
  service.push(
    'Restart=on-failure',
    'RestartSec=2',
    // Long enough for the first SIGTERM to drain in-flight work; then SIGKILL.
    'TimeoutStopSec=30',
    // mixed: SIGTERM goes to the main process only, so sos can drain and stop its own children
    // (agent sessions, helpers) in order; whatever is left in the cgroup after the main process
    // exits (or at the timeout) gets SIGKILL. control-group would SIGTERM every child at once and
    // race the drain.
    'KillMode=mixed',
    'KillSignal=SIGTERM',
    // The default already, stated so the unit documents where logs go (one line per event).
    'StandardOutput=journal',
    'StandardError=journal',
    'SyslogIdentifier=sos',
  );

  const install = ['', '[Install]', `WantedBy=${input.scope === 'user' ? 'default.target' : 'multi-user.target'}`];
  return [...unit, ...service, ...install, ''].join('\n');
}

/**
 * Quotes a value for an EnvironmentFile= line. Bare when plainly safe; else single quotes, which
 * systemd (like a POSIX shell) takes verbatim; a value holding `'` is double-quoted with `\ " $ \``
 * escaped, which both systemd and `sh` read back identically. So the file can also be sourced
 * by a shell (`set -a; . sos.env`).
 */
export function quoteEnvValue(value: string): string {
  if (value.includes('\0')) throw new UsageError('An environment value must not contain NUL');
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(value)) return value;
  if (!value.includes("'")) return `'${value}'`;
  return `"${value.replace(/[\\"$`]/g, (c) => `\\${c}`)}"`;
}

const REGISTRY = Object.values(VARIABLES);

/**
 * The settings in force that did not come from a default (flags, environment or the config
 * file), as SOS_* variables: what the daemon's environment file should hold so that the daemon
 * under systemd sees what the installing shell saw.
 */
export function settingsInForce(config: Pick<ResolvedConfig, 'values' | 'sources'>): Record<string, string> {
  const values: Record<string, string> = {};
  for (const [key, spec] of Object.entries(VARIABLES) as [VariableKey, VariableSpec<unknown>][]) {
    const value = config.values[key];
    if (config.sources[key] === 'default' || value === undefined) continue;
    values[spec.env] = String(value);
  }
  return values;
}

export function renderEnvironmentFile(values: Record<string, string>): string {
  const order = new Map<string, number>(REGISTRY.map((spec, i) => [spec.env, i]));
  const keys = Object.keys(values).sort((a, b) => (order.get(a) ?? Infinity) - (order.get(b) ?? Infinity) || a.localeCompare(b));
  for (const key of keys) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new UsageError(`Not a valid environment variable name: ${key}`);
  }
  const secrets = REGISTRY.filter((spec) => spec.secret === true && values[spec.env] !== undefined).map((s) => s.env);
  const header = [
    '# Settings for `sos daemon` under systemd (read via EnvironmentFile=).',
    '# One KEY=value per line; `sos config` lists every SOS_* variable and its default.',
    '# After editing, restart the daemon: systemctl [--user] restart sos',
    secrets.length > 0
      ? `# Holds secrets (${secrets.join(', ')}): keep this file mode 0600, owned by the daemon's user.`
      : '# May hold secrets (SOS_TOKEN, SOS_EMBEDDER_KEY, …): keep this file mode 0600.',
  ];
  const lines = keys.map((key) => `${key}=${quoteEnvValue(values[key] ?? '')}`);
  return [...header, '', ...lines, ''].join('\n');
}

/**
 * Writes (or, with `print`, only renders) the unit and its environment file. The unit is always
 * regenerated — it only encodes paths — but an existing environment file is kept, because it is
 * where the user edits settings.
 */
export async function installUnit(input: InstallInput): Promise<InstallResult> {
  const uid = input.uid ?? process.getuid?.();
  if (input.scope === 'system' && !input.print && uid !== 0) {
    throw new UsageError('Installing the system unit needs root', {
      hint: 'run it with sudo, use --user for a per-user unit, or --print to see the files',
    });
  }
  const path = unitPath(input.scope, input.env);
  const envPath = environmentFilePath(input.scope, input.env);
  const unit = renderUnit({ scope: input.scope, execStart: input.execStart, environmentFile: envPath });
  const envText = renderEnvironmentFile(input.values);
  const next = nextCommands(input.scope);
  if (input.print) return { unitPath: path, envPath, unit, written: false, envFileKept: false, next };

  await mkdir(dirname(path), { recursive: true });
  // Write-then-rename so a running `systemctl daemon-reload` never reads half a unit.
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, unit, { mode: 0o644 });
  await rename(tmp, path);

  // The env file may hold secrets: 0700 directory, 0600 file, created exclusively (`wx`) so an
  // existing file — possibly hand-edited — is never replaced.
  await mkdir(dirname(envPath), { recursive: true, mode: 0o700 });
  let envFileKept = false;
  try {
    const handle = await open(envPath, 'wx', 0o600);
    try {
      await handle.writeFile(envText);
    } finally {
      await handle.close();
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    envFileKept = true;
  }
  return { unitPath: path, envPath, unit, written: true, envFileKept, next };
}

function nextCommands(scope: UnitScope): string[] {
  return scope === 'user'
    ? [
        'systemctl --user daemon-reload',
        'systemctl --user enable --now sos',
        // Without lingering, the user manager (and sos with it) stops at logout and is not started at boot.
        'loginctl enable-linger $USER',
        'journalctl --user -u sos -f',
      ]
    : ['systemctl daemon-reload', 'systemctl enable --now sos', 'journalctl -u sos -f'];
}

/**
 * Sends one sd_notify message via `systemd-notify` (no shell). Does nothing without NOTIFY_SOCKET
 * (not started by systemd, or Type=simple). Never throws: a failed notification must not take the
 * daemon down; the reason is returned for the caller to log, `undefined` meaning sent or not needed.
 *
 * systemd-notify (v246+) waits for the manager to process the message (a BARRIER=1 round trip)
 * before exiting; that is what makes NotifyAccess=all reliable for a short-lived sender whose PID
 * the manager must still be able to map to our cgroup. Hence the generous timeout.
 */
async function sdNotify(args: string[], env: NodeJS.ProcessEnv): Promise<string | undefined> {
  if (!env.NOTIFY_SOCKET) return undefined;
  return new Promise((resolve) => {
    execFile('systemd-notify', args, { env, timeout: 15_000, windowsHide: true }, (err, _stdout, stderr) => {
      if (!err) return resolve(undefined);
      const detail = stderr.trim() || err.message;
      resolve(`systemd-notify ${args.join(' ')} failed: ${detail}`);
    });
  });
}

export function notifyReady(env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  return sdNotify(['--ready'], env);
}

/**
 * `--stopping` only exists from systemd 253; the raw `STOPPING=1` assignment is what it sends and
 * works on every version, so it is used unconditionally instead of probing the version.
 */
export function notifyStopping(env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  return sdNotify(['STOPPING=1'], env);
}

export function notifyStatus(text: string, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  // STATUS= is one line; a newline would end it early.
  return sdNotify([`--status=${text.replace(/[\r\n]+/g, ' ')}`], env);
}
