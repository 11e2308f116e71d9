import type { TrustRecord, VerifiedCommit } from '../../domain/commit.js';
import { TrustError } from '../../domain/errors.js';
import type { CommitSha } from '../../domain/types.js';
import {
  commitObjectId,
  parseCommitFields,
  splitCommitSignature,
  type CommitFields,
  type ObjectFormat,
} from './commit-object.js';
import { sealVerifiedCommit } from './verified-commit.js';
import type { DetachedSignature, SignatureVerifier } from './verifier.js';

/**
 * What the gate needs from a repository. The repo tracker (`GitSource` in src/source)
 * implements it over isomorphic-git; tests may hand in an in-memory one.
 */
export interface CommitReader {
  /** The raw content of commit `sha` (no `commit <size>\0` prefix). */
  readCommitObject(sha: CommitSha): Promise<Uint8Array>;
  /** True when `ancestor` is a proper ancestor of `sha` (false for `sha` itself). */
  isDescendant(sha: CommitSha, ancestor: CommitSha): Promise<boolean>;
}

/**
 * Which moment an allowed signer's valid-after/valid-before window is checked against.
 * `commit-time` (the gate's default) is the committer date, as `git verify-commit` does, so
 * the gate and git always agree. It is chosen by the signer, though: a retired key could sign
 * a backdated commit. `now` closes that hole: the window is checked at the moment the caller
 * first saw the commit (`VerifyOptions.seenAt`), or the clock's now. The server and `plan`
 * default to `now`.
 */
export type KeyValidityTime = 'commit-time' | 'now';

export interface TrustGateOptions {
  readonly reader: CommitReader;
  /** Tried in order; the first that accepts a signature verifies it. */
  readonly verifiers: readonly SignatureVerifier[];
  readonly objectFormat?: ObjectFormat;
  readonly keyValidityAt?: KeyValidityTime;
  readonly clock?: () => Date;
}

export interface VerifyOptions {
  /** The last commit accepted from this branch; the new head must descend from it. */
  readonly lastAccepted?: CommitSha;
  /**
   * With `keyValidityAt: 'now'`: when the caller first saw this commit, the moment the key's
   * validity window is checked at instead of the clock. A server re-verifying a commit it
   * accepted before a restart passes the time it first saw it, so a key retired since then
   * does not turn its own accepted commit into a refusal. Ignored with `commit-time`.
   */
  readonly seenAt?: Date;
}

/**
 * The only way from a commit id to a VerifiedCommit that may be compiled for agents.
 *
 * `verify` refuses with a TrustError whose code says what to tell a human; every refusal
 * stalls until a new commit arrives (retrying the same commit cannot change the verdict).
 * Checks run in this order, and nothing reads the commit's tree before all have passed:
 * the object hashes to `sha` (MALFORMED_COMMIT), it is signed (UNSIGNED), the signature
 * is of a kind a verifier handles (MALFORMED_SIGNATURE, UNSUPPORTED_SIGNATURE), the
 * verifier accepts it (see SignatureVerifier), its committer date is not earlier than any
 * parent's (NON_MONOTONIC_DATE), the fast-forward rule (NOT_FAST_FORWARD), and finally its
 * committer date is not earlier than the last accepted commit's (NON_MONOTONIC_DATE).
 * Errors of the CommitReader (e.g. SourceError) pass through.
 *
 * Only the commit asked for is judged (the head the caller would deploy); commits between
 * the last accepted one and it are never compiled, so they are checked for ancestry only.
 * Their dates are not judged one by one (one skewed clock in the history would otherwise
 * block the branch for good, since history cannot be rewritten), but the head may not be
 * dated before the last accepted commit: a backdated commit cannot be laundered through a
 * backdated, unsigned parent.
 */
export class TrustGate {
  private readonly options: Required<TrustGateOptions>;

  constructor(options: TrustGateOptions) {
    this.options = {
      reader: options.reader,
      verifiers: [...options.verifiers],
      objectFormat: options.objectFormat ?? 'sha1',
      keyValidityAt: options.keyValidityAt ?? 'commit-time',
      clock: options.clock ?? (() => new Date()),
    };
  }

  async verify(sha: CommitSha, { lastAccepted, seenAt }: VerifyOptions = {}): Promise<VerifiedCommit> {
    return aboutCommit(sha, async () => {
      const commit = await readCommit(this.options.reader, sha, this.options.objectFormat);
      const trust = await this.checkSignature(commit, seenAt);
      await this.checkMonotonicDate(commit);
      await this.checkFastForward(commit.sha, lastAccepted);
      await this.checkNotBeforeAccepted(commit, lastAccepted);
      return sealVerifiedCommit(commit.sha, commit.fields, trust);
    });
  }

