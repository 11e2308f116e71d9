import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryFleetStore } from '../../src/server/fleet.js';

const DESIRED = { commit: 'a'.repeat(40), digest: 'sha256:' + '1'.repeat(64), generation: 1 };

describe('MemoryFleetStore', () => {
  it('lists only inventory agents, sorted, and forgets agents that left it', () => {
    const fleet = new MemoryFleetStore();
    fleet.setDesired([
      { id: 'b', labels: {}, desired: DESIRED },
      { id: 'a', labels: { zone: 'x' }, desired: DESIRED },
    ]);
    assert.deepEqual(fleet.list().map((a) => a.id), ['a', 'b']);
    fleet.setDesired([{ id: 'b', labels: {}, desired: DESIRED }]);
    assert.deepEqual(fleet.list().map((a) => a.id), ['b']);
    assert.equal(fleet.get('a'), undefined);
  });

  it('keeps the connection of an agent whose stream opened before it was in a published inventory', () => {
    const fleet = new MemoryFleetStore();
    fleet.setConnected('a', true, new Date());
    fleet.setDesired([{ id: 'a', labels: {}, desired: DESIRED }]);
    assert.equal(fleet.get('a')?.connected, true);
  });

  describe('state', () => {
    const table: ReadonlyArray<{ name: string; state: string; act: (f: MemoryFleetStore, now: Date) => void }> = [
      { name: 'never seen', state: 'DISCONNECTED', act: () => undefined },
      { name: 'connected, nothing active', state: 'PENDING', act: (f, now) => f.setConnected('a', true, now) },
      {
        name: 'connected, runs the desired digest',
        state: 'SYNCED',
        act: (f, now) => {
          f.setConnected('a', true, now);
          f.recordActive('a', { commit: DESIRED.commit, digest: DESIRED.digest, generation: 1 }, now);
        },
      },
      {
        name: 'connected, rejected the desired digest',
        state: 'NACKED',
        act: (f, now) => {
          f.setConnected('a', true, now);
          f.recordAck('a', { ...DESIRED, status: 'REJECTED', error: 'boom' }, now);
        },
      },
      {
        name: 'polling (no stream), seen within the window',
        state: 'SYNCED',
        act: (f, now) => f.recordAck('a', { ...DESIRED, status: 'APPLIED', error: '' }, new Date(now.getTime() - 60_000)),
      },
      {
        name: 'polling (no stream), not seen for longer than the window',
        state: 'DISCONNECTED',
        act: (f, now) => f.recordAck('a', { ...DESIRED, status: 'APPLIED', error: '' }, new Date(now.getTime() - 121_000)),
      },
    ];
    for (const { name, state, act } of table) {
      it(`is ${state} when ${name}`, () => {
        const now = new Date();
        const fleet = new MemoryFleetStore({ now: () => now, disconnectedAfterMs: 120_000 });
        fleet.setDesired([{ id: 'a', labels: {}, desired: DESIRED }]);
        act(fleet, now);
        assert.equal(fleet.get('a')?.state, state);
      });
    }
  });
});
