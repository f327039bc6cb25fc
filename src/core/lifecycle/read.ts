import type { SessionSnapshot } from '../sessions/port.js';
import type { Agent } from '../store/types.js';
import { type ClassifyInput, classify, type PatternSet, type Reading } from './classifier.js';

/** Classifies what a driver saw, with the agent's kind and its own pattern overrides. */
export function readSession(agent: Agent, snap: SessionSnapshot, extra: Partial<ClassifyInput> = {}): Reading {
  return classify({
    kind: agent.kind,
    screen: snap.screen,
    title: snap.title,
    exited: snap.exited,
    sessionExists: snap.exists,
    ...(agent.patterns ? { overrides: agent.patterns as Partial<PatternSet> } : {}),
    ...extra,
  });
}
