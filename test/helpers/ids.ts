import type { AgentId, CommitSha } from '../../src/domain/types.js';

// Fixtures name agents and commits with readable strings (`'edge-1'`, `'c1'`): the brand is the
// compiler's check that production ids went through `parseAgentId` / `parseCommitSha`; tests
// that build values by hand state it with these. Boundaries that parse ids are tested with
// plain strings through their own entry points.

/** A fixture agent id. */
export function aid(id: string): AgentId {
  return id as AgentId;
}

/** Fixture agent ids. */
export function aids(ids: readonly string[]): AgentId[] {
  return ids.map(aid);
}

/** A fixture commit id (symbolic ones like `'c1'` included: the rollout never reads them). */
export function cid(commit: string): CommitSha {
  return commit as CommitSha;
}
