import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import {
  environmentFilePath,
  installUnit,
  notifyReady,
  notifyStatus,
  notifyStopping,
  quoteEnvValue,
  quoteExecArg,
  renderEnvironmentFile,
  renderUnit,
  settingsInForce,
  unitPath,
} from '../../src/core/daemon/systemd.js';
import { resolveConfig } from '../../src/core/config/resolve.js';
import { UsageError } from '../../src/core/errors.js';

const BIN_SOS = resolve(import.meta.dirname, '../../bin/sos');
const SYSTEMD_ANALYZE = '/usr/bin/systemd-analyze';

function onPath(name: string): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => dir !== '' && existsSync(join(dir, name)));
}
const HAS_ANALYZE = existsSync(SYSTEMD_ANALYZE);
const HAS_NOTIFY = onPath('systemd-notify') && onPath('python3');

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(prefix = 'sos-systemd-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

/** `Key=value` lines of one section, in order (keys may repeat). */
function section(unit: string, name: string): string[] {
  const start = unit.split('\n').indexOf(`[${name}]`);
  expect(start, `section [${name}]`).toBeGreaterThanOrEqual(0);
  const rest = unit.split('\n').slice(start + 1);
  const end = rest.findIndex((l) => l.startsWith('['));
  return (end === -1 ? rest : rest.slice(0, end)).filter((l) => l.includes('='));
}

function run(
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(file, args, { env }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      done({ code, stdout, stderr });
    });
  });
}

describe('systemd unit', () => {
  it('renders a user unit: notify readiness, env file, restart and stop policy, journald', () => {
    const unit = renderUnit({
      scope: 'user',
      execStart: ['/usr/bin/node', '/opt/sos/bin/sos', 'daemon'],
      environmentFile: '/home/u/.config/sos/sos.env',
    });
    expect(section(unit, 'Unit')).toEqual([
      'Description=sos daemon (bus, tasks, memory, lifecycle)',
      'Wants=network-online.target',
      'After=network-online.target',
    ]);
    expect(section(unit, 'Service')).toEqual([
      'Type=notify',
      'NotifyAccess=all',
      'ExecStart=/usr/bin/node /opt/sos/bin/sos daemon',
      'EnvironmentFile=-/home/u/.config/sos/sos.env',
      'Restart=on-failure',
      'RestartSec=2',
      'TimeoutStopSec=30',
      'KillMode=mixed',
      'KillSignal=SIGTERM',
      'StandardOutput=journal',
      'StandardError=journal',
      'SyslogIdentifier=sos',
    ]);
    expect(section(unit, 'Install')).toEqual(['WantedBy=default.target']);
    expect(unit).not.toContain('User=');
  });

  it('renders a system unit: ordering after local backends, User=, multi-user.target, quoted paths', () => {
    const unit = renderUnit({
      scope: 'system',
      execStart: ['/opt/my node/bin/node', '/srv/sos 100%/bin/sos', 'daemon'],
      environmentFile: '/etc/sos/sos.env',
      workingDirectory: '/srv/sos 100%',
      user: 'sos',
      description: 'sos for 100% of agents',
    });
    const unitLines = section(unit, 'Unit');
    expect(unitLines).toContain('Description=sos for 100%% of agents');
    expect(unitLines).toContain('After=network-online.target postgresql.service redis-server.service');
    // Ordering hints only: a missing or remote PostgreSQL/Redis must not block or pull in anything.
    expect(unitLines.filter((l) => /^(Wants|Requires)=/.test(l))).toEqual(['Wants=network-online.target']);
    const service = section(unit, 'Service');
    expect(service).toContain('ExecStart="/opt/my node/bin/node" "/srv/sos 100%%/bin/sos" daemon');
    expect(service).toContain('WorkingDirectory=/srv/sos 100%%');
    expect(service).toContain('User=sos');
    expect(section(unit, 'Install')).toEqual(['WantedBy=multi-user.target']);
  });

  it('quotes command-line arguments per systemd.syntax', () => {
    expect(quoteExecArg('/usr/bin/node')).toBe('/usr/bin/node');
    expect(quoteExecArg('--flag=a,b:c@d+e')).toBe('--flag=a,b:c@d+e');
    expect(quoteExecArg('/a b/c')).toBe('"/a b/c"');
    expect(quoteExecArg('say "hi"')).toBe('"say \\"hi\\""');
    expect(quoteExecArg('C:\\dir')).toBe('"C:\\\\dir"');
    expect(quoteExecArg('$HOME')).toBe('"$$HOME"');
    expect(quoteExecArg('50%')).toBe('"50%%"');
    expect(quoteExecArg("it's")).toBe('"it\'s"');
    expect(quoteExecArg('a\tb')).toBe('"a\\tb"');
    expect(quoteExecArg('')).toBe('""');
    expect(quoteExecArg(';')).toBe('\\;');
    expect(() => quoteExecArg('a\nExecStartPre=/bin/evil')).toThrow(UsageError);
  });

  it('refuses a relative executable and newlines that would inject settings', () => {
    const base = { scope: 'user' as const, environmentFile: '/e/sos.env' };
    expect(() => renderUnit({ ...base, execStart: ['node', 'sos'] })).toThrow(UsageError);
    expect(() => renderUnit({ ...base, execStart: [] })).toThrow(UsageError);
    expect(() => renderUnit({ ...base, execStart: ['/opt/$x/node'] })).toThrow(UsageError);
    expect(() => renderUnit({ ...base, execStart: ['/n'], description: 'x\nUser=root' })).toThrow(UsageError);
    expect(() => renderUnit({ ...base, execStart: ['/n'], environmentFile: 'rel.env' })).toThrow(UsageError);
    expect(() => renderUnit({ ...base, scope: 'system', execStart: ['/n'], user: 'a b' })).toThrow(UsageError);
  });

  it('places unit and env file under XDG_CONFIG_HOME (user) or /etc (system)', () => {
    const env = { HOME: '/home/u', XDG_CONFIG_HOME: '/cfg' };
    expect(unitPath('user', env)).toBe('/cfg/systemd/user/sos.service');
    expect(environmentFilePath('user', env)).toBe('/cfg/sos/sos.env');
    expect(unitPath('user', { HOME: '/home/u' })).toBe('/home/u/.config/systemd/user/sos.service');
    expect(environmentFilePath('user', { HOME: '/home/u', XDG_CONFIG_HOME: 'relative' })).toBe(
      '/home/u/.config/sos/sos.env',
    );
    expect(unitPath('system', env)).toBe('/etc/systemd/system/sos.service');
    expect(environmentFilePath('system', env)).toBe('/etc/sos/sos.env');
  });
});

