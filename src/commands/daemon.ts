import { type CommandSpec, lazy } from './define.js';

const load = () => import('./daemon.run.js');

export const daemonCommand: CommandSpec = {
  name: 'daemon',
  summary: 'run the long-lived loops in the foreground: wake delivery, lifecycle, leases, sweeps; and the HTTP surface',
  group: 'Agents',
  options: [
    { flags: '--probe-interval <duration>', summary: 'lifecycle probe period (default 2s)' },
    { flags: '--sweep-interval <duration>', summary: 'lease and ack sweep period (default 5s)' },
    { flags: '--wake-cooldown <duration>', summary: 'least time between two lines typed into one agent (default 5s)' },
    { flags: '--detached-ptys', summary: 'leave pty agents it started running when it stops' },
    { flags: '--listen <host:port>', summary: 'serve HTTP (MCP at /mcp, /v1, /metrics, health) here, or off (default 127.0.0.1:6070, SOS_LISTEN)' },
    { flags: '--allow-remote', summary: 'allow --listen beyond loopback (put a TLS reverse proxy in front)' },
  ],
  handler: lazy(load, 'run'),
  subcommands: [
    { name: 'status', summary: 'is a daemon running, where, and how its loops are doing', handler: lazy(load, 'status') },
    {
      name: 'install-unit',
      summary: 'write a systemd unit (Type=notify) and its environment file',
      options: [
        { flags: '--user', summary: 'a user unit (default; see loginctl enable-linger)' },
        { flags: '--system', summary: 'a system unit in /etc/systemd/system (root)' },
        { flags: '--print', summary: 'print the unit instead of writing it' },
      ],
      handler: lazy(load, 'installUnit'),
      examples: ['sos daemon install-unit --user && systemctl --user enable --now sos'],
    },
  ],
  examples: ['sos daemon', 'sos daemon --listen 127.0.0.1:7070', 'sos daemon --listen 0.0.0.0:6070 --allow-remote', 'sos daemon status --json'],
};

export const metricsCommand: CommandSpec = {
  name: 'metrics',
  summary: 'operational counters: deliveries, restarts, recoveries, leases, refused claims and fences',
  group: 'Agents',
  options: [{ flags: '--prometheus', summary: 'print the Prometheus text exposition that /metrics serves (for promtool check metrics)' }],
  handler: lazy(load, 'metrics'),
  examples: ['sos metrics --json', 'sos metrics --prometheus | promtool check metrics'],
};
