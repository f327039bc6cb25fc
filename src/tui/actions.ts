/**
 * What the keys of `sos top` do, each through the core function the CLI command calls:
 * `p` is `sos agents park|unpark` (parkAgent / unparkAgent), `s` is `sos send` (sendMessage),
 * `A` is `sos approvals approve|deny` (approve / deny), `a` is `sos attach` (attachAgentSession), and `r` is the lifecycle restart the daemon's supervisor takes (runAction with a restart plan),
 * refused inside the supervisor's own guardrails (restart limit per window, cooldown).
 */
import type { Caller } from '../core/auth/caller.js';
import type { BusContext } from '../core/bus/service.js';
import type { LifecycleContext } from '../core/lifecycle/context.js';
import type { AgentStateRecord } from '../core/lifecycle/sql-lifecycle.js';
import type { Agent } from '../core/store/types.js';

export interface ActionParts {
  life: LifecycleContext;
  bus: BusContext;
  caller: Caller;
}

export interface Outcome {
  ok: boolean;
  text: string;
}

const failure = (err: unknown): Outcome => {
  const given = (err as { hint?: unknown } | null)?.hint;
  const hint = typeof given === 'string' ? ` (${given})` : '';
  return { ok: false, text: (err instanceof Error ? err.message : String(err)) + hint };
};

/** Parks the agent (claims kept, as `sos agents park` without --release), or unparks it when parked. */
export async function togglePark(parts: ActionParts, name: string): Promise<Outcome> {
  try {
    const stored = await parts.life.repo.get(parts.caller.project, name);
    if (stored?.state === 'parked') {
      const { unparkAgent } = await import('../core/lifecycle/service.js');
      await unparkAgent(parts.life, parts.caller, name);
      return { ok: true, text: `${name} unparked` };
    }
    const { parkAgent } = await import('../core/lifecycle/service.js');
    const action = await parkAgent(parts.life, parts.caller, name, { reason: 'from sos top' });
    return { ok: action.outcome !== 'failed', text: `${name}: ${action.detail}` };
  } catch (err) {
    return failure(err);
  }
}

/** `sos send <name> <text>`, from the caller's agent: the operator starts `sos top --as <agent>` to send. */
export async function send(parts: ActionParts, name: string, text: string): Promise<Outcome> {
  if (text.trim() === '') return { ok: false, text: 'nothing sent: the message is empty' };
  try {
    const { sendMessage } = await import('../core/bus/service.js');
    const result = await sendMessage(parts.bus, parts.caller, { to: name, text });
    return { ok: true, text: `sent ${result.id} to ${name}` };
  } catch (err) {
    return failure(err);
  }
}

/** The supervisor's restart of one agent, on the operator's word; recorded as a lifecycle action. */
export function restart(parts: ActionParts, name: string): Promise<Outcome> {
  return supervise(parts, name, 'restart');
}

/** The supervisor's interrupt of one agent (its kind's interrupt keys), on the operator's word. */
export function interrupt(parts: ActionParts, name: string): Promise<Outcome> {
  return supervise(parts, name, 'interrupt');
}

async function supervise(parts: ActionParts, name: string, kind: 'restart' | 'interrupt'): Promise<Outcome> {
  try {
    const { life, caller } = parts;
    const { requireAdmin } = await import('../core/auth/caller.js');
    const { getAgent } = await import('../core/identity/agents.js');
    await requireAdmin(life.store, caller, kind === 'restart' ? 'restarting an agent' : 'interrupting an agent');
    const agent = await getAgent(life.store, caller, name);
    if (!agent.session) return { ok: false, text: `${name} has no session to ${kind} (sos agents set ${name} --session …)` };
    const stored = await life.repo.get(agent.project, agent.name);
    if (stored?.state === 'parked') return { ok: false, text: `${name} is parked: unpark it first (p)` };
    const now = Date.now();
    if (kind === 'interrupt') return await act(parts, agent, stored, now, kind);
    const restarts = (await life.repo.actions(agent.project, agent.name, now - life.limits.restartWindowMs, 50)).filter((a) => a.action === 'restart');
    if (restarts.length >= life.limits.restartLimit) return { ok: false, text: `${name}: restart limit reached (${restarts.length} within the window); not restarting` };
    const last = restarts.sort((a, b) => b.at - a.at)[0];
    if (last && now - last.at < life.limits.cooldownMs) return { ok: false, text: `${name}: cooling down (restarted ${Math.round((now - last.at) / 1000)}s ago)` };
    return await act(parts, agent, stored, now, kind);
  } catch (err) {
    return failure(err);
  }
}

