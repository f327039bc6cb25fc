import { UsageError } from './errors.js';
import { quote } from './safe-text.js';

/** Project, agent and squad names share one shape: lowercase, starts with a letter, ≤ 40 chars. */
export const NAME_PATTERN = /^[a-z][a-z0-9-]{0,39}$/;

export type NameKind = 'project' | 'agent' | 'squad';

export function assertName(kind: NameKind, value: string): string {
  if (!NAME_PATTERN.test(value)) {
    throw new UsageError(
      `invalid ${kind} name ${quote(value)}: use 1-40 characters, lowercase letters, digits and '-', starting with a letter`,
    );
  }
  return value;
}

/** Capabilities are free tags (`code`, `model:opus`), but still bounded and printable. */
export const CAPABILITY_PATTERN = /^[a-z0-9][a-z0-9:._-]{0,63}$/;

export function assertCapability(value: string): string {
  if (!CAPABILITY_PATTERN.test(value)) {
    throw new UsageError(
      `invalid capability ${JSON.stringify(value)}: use 1-64 lowercase characters from a-z 0-9 : . _ -`,
    );
  }
  return value;
}
