import { BaseError } from '../domain/errors.js';

/**
 * Errors of the fleet store. What happens next is decided by the code:
 * STORE_UNAVAILABLE is retried (busy, disk full, I/O, network for PostgreSQL); SCHEMA_TOO_NEW
 * and CORRUPT stall until an operator acts (never "repaired" by resetting state: the store
 * holds the rollback anchor); INVALID_RECORD and CLOSED are programming errors; CONFLICT is a
 * lost race the caller resolves by re-reading.
 */
export const STORE_ERROR_CODES = [
  /** The database was written by a newer meshcfg (its schema version is above the code's). */
  'SCHEMA_TOO_NEW',
  /** The database cannot be opened, is locked past the busy timeout, or an I/O error occurred. */
  'STORE_UNAVAILABLE',
  /** The file is not a database, fails its integrity check, or holds a row that does not parse. */
  'CORRUPT',
  /** The caller handed the store something it must not keep (not JSON-serialisable, a negative generation, ...). */
  'INVALID_RECORD',
  /** A compare-and-set lost: a generation that would go down, a stale rollout revision, a duplicate token hash. */
  'CONFLICT',
  /** The store was used after `close()`. */
  'CLOSED',
] as const;

export type StoreErrorCode = (typeof STORE_ERROR_CODES)[number];

export class StoreError extends BaseError<StoreErrorCode> {}

/**
 * Is `err` (or an error in its `cause` chain) the store being out of reach? Such a failure is
 * retried later; the admin API answers it 503 and the agent port UNAVAILABLE.
 */
export function isStoreUnavailable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth += 1) {
    if (e instanceof StoreError && e.code === 'STORE_UNAVAILABLE') return true;
  }
  return false;
}
