import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CommitSha } from '../../src/domain/types.js';
import { MemoryFleetStore } from '../../src/fleet/index.js';
import { FleetCache } from '../../src/server/fleet.js';
import { aid, cid } from '../helpers/ids.js';

const DESIRED = { commit: cid('a'.repeat(40)), digest: 'sha256:' + '1'.repeat(64), generation: 1 };

describe('FleetCache', () => {
  it('lists only inventory agents, sorted, and forgets agents that left it', () => {
    const fleet = new FleetCache();
    fleet.setDesired([
      { id: aid('b'), labels: {}, desired: DESIRED },
      { id: aid('a'), labels: { zone: 'x' }, desired: DESIRED },
    ]);
    assert.deepEqual(fleet.list().map((a) => a.id), ['a', 'b']);
    fleet.setDesired([{ id: aid('b'), labels: {}, desired: DESIRED }]);
    assert.deepEqual(fleet.list().map((a) => a.id), ['b']);
    assert.equal(fleet.get(aid('a')), undefined);
  });

  it('keeps the connection of an agent whose stream opened before it was in a published inventory', () => {
    const fleet = new FleetCache();
    fleet.setConnected(aid('a'), true, new Date());
    fleet.setDesired([{ id: aid('a'), labels: {}, desired: DESIRED }]);
    assert.equal(fleet.get(aid('a'))?.connected, true);
  });

  describe('state', () => {
    const table: ReadonlyArray<{ name: string; state: string; act: (f: FleetCache, now: Date) => void }> = [
      { name: 'never seen', state: 'DISCONNECTED', act: () => undefined },
      { name: 'connected, nothing active', state: 'PENDING', act: (f, now) => f.setConnected(aid('a'), true, now) },
      {
        name: 'connected, runs the desired digest',
        state: 'SYNCED',
        act: (f, now) => {
          f.setConnected(aid('a'), true, now);
          f.recordActive(aid('a'), { commit: cid(DESIRED.commit), digest: DESIRED.digest, generation: 1 }, now);
        },
      },
      {
        name: 'connected, rejected the desired digest',
        state: 'NACKED',
        act: (f, now) => {
          f.setConnected(aid('a'), true, now);
          f.recordAck(aid('a'), { ...DESIRED, status: 'REJECTED', error: 'boom' }, now);
        },
      },
      {
        name: 'polling (no stream), seen within the window',
        state: 'SYNCED',
        act: (f, now) => f.recordAck(aid('a'), { ...DESIRED, status: 'APPLIED', error: '' }, new Date(now.getTime() - 60_000)),
      },
      {
        name: 'polling (no stream), not seen for longer than the window',
        state: 'DISCONNECTED',
        act: (f, now) => f.recordAck(aid('a'), { ...DESIRED, status: 'APPLIED', error: '' }, new Date(now.getTime() - 121_000)),
      },
    ];
    for (const { name, state, act } of table) {
      it(`is ${state} when ${name}`, () => {
        const now = new Date();
        const fleet = new FleetCache({ now: () => now, disconnectedAfterMs: 120_000 });
        fleet.setDesired([{ id: aid('a'), labels: {}, desired: DESIRED }]);
        act(fleet, now);
        assert.equal(fleet.get(aid('a'))?.state, state);
      });
    }
  });
});

