#!/usr/bin/env node
/* global clearInterval */
// The baseline of bench/top.mjs: the plainest Ink program that draws what `sos top` draws at the
// same rate, with nothing behind it. A 30-row table (name, kind, state, age, task, count, spend)
// on the alternate screen, with the same Ink options as `sos top` (incremental rendering), one
// row and the clock changing EVENTS_PER_S times a second. No Store, no bus, no snapshot: what
// is left is the cost of React, Ink's layout and the terminal writes.
//   node bench/ink-table.mjs [eventsPerSecond=20]
import React from 'react';
import { Box, render, Text } from 'ink';

const h = React.createElement;
const RATE = Number(process.argv[2] ?? 20);
const ROWS = 30;
const STATES = ['idle', 'busy', 'waiting', 'stuck', 'dead', 'parked'];
const pad = (s, n) => (s.length >= n ? s.slice(0, n) : s + ' '.repeat(n - s.length));

function Table({ tick }) {
  const rows = [];
  for (let i = 0; i < ROWS; i++) {
    const state = STATES[(i + (i === tick % ROWS ? tick : 0)) % STATES.length];
    rows.push(
      h(Text, { key: i, wrap: 'truncate' }, `${pad(`agent-${i}`, 16)} ${pad('claude', 7)} ${pad(state, 9)} ${pad(`${(tick + i) % 60}s`, 5)} ${pad(`tsk_${i}`, 22)} ${pad(String((i * 7) % 13), 5)} $${(i * 0.37).toFixed(2)}`),
    );
  }
  return h(
    Box,
    { flexDirection: 'column', height: Math.max(1, (process.stdout.rows || 24) - 1) },
    h(Text, { bold: true }, `ink table · ${new Date().toISOString().slice(11, 23)} · tick ${tick}`),
    ...rows,
  );
}

process.stdout.write('\x1b[?1049h\x1b[H');
const app = render(h(Table, { tick: 0 }), { exitOnCtrlC: false, patchConsole: false, incrementalRendering: true });
let tick = 0;
const timer = setInterval(() => app.rerender(h(Table, { tick: ++tick })), 1000 / RATE);
const stop = () => {
  clearInterval(timer);
  app.unmount();
  process.stdout.write('\x1b[?25h\x1b[?1049l');
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