describe('environment file', () => {
  it('quotes values so systemd and a POSIX shell read them back unchanged', () => {
    expect(quoteEnvValue('postgres://u@h:5432/db')).toBe('postgres://u@h:5432/db');
    expect(quoteEnvValue('a b')).toBe("'a b'");
    expect(quoteEnvValue('$HOME\\n`x`')).toBe("'$HOME\\n`x`'");
    expect(quoteEnvValue(`it's "$x" \\ \`y\``)).toBe('"it\'s \\"\\$x\\" \\\\ \\`y\\`"');
    expect(quoteEnvValue('')).toBe("''");
  });

  it('writes the settings in force (flags, environment) in registry order, says it holds secrets', async () => {
    const config = await resolveConfig({
      env: { PATH: '/bin', HOME: '/nonexistent', SOS_TOKEN: 'tok en', SOS_DB: 'postgres://sos:pw@db/sos', SOS_AGENT: '' },
      flags: { project: 'alpha' },
    });
    const values = settingsInForce(config);
    // Defaults (the data directory, intervals…) stay out: the daemon computes them itself.
    expect(values).toEqual({ SOS_DB: 'postgres://sos:pw@db/sos', SOS_TOKEN: 'tok en', SOS_PROJECT: 'alpha' });
    const text = renderEnvironmentFile(values);
    const lines = text.split('\n');
    expect(lines.filter((l) => !l.startsWith('#') && l !== '')).toEqual([
      'SOS_DB=postgres://sos:pw@db/sos',
      "SOS_TOKEN='tok en'",
      'SOS_PROJECT=alpha',
    ]);
    expect(lines.find((l) => l.includes('secrets'))).toContain('SOS_TOKEN');
    expect(lines.find((l) => l.includes('secrets'))).toContain('0600');
    expect(() => renderEnvironmentFile({ 'BAD-NAME': 'x' })).toThrow(UsageError);
  });

  it('round-trips awkward values through a POSIX shell (the same quoting rules systemd documents)', async () => {
    const values = {
      SOS_TOKEN: `it's "quoted" $HOME \\ \`cmd\` 100%`,
      SOS_EMBEDDER_KEY: 'plain $not_a_var `nor` \\this',
      SOS_PROJECT: 'alpha',
      SOS_DB: '/path with spaces/sos.db',
    };
    const file = join(tempDir(), 'sos.env');
    writeFileSync(file, renderEnvironmentFile(values));
    const { code, stdout, stderr } = await run('/bin/sh', ['-c', 'set -a; . "$0"; exec env -0', file], {
      PATH: process.env.PATH,
    });
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const read = Object.fromEntries(
      stdout
        .split('\0')
        .filter((kv) => kv.startsWith('SOS_'))
        .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
    );
    expect(read).toEqual(values);
  });
});

