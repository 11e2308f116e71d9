import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { type AgentId } from '../../src/domain/types.js';
import { MemoryFleetStore, SqliteFleetStore, StoreError, type DeliveryWrite, type FleetStore, type RecordBatchOptions } from '../../src/fleet/index.js';
import { FleetCache, MAX_WRITE_BATCH } from '../../src/server/fleet.js';
import { tempDir } from '../helpers/git.js';
import { aid, cid } from '../helpers/ids.js';
import { waitFor } from '../helpers/process.js';

const COMMIT = cid('a'.repeat(40));
const DIGEST = `sha256:${'1'.repeat(64)}`;
const DESIRED = { commit: COMMIT, digest: DIGEST, generation: 1 };
const AT = new Date('2030-01-01T00:00:00.000Z');

/** A memory store that remembers every write call it was given, in order. */
class RecordingStore extends MemoryFleetStore {
  readonly batches: Array<readonly DeliveryWrite[]> = [];
  readonly calls: string[] = [];

  override async recordBatch(writes: readonly DeliveryWrite[], options?: RecordBatchOptions): Promise<void> {
    this.batches.push(writes);
    this.calls.push(`batch:${writes.length}`);
    return super.recordBatch(writes, options);
  }

  override async updateAgents(...args: Parameters<MemoryFleetStore['updateAgents']>): Promise<void> {
    this.calls.push('updateAgents');
    return super.updateAgents(...args);
  }

  override async updateAgent(...args: Parameters<MemoryFleetStore['updateAgent']>): ReturnType<MemoryFleetStore['updateAgent']> {
    this.calls.push('updateAgent');
    return super.updateAgent(...args);
  }
}

const ids = (n: number): AgentId[] => Array.from({ length: n }, (_, i) => aid(`agent-${String(i).padStart(5, '0')}`));

/** Sends each agent its desired bundle and has it ack, all in the calling turn. */
function deliverAll(fleet: FleetCache, agents: readonly AgentId[], status: 'APPLIED' | 'REJECTED' = 'APPLIED'): void {
  for (const [i, id] of agents.entries()) fleet.recordSend(id, { ...DESIRED, nonce: `n${i}` }, AT);
  for (const [i, id] of agents.entries()) fleet.recordAck(id, { ...DESIRED, nonce: `n${i}`, status, error: status === 'REJECTED' ? 'no' : '' }, AT);
}

function publish(fleet: FleetCache, agents: readonly AgentId[]): void {
  fleet.setDesired(agents.map((id) => ({ id, labels: {}, desired: DESIRED })));
}

