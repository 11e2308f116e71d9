import type { TrustRecord, VerifiedCommit } from '../../domain/commit.js';
import type { CommitSha } from '../../domain/types.js';
import type { CommitFields } from './commit-object.js';

/**
 * The single place in the code base where a value becomes a VerifiedCommit (see
 * domain/commit.ts). Only the trust gate and skipVerification call it, after their
 * checks; keep this module out of the package index so nothing else can.
 */
export function sealVerifiedCommit(sha: CommitSha, fields: CommitFields, trust: TrustRecord): VerifiedCommit {
  const commit = {
    sha,
    tree: fields.tree,
    parents: Object.freeze([...fields.parents]),
    message: fields.message,
    committedAt: new Date(fields.committedAt.getTime()),
    trust: Object.freeze({ ...trust }),
  };
  return Object.freeze(commit) as VerifiedCommit;
}
