import { join } from 'node:path';
import { assertNever } from '../lib/index.js';
import { SqliteFleetStore } from './sqlite/store.js';
import type { FleetStore, FleetStoreOptions } from './store.js';

/**
 * Which backend holds the fleet state. Only SQLite today; a shared PostgreSQL store (for a
 * second replica) joins this union as `{ kind: 'postgres'; ... }` and a case in
 * `openFleetStore`, and no caller changes: they all take the `FleetStore` interface.
 */
export type FleetStoreConfig = { readonly kind: 'sqlite'; readonly path: string };

/** The server's default: SQLite at `<dataDir>/fleet.db`. */
export function defaultFleetStoreConfig(dataDir: string): FleetStoreConfig {
  return { kind: 'sqlite', path: join(dataDir, 'fleet.db') };
}

/**
 * Opens the configured backend. The only place outside `fleet/` tests that names a concrete
 * store: everything else sees `FleetStore`.
 */
export async function openFleetStore(config: FleetStoreConfig, options: FleetStoreOptions = {}): Promise<FleetStore> {
  switch (config.kind) {
    case 'sqlite':
      return SqliteFleetStore.open(config.path, options);
    default:
      return assertNever(config.kind);
  }
}
