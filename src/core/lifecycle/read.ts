import type { SessionSnapshot } from '../sessions/port.js';
import type { Agent } from '../store/types.js';
import { type ClassifyInput, classify, type PatternSet, type Reading, type TypedInput, hasInputRule, typedInput } from './classifier.js';

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

/**
 * What sits typed in the agent's input line (see `typedInput`), with its own pattern overrides:
 * undefined when its kind has no input rule, null when no line on screen matches the rule.
 */
export function readInput(agent: Agent, screen: string): TypedInput | null | undefined {
  const overrides = overridesOf(agent);
  return hasInputRule(agent.kind, overrides) ? typedInput(agent.kind, screen, overrides) : undefined;
}

function overridesOf(agent: Agent): Partial<PatternSet> | undefined {
  return (agent.patterns ?? undefined) as Partial<PatternSet> | undefined;
}
