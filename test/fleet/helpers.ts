import assert from 'node:assert/strict';
import { join } from 'node:path';
import { StoreError, type StoreErrorCode } from '../../src/fleet/errors.js';
import { MemoryFleetStore } from '../../src/fleet/memory.js';
import { SqliteFleetStore, type SqliteFleetStoreOptions } from '../../src/fleet/sqlite/store.js';
import type { AckRecord, AuditEntry, FleetStore, FleetStoreOptions, SendRecord } from '../../src/fleet/store.js';
import { aid, cid } from '../helpers/ids.js';

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

let counter = 0;
/** Every implementation of FleetStore; the contract suite runs against each. */
export const IMPLEMENTATIONS: ReadonlyArray<readonly [string, OpenStore]> = [
  ['MemoryFleetStore', async (_dir, options) => new MemoryFleetStore(options)],
  ['SqliteFleetStore', (dir, options) => SqliteFleetStore.open(join(dir, `fleet-${(counter += 1)}.db`), options)],
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
