import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { CommitSha } from '../domain/types.js';
import { assertNever } from '../lib/index.js';
import { StoreError } from './errors.js';
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

export interface ImportedFleet {
  /** Each table copied and its rows, in the order copied. */
  readonly tables: ReadonlyArray<{ readonly name: string; readonly rows: number }>;
  readonly accepted: CommitSha | null;
  readonly generation: number;
}

/**
 * Moves one server's fleet state from its SQLite `fleet.db` into a new PostgreSQL fleet
 * database (`meshcfg state import`), so replicas start with everything it knew: agents and
 * their quarantines, every send and ack, enrollment tokens, revocations and current
 * certificates, named admin tokens, the rollout document, the accepted commit and
 * generation (a generation must never go back), the last refusal, the audit log.
 *
 * The file is brought to this version's schema first, as `meshcfg serve` would; then its
 * tables are copied row for row in one PostgreSQL transaction (`importTables`): all or
 * nothing, and refused (CONFLICT) when the database holds fleet state already. Stop the
 * server that writes `fleet.db` first: what it writes after the copy is not carried over.
 */
export async function importFleet(
  sqlitePath: string,
  postgresUrl: string,
  onTable: (name: string, rows: number) => void = () => undefined,
): Promise<ImportedFleet> {
  try {
    if (!statSync(sqlitePath).isFile()) throw new Error('not a file');
  } catch (cause) {
    throw new StoreError({ code: 'STORE_UNAVAILABLE', message: `${sqlitePath}: no fleet store to import (${(cause as Error).message})`, cause });
  }
  const from = await SqliteFleetStore.open(sqlitePath);
  try {
    const to = await PostgresFleetStore.open(postgresUrl);
    try {
      const tables: Array<{ name: string; rows: number }> = [];
      await from.exportSnapshot(() =>
        to.importTables(from.tables(), (name, rows) => {
          tables.push({ name, rows });
          onTable(name, rows);
        }),
      );
      const { accepted, generation } = await to.serverState();
      return { tables, accepted, generation };
    } finally {
      await to.close();
    }
  } finally {
    await from.close();
  }
}
