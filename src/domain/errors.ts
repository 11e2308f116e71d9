/**
 * One error class per layer, each with a closed union of string codes
 * (the sigstore-js `BaseError<Code>` pattern). Callers branch on `code`,
 * never on message text. The catalogue of codes is in the README.
 */
export class BaseError<Code extends string> extends Error {
  readonly code: Code;

  constructor({ code, message, cause }: { code: Code; message: string; cause?: unknown }) {
    super(message, cause === undefined ? undefined : { cause });
    this.code = code;
    this.name = new.target.name;
  }
}

/** Errors of the source layer: fetching, reading objects, size limits. */
export const SOURCE_ERROR_CODES = [
  'REPO_UNREADABLE',
  'FETCH_FAILED',
  'REVISION_NOT_FOUND',
  'FILE_TOO_LARGE',
  'TREE_TOO_LARGE',
] as const;

export type SourceErrorCode = (typeof SOURCE_ERROR_CODES)[number];

export class SourceError extends BaseError<SourceErrorCode> {}

/** Errors of the trust gate. Every code but MALFORMED_ALLOWED_SIGNERS refuses one commit. */
export const TRUST_ERROR_CODES = [
  'UNSIGNED',
  'MALFORMED_SIGNATURE',
  'UNSUPPORTED_SIGNATURE',
  'BAD_SIGNATURE',
  'UNTRUSTED_SIGNER',
  'NAMESPACE_MISMATCH',
  'NOT_FAST_FORWARD',
  /** The committer date is earlier than a parent's: a backdated commit. */
  'NON_MONOTONIC_DATE',
  /** The commit object is not one git would write (or does not hash to the id asked for). */
  'MALFORMED_COMMIT',
  'MALFORMED_ALLOWED_SIGNERS',
] as const;

export type TrustErrorCode = (typeof TRUST_ERROR_CODES)[number];

export class TrustError extends BaseError<TrustErrorCode> {}

/** Errors of the compiler that stop the whole compile (violations are values, not errors). */
export const COMPILE_ERROR_CODES = ['INVALID_REPOSITORY'] as const;

export type CompileErrorCode = (typeof COMPILE_ERROR_CODES)[number];

export class CompileError extends BaseError<CompileErrorCode> {}

/**
 * Errors of the PKI layer: the enrollment CA, certificates, pins, enrollment tokens and
 * the data directory that holds their keys.
 */
export const PKI_ERROR_CODES = [
  /** The CSR does not parse, or its self-signature does not verify. */
  'CSR_INVALID',
  /** A key the CA does not certify (not RSA, or outside 2048–4096 bits): forge signs RSA only. */
  'KEY_UNSUPPORTED',
  /** An agent id, trust domain or server name that cannot go into a certificate. */
  'NAME_INVALID',
  /** A certificate or key that does not parse, does not match, or is not what its role needs. */
  'CERTIFICATE_INVALID',
  /** A certificate with no SPIFFE URI SAN. */
  'IDENTITY_MISSING',
  /** A certificate with more than one URI SAN (SPIFFE allows exactly one). */
  'IDENTITY_AMBIGUOUS',
  /** A URI SAN from another trust domain or outside `/agent/<id>`. */
  'IDENTITY_FOREIGN',
  /** A pin that is not `sha256/<base64 of 32 bytes>`. */
  'PIN_INVALID',
  'TOKEN_UNKNOWN',
  'TOKEN_EXPIRED',
  'TOKEN_USED',
  /** A token lifetime that is not positive or exceeds the configured maximum. */
  'TOKEN_TTL_INVALID',
  /** The data directory is incomplete in a way a restart cannot repair, or has unsafe permissions. */
  'DATA_DIR_INVALID',
] as const;

export type PkiErrorCode = (typeof PKI_ERROR_CODES)[number];

export class PkiError extends BaseError<PkiErrorCode> {}

/**
 * Errors of bundle signing (server) and signed-bundle verification (agent). On the agent every
 * code refuses one delivery and the running config stays; the server-side codes
 * (INVALID_SIGNING_KEY, INVALID_GENERATION) are programming or configuration errors.
 */