describe('installUnit', () => {
  const execStart = ['/usr/bin/node', '/opt/sos/bin/sos', 'daemon'];

  function xdgEnv(): NodeJS.ProcessEnv {
    const home = tempDir();
    return { HOME: home, XDG_CONFIG_HOME: join(home, 'config') };
  }

  it('with print, returns the text and the next commands and writes nothing', async () => {
    const env = xdgEnv();
    const result = await installUnit({ scope: 'user', print: true, env, execStart, values: { SOS_PROJECT: 'p' } });
    expect(result.written).toBe(false);
    expect(result.unitPath).toBe(join(env.XDG_CONFIG_HOME!, 'systemd', 'user', 'sos.service'));
    expect(result.envPath).toBe(join(env.XDG_CONFIG_HOME!, 'sos', 'sos.env'));
    expect(result.unit).toContain(`EnvironmentFile=-${result.envPath}`);
    expect(result.next).toEqual([
      'systemctl --user daemon-reload',
      'systemctl --user enable --now sos',
      'loginctl enable-linger $USER',
      'journalctl --user -u sos -f',
    ]);
    expect(existsSync(env.XDG_CONFIG_HOME!)).toBe(false);
  });

  it('writes the unit and a 0600 env file, and never overwrites an existing env file', async () => {
    const env = xdgEnv();
    const first = await installUnit({
      scope: 'user',
      print: false,
      env,
      execStart,
      values: { SOS_TOKEN: 'secret-1', SOS_PROJECT: 'p' },
    });
    expect(first.written).toBe(true);
    expect(first.envFileKept).toBe(false);
    expect(readFileSync(first.unitPath, 'utf8')).toBe(first.unit);
    expect(statSync(first.envPath).mode & 0o777).toBe(0o600);
    expect(readFileSync(first.envPath, 'utf8')).toContain('SOS_TOKEN=secret-1');

    writeFileSync(first.envPath, 'SOS_PROJECT=edited-by-hand\n');
    const second = await installUnit({
      scope: 'user',
      print: false,
      env,
      execStart: ['/usr/local/bin/node', '/opt/sos/bin/sos', 'daemon'],
      values: { SOS_TOKEN: 'secret-2' },
    });
    expect(second.envFileKept).toBe(true);
    expect(readFileSync(second.envPath, 'utf8')).toBe('SOS_PROJECT=edited-by-hand\n');
    // The unit only encodes paths, so it is regenerated.
    expect(readFileSync(second.unitPath, 'utf8')).toContain('ExecStart=/usr/local/bin/node ');
  });

  it('refuses the system scope without root unless printing', async () => {
    const env = xdgEnv();
    await expect(installUnit({ scope: 'system', print: false, env, execStart, values: {}, uid: 1000 })).rejects.toThrow(
      UsageError,
    );
    const printed = await installUnit({ scope: 'system', print: true, env, execStart, values: {}, uid: 1000 });
    expect(printed.unitPath).toBe('/etc/systemd/system/sos.service');
    expect(printed.unit).toContain('EnvironmentFile=-/etc/sos/sos.env');
    expect(printed.next).toEqual(['systemctl daemon-reload', 'systemctl enable --now sos', 'journalctl -u sos -f']);
  });
});

/**
 * `systemd-analyze verify` loads the unit into an offline manager (no running systemd needed) and
 * reports parse errors, unknown keys, bad values and a non-executable ExecStart. We fail on a
 * non-zero exit and on any output line naming our unit or our temp directory. Lines naming
 * neither are about the host's own units (e.g. a distro unit with an unknown key, pulled in while
 * loading our dependencies) and are ignored — on this machine there are none.
 */
