import type { SignatureFormat } from '../../domain/commit.js';

/**
 * The kind of signature a commit header carries, recognised by its armor, as git does:
 * `ssh` (gpg.format=ssh), `openpgp` (PGP signature or message), `x509` (gpgsm and
 * gitsign's Sigstore certificates) and `unknown` for anything else.
 */
export type SignatureKind = 'ssh' | 'openpgp' | 'x509' | 'unknown';

/** The signature header of a commit, detached from the bytes it signs. */
export interface DetachedSignature {
  readonly kind: SignatureKind;
  /** `gpgsig` in SHA-1 repositories, `gpgsig-sha256` in SHA-256 ones. */
  readonly header: 'gpgsig' | 'gpgsig-sha256';
  /** The armored text exactly as git hands it to its verifier (continuation spaces removed). */
  readonly armored: string;
}

/** Who signed, as the trust policy names them. */
export interface SignerIdentity {
  /** The principal(s) the policy lists for the key, as written (like git's `%GS`). */
  readonly signer: string;
  /** A stable identifier of the signing key, e.g. `SHA256:...` for SSH keys. */
  readonly keyFingerprint: string;
}

/**
 * One signature technology (SSH today; OpenPGP and Sigstore next). The gate hands each
 * signature to the first verifier that accepts it.
 *
 * Contract for `verify`: resolve only when the signature is cryptographically valid over
 * `payload` AND the policy trusts the signer at time `at`; otherwise reject with a
 * TrustError whose code says why (MALFORMED_SIGNATURE, UNSUPPORTED_SIGNATURE,
 * BAD_SIGNATURE, UNTRUSTED_SIGNER, NAMESPACE_MISMATCH). `payload` and `signature` are
 * attacker-controlled.
 */
export interface SignatureVerifier {
  readonly format: SignatureFormat;
  accepts(signature: DetachedSignature): boolean;
  verify(payload: Uint8Array, signature: DetachedSignature, at: Date): Promise<SignerIdentity>;
}
