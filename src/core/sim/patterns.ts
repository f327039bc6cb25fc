/**
 * The screen vocabulary of the simulated agent (`agent.ts`), as the lifecycle classifier reads it:
 * the per-agent pattern overrides `sos sim` registers every simulated agent with (kind `custom`,
 * `--patterns`). Every group is given, so no default applies. The spinner is erased when work ends,
 * so its presence in the footer means busy; a question, notice or error counts only near the bottom.
 */
export const SIM_PROMPT = 'sim> ';
export const SIM_SPINNER = 'Working… (esc to interrupt)';
export const SIM_FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'] as const;
export const SIM_QUESTION = 'Do you want to proceed?';
export const SIM_COMPACTED = '✻ Conversation compacted · context was summarised';
/** `quotaUntil` (lifecycle/policy.ts) reads the reset time from "resets in N min". */
export const simQuotaLine = (minutes: number) => `Usage limit reached · resets in ${minutes} min`;

export const SIM_PATTERNS = {
  input: [{ id: 'sim.input', pattern: '^sim> ?', where: 'last' }],
  busy: [{ id: 'sim.spinner', pattern: '^[\\u2800-\\u28FF] Working… \\(esc to interrupt\\)', where: 'footer', confidence: 0.9 }],
  idle: [{ id: 'sim.prompt', pattern: '^sim>\\s*$', where: 'last', confidence: 0.8 }],
  waiting: [
    { id: 'sim.question', pattern: '^Do you want to proceed\\?$', where: 'footer', confidence: 0.85 },
    { id: 'sim.question.choices', pattern: '^\\s+2\\. No$', where: 'last', confidence: 0.7 },
  ],
  login: [{ id: 'sim.login', pattern: '^Not signed in\\b', where: 'footer', confidence: 0.9 }],
  quota: [{ id: 'sim.quota', pattern: '^Usage limit reached\\b', where: 'footer', confidence: 0.9 }],
  compacted: [{ id: 'sim.compacted', pattern: 'Conversation compacted', where: 'footer', confidence: 0.85 }],
  crash: [
    { id: 'tmux.pane-dead', pattern: '^Pane is dead \\(status (\\d+)', where: 'tail', confidence: 0.95 },
    { id: 'sim.crash.error', pattern: '^Error: ', where: 'footer', confidence: 0.6 },
    { id: 'sim.crash.frame', pattern: '^\\s+at \\S+ \\(.*:\\d+:\\d+\\)$', where: 'footer', confidence: 0.6 },
  ],
} as const;