  private async checkSignature({ payload, signature, fields }: ReadCommit, seenAt: Date | undefined): Promise<TrustRecord> {
    if (signature === undefined) refuse('UNSIGNED', 'the commit is not signed');
    if (signature.kind === 'unknown') {
      refuse('MALFORMED_SIGNATURE', `the ${signature.header} header holds no recognisable signature`);
    }
    const verifier = this.options.verifiers.find((v) => v.accepts(signature));
    if (verifier === undefined) {
      const known = this.options.verifiers.map((v) => v.format).join(', ') || 'none';
      refuse('UNSUPPORTED_SIGNATURE', `${signature.kind} signatures are not verified here (verifiers: ${known})`);
    }
    const at = this.options.keyValidityAt === 'now' ? (seenAt ?? this.options.clock()) : fields.committedAt;
    const { signer, keyFingerprint } = await verifier.verify(payload, signature, at);
    return { kind: 'verified', format: verifier.format, signer, keyFingerprint };
  }

  /**
   * The committer date is the signer's claim, and `commit-time` validity trusts it; a commit
   * dated before its parent can only come from a wrong clock or from backdating (to fit a
   * retired key's window), so it is refused either way. A merge must not be earlier than ANY
   * of its parents. Equal seconds are fine (git's dates have one-second resolution).
   */
  private async checkMonotonicDate({ fields }: ReadCommit): Promise<void> {
    for (const parentSha of fields.parents) {
      const parent = await readCommit(this.options.reader, parentSha, this.options.objectFormat);
      if (fields.committedAt.getTime() < parent.fields.committedAt.getTime()) {
        refuse(
          'NON_MONOTONIC_DATE',
          `its committer date ${fields.committedAt.toISOString()} is earlier than that of its parent ${parentSha} (${parent.fields.committedAt.toISOString()})`,
        );
      }
    }
  }

  /** Call after checkFastForward: the last accepted commit is then an ancestor, so readable. */
  private async checkNotBeforeAccepted({ sha, fields }: ReadCommit, lastAccepted: CommitSha | undefined): Promise<void> {
    if (lastAccepted === undefined || lastAccepted === sha || fields.parents.includes(lastAccepted)) return;
    const accepted = await readCommit(this.options.reader, lastAccepted, this.options.objectFormat);
    if (fields.committedAt.getTime() < accepted.fields.committedAt.getTime()) {
      refuse(
        'NON_MONOTONIC_DATE',
        `its committer date ${fields.committedAt.toISOString()} is earlier than that of the last accepted commit ${accepted.sha} (${accepted.fields.committedAt.toISOString()})`,
      );
    }
  }

  private async checkFastForward(sha: CommitSha, lastAccepted: CommitSha | undefined): Promise<void> {
    if (lastAccepted === undefined || lastAccepted === sha) return;
    if (await this.options.reader.isDescendant(sha, lastAccepted)) return;
    refuse(
      'NOT_FAST_FORWARD',
      `it does not descend from the last accepted commit ${lastAccepted}: the branch was rewound or rewritten`,
    );
  }
}

/**
 * Makes a VerifiedCommit WITHOUT checking its signature, recording `reason` in its trust
 * record ({ kind: 'unchecked' }). Only `meshcfg plan` without --allowed-signers calls this,
 * and says so in its output; the server never does: it always goes through TrustGate.
 */
export async function skipVerification(
  reader: CommitReader,
  sha: CommitSha,
  reason: string,
  { objectFormat = 'sha1' }: { readonly objectFormat?: ObjectFormat } = {},
): Promise<VerifiedCommit> {
  return aboutCommit(sha, async () => {
    const commit = await readCommit(reader, sha, objectFormat);
    return sealVerifiedCommit(commit.sha, commit.fields, { kind: 'unchecked', reason });
  });
}

interface ReadCommit {
  readonly sha: CommitSha;
  readonly payload: Uint8Array;
  readonly signature: DetachedSignature | undefined;
  readonly fields: CommitFields;
}

/**
 * Reads and splits a commit, first checking that the bytes are object `sha`: a verdict is
 * recorded against the id, so it must be about exactly these bytes whatever the reader
 * (or its pack files) did.
 */
async function readCommit(reader: CommitReader, sha: CommitSha, objectFormat: ObjectFormat): Promise<ReadCommit> {
  const raw = await reader.readCommitObject(sha);
  const id = commitObjectId(raw, objectFormat);
  if (id !== sha) refuse('MALFORMED_COMMIT', `the object read for it hashes to ${id}`);
  const { payload, signature } = splitCommitSignature(raw, objectFormat);
  const fields = parseCommitFields(payload, objectFormat);
  return { sha: id, payload, signature, fields };
}

function refuse(code: TrustError['code'], reason: string): never {
  throw new TrustError({ code, message: reason });
}

/** Names the commit in every TrustError raised while judging it, keeping the original as cause. */
async function aboutCommit<T>(sha: CommitSha, judge: () => Promise<T>): Promise<T> {
  try {
    return await judge();
  } catch (err) {
    if (!(err instanceof TrustError)) throw err;
    throw new TrustError({ code: err.code, message: `commit ${sha}: ${err.message}`, cause: err });
  }
}
