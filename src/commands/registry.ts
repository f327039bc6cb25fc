import { agentsCommand } from './agents.js';
import { auditCommand } from './audit.js';
import { completionCommand } from './completion.js';
import { configCommand } from './config.js';
import type { CommandSpec } from './define.js';
import { daemonCommand, metricsCommand } from './daemon.js';
import { doctorCommand } from './doctor.js';
import { hookCommand } from './hook.js';
import { initCommand, migrateCommand } from './init.js';
import { memoryCommand } from './memory.js';
import { mcpCommand } from './mcp.js';
import { ackCommand, heartbeatCommand, inboxCommand, messagesCommand, peersCommand, sendCommand } from './messaging.js';
import { projectsCommand } from './projects.js';
import { squadsCommand } from './squads.js';
import { tasksCommand } from './tasks.js';
import { tokensCommand } from './tokens.js';
import { usageCommand } from './usage.js';
import { budgetsCommand } from './budgets.js';
import { statuslineCommand } from './statusline.js';
import { goalsCommand } from './goals.js';
import { brainCommand } from './brain.js';
import { governanceCommand } from './governance.js';
import { approvalsCommand } from './approvals.js';
import { whoamiCommand } from './whoami.js';
import { topCommand } from './top.js';
import { demoCommand, simCommand } from './sim.js';
import { workerCommand } from './worker.js';

/** Every top-level command, in help order. Adding a noun means adding it here, nowhere else. */
export const COMMANDS: readonly CommandSpec[] = [
  initCommand,
  migrateCommand,
  configCommand,
  doctorCommand,
  projectsCommand,
  agentsCommand,
  squadsCommand,
  tokensCommand,
  whoamiCommand,
  hookCommand,
  sendCommand,
  inboxCommand,
  ackCommand,
  messagesCommand,
  peersCommand,
  heartbeatCommand,
  tasksCommand,
  workerCommand,
  memoryCommand,
  usageCommand,
  budgetsCommand,
  statuslineCommand,
  goalsCommand,
  brainCommand,
  governanceCommand,
  approvalsCommand,
  mcpCommand,
  daemonCommand,
  metricsCommand,
  auditCommand,
  topCommand,
  simCommand,
  demoCommand,
  completionCommand,
];
