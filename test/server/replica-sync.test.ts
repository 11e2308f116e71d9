import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { MemoryFleetStore, notified, type FleetChangeEvent, type GenerationRecord } from '../../src/fleet/index.js';
import { ReplicaSync } from '../../src/server/replica.js';
import type { ReconcileResult, Refusal } from '../../src/server/reconcile.js';
import { aid, cid } from '../helpers/ids.js';
import { shareStore, type SharedStore } from '../helpers/shared-store.js';
import { silentLogger } from './helpers.js';

const DIGEST = `sha256:${'cd'.repeat(32)}`;

describe('ReplicaSync (the change feed into a replica’s caches)', () => {
  let shared: SharedStore;
  let sync: ReplicaSync;
  let leader: boolean;
  const refreshed: FleetChangeEvent[] = [];
  const adopted: number[] = [];
  /** The refusals the reconciler was handed (commit, or null for none). */
  const refusals: Array<string | null> = [];
  /** How many adoptions fail before they succeed. */
  let failures = 0;

  beforeEach(() => {
    shared = shareStore(new MemoryFleetStore());
    leader = false;
    refreshed.length = 0;
    adopted.length = 0;
    refusals.length = 0;
    failures = 0;
    const cache = { coherence: notified(['agents', 'rollout'], async (event) => void refreshed.push(event)) };
    sync = new ReplicaSync({
      changes: shared.store.changes!,
      store: shared.store,
      leadership: { isLeader: () => leader },
      reconciler: {
        adopt: async (record: GenerationRecord): Promise<ReconcileResult> => {
          if (failures > 0) {
            failures -= 1;
            return { kind: 'failed', commit: record.commit, error: new Error('the commit is not fetched yet') };
          }
          adopted.push(record.generation);
          return { kind: 'accepted', commit: record.commit, generation: record.generation };
        },
        adoptRefusal: async (refusal: Refusal | null) => void refusals.push(refusal === null ? null : `${refusal.commit} ${refusal.code}`),
      },
      compile: () => Promise.reject(new Error('not used')),
      restore: () => {
        throw new Error('not used');
      },
      caches: [cache],
      logger: silentLogger,
      coalesceMs: 30,
    });
    sync.start();
  });
  afterEach(async () => {
    await sync.stop();
    await shared.store.close();
  });

  it('coalesces a burst of agent changes into one refresh naming every agent once', async () => {
    await shared.store.updateAgent(aid('edge-1'), { state: 'PENDING' });
    await shared.store.updateAgent(aid('edge-2'), { state: 'PENDING' });
    await shared.store.updateAgent(aid('edge-1'), { state: 'SYNCED' });
    await sync.settled();
    assert.deepEqual(refreshed, [{ kind: 'agents', ids: [aid('edge-1'), aid('edge-2')] }]);
  });

  it('hands a cache only the kinds it follows, with the newest rollout revision', async () => {
    await shared.store.appendAudit({ at: new Date(), actor: 'ops', action: 'x', target: '', reason: '', details: null });
    await shared.store.saveRollout({ commit: cid('a'.repeat(40)), document: {}, at: new Date() });
    await shared.store.saveRollout({ commit: cid('a'.repeat(40)), document: {}, at: new Date() });
    await sync.settled();
    assert.deepEqual(refreshed, [{ kind: 'rollout', revision: 2 }]);
  });

  it('turns a resync into one re-read of everything, whatever came with it', async () => {
    await shared.store.updateAgent(aid('edge-1'), { state: 'PENDING' });
    shared.resync();
    await sync.settled();
    assert.deepEqual(refreshed, [{ kind: 'resync' }]);
  });

  it('a follower serves the newest stored generation when the accepted state changes; the leader does not', async () => {
    const record = (generation: number): GenerationRecord => ({
      generation,
      commit: cid('b'.repeat(40)),
      statement: {},
      bundle: {},
      agents: [{ agentId: aid('edge-1'), digest: DIGEST, commit: cid('b'.repeat(40)), baseline: false }],
      at: new Date(),
    });
    await shared.store.saveGeneration(record(1));
    await shared.store.saveGeneration(record(2));
    await shared.store.saveAccepted({ accepted: cid('b'.repeat(40)), generation: 2 });
    await sync.settled();
    assert.deepEqual(adopted, [2]);

    leader = true;
    await shared.store.saveGeneration(record(3));
    await shared.store.saveAccepted({ accepted: cid('b'.repeat(40)), generation: 3 });
    await sync.settled();
    assert.deepEqual(adopted, [2], 'the leader signed it: nothing to adopt');
  });

  it('a follower that could not serve the newest generation tries again by itself', async () => {
    failures = 1;
    await shared.store.saveGeneration({
      generation: 1,
      commit: cid('b'.repeat(40)),
      statement: {},
      bundle: {},
      agents: [{ agentId: aid('edge-1'), digest: DIGEST, commit: cid('b'.repeat(40)), baseline: false }],
      at: new Date(),
    });
    await shared.store.saveAccepted({ accepted: cid('b'.repeat(40)), generation: 1 });
    await sync.settled();
    assert.deepEqual(adopted, []);
    const deadline = Date.now() + 3_000;
    while (adopted.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(adopted, [1], 'adopted on the retry, with no new change');
  });

  it('a follower reports the refusal the leader stored, and its end; one with a code unknown here stands as none', async () => {
    const refusal = (code: string) => ({ commit: cid('c'.repeat(40)), code, message: 'refused', at: new Date(), violations: [] });
    await shared.store.saveRefusal(refusal('UNTRUSTED_SIGNER'));
    await sync.settled();
    await shared.store.saveRefusal(null);
    await sync.settled();
    await shared.store.saveRefusal(refusal('SOMETHING_NEWER'));
    await sync.settled();
    assert.deepEqual(refusals, [`${'c'.repeat(40)} UNTRUSTED_SIGNER`, null, null]);

    leader = true;
    await shared.store.saveRefusal(refusal('UNTRUSTED_SIGNER'));
    await sync.settled();
    assert.equal(refusals.length, 3, 'the leader judged it itself: nothing to adopt');
  });
});
