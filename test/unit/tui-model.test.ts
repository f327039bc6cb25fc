import { describe, expect, it } from 'vitest';
import { age, cut, initialUi, lineText, type UiState, viewModel, width } from '../../src/tui/model.js';
import { type AgentRow, narrowSnapshot, type Snapshot } from '../../src/tui/snapshot.js';

const NOW = Date.UTC(2026, 4, 17, 12, 0, 0);
const STATES = ['warm', 'busy', 'idle', 'waiting', 'compacted', 'stuck', 'quota', 'parked', 'dead', 'unknown', 'unprobed'] as const;

function agent(name: string, over: Partial<AgentRow> = {}): AgentRow {
  return {
    name,
    kind: 'claude',
    role: 'worker',
    session: `tmux:${name}`,
    state: 'idle',
    since: NOW - 90_000,
    evidence: 'screen.idle: prompt shown',
    parkedUntil: null,
    task: null,
    holds: 0,
    unread: 0,
    spendToday: { micros: 0, unpriced: 0 },
    window: null,
    ...over,
  };
}

function snapshot(over: Partial<Snapshot> = {}): Snapshot {
  return {
    project: 'demo',
    at: NOW,
    daemon: { running: true, pid: 1, heartbeatAt: NOW - 1_000 },
    agents: [],
    queues: [],
    ready: [],
    spend: { dayStart: NOW - 43_200_000, periodStart: NOW - 86_400_000 * 16, today: { micros: 0, unpriced: 0 }, period: { micros: 0, unpriced: 0 }, byModel: [], byAgent: [], tasksDone: 0 },
    budgets: [],
    events: [],
    cycles: [],
    approvals: [],
    breakers: [],
    acksOverdue: [],
    deadTasks: [],
    ...over,
  };
}

const SMALL = { columns: 80, rows: 24 };
const WIDE = { columns: 160, rows: 50 };
const text = (s: Snapshot, ui: UiState = initialUi(), size = SMALL) => viewModel(s, ui, size).lines.map(lineText);

function fits(lines: string[], size: { columns: number; rows: number }) {
  expect(lines.length).toBeLessThanOrEqual(size.rows - 1);
  for (const l of lines) expect(width(l), l).toBeLessThanOrEqual(size.columns);
}

describe('text that fits', () => {
  it('cuts to the cell with an ellipsis, wide characters counted as two', () => {
    expect(cut('abcdef', 4)).toBe('abc…');
    expect(cut('abc', 3)).toBe('abc');
    expect(width('日本語')).toBe(6);
    expect(width(cut('日本語テキスト', 7))).toBeLessThanOrEqual(7);
  });
  it('says ages in at most four characters', () => {
    expect(age(NOW - 5_000, NOW)).toBe('5s');
    expect(age(NOW - 5 * 60_000, NOW)).toBe('5m');
    expect(age(NOW - 3 * 3_600_000, NOW)).toBe('3h');
    expect(age(NOW - 10_000 * 86_400_000, NOW)).toBe('999d');
    expect(age(null, NOW)).toBe('-');
  });
});

