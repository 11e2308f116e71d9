import type { FleetChange, FleetChangeEvent } from './changes.js';

/**
 * How an in-memory view of the fleet store learns that another writer changed the rows behind
 * it. Every cache over the store declares one in its type (`CoherentCache`), so the server can
 * plug each into the store's change feed.
 *
 * - `read-through`: keeps no copy; every read asks the store, so it sees every writer at once.
 * - `single-writer`: loaded once at start and then kept by this process alone; a change made by
 *   another writer is seen only after a restart.
 * - `notified`: loaded at start, kept in memory, and refreshed from the store when the store's
 *   change feed (`FleetStore.changes`, PostgreSQL LISTEN/NOTIFY) reports a change of a kind it
 *   `follows`; `resync` re-reads everything it holds. `refresh` must be idempotent (this
 *   process's own writes come back as changes too) and must not throw for a lost row. With a
 *   store that has no feed (SQLite, memory) nothing calls it: the process is the only writer.
 */
export type CacheCoherence =
  | { readonly kind: 'read-through' }
  | { readonly kind: 'single-writer'; readonly loadedAt: 'start' }
  | {
      readonly kind: 'notified';
      readonly follows: readonly FleetChangeEvent['kind'][];
      refresh(event: FleetChangeEvent): Promise<void>;
    };

export type NotifiedCoherence = Extract<CacheCoherence, { kind: 'notified' }>;

export const READ_THROUGH: Extract<CacheCoherence, { kind: 'read-through' }> = Object.freeze({ kind: 'read-through' });
export const SINGLE_WRITER: Extract<CacheCoherence, { kind: 'single-writer' }> = Object.freeze({ kind: 'single-writer', loadedAt: 'start' });

/** A `notified` coherence following `follows` (and `resync`, always) by calling `refresh`. */
export function notified(follows: readonly FleetChange['kind'][], refresh: (event: FleetChangeEvent) => Promise<void>): NotifiedCoherence {
  return Object.freeze({ kind: 'notified', follows: Object.freeze([...follows, 'resync' as const]), refresh });
}

/** An in-memory view of fleet-store rows, stating how it learns of another writer's changes. */
export interface CoherentCache {
  readonly coherence: CacheCoherence;
}
