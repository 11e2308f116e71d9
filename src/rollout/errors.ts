import { BaseError } from '../domain/errors.js';

export const ROLLOUT_ERROR_CODES = [
  /** A persisted controller document that `fromJSON` cannot read (wrong version or shape). */
  'INVALID_STATE',
] as const;

export type RolloutErrorCode = (typeof ROLLOUT_ERROR_CODES)[number];

/** Errors of the rollout layer. INVALID_STATE stalls until an operator looks at the stored document. */
export class RolloutError extends BaseError<RolloutErrorCode> {}