describe('viewModel', () => {
  it('0 agents, all well: no problems band, a hint to add an agent', () => {
    const vm = viewModel(snapshot(), initialUi(), SMALL);
    expect(vm.problems).toEqual([]);
    const lines = vm.lines.map(lineText);
    expect(lines.some((l) => l.startsWith('!'))).toBe(false);
    expect(lines.join('\n')).toContain('no agents in this project yet');
    expect(vm.selectedAgent).toBeNull();
    fits(lines, SMALL);
  });

  it('1 agent: its row carries name, kind, state word, age, task, unread, spend', () => {
    const s = snapshot({ agents: [agent('alice', { state: 'busy', task: { id: 't_01', title: 'write the parser', status: 'in_progress' }, holds: 1, unread: 3, spendToday: { micros: 1_230_000, unpriced: 0 } })] });
    const lines = text(s);
    const row = lines.find((l) => l.includes('alice'))!;
    expect(row.startsWith('> alice')).toBe(true);
    expect(row).toBe('> alice          claude busy        1m t_01 write the p…    3   $1.23         - ');
    fits(lines, SMALL);
  });

  it('every lifecycle state is a word on its row, problems worst first', () => {
    const s = snapshot({ agents: STATES.map((st) => agent(`a-${st}`, { state: st })) });
    const vm = viewModel(s, initialUi(), WIDE);
    const lines = vm.lines.map(lineText);
    for (const st of STATES) expect(lines.some((l) => l.includes(`a-${st}`) && new RegExp(`\\b${st}\\b`).test(l)), st).toBe(true);
    expect(vm.problems.map((p) => p.kind)).toEqual(['dead', 'stuck', 'quota', 'waiting']);
    const band = lines.filter((l) => l.startsWith('! '));
    expect(band[0]).toMatch(/^! a-dead dead: screen\.idle: prompt shown since 1m {2}\[r restart\]$/);
    expect(band[3]).toContain('a-waiting waiting on a human');
    expect(band[3]).toContain('[s send]');
    // sorted by problems: the dead agent is selected first
    expect(vm.selectedAgent).toBe('a-dead');
    fits(lines, WIDE);
  });

  it('200 agents: the row budget holds at 80x24 and 160x50, and the selection stays in view', () => {
    const agents = Array.from({ length: 200 }, (_, i) => agent(`agent-${String(i).padStart(3, '0')}`, { state: i % 7 === 0 ? 'busy' : 'idle' }));
    const s = snapshot({ agents });
    for (const size of [SMALL, WIDE, { columns: 80, rows: 10 }, { columns: 300, rows: 80 }]) {
      const lines = text(s, initialUi(), size);
      fits(lines, size);
      expect(lines.at(-1)).toContain('q quit');
    }
    const ui = { ...initialUi(), sort: 'name' as const, selected: 150 };
    const vm = viewModel(s, ui, SMALL);
    expect(vm.selectedAgent).toBe('agent-150');
    const lines = vm.lines.map(lineText);
    expect(lines.some((l) => l.startsWith('> agent-150'))).toBe(true);
    expect(lines.some((l) => /… \d+ more/.test(l))).toBe(true);
    expect(lines).toHaveLength(23);
  });

  it('truncates exactly at 80 columns: a long task title ends in … at column 80', () => {
    const s = snapshot({ agents: [agent('alice', { state: 'busy', task: { id: 't_01', title: 'x'.repeat(200), status: 'claimed' } })] });
    const row = text(s).find((l) => l.includes('alice'))!;
    expect(width(row)).toBe(80);
    expect(row).toMatch(/x…\s+0\s+\$0\.00\s+- $/);
  });

  it('problems band: budgets over, breakers open, approvals waiting, acks overdue, dead tasks, daemon down', () => {
    const s = snapshot({
      daemon: { running: false, pid: 9, heartbeatAt: NOW - 300_000 },
      budgets: [
        { scope: 'project', unit: 'usd', limit: 10_000_000, spent: 9_500_000, warnAt: 80, state: 'warning', action: 'block', since: NOW - 60_000, lifted: false },
        { scope: 'agent:bob', unit: 'usd', limit: 1_000_000, spent: 1_200_000, warnAt: 80, state: 'exhausted', action: 'pause', since: NOW - 120_000, lifted: false },
        { scope: 'squad:ok', unit: 'tokens', limit: 1000, spent: 10, warnAt: 80, state: 'ok', action: 'warn', since: null, lifted: false },
      ],
      breakers: [
        { name: 'anthropic', state: 'open', openedAt: NOW - 30_000, lastError: 'HTTP 529' },
        { name: 'openai', state: 'closed', openedAt: null, lastError: null },
      ],
      approvals: [{ id: 'ap_1', method: 'create_task', tier: 'human_gate', createdAt: NOW - 600_000, votes: 0, needs: 1 }],
      acksOverdue: [{ id: 'msg_1', from: 'lead', unacked: ['bob'], deadline: NOW - 10_000 }],
      deadTasks: [{ id: 't_dead', title: 'flaky job', squad: null, at: NOW - 7_200_000, error: 'boom' }],
    });
    const vm = viewModel(s, initialUi(), WIDE);
    expect(vm.problems.map((p) => p.kind)).toEqual(['daemon', 'ack', 'task', 'budget', 'budget', 'breaker', 'approval']);
    const band = vm.lines.map(lineText).filter((l) => l.startsWith('! '));
    expect(band).toEqual([
      '! daemon not running (last heartbeat 5m ago) since 5m  [run: sos daemon]',
      '! ack overdue: msg_1 from lead, not acked by bob since 10s  [sos messages pending]',
      '! task dead: t_dead flaky job (boom) since 2h  [sos tasks show t_dead]',
      '! budget project warning 95% (block) since 1m  [sos budgets list]',
      '! budget agent:bob exhausted 120% (pause) since 2m  [sos budgets lift agent:bob]',
      '! provider anthropic breaker open: HTTP 529 since 30s  [sos brain status]',
      '! approval waiting: ap_1 create_task (human_gate, 0/1) since 10m  [A approve/deny]',
    ]);
    expect(vm.lines.map(lineText)[0]).toContain('DAEMON DOWN');
    fits(vm.lines.map(lineText), WIDE);
  });

  it('the problems band is capped at a third of the screen and keeps its key visible at 80 columns', () => {
    const agents = Array.from({ length: 30 }, (_, i) => agent(`dead-${i}`, { state: 'dead', evidence: `driver.exited: ${'e'.repeat(120)}` }));
    const lines = text(snapshot({ agents }));
    const band = lines.filter((l) => l.startsWith('! '));
    expect(band.length).toBeLessThanOrEqual(Math.floor(23 / 3));
    expect(band.at(-1)).toMatch(/… \d+ more problems/);
    for (const l of band.slice(0, -1)) {
      expect(l.endsWith('[r restart]'), l).toBe(true);
      expect(width(l)).toBeLessThanOrEqual(80);
    }
    fits(lines, SMALL);
  });

  it('marks states with their colour, and the state is a word as well (NO_COLOR reads the same)', () => {
    const vm = viewModel(snapshot({ agents: [agent('x', { state: 'dead' }), agent('y', { state: 'busy' })] }), initialUi(), SMALL);
    const seg = vm.lines.flatMap((l) => l.segments).filter((s) => /^(dead|busy) +$/.test(s.text));
    expect(seg.map((s) => [s.text.trim(), s.tone])).toEqual([
      ['dead', 'red'],
      ['busy', 'green'],
    ]);
  });

  it('the filter narrows agents, the panels switch, help and prompts take over the screen', () => {
    const s = snapshot({
      agents: [agent('alice'), agent('bob', { kind: 'codex' })],
      queues: [{ squad: 'core', ready: 4, claimed: 1, blocked: 2, dead: 1, oldestReadyAt: NOW - 3_600_000 }],
      ready: [{ id: 't_r1', title: 'next thing', priority: 70, squad: 'core', createdAt: NOW - 60_000 }],
      events: [{ type: 'task.completed', data: { id: 't_9', agent: 'bob' }, at: NOW - 5_000 }],
      cycles: [{ id: 'c1', startedAt: NOW - 4_000, trigger: 'timer', outcome: 'executed', reason: 'routed t_r1', costMicros: 10 }],
      spend: { dayStart: 0, periodStart: 0, today: { micros: 2_000_000, unpriced: 0 }, period: { micros: 5_000_000, unpriced: 2 }, byModel: [{ key: 'claude-sonnet-4-5', today: { micros: 2_000_000, unpriced: 0 }, period: { micros: 5_000_000, unpriced: 2 } }], byAgent: [], tasksDone: 5 },
    });
    const filtered = viewModel(s, { ...initialUi(), filter: 'codex' }, SMALL);
    expect(filtered.agents).toEqual(['bob']);
    const q = text(s, { ...initialUi(), panel: 'queues' });
    expect(q.join('\n')).toMatch(/core +4 +1 +2 +1 +1h/);
    expect(q.join('\n')).toContain('t_r1');
    const sp = text(s, { ...initialUi(), panel: 'spend' }).join('\n');
    expect(sp).toContain('today $2.00  this month $5.00+?  per done task $1.00');
    const act = text(s, { ...initialUi(), panel: 'activity' }).join('\n');
    expect(act).toContain('11:59:55 task.completed bob t_9');
    expect(act).toContain('11:59:56 brain executed timer: routed t_r1');
    expect(text(s, { ...initialUi(), help: true }).join('\n')).toContain('park the selected agent');
    expect(text(s, { ...initialUi(), prompt: { kind: 'send', agent: 'bob', text: 'hello' } }).at(-1)).toMatch(/^send to bob: hello█/);
    expect(text(s, { ...initialUi(), prompt: { kind: 'confirm', action: 'restart', agent: 'bob' } }).at(-1)).toMatch(/^restart bob\? y to confirm/);
    // wide: agents, queues | spend, activity all on one screen
    const wide = text(s, initialUi(), WIDE);
    expect(wide.some((l) => l.includes('queues') && l.includes('│') && l.includes('spend'))).toBe(true);
    expect(wide.join('\n')).toContain('task.completed');
    fits(wide, WIDE);
  });

  it('control characters in stored text never reach the terminal', () => {
    const s = snapshot({ agents: [agent('alice', { task: { id: 't_1', title: 'evil \x1b[2J title\nnext', status: 'claimed' } })] });
    for (const l of text(s)) expect([...l].some((c) => c.charCodeAt(0) < 0x20), l).toBe(false);
  });
});

