import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
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
    const C1 = '1'.repeat(40);
    const C2 = '2'.repeat(40);
    const C3 = '3'.repeat(40);
    const digestOf = (n: number): string => `sha256:${String(n).repeat(64)}`;
    const ack = (commit: string, digest: string, status: 'APPLIED' | 'REJECTED') => ({ commit, digest, generation: 1, status, error: status === 'REJECTED' ? 'RELOAD_FAILED: exit 3' : '' });

    it('stays through going back to the previous config, and clears on applying the rejected bundle', () => {
      const now = new Date('2030-01-01T00:00:00Z');
      const fleet = new FleetCache({ now: () => now });
      fleet.setDesired([{ id: aid('a'), labels: {}, desired: { commit: cid(C2), digest: digestOf(2), generation: 1 } }]);
      fleet.recordAck(aid('a'), ack(C2, digestOf(2), 'REJECTED'), now);
      assert.deepEqual(fleet.get(aid('a'))?.lastRejection, { commit: cid(C2), digest: digestOf(2), error: 'RELOAD_FAILED: exit 3', at: now });
      fleet.recordAck(aid('a'), ack(C2, digestOf(1), 'APPLIED'), now, 'recorded', C1);
      assert.equal(fleet.get(aid('a'))?.lastRejection?.digest, digestOf(2), 'its previous config under the same served commit keeps it');
      fleet.recordAck(aid('a'), ack(C2, digestOf(2), 'APPLIED'), now);
      assert.equal(fleet.get(aid('a'))?.lastRejection, null);
    });

    it('clears on applying a bundle of a newer served commit, and survives a restart until then', async () => {
      const now = new Date('2030-01-01T00:00:00Z');
      const store = new MemoryFleetStore();
      const fleet = new FleetCache({ now: () => now, store });
      fleet.setDesired([{ id: aid('a'), labels: {}, desired: { commit: cid(C2), digest: digestOf(2), generation: 1 } }]);
      fleet.recordAck(aid('a'), ack(C2, digestOf(2), 'REJECTED'), now);
      fleet.recordAck(aid('a'), ack(C2, digestOf(1), 'APPLIED'), now, 'recorded', C1);
      await fleet.flush();
      const restarted = await FleetCache.load(store, { now: () => now });
      restarted.setDesired([{ id: aid('a'), labels: {}, desired: { commit: cid(C2), digest: digestOf(2), generation: 2 } }]);
      assert.equal(restarted.get(aid('a'))?.lastRejection?.digest, digestOf(2));
      restarted.recordAck(aid('a'), ack(C3, digestOf(3), 'APPLIED'), now);
      assert.equal(restarted.get(aid('a'))?.lastRejection, null);
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
