import type { AgentId } from '../domain/types.js';

/**
 * What a committed write changed, as one store tells every process sharing it (PostgreSQL:
 * `NOTIFY` sent inside the writing transaction, so it is delivered only when the write
 * commits). A replica's caches refresh from the store on it; the change carries no values,
 * only what to re-read, so a lost or reordered notification can never leave a cache with
 * wrong data — only with old data until the next change or resync.
 *
 * - `server-state`: the accepted commit, generation or last refusal (saveAccepted, saveRefusal).
 * - `agents`: those agents' rows (desired, active, state, quarantine, certificate, last seen) or
 *   their sends and acks; `'all'` when too many to list (a publish to the whole fleet).
 * - `rollout`: the rollout document, now at `revision`.
 * - `credentials`: revocations, current agent certificates, enrollment or admin tokens.
 * - `audit`: an audit entry was appended.
 */
export type FleetChange =
  | { readonly kind: 'server-state' }
  | { readonly kind: 'agents'; readonly ids: readonly AgentId[] | 'all' }
  | { readonly kind: 'rollout'; readonly revision: number }
  | { readonly kind: 'credentials' }
  | { readonly kind: 'audit' };

/**
 * `resync`: changes may have been missed (the listening connection was lost and is back, or
 * the feed fell behind); a listener re-reads everything it caches.
 */
export type FleetChangeEvent = FleetChange | { readonly kind: 'resync' };

/**
 * Changes committed by any writer of a shared store, this process's own included (a listener
 * must tolerate re-reading what it wrote). Delivery is at most once and in commit order per
 * connection; `resync` covers the gaps.
 */
export interface FleetChangeFeed {
  /** Calls `listener` for each change from now on; returns the unsubscribe function. A throwing listener is not retried. */
  subscribe(listener: (event: FleetChangeEvent) => void): () => void;
}