describe('the selection', () => {
  it('follows the chosen agent when a refresh re-sorts the rows', () => {
    const before = snapshot({ agents: [agent('alice'), agent('bob', { state: 'unprobed' })] });
    const ui = { ...initialUi(), selected: 1, selectedName: 'alice' };
    expect(viewModel(before, ui, SMALL).selectedAgent).toBe('alice');
    const after = snapshot({ agents: [agent('alice', { state: 'parked' }), agent('bob', { state: 'unprobed' })] });
    const vm = viewModel(after, ui, SMALL);
    expect(vm.agents).toEqual(['bob', 'alice']);
    expect(vm.selectedAgent).toBe('alice');
    // an agent filtered away: the index, clamped, is used
    expect(viewModel(after, { ...ui, filter: 'bob' }, SMALL).selectedAgent).toBe('bob');
  });

  it("the detail pane: the agent's record and its last screen lines, cut to the width, within the row budget", () => {
    const s = snapshot({ agents: [agent('kasra', { state: 'waiting', since: NOW - 90_000, evidence: 'screen.permission: Do you want to proceed?', session: 'tmux:kasra' })] });
    const screen = Array.from({ length: 60 }, (_, i) => `line ${i} ${'x'.repeat(i * 3)}`);
    const ui = { ...initialUi(), detail: { agent: 'kasra', screen } };
    for (const size of [SMALL, WIDE]) {
      const lines = text(s, ui, size);
      fits(lines, size);
      expect(lines.some((l) => l.includes('agent kasra'))).toBe(true);
      expect(lines.find((l) => l.trimStart().startsWith('state'))).toMatch(/waiting for 1m/);
      expect(lines.some((l) => l.includes('screen.permission: Do you want to proceed?'))).toBe(true);
      // The newest screen lines are the ones kept.
      expect(lines.some((l) => l.includes('line 59'))).toBe(true);
      expect(lines.some((l) => l.includes('line 0 '))).toBe(false);
    }
    const reading = text(s, { ...initialUi(), detail: { agent: 'kasra', screen: null } });
    expect(reading.some((l) => l.includes('reading the screen…'))).toBe(true);
    const none = text(s, { ...initialUi(), detail: { agent: 'kasra', screen: null, note: 'kasra has no session: no screen to show' } });
    expect(none.some((l) => l.includes('kasra has no session'))).toBe(true);
  });
});

