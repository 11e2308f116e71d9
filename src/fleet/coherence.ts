/**
 * How an in-memory view of the fleet store learns that another writer changed the rows behind
 * it. Every cache over the store declares one in its type (`CoherentCache`), so the replica
 * work can see which caches it must plug a change notifier into.
 *
 * - `read-through`: keeps no copy; every read asks the store, so it sees every writer at once.
 * - `single-writer`: loaded once at start and then kept by this process alone; a change made by
 *   another writer is seen only after a restart. True today: one server process per store.
 *
 * A second replica sharing a PostgreSQL store adds `{ kind: 'notified'; refresh(): Promise<void> }`
 * here — a change notifier (LISTEN/NOTIFY) calls `refresh()` — and each `single-writer` cache
 * either implements it or moves to `read-through`. Nothing implements it yet.
 */
export type CacheCoherence = { readonly kind: 'read-through' } | { readonly kind: 'single-writer'; readonly loadedAt: 'start' };

export const READ_THROUGH: Extract<CacheCoherence, { kind: 'read-through' }> = Object.freeze({ kind: 'read-through' });
export const SINGLE_WRITER: Extract<CacheCoherence, { kind: 'single-writer' }> = Object.freeze({ kind: 'single-writer', loadedAt: 'start' });

/** An in-memory view of fleet-store rows, stating how it learns of another writer's changes. */
export interface CoherentCache {
  readonly coherence: CacheCoherence;
}
