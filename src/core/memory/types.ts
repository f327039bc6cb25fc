/**
 * Memory (Mirror): docs/ARCHITECTURE.md, "Memory".
 *
 * Glossary:
 * - engram: one memory record: text, kind, scope, tags, provenance (author agent, task, message),
 *   an embedding (with the embedder's name and dimension), times, and `supersededBy`.
 * - scope: who may recall it: `private` (its author), `squad:<name>` (that squad's members),
 *   `project` (everyone in the project). Nothing crosses projects.
 * - embedder: turns text into a unit vector; vectors of different embedders never meet in a query.
 * - recall: hybrid search: vector similarity and full-text rank fused by reciprocal rank (k = 60),
 *   with a small recency term; filters apply inside the queries, before any top-k cut.
 */

export const ENGRAM_KINDS = ['observation', 'decision', 'handoff', 'finding', 'checkpoint', 'cycle'] as const;
export type EngramKind = (typeof ENGRAM_KINDS)[number];

export interface Engram {
  id: string;
  project: string;
  text: string;
  kind: EngramKind;
  /** `private`, `project`, or `squad:<name>`. */
  scope: string;
  author: string;
  tags: string[];
  taskId: string | null;
  messageId: string | null;
  embedder: string;
  dim: number;
  createdAt: number;
  updatedAt: number;
  supersededBy: string | null;
}

export interface NewEngram extends Omit<Engram, 'supersededBy'> {
  embedding: Float32Array;
}

/** Who is looking, and what they asked to narrow to. Applied inside every query. */
export interface EngramFilter {
  project: string;
  /** Scopes visible to the viewer: `project`, `squad:<s>` for each of their squads, and their private ones. */
  viewer: { agent: string | null; squads: string[]; all: boolean };
  /** Only engrams of this embedder (vector queries always pass it). */
  embedder?: string;
  scope?: string;
  author?: string;
  tags?: string[];
  kind?: EngramKind;
  since?: number;
  includeSuperseded?: boolean;
}

export interface Ranked {
  id: string;
  /** Cosine similarity (vector search) or text rank (full text); higher is better. */
  score: number;
}
