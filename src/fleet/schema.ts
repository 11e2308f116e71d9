import { StoreError } from './errors.js';

/**
 * The versioned-schema rule every fleet-store backend follows (SQLite's `MIGRATIONS` today):
 * version N is migration N; a store applies the migrations it has not run, in order, each in
 * its own transaction with its version row. A database at a version this build does not know
 * was written by a newer meshcfg: refuse it rather than run on a schema we cannot read.
 */
export function checkSchemaVersion(found: number, known: number, where: string): void {
  if (found > known) {
    throw new StoreError({
      code: 'SCHEMA_TOO_NEW',
      message: `${where} has schema version ${found}, but this meshcfg knows versions up to ${known}: it was written by a newer meshcfg; run that version (downgrading would lose state)`,
    });
  }
}