describe.skipIf(!HAS_ANALYZE)(
  HAS_ANALYZE ? 'systemd-analyze verify' : `systemd-analyze verify — skipped: ${SYSTEMD_ANALYZE} is not installed`,
  () => {
    async function verify(scope: 'user' | 'system', user?: string): Promise<void> {
      // Spaces and `%` in every path, `$` where systemd allows it (not the executable): a bad split
      // or a missed escape makes verify report e.g. "Command /tmp/sos is not executable".
      const dir = tempDir('sos systemd 100% ');
      const settings = join(dir, 'cost $5 ${HOME}');
      mkdirSync(settings);
      const nodeDir = join(dir, 'node dir');
      mkdirSync(nodeDir);
      symlinkSync(process.execPath, join(nodeDir, 'node'));
      const file = join(dir, 'sos.service');
      writeFileSync(
        file,
        renderUnit({
          scope,
          execStart: [join(nodeDir, 'node'), BIN_SOS, 'daemon'],
          environmentFile: join(settings, 'sos.env'),
          workingDirectory: settings,
          ...(user === undefined ? {} : { user }),
        }),
      );
      const runtime = join(dir, 'runtime');
      mkdirSync(runtime, { mode: 0o700 });
      const { code, stdout, stderr } = await run(
        SYSTEMD_ANALYZE,
        // --man=no: do not require man pages on the host; --user needs XDG_RUNTIME_DIR for its
        // offline manager even though no user manager runs.
        ['verify', '--man=no', `--${scope}`, file],
        {
          PATH: process.env.PATH,
          HOME: dir,
          XDG_RUNTIME_DIR: runtime,
          SYSTEMD_LOG_LEVEL: 'info',
          SYSTEMD_LOG_COLOR: '0',
          SYSTEMD_PAGER: 'cat',
        },
      );
      const lines = `${stdout}\n${stderr}`.split('\n').filter((l) => l.trim() !== '');
      const ours = lines.filter((l) => l.includes('sos.service') || l.includes(dir));
      expect({ code, ours }, lines.join('\n')).toEqual({ code: 0, ours: [] });
    }

    it('accepts the user unit', async () => {
      await verify('user');
    });

    it('accepts the system unit', async () => {
      await verify('system', userInfo().username);
    });
  },
);

/**
 * A real sd_notify receiver: Node has no AF_UNIX datagram sockets, so python3 binds one and
 * prints each datagram on a line. systemd-notify then talks to it exactly as to systemd.
 */
describe.skipIf(!HAS_NOTIFY)(HAS_NOTIFY ? 'sd_notify' : 'sd_notify — skipped: systemd-notify or python3 is not on PATH', () => {
  async function receiver(): Promise<{ socket: string; received: () => string }> {
    const socket = join(tempDir('sos-notify-'), 'notify.sock');
    const script = [
      'import socket, sys',
      's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
      's.bind(sys.argv[1])',
      'print("bound", flush=True)',
      'while True:',
      // recv() without ancillary space: the kernel closes any passed fd, which is how
      // systemd-notify's BARRIER=1 wait learns the message was read.
      '    print(s.recv(65536).decode().replace("\\n", " "), flush=True)',
    ].join('\n');
    const child = spawn('python3', ['-c', script, socket], { stdio: ['ignore', 'pipe', 'pipe'] });
    const closed = new Promise<void>((done) => child.once('close', () => done()));
    onTestFinished(async () => {
      if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
      await closed;
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
    await new Promise<void>((ready, fail) => {
      const timer = setTimeout(() => fail(new Error(`python3 receiver did not bind: ${err}`)), 10_000);
      const check = (): void => {
        if (out.startsWith('bound\n')) {
          clearTimeout(timer);
          ready();
        }
      };
      child.stdout.on('data', check);
      child.once('close', () => {
        clearTimeout(timer);
        fail(new Error(`python3 receiver exited: ${err}`));
      });
    });
    return { socket, received: () => out };
  }

  it('does nothing without NOTIFY_SOCKET', async () => {
    await expect(notifyReady({ PATH: process.env.PATH })).resolves.toBeUndefined();
  });

  it('sends READY=1, STATUS= and STOPPING=1 to NOTIFY_SOCKET', async () => {
    const { socket, received } = await receiver();
    const env = { PATH: process.env.PATH, NOTIFY_SOCKET: socket };
    await expect(notifyReady(env)).resolves.toBeUndefined();
    expect(received()).toMatch(/^READY=1$/m);
    await expect(notifyStatus('draining 3 tasks\nnow', env)).resolves.toBeUndefined();
    expect(received()).toMatch(/^STATUS=draining 3 tasks now$/m);
    await expect(notifyStopping(env)).resolves.toBeUndefined();
    expect(received()).toMatch(/^STOPPING=1$/m);
  });

  it('reports, never throws, when the socket is gone', async () => {
    const env = { PATH: process.env.PATH, NOTIFY_SOCKET: join(tempDir(), 'nobody-listens.sock') };
    await expect(notifyReady(env)).resolves.toMatch(/systemd-notify --ready failed/);
  });
});