describe('narrowSnapshot (--squad, --agent)', () => {
  const s = snapshot({
    agents: [agent('alice'), agent('bob'), agent('carol')],
    queues: [
      { squad: 'ops', ready: 2, claimed: 1, blocked: 0, dead: 0, oldestReadyAt: NOW - 5_000 },
      { squad: 'web', ready: 4, claimed: 0, blocked: 1, dead: 0, oldestReadyAt: NOW - 9_000 },
      { squad: '-', ready: 1, claimed: 0, blocked: 0, dead: 0, oldestReadyAt: NOW - 1_000 },
    ],
    ready: [
      { id: 't-1', title: 'ops work', priority: 0, squad: 'ops', createdAt: NOW - 5_000 },
      { id: 't-2', title: 'web work', priority: 0, squad: 'web', createdAt: NOW - 9_000 },
    ],
    events: [
      { type: 'task.completed', data: { agent: 'alice', id: 't-0' }, at: NOW - 3_000 },
      { type: 'message.sent', data: { from: 'carol', to: 'bob' }, at: NOW - 2_000 },
      { type: 'task.created', data: { id: 't-1', squad: 'ops' }, at: NOW - 1_000 },
    ],
    acksOverdue: [{ id: 'msg_1', from: 'carol', unacked: ['bob'], deadline: NOW - 500 }],
    spend: { ...snapshot().spend, byAgent: [{ key: 'alice', today: { micros: 5, unpriced: 0 }, period: { micros: 5, unpriced: 0 } }, { key: 'bob', today: { micros: 7, unpriced: 0 }, period: { micros: 7, unpriced: 0 } }] },
    budgets: [{ scope: 'project', unit: 'usd', limit: 10, spent: 11, warnAt: 0.8, state: 'exhausted', action: 'block', since: NOW, lifted: false }],
  });

  it('--squad keeps its members, its queue, its ready tasks and the events that concern them', () => {
    const n = narrowSnapshot(s, { squad: { name: 'ops', members: ['alice', 'bob'] } });
    expect(n.agents.map((a) => a.name)).toEqual(['alice', 'bob']);
    expect(n.queues.map((q) => q.squad)).toEqual(['ops']);
    expect(n.ready.map((t) => t.id)).toEqual(['t-1']);
    expect(n.events.map((e) => e.type)).toEqual(['task.completed', 'message.sent', 'task.created']);
    expect(n.acksOverdue).toHaveLength(1);
    expect(n.spend.byAgent.map((r) => r.key)).toEqual(['alice', 'bob']);
    // Project-wide facts stay.
    expect(n.budgets).toHaveLength(1);
  });

  it('--agent keeps only that agent, its events and its acks; project totals stay', () => {
    const n = narrowSnapshot(s, { agent: 'alice' });
    expect(n.agents.map((a) => a.name)).toEqual(['alice']);
    expect(n.events.map((e) => e.type)).toEqual(['task.completed']);
    expect(n.acksOverdue).toEqual([]);
    expect(n.spend.byAgent.map((r) => r.key)).toEqual(['alice']);
    expect(n.queues).toHaveLength(3);
    const lines = text(n);
    expect(lines.some((l) => l.startsWith('> alice'))).toBe(true);
    expect(lines.some((l) => /^[ >] bob /.test(l))).toBe(false);
  });

  it('no narrowing is the snapshot itself', () => {
    expect(narrowSnapshot(s, {})).toBe(s);
  });
});

describe('styledLine (one Ink Text per row)', () => {
  it('wraps styled segments in SGR codes, keeps bold and inverse without colour, and never draws an empty row', async () => {
    const { styledLine } = await import('../../src/tui/app.js');
    const line = { segments: [{ text: 'dead', tone: 'red' as const, bold: true }, { text: ' alice' }, { text: '>', inverse: true }] };
    expect(styledLine(line, true)).toBe('\x1b[31;1mdead\x1b[0m alice\x1b[7m>\x1b[0m');
    expect(styledLine(line, false)).toBe('\x1b[1mdead\x1b[0m alice\x1b[7m>\x1b[0m');
    expect(styledLine({ segments: [] }, true)).toBe(' ');
  });
});
