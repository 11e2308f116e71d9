import { statSync } from 'node:fs';
import type { CommitSha } from '../domain/types.js';
import { StoreError } from './errors.js';
import { PostgresFleetStore } from './postgres/store.js';
import { SqliteFleetStore } from './sqlite/store.js';

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
