import type { CommitSha } from './types.js';

/** How a commit's authenticity was established. */
export type TrustRecord =
  | { readonly kind: 'verified'; readonly format: SignatureFormat; readonly signer: string; readonly keyFingerprint: string }
  /** Only `meshcfg plan` without --allowed-signers produces this; the server never accepts it. */
  | { readonly kind: 'unchecked'; readonly reason: string };

export type SignatureFormat = 'ssh' | 'openpgp' | 'sigstore';

declare const verifiedBrand: unique symbol;

/**
 * A commit that passed the trust gate. Only `src/source/trust` makes these (it is the
 * single place that casts to this type); everything that compiles for agents takes one,
 * so unverified content cannot reach the compiler by accident.
 */
export interface VerifiedCommit {
  readonly sha: CommitSha;
  readonly tree: string;
  readonly parents: readonly CommitSha[];
  readonly message: string;
  readonly committedAt: Date;
  readonly trust: TrustRecord;
  readonly [verifiedBrand]: true;
}

/** A file of the config repository at one commit. `oid` is its git blob id (its content key). */
export interface RepoFile {
  readonly path: string;
  readonly oid: string;
  readonly bytes: Uint8Array;
}

/**
 * A symlink or submodule where meshcfg reads config (`meshcfg.yaml`, `inventory/`, `config/`,
 * `baseline/`). Never followed — a symlink's blob is a path, a submodule another repository —
 * and named as a warning so nobody wonders why the file they added had no effect.
 */
export interface SkippedEntry {
  readonly path: string;
  readonly kind: 'symlink' | 'submodule';
}

/** The config files of one verified commit, read by object id (never from a working tree). */
export interface VerifiedTree {
  readonly commit: VerifiedCommit;
  readonly files: readonly RepoFile[];
  /** Entries skipped in the config layout, sorted by path. */
  readonly skipped: readonly SkippedEntry[];
}
