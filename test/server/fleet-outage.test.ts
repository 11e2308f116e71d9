import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { CommitSha } from '../../src/domain/types.js';
import { PostgresFleetStore, StoreError, type FleetStore } from '../../src/fleet/index.js';
import { FleetCache } from '../../src/server/fleet.js';
import { aid, cid } from '../helpers/ids.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { waitFor } from '../helpers/process.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';

const DESIRED = { commit: cid('a'.repeat(40)), digest: `sha256:${'1'.repeat(64)}`, generation: 1 };
const ack = (nonce: string) => ({ commit: DESIRED.commit as CommitSha, digest: DESIRED.digest, generation: 1, nonce, status: 'APPLIED' as const, error: '' });

function isUnavailable(err: unknown): boolean {
  return err instanceof StoreError && err.code === 'STORE_UNAVAILABLE';
}

/** FleetCache over a real PostgreSQL reached through a TCP proxy the test cuts and restores. */
describe('FleetCache while its store is out of reach', () => {
  let db: TestDatabase;
  let proxy: TcpProxy;
  let store: FleetStore;
  before(async () => {
    db = await createTestDatabase('meshcfg_outage');
    proxy = await startTcpProxy(Number(new URL(db.url).port || 5432));
    const url = new URL(db.url);
    url.port = String(proxy.port);
    store = await PostgresFleetStore.open(url.toString(), { connectTimeoutMs: 1_000 });
  });
  after(async () => {
    // Restored first, so a cache still retrying (a test that failed mid-outage) can finish.
    await proxy?.restore();
    await store?.close();
    await proxy?.close();
    await db?.drop();
  });

  it('keeps the writes made meanwhile and stores them, in order, once the store is back', async () => {
    const errors: unknown[] = [];
    const recovered: number[] = [];
    const fleet = new FleetCache({ store, onStoreError: (err) => errors.push(err), onStoreRecovered: (n) => recovered.push(n), retryBackoffMs: { min: 20, max: 200 } });
    fleet.setDesired([{ id: aid('edge-1'), labels: {}, desired: DESIRED }]);
    fleet.recordAck(aid('edge-1'), ack('before'), new Date(1_000));
    await fleet.flush();

    await proxy.cut();
    for (const [i, nonce] of ['n1', 'n2', 'n3'].entries()) {
      fleet.recordSend(aid('edge-1'), { commit: DESIRED.commit, digest: DESIRED.digest, generation: 1, nonce }, new Date(2_000 + i * 10));
      fleet.recordAck(aid('edge-1'), ack(nonce), new Date(2_005 + i * 10));
    }
    await waitFor('the cache to notice the store is away', () => !fleet.storeReachable, 10_000, 10);
    assert.ok(fleet.pendingWrites >= 6);
    assert.equal(errors.length, 1, 'reported once per outage, not per write');
    assert.ok(errors.every(isUnavailable));
    // The live view is unaffected.
    assert.equal(fleet.get(aid('edge-1'))?.active?.digest, DESIRED.digest);
    assert.equal(fleet.get(aid('edge-1'))?.lastSeen?.getTime(), 2_025);

    await proxy.restore();
    await fleet.flush();
    assert.equal(fleet.storeReachable, true);
    assert.equal(fleet.pendingWrites, 0);
    // The six writes made during the outage went as one batch, kept and retried together.
    assert.deepEqual(recovered, [6]);
    const acks = await store.listAcks(aid('edge-1'));
    assert.deepEqual(acks.map((a) => a.nonce).reverse(), ['before', 'n1', 'n2', 'n3']);
    assert.equal((await store.lastSend(aid('edge-1')))?.nonce, 'n3');
  });

  it('refuses a quarantine with STORE_UNAVAILABLE while the store is away, and changes nothing', async () => {
    const fleet = new FleetCache({ store, retryBackoffMs: { min: 20, max: 200 } });
    fleet.setDesired([{ id: aid('edge-2'), labels: {}, desired: DESIRED }]);
    await fleet.flush();
    const audit = { at: new Date(3_000), actor: 'alice', action: 'agent.quarantine', target: 'edge-2', reason: 'r', details: null };

    await proxy.cut();
    await assert.rejects(fleet.quarantine(aid('edge-2'), { since: new Date(3_000), reason: 'r', by: 'alice' }, audit), isUnavailable);
    assert.equal(fleet.get(aid('edge-2'))?.quarantine, null);
    fleet.recordSeen(aid('edge-2'), new Date(3_100), { notAfter: new Date(9_000_000), serial: '0a' });
    await waitFor('the cache to notice the store is away', () => !fleet.storeReachable, 10_000, 10);
    await assert.rejects(fleet.quarantine(aid('edge-2'), { since: new Date(3_000), reason: 'r', by: 'alice' }, audit), isUnavailable);
    assert.equal(fleet.get(aid('edge-2'))?.quarantine, null);

    await proxy.restore();
    await fleet.flush();
    assert.equal(await fleet.quarantine(aid('edge-2'), { since: new Date(3_000), reason: 'r', by: 'alice' }, audit), true);
    assert.equal((await store.getAgent(aid('edge-2')))?.state, 'QUARANTINED');
    assert.equal((await store.getAgent(aid('edge-2')))?.certSerial, '0a');
  });

  it('at shutdown, gives up after the timeout and reports each write it drops', async () => {
    const errors: Array<{ err: unknown; what: string }> = [];
    const fleet = new FleetCache({ store, onStoreError: (err, what) => errors.push({ err, what }), retryBackoffMs: { min: 20, max: 200 } });
    fleet.setDesired([{ id: aid('edge-3'), labels: {}, desired: DESIRED }]);
    await fleet.flush();
    await proxy.cut();
    fleet.recordAck(aid('edge-3'), ack('lost-1'), new Date(4_000));
    fleet.recordAck(aid('edge-3'), ack('lost-2'), new Date(4_001));
    const started = Date.now();
    await fleet.flush({ timeoutMs: 500 });
    assert.ok(Date.now() - started < 5_000);
    assert.equal(fleet.pendingWrites, 0);
    // Once when it was kept, then once per dropped write.
    assert.deepEqual(errors.map((e) => e.what), ['record an ack (kept: retried, with every later write, until the store is back)', 'record an ack', 'record an ack']);
    assert.ok(errors.every((e) => isUnavailable(e.err)));
    await proxy.restore();
  });
});