describe('FleetCache states beyond the basics', () => {
  const DESIRED_B = { commit: cid('a'.repeat(40)), digest: 'sha256:' + '2'.repeat(64), generation: 1 };

  it('is STALE when the desired digest was sent and not acked within the ack timeout, and SYNCED once acked', () => {
    let now = new Date('2030-01-01T00:00:00Z');
    const fleet = new FleetCache({ now: () => now, ackTimeoutMs: 60_000 });
    fleet.setDesired([{ id: aid('a'), labels: {}, desired: DESIRED_B }]);
    fleet.setConnected(aid('a'), true, now);
    fleet.recordSend(aid('a'), { ...DESIRED_B, nonce: 'n1' }, now);
    assert.equal(fleet.get(aid('a'))?.state, 'PENDING');
    now = new Date(now.getTime() + 61_000);
    assert.equal(fleet.get(aid('a'))?.state, 'STALE');
    fleet.setAckTimeout(120_000);
    assert.equal(fleet.get(aid('a'))?.state, 'PENDING', 'the timeout follows the served commit');
    fleet.recordAck(aid('a'), { ...DESIRED_B, nonce: 'n1', status: 'APPLIED', error: '' }, now);
    assert.equal(fleet.get(aid('a'))?.state, 'SYNCED');
  });

  it('is QUARANTINED whatever else is true, until approved', async () => {
    const now = new Date();
    const fleet = new FleetCache({ now: () => now });
    fleet.setDesired([{ id: aid('a'), labels: {}, desired: DESIRED_B }]);
    fleet.recordAck(aid('a'), { ...DESIRED_B, status: 'APPLIED', error: '' }, now);
    const audit = { at: now, actor: 'system', action: 'agent.quarantine', target: 'a', reason: 'drift', details: null };
    assert.equal(await fleet.quarantine(aid('a'), { since: now, reason: 'drift', by: 'system' }, audit), true);
    assert.equal(await fleet.quarantine(aid('a'), { since: now, reason: 'drift', by: 'system' }, audit), false);
    assert.equal(fleet.get(aid('a'))?.state, 'QUARANTINED');
    assert.equal(await fleet.approve(aid('a'), { ...audit, action: 'agent.approve' }), true);
    assert.equal(fleet.get(aid('a'))?.state, 'SYNCED');
  });

  describe('lastRejection', () => {
    const A = cid('a'.repeat(40));
    const B = cid('b'.repeat(40));
    const C = cid('c'.repeat(40));
    const digestOf = (c: string): string => `sha256:${c.slice(0, 1).repeat(64)}`;
    const at = new Date('2030-01-01T00:00:00Z');
    /** An ack as the agent sends it: `served` is the commit of the generation the delivery came in. */
    const ack = (served: CommitSha, generation: number, digest: string, status: 'APPLIED' | 'REJECTED') => ({
      commit: served,
      digest,
      generation,
      nonce: `n${generation}`,
      status,
      error: status === 'REJECTED' ? 'RELOAD_FAILED: exit 3' : '',
    });
    /** What the server does per publish: the delivery goes out (a send), the agent answers it. */
    const deliver = (
      fleet: FleetCache,
      d: { served: CommitSha; generation: number; bundle: CommitSha; status: 'APPLIED' | 'REJECTED'; outcome?: 'recorded' | 'stale' },
    ): void => {
      fleet.setDesired([{ id: aid('a'), labels: {}, desired: { commit: d.bundle, digest: digestOf(d.bundle), generation: d.generation } }]);
      fleet.recordSend(aid('a'), { commit: d.served, digest: digestOf(d.bundle), generation: d.generation, nonce: `n${d.generation}` }, at);
      fleet.recordAck(aid('a'), ack(d.served, d.generation, digestOf(d.bundle), d.status), at, d.outcome ?? 'recorded', d.bundle);
    };
    /** A applied at generation 1; B rejected at 2; the halt sends A again under B's generation 3. */
    const rejectedB = (fleet: FleetCache): void => {
      deliver(fleet, { served: A, generation: 1, bundle: A, status: 'APPLIED' });
      deliver(fleet, { served: B, generation: 2, bundle: B, status: 'REJECTED' });
      deliver(fleet, { served: B, generation: 3, bundle: A, status: 'APPLIED' });
    };

    it('names the rejected commit, digest, error and time', () => {
      const fleet = new FleetCache({ now: () => at });
      rejectedB(fleet);
      assert.deepEqual(fleet.get(aid('a'))?.lastRejection, { commit: B, digest: digestOf(B), error: 'RELOAD_FAILED: exit 3', at });
    });

    it('stays while a newer commit C holds the agent back on the older A it went back to', () => {
      const fleet = new FleetCache({ now: () => at });
      rejectedB(fleet);
      deliver(fleet, { served: C, generation: 4, bundle: A, status: 'APPLIED' });
      assert.equal(fleet.get(aid('a'))?.state, 'SYNCED');
      assert.equal(fleet.get(aid('a'))?.lastRejection?.commit, B, 'A is older than B: applying it again under C’s generation clears nothing');
    });

    it('clears once the agent applies the bundle of C, a commit newer than B', () => {
      const fleet = new FleetCache({ now: () => at });
      rejectedB(fleet);
      deliver(fleet, { served: C, generation: 4, bundle: A, status: 'APPLIED' });
      deliver(fleet, { served: C, generation: 5, bundle: C, status: 'APPLIED' });
      assert.equal(fleet.get(aid('a'))?.lastRejection, null);
    });

    it('clears once the agent applies the rejected bundle itself, under any generation', () => {
      const fleet = new FleetCache({ now: () => at });
      rejectedB(fleet);
      deliver(fleet, { served: B, generation: 4, bundle: B, status: 'APPLIED' });
      assert.equal(fleet.get(aid('a'))?.lastRejection, null);
    });

    it('clears once the agent held back on A rejects it and then applies the generation’s own newer commit', () => {
      const fleet = new FleetCache({ now: () => at });
      deliver(fleet, { served: A, generation: 1, bundle: A, status: 'APPLIED' });
      deliver(fleet, { served: C, generation: 2, bundle: A, status: 'REJECTED' });
      assert.equal(fleet.get(aid('a'))?.lastRejection?.commit, A, 'the commit whose bundle it rejected, not the generation’s');
      deliver(fleet, { served: C, generation: 3, bundle: C, status: 'APPLIED' });
      assert.equal(fleet.get(aid('a'))?.lastRejection, null);
    });

    it('stays when the agent applies the baseline (quarantine), which is no commit’s bundle', () => {
      const fleet = new FleetCache({ now: () => at });
      rejectedB(fleet);
      const baseline = `sha256:${'f'.repeat(64)}`;
      fleet.setDesired([{ id: aid('a'), labels: {}, desired: { commit: C, digest: baseline, generation: 4, baseline: true } }]);
      fleet.recordSend(aid('a'), { commit: C, digest: baseline, generation: 4, nonce: 'n4' }, at);
      fleet.recordAck(aid('a'), ack(C, 4, baseline, 'APPLIED'), at);
      assert.equal(fleet.get(aid('a'))?.lastRejection?.commit, B);
    });

    describe('after a restart (rebuilt from the stored acks)', () => {
      const restart = async (build: (fleet: FleetCache) => void): Promise<FleetCache> => {
        const store = new MemoryFleetStore();
        const fleet = new FleetCache({ now: () => at, store });
        build(fleet);
        await fleet.flush();
        const restarted = await FleetCache.load(store, { now: () => at });
        restarted.setDesired([{ id: aid('a'), labels: {}, desired: fleet.get(aid('a'))?.desired ?? null }]);
        return restarted;
      };

      it('stays while C holds the agent back on A, and clears once it applies C', async () => {
        const restarted = await restart((fleet) => {
          rejectedB(fleet);
          deliver(fleet, { served: C, generation: 4, bundle: A, status: 'APPLIED' });
        });
        assert.deepEqual(restarted.get(aid('a'))?.lastRejection, { commit: B, digest: digestOf(B), error: 'RELOAD_FAILED: exit 3', at });
        deliver(restarted, { served: C, generation: 5, bundle: A, status: 'APPLIED' });
        assert.equal(restarted.get(aid('a'))?.lastRejection?.commit, B);
        deliver(restarted, { served: C, generation: 6, bundle: C, status: 'APPLIED' });
        assert.equal(restarted.get(aid('a'))?.lastRejection, null);
      });

      it('names the commit whose bundle was rejected, not the commit of the generation it came in', async () => {
        const restarted = await restart((fleet) => {
          deliver(fleet, { served: A, generation: 1, bundle: A, status: 'APPLIED' });
          deliver(fleet, { served: C, generation: 2, bundle: A, status: 'REJECTED' });
        });
        assert.equal(restarted.get(aid('a'))?.lastRejection?.commit, A);
      });

      it('ignores a REJECTED ack for an older delivery that arrived after a newer one was applied (stale)', async () => {
        const restarted = await restart((fleet) => {
          deliver(fleet, { served: A, generation: 1, bundle: A, status: 'APPLIED' });
          deliver(fleet, { served: B, generation: 3, bundle: B, status: 'APPLIED' });
          fleet.recordAck(aid('a'), ack(A, 2, digestOf(C), 'REJECTED'), at, 'stale');
          assert.equal(fleet.get(aid('a'))?.lastRejection, null, 'a stale ack changes nothing');
        });
        assert.equal(restarted.get(aid('a'))?.lastRejection, null);
      });
    });
  });

  it('keeps a quarantine when the agent leaves the inventory and comes back, also through the store', async () => {
    const now = new Date();
    const store = new MemoryFleetStore();
    const fleet = new FleetCache({ now: () => now, store });
    fleet.setDesired([{ id: aid('a'), labels: {}, desired: DESIRED_B }]);
    const audit = { at: now, actor: 'bob', action: 'agent.quarantine', target: 'a', reason: 'suspicious', details: null };
    await fleet.quarantine(aid('a'), { since: now, reason: 'suspicious', by: 'bob' }, audit);
    fleet.setDesired([]);
    assert.equal(fleet.get(aid('a')), undefined, 'not listed while out of the inventory');
    assert.equal(fleet.isQuarantined(aid('a')), true);
    await fleet.flush();
    const restarted = await FleetCache.load(store, { now: () => now });
    restarted.setDesired([{ id: aid('a'), labels: {}, desired: DESIRED_B }]);
    assert.equal(restarted.get(aid('a'))?.state, 'QUARANTINED');
    assert.equal(restarted.get(aid('a'))?.quarantine?.by, 'bob');
  });
});
