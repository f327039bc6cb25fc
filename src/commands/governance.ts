import { type CommandSpec, lazy } from './define.js';

const load = () => import('./governance.run.js');
// Kept in step with MOTOR_METHODS and GOVERNANCE_TIERS (src/core/brain/motor.ts) by the CLI test;
// written out here so building the program loads no core module.
const METHODS = ['create_task', 'send_message', 'research', 'fix_code', 'health_check', 'post_content', 'send_outreach'] as const;
const TIERS = ['act_freely', 'batch_approve', 'human_gate', 'dual_approval'] as const;

export const governanceCommand: CommandSpec = {
  name: 'governance',
  summary: "each motor method's tier: act freely, or wait for approval (sos approvals)",
  group: 'Work',
  subcommands: [
    {
      name: 'set',
      summary: "set a method's tier in the project (admin)",
      args: [
        { name: 'method', summary: 'a motor method', choices: METHODS },
        { name: 'tier', summary: 'act_freely, batch_approve, human_gate (one approve) or dual_approval (two approvers)', choices: TIERS },
      ],
      handler: lazy(load, 'set'),
      examples: ['sos governance set create_task human_gate', 'sos governance set send_outreach dual_approval'],
    },
    { name: 'list', summary: 'every motor method with its tier in force, default or set', handler: lazy(load, 'list') },
  ],
};
