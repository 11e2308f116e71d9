import type { CommitSha } from '../domain/types.js';
import { SshSignatureVerifier, TrustGate, type AllowedSigners, type CommitReader, type KeyValidityTime } from '../source/trust/index.js';

export interface ServerTrustOptions {
  readonly reader: CommitReader;
  /** From the server's configuration, never from the repository. */
  readonly allowedSigners: AllowedSigners;
  readonly keyValidityAt: KeyValidityTime;
  /** When this server first saw a commit (the reconciler knows), if it did. */
  readonly seenAt: (commit: CommitSha) => Date | undefined;
  readonly now: () => Date;
}

/**
 * The server's two uses of the trust gate: `gate` judges new heads; `reverify` re-verifies a
 * commit accepted before that the rollout recompiles — at the moment it was first seen when
 * that is known, at its commit time when an earlier run accepted it.
 */
export function serverTrust(options: ServerTrustOptions): { readonly gate: TrustGate; reverify: (commit: CommitSha) => ReturnType<TrustGate['verify']> } {
  const verifiers = [new SshSignatureVerifier({ allowedSigners: options.allowedSigners })];
  const gate = new TrustGate({ reader: options.reader, verifiers, keyValidityAt: options.keyValidityAt, clock: options.now });
  const acceptedGate = new TrustGate({ reader: options.reader, verifiers, keyValidityAt: 'commit-time' });
  const reverify = (commit: CommitSha) => {
    const seenAt = options.seenAt(commit);
    return seenAt === undefined ? acceptedGate.verify(commit) : gate.verify(commit, { seenAt });
  };
  return { gate, reverify };
}
