import type { VerifiedCommit } from '../../src/domain/commit.js';

/**
 * A `VerifiedCommit` for tests that exercise code downstream of the trust gate (the compiler,
 * rollout) with in-memory fixtures. Only tests may cast to the branded type; in `src/` only the
 * trust gate makes one. The trust record says plainly that nothing was checked.
 */
export function fakeVerifiedCommit(sha = 'f'.repeat(40)): VerifiedCommit {
  return Object.freeze({
    sha,
    tree: '0'.repeat(40),
    parents: [],
    message: 'test fixture',
    committedAt: new Date(0),
    trust: { kind: 'unchecked', reason: 'test fixture' },
  }) as unknown as VerifiedCommit;
}
