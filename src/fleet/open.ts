import { join } from 'node:path';
import { assertNever } from '../lib/index.js';
import { PostgresFleetStore, type PostgresStoreEvent } from './postgres/store.js';
import { redactUrl } from './postgres/connection.js';
import { SqliteFleetStore } from './sqlite/store.js';
import type { FleetStore, FleetStoreOptions } from './store.js';

/**
 * Which backend holds the fleet state: SQLite embedded (one server), or a PostgreSQL database
 * shared by every replica. No caller beyond this file names a concrete store: they all take
 * the `FleetStore` interface.
 */
export type FleetStoreConfig =
  | { readonly kind: 'sqlite'; readonly path: string }
  /** `url` may carry the password: show it only through `describeFleetStore`. */
  | { readonly kind: 'postgres'; readonly url: string; readonly poolSize?: number };

export interface OpenFleetStoreOptions extends FleetStoreOptions {
  /** PostgreSQL only: connection trouble of the pool and the change feed (for logs and metrics). */
  readonly onPostgresEvent?: (event: PostgresStoreEvent) => void;
}

/** The server's default: SQLite at `<dataDir>/fleet.db`. */
export function defaultFleetStoreConfig(dataDir: string): FleetStoreConfig {
  return { kind: 'sqlite', path: join(dataDir, 'fleet.db') };
}

/** The backend and where it is, for logs: `SQLite at <path>` or `PostgreSQL at <url without password>`. */
export function describeFleetStore(config: FleetStoreConfig): string {
  switch (config.kind) {
    case 'sqlite':
      return `SQLite at ${config.path}`;
    case 'postgres':
      return `PostgreSQL at ${redactUrl(config.url)}`;
    default:
      return assertNever(config);
  }
}

/**
 * Opens the configured backend. The only place outside `fleet/` tests that names a concrete
 * store: everything else sees `FleetStore`.
 */
export async function openFleetStore(config: FleetStoreConfig, options: OpenFleetStoreOptions = {}): Promise<FleetStore> {
  const { onPostgresEvent, ...storeOptions } = options;
  switch (config.kind) {
    case 'sqlite':
      return SqliteFleetStore.open(config.path, storeOptions);
    case 'postgres':
      return PostgresFleetStore.open(config.url, {
        ...storeOptions,
        ...(config.poolSize === undefined ? {} : { poolSize: config.poolSize }),
        ...(onPostgresEvent === undefined ? {} : { onEvent: onPostgresEvent }),
      });
    default:
      return assertNever(config);
  }
}