export const SIGNING_ERROR_CODES = [
  /** The key handed to the signer or verifier is not an ECDSA P-256 key of the right kind. */
  'INVALID_SIGNING_KEY',
  /** The server was asked to sign something it must not: no agents, duplicates, bad ids/digests, a generation that does not grow. */
  'INVALID_GENERATION',
  /** The wire envelope or the Sigstore bundle in it is not the shape meshcfg writes. */
  'MALFORMED_BUNDLE',
  /** The bundle names a signing key the agent does not trust (@sigstore/verify PUBLIC_KEY_ERROR). */
  'UNKNOWN_KEY',
  /** The DSSE signature does not verify with the trusted key (@sigstore/verify SIGNATURE_ERROR). */
  'SIGNATURE_INVALID',
  /** The signed payload is not a well-formed meshcfg statement (only reachable with a signature from the trusted key). */
  'STATEMENT_MALFORMED',
  /** The delivery says it is for another agent. */
  'NOT_FOR_THIS_AGENT',
  /** The delivered bytes do not hash to the digest they were delivered with. */
  'DIGEST_MISMATCH',
  /** The inclusion proof does not put (this agent, commit, digest, generation) under the signed root. */
  'PROOF_INVALID',
  /** Older generation than the one the agent runs, or the same generation with another digest. */
  'GENERATION_ROLLBACK',
  /** The statement's expiry has passed. */
  'EXPIRED',
  /** The statement was issued further in the future than the allowed clock skew. */
  'ISSUED_IN_FUTURE',
] as const;

export type SigningErrorCode = (typeof SIGNING_ERROR_CODES)[number];

export class SigningError extends BaseError<SigningErrorCode> {}

/** Errors of the gRPC transport that stop a server from starting or reloading (refused calls are gRPC statuses, not errors). */
export const TRANSPORT_ERROR_CODES = [
  /** The gRPC address does not parse, or listening on it failed (in use, not permitted). */
  'LISTEN_FAILED',
  /** The server certificate, key or CA does not load into a TLS context. */
  'TLS_CONFIG_INVALID',
  /** The server cannot answer now: what the call needs (its fleet state store) is out of reach. Agents get UNAVAILABLE and retry. */
  'BACKEND_UNAVAILABLE',
] as const;

export type TransportErrorCode = (typeof TRANSPORT_ERROR_CODES)[number];

export class TransportError extends BaseError<TransportErrorCode> {}

/** Errors of command-line usage. */
export const USAGE_ERROR_CODES = ['USAGE'] as const;

export type UsageErrorCode = (typeof USAGE_ERROR_CODES)[number];

export class UsageError extends BaseError<UsageErrorCode> {}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Errors of the reference agent and its client side of the transport (enrollment, renewal,
 * the config stream, applying bundles). Verification refusals of a delivery stay
 * {@link SigningError}s; these are what surrounds them.
 */
export const AGENT_ERROR_CODES = [
  /** The server's key matches none of the pins: no connection is made, nothing is sent. */
  'PIN_MISMATCH',
  /** The TLS handshake failed for another reason (the name is not in the server certificate, no TLS). */
  'TLS_FAILED',
  /** The server could not be reached, or the connection dropped (gRPC UNAVAILABLE). */
  'UNREACHABLE',
  /** The server refused who we are: a bad, expired or reused token, or a certificate it does not accept. */
  'UNAUTHENTICATED',
  /** The server knows who we are and refuses the request (revoked, not in the inventory, another identity). */
  'PERMISSION_DENIED',
  /** An RPC did not finish before its deadline. */
  'DEADLINE_EXCEEDED',
  /** Any other gRPC failure. */
  'RPC_FAILED',
  /** What the server returned at enrollment or renewal does not check out (certificate not for our key, not from the CA, bad signing key). */
  'ENROLLMENT_INVALID',
  /** The agent directory is missing, incomplete or inconsistent (run `meshcfg enroll`). */
  'AGENT_DIR_INVALID',
  /** state.json does not parse. */
  'STATE_INVALID',
  /** The bundle message's unsigned labels (commit, digest, generation) disagree with what was verified. */
  'BUNDLE_MISMATCH',
  /** The reload command (`--exec`) exited non-zero, was killed, or timed out; the previous file was put back. */
  'RELOAD_FAILED',
  /** A verified bundle could not be put in place locally (write, fsync, rename, state.json); answered REJECTED, the previous file stays. */
  'APPLY_FAILED',
  /** The output file (`--out`) cannot be written: its directory is missing, not a directory or not writable, or the path is a directory. */
  'OUTPUT_INVALID',
] as const;

export type AgentErrorCode = (typeof AGENT_ERROR_CODES)[number];

export class AgentError extends BaseError<AgentErrorCode> {}
