import assert from 'node:assert/strict';
import { join } from 'node:path';
import { StoreError, type StoreErrorCode } from '../../src/fleet/errors.js';
import { MemoryFleetStore } from '../../src/fleet/memory.js';
import { PostgresFleetStore } from '../../src/fleet/postgres/store.js';
import { SqliteFleetStore, type SqliteFleetStoreOptions } from '../../src/fleet/sqlite/store.js';
import type { AckRecord, AuditEntry, FleetStore, FleetStoreOptions, SendRecord } from '../../src/fleet/store.js';
import { aid, cid } from '../helpers/ids.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';

export const T0 = new Date('2030-01-01T00:00:00.000Z');
export const COMMIT_A = 'a'.repeat(40);
export const COMMIT_B = 'b'.repeat(40);
export const DIGEST_A = `sha256:${'1'.repeat(64)}`;
export const DIGEST_B = `sha256:${'2'.repeat(64)}`;
export const DIGEST_X = `sha256:${'f'.repeat(64)}`;

export function at(offsetMs: number): Date {
  return new Date(T0.getTime() + offsetMs);
}

export function storeCode(code: StoreErrorCode): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof StoreError, `expected a StoreError, got ${String(err)}`);
    assert.equal(err.code, code);
    return true;
  };
}

export type OpenStore = (dir: string, options?: FleetStoreOptions) => Promise<FleetStore>;
/** Releases what the implementation's opens left behind (PostgreSQL: the test databases); run it in `after`. */
export type CleanUp = () => Promise<void>;

let counter = 0;
const databases: TestDatabase[] = [];

/** Each open gets a database of its own (a fresh, empty store, as SQLite gets a fresh file). */
async function openPostgres(_dir: string, options?: FleetStoreOptions): Promise<FleetStore> {
  const db = await createTestDatabase('meshcfg_contract');
  databases.push(db);
  return PostgresFleetStore.open(db.url, { ...options, poolSize: 2 });
}

async function dropPostgres(): Promise<void> {
  for (const db of databases.splice(0)) await db.drop();
}

/** Every implementation of FleetStore; the contract suite runs against each. */
export const IMPLEMENTATIONS: ReadonlyArray<readonly [string, OpenStore, CleanUp?]> = [
  ['MemoryFleetStore', async (_dir, options) => new MemoryFleetStore(options)],
  ['SqliteFleetStore', (dir, options) => SqliteFleetStore.open(join(dir, `fleet-${(counter += 1)}.db`), options)],
  ['PostgresFleetStore', openPostgres, dropPostgres],
];

export function openSqlite(path: string, options?: SqliteFleetStoreOptions): Promise<SqliteFleetStore> {
  return SqliteFleetStore.open(path, options);
}

export function send(overrides: Partial<SendRecord> = {}): SendRecord {
  return { agentId: aid('edge-1'), commit: cid(COMMIT_A), digest: DIGEST_A, generation: 1, nonce: 'n1', at: T0, ...overrides };
}

export function ack(overrides: Partial<AckRecord> = {}): AckRecord {
  return { agentId: aid('edge-1'), commit: cid(COMMIT_A), digest: DIGEST_A, generation: 1, nonce: 'n1', status: 'APPLIED', error: '', at: at(1_000), ...overrides };
}

export function auditEntry(overrides: Partial<AuditEntry> = {}): AuditEntry {
  return { at: T0, actor: 'alice', action: 'agent.approve', target: 'edge-1', reason: 'checked by hand', details: null, ...overrides };
}