async function act(parts: ActionParts, agent: Agent, stored: AgentStateRecord | undefined, now: number, kind: 'restart' | 'interrupt'): Promise<Outcome> {
  const { life, caller } = parts;
  try {
    const { observe } = await import('../core/lifecycle/probe.js');
    const { runAction } = await import('../core/lifecycle/actions.js');
    const { unprobedRecord } = await import('../core/lifecycle/service.js');
    const record = stored ?? unprobedRecord(agent, now);
    const obs = await observe(life, agent, stored);
    const action = await runAction(life, caller, agent, record, obs, { action: kind, reason: `${kind === 'restart' ? 'restarted' : 'interrupted'} by the operator from sos top` });
    return { ok: action.outcome === 'done', text: `${agent.name}: ${action.detail}` };
  } catch (err) {
    return failure(err);
  }
}

/** `sos approvals approve|deny <id>` as the caller (the operator or an admin). */
export async function decide(parts: ActionParts, id: string, vote: 'approve' | 'deny'): Promise<Outcome> {
  try {
    const governance = await import('../core/brain/governance.js');
    const { store } = parts.life;
    if (vote === 'deny') {
      const a = await governance.deny(store, parts.caller, id, { note: 'from sos top' });
      return { ok: true, text: `approval ${a.id} denied` };
    }
    const ctx = { tasks: { store, bus: parts.bus.bus, maxTextBytes: parts.life.maxTextBytes }, lifecycle: parts.life.repo };
    const r = await governance.approve(ctx, parts.caller, id, { note: 'from sos top' });
    const a = r.approval;
    return { ok: a.status !== 'failed', text: `approval ${a.id}: ${a.status}${a.reason ? `: ${a.reason}` : ''}` };
  } catch (err) {
    return failure(err);
  }
}

/**
 * `sos attach <name>`: this terminal joins the agent's session until the operator detaches
 * (tmux's detach key, or Ctrl-] for a pty session). Operator or admin only, as on the CLI.
 */
export async function attach(parts: ActionParts, name: string, runDir: string): Promise<Outcome> {
  try {
    const { requireAdmin } = await import('../core/auth/caller.js');
    const { getAgent } = await import('../core/identity/agents.js');
    const { attachAgentSession } = await import('../core/sessions/attach.js');
    await requireAdmin(parts.life.store, parts.caller, 'attaching to an agent');
    const agent = await getAgent(parts.life.store, parts.caller, name);
    if (!agent.session) return { ok: false, text: `${name} has no session to attach to` };
    const end = await attachAgentSession(agent, runDir, { stdin: process.stdin, stdout: process.stdout });
    if (end.via === 'tmux' && end.exitCode !== 0) return { ok: false, text: `${name}: tmux attach exited with ${end.exitCode}` };
    return { ok: true, text: end.via === 'pty' && end.end === 'ended' ? `${name}: its session ended` : `back from ${name}` };
  } catch (err) {
    return failure(err);
  }
}

/** The agent's last screen lines, read from its session driver (nothing is typed). */
export async function screen(parts: ActionParts, name: string, lines = 40): Promise<Outcome & { lines?: string[] }> {
  try {
    const { getAgent } = await import('../core/identity/agents.js');
    const agent = await getAgent(parts.life.store, parts.caller, name);
    if (!agent.session) return { ok: false, text: `${name} has no session: no screen to show` };
    const driver = await parts.life.openDriver(agent);
    const snap = await driver.snapshot(lines);
    if (!snap.exists) return { ok: false, text: `${name}: its session does not exist` };
    return { ok: true, text: `${name}: screen read`, lines: snap.screen.replace(/\s+$/, '').split('\n') };
  } catch (err) {
    return failure(err);
  }
}
