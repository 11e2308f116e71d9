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
 * `commit-time` (the default) is the committer date, as `git verify-commit` does, so the
 * gate and git always agree. It is chosen by the signer, though: a retired key could sign
 * a backdated commit. `now` closes that hole, at the price of refusing an old head whose
 * key has since expired until someone signs a new commit.
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
}

/**
 * The only way from a commit id to a VerifiedCommit that may be compiled for agents.
 *
 * `verify` refuses with a TrustError whose code says what to tell a human; every refusal
 * stalls until a new commit arrives (retrying the same commit cannot change the verdict).
 * Checks run in this order, and nothing reads the commit's tree before all have passed:
 * the object hashes to `sha` (MALFORMED_COMMIT), it is signed (UNSIGNED), the signature
 * is of a kind a verifier handles (MALFORMED_SIGNATURE, UNSUPPORTED_SIGNATURE), the
 * verifier accepts it (see SignatureVerifier), and finally the fast-forward rule
 * (NOT_FAST_FORWARD). Errors of the CommitReader (e.g. SourceError) pass through.
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

  async verify(sha: CommitSha, { lastAccepted }: VerifyOptions = {}): Promise<VerifiedCommit> {
    return aboutCommit(sha, async () => {
      const commit = await readCommit(this.options.reader, sha, this.options.objectFormat);
      const trust = await this.checkSignature(commit);
      await this.checkFastForward(commit.sha, lastAccepted);
      return sealVerifiedCommit(commit.sha, commit.fields, trust);
    });
  }

  private async checkSignature({ payload, signature, fields }: ReadCommit): Promise<TrustRecord> {
    if (signature === undefined) refuse('UNSIGNED', 'the commit is not signed');
    if (signature.kind === 'unknown') {
      refuse('MALFORMED_SIGNATURE', `the ${signature.header} header holds no recognisable signature`);
    }
    const verifier = this.options.verifiers.find((v) => v.accepts(signature));
    if (verifier === undefined) {
      const known = this.options.verifiers.map((v) => v.format).join(', ') || 'none';
      refuse('UNSUPPORTED_SIGNATURE', `${signature.kind} signatures are not verified here (verifiers: ${known})`);
    }
    const at = this.options.keyValidityAt === 'now' ? this.options.clock() : fields.committedAt;
    const { signer, keyFingerprint } = await verifier.verify(payload, signature, at);
    return { kind: 'verified', format: verifier.format, signer, keyFingerprint };
  }

  private async checkFastForward(sha: CommitSha, lastAccepted: CommitSha | undefined): Promise<void> {
    if (lastAccepted === undefined || lastAccepted.toLowerCase() === sha) return;
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
  if (id !== sha.toLowerCase()) refuse('MALFORMED_COMMIT', `the object read for it hashes to ${id}`);
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
