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
export type SourceErrorCode =
  | 'REPO_UNREADABLE'
  | 'FETCH_FAILED'
  | 'REVISION_NOT_FOUND'
  | 'FILE_TOO_LARGE'
  | 'TREE_TOO_LARGE';

export class SourceError extends BaseError<SourceErrorCode> {}

/** Errors of the trust gate. Every code but MALFORMED_ALLOWED_SIGNERS refuses one commit. */
export type TrustErrorCode =
  | 'UNSIGNED'
  | 'MALFORMED_SIGNATURE'
  | 'UNSUPPORTED_SIGNATURE'
  | 'BAD_SIGNATURE'
  | 'UNTRUSTED_SIGNER'
  | 'NAMESPACE_MISMATCH'
  | 'NOT_FAST_FORWARD'
  /** The commit object is not one git would write (or does not hash to the id asked for). */
  | 'MALFORMED_COMMIT'
  | 'MALFORMED_ALLOWED_SIGNERS';

export class TrustError extends BaseError<TrustErrorCode> {}

/** Errors of the compiler that stop the whole compile (violations are values, not errors). */
export type CompileErrorCode = 'INVALID_REPOSITORY';

export class CompileError extends BaseError<CompileErrorCode> {}

/** Errors of command-line usage. */
export type UsageErrorCode = 'USAGE';

export class UsageError extends BaseError<UsageErrorCode> {}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