describe('FleetCache writes to the store', () => {
  describe('when many agents are sent their bundle and ack in one event-loop turn', () => {
    it('writes the sends and acks of the turn in one batch, in the order they happened', async () => {
      const store = new RecordingStore();
      const fleet = new FleetCache({ now: () => AT, store });
      const agents = ids(50);
      publish(fleet, agents);
      deliverAll(fleet, agents);
      await fleet.flush();
      assert.deepEqual(store.calls, ['updateAgents', 'batch:100']);
      const kinds = store.batches[0]?.map((w) => (w.kind === 'send' ? `send ${w.send.nonce}` : w.kind === 'ack' ? `ack ${w.ack.nonce}` : 'agent'));
      assert.deepEqual(kinds, [...agents.map((_, i) => `send n${i}`), ...agents.map((_, i) => `ack n${i}`)]);
      for (const id of agents) assert.equal((await store.getAgent(id))?.state, 'SYNCED');
    });

    it('writes the batch when its window ends, without waiting for flush()', async () => {
      const store = new RecordingStore();
      const fleet = new FleetCache({ now: () => AT, store, writeBatchWindowMs: 40 });
      const agents = ids(3);
      publish(fleet, agents);
      deliverAll(fleet, agents);
      await new Promise((resolve) => setTimeout(resolve, 5));
      fleet.recordAck(agents[0] ?? aid('x'), { ...DESIRED, nonce: 'later in the window', status: 'APPLIED', error: '' }, AT);
      assert.deepEqual(store.batches, [], 'nothing written before the window ends');
      await new Promise((resolve) => setTimeout(resolve, 80));
      assert.deepEqual(store.calls, ['updateAgents', 'batch:7']);
    });

    it('writes at the end of the turn with a window of 0', async () => {
      const store = new RecordingStore();
      const fleet = new FleetCache({ now: () => AT, store, writeBatchWindowMs: 0 });
      const agents = ids(3);
      publish(fleet, agents);
      deliverAll(fleet, agents);
      await new Promise((resolve) => setImmediate(resolve));
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal((await store.listAcks(agents[0] ?? aid('x'))).length, 1);
    });

    it(`cuts a turn of more than ${MAX_WRITE_BATCH} writes into batches of at most that many, still in order`, async () => {
      const store = new RecordingStore();
      const fleet = new FleetCache({ now: () => AT, store });
      const agents = ids(MAX_WRITE_BATCH);
      publish(fleet, agents);
      deliverAll(fleet, agents);
      await fleet.flush();
      assert.deepEqual(store.calls, ['updateAgents', `batch:${MAX_WRITE_BATCH}`, `batch:${MAX_WRITE_BATCH}`]);
      const nonces = store.batches.flatMap((b) => b.map((w) => (w.kind === 'ack' ? `ack ${w.ack.nonce}` : w.kind === 'send' ? `send ${w.send.nonce}` : 'agent')));
      assert.deepEqual(nonces, [...agents.map((_, i) => `send n${i}`), ...agents.map((_, i) => `ack n${i}`)]);
    });

    it('keeps call order across writes that are not batched: a publish after acks lands after them', async () => {
      const store = new RecordingStore();
      const fleet = new FleetCache({ now: () => AT, store });
      const agents = ids(2);
      publish(fleet, agents);
      deliverAll(fleet, agents);
      publish(fleet, agents);
      const audit = { at: AT, actor: 'bob', action: 'agent.quarantine', target: 'agent-00000', reason: 'r', details: null };
      fleet.recordAck(agents[1] ?? aid('x'), { ...DESIRED, nonce: 'late', status: 'APPLIED', error: '' }, AT);
      await fleet.quarantine(agents[0] ?? aid('x'), { since: AT, reason: 'r', by: 'bob' }, audit);
      await fleet.flush();
      assert.deepEqual(store.calls, ['updateAgents', 'batch:4', 'updateAgents', 'batch:1', 'updateAgent']);
      assert.equal((await store.getAgent(agents[0] ?? aid('x')))?.state, 'QUARANTINED');
    });
  });

  describe('when a write fails', () => {
    it('loses only the invalid entry of a batch: the others are written, the failure is reported with what it was', async () => {
      const store = new RecordingStore();
      const failures: Array<{ code: string; what: string }> = [];
      const fleet = new FleetCache({ now: () => AT, store, onStoreError: (err, what) => failures.push({ code: err instanceof StoreError ? err.code : 'other', what }) });
      const agents = ids(3);
      publish(fleet, agents);
      const [a, b, c] = agents as [AgentId, AgentId, AgentId];
      fleet.recordAck(a, { ...DESIRED, nonce: 'ok-1', status: 'APPLIED', error: '' }, AT);
      fleet.recordAck(b, { ...DESIRED, generation: 1.5, nonce: 'bad', status: 'APPLIED', error: '' }, AT);
      fleet.recordAck(c, { ...DESIRED, nonce: 'ok-2', status: 'APPLIED', error: '' }, AT);
      await fleet.flush();
      assert.deepEqual(failures, [{ code: 'INVALID_RECORD', what: 'record an ack' }]);
      assert.deepEqual((await store.listAcks(a)).map((x) => x.nonce), ['ok-1']);
      assert.deepEqual(await store.listAcks(b), []);
      assert.deepEqual((await store.listAcks(c)).map((x) => x.nonce), ['ok-2']);
    });

    it('reports a store that refuses every write (CORRUPT) once per kind of write, and keeps writing later turns', async () => {
      const store = new RecordingStore();
      let broken = true;
      const failing: FleetStore = Object.assign(Object.create(store) as FleetStore, {
        recordBatch: (writes: readonly DeliveryWrite[]) =>
          broken ? Promise.reject(new StoreError({ code: 'CORRUPT', message: 'not a database' })) : store.recordBatch(writes),
      });
      const failures: string[] = [];
      const fleet = new FleetCache({ now: () => AT, store: failing, onStoreError: (_err, what) => failures.push(what) });
      const agents = ids(4);
      deliverAll(fleet, agents);
      await fleet.flush();
      assert.deepEqual(failures, ['record a send', 'record an ack']);
      broken = false;
      deliverAll(fleet, agents.slice(0, 1), 'REJECTED');
      await fleet.flush();
      assert.equal((await store.listAcks(agents[0] ?? aid('x')))[0]?.status, 'REJECTED');
    });

    it('keeps a batch the store cannot take now (STORE_UNAVAILABLE), reports it once, and writes it whole when the store is back', async () => {
      const store = new RecordingStore();
      let broken = true;
      const failing: FleetStore = Object.assign(Object.create(store) as FleetStore, {
        recordBatch: (writes: readonly DeliveryWrite[]) =>
          broken ? Promise.reject(new StoreError({ code: 'STORE_UNAVAILABLE', message: 'disk full' })) : store.recordBatch(writes),
      });
      const failures: string[] = [];
      const fleet = new FleetCache({ now: () => AT, store: failing, onStoreError: (_err, what) => failures.push(what), retryBackoffMs: { min: 5, max: 20 } });
      const agents = ids(4);
      deliverAll(fleet, agents);
      await waitFor('the cache to notice the store is away', () => !fleet.storeReachable, 5_000, 5);
      assert.equal(fleet.pendingWrites, 8);
      broken = false;
      await fleet.flush();
      assert.deepEqual(failures, ['record a send, record an ack (kept: retried, with every later write, until the store is back)']);
      for (const agent of agents) assert.deepEqual((await store.listAcks(agent)).map((x) => x.status), ['APPLIED']);
      assert.equal(fleet.pendingWrites, 0);
    });

    it('writes a batch once when its commit landed but the answer was lost (the retry carries the same batch id)', async () => {
      const store = new RecordingStore();
      let lose = 1;
      const failing: FleetStore = Object.assign(Object.create(store) as FleetStore, {
        recordBatch: async (writes: readonly DeliveryWrite[], options?: RecordBatchOptions) => {
          await store.recordBatch(writes, options);
          if (lose > 0) {
            lose -= 1;
            throw new StoreError({ code: 'STORE_UNAVAILABLE', message: 'connection lost before the answer' });
          }
        },
      });
      const fleet = new FleetCache({ now: () => AT, store: failing, onStoreError: () => undefined, retryBackoffMs: { min: 5, max: 20 } });
      const agents = ids(3);
      deliverAll(fleet, agents);
      await fleet.flush();
      assert.equal(lose, 0, 'the first attempt was lost');
      for (const agent of agents) assert.deepEqual((await store.listAcks(agent)).map((x) => x.status), ['APPLIED']);
    });
  });

  describe('with SQLite', () => {
    const tmp = tempDir('meshcfg-fleet-writes-');
    after(() => tmp.cleanup());

    it('has every ack of the turn durable once flush() resolves, readable by a second connection', async () => {
      const path = join(tmp.path, 'fleet.db');
      const store = await SqliteFleetStore.open(path);
      const fleet = new FleetCache({ now: () => AT, store });
      const agents = ids(200);
      publish(fleet, agents);
      deliverAll(fleet, agents);
      await fleet.flush();
      const reader = await SqliteFleetStore.open(path);
      try {
        for (const id of agents) {
          const agent = await reader.getAgent(id);
          assert.equal(agent?.state, 'SYNCED');
          assert.equal(agent?.active?.digest, DIGEST);
        }
      } finally {
        await reader.close();
        await store.close();
      }
    });
  });
});
