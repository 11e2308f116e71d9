import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AgentId, Digest } from '../../src/domain/types.js';
import { SnapshotCache, type Snapshot } from '../../src/server/snapshot.js';
import type { Delivery } from '../../src/transport/index.js';
import { aid, cid } from '../helpers/ids.js';

const COMMIT = cid('c'.repeat(40));

const agents = (n: number): AgentId[] => Array.from({ length: n }, (_, i) => aid(`agent-${String(i).padStart(5, '0')}`));

/** A generation giving every agent its own delivery (what the reconciler builds, unsigned). */
function snapshotOf(generation: number, ids: readonly AgentId[]): Snapshot {
  const deliveries = new Map<AgentId, Delivery>(
    ids.map((id) => [
      id,
      { commit: COMMIT, digest: `sha256:${String(generation).padStart(64, '0')}` as Digest, generation, bytes: new Uint8Array(4), signature: 's', nonce: `${id}-${generation}`, baseline: false },
    ]),
  );
  return { generation, commit: COMMIT, expiresAt: null, deliveries };
}

/** Watches every agent; returns the generations each one was handed, in order. */
function watchAll(cache: SnapshotCache, ids: readonly AgentId[]): Map<AgentId, number[]> {
  const seen = new Map<AgentId, number[]>(ids.map((id) => [id, []]));
  for (const id of ids) cache.watch(id, (d) => seen.get(id)?.push(d.generation));
  return seen;
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('SnapshotCache fan-out', () => {
  describe('when a generation is published to more watches than one chunk', () => {
    it('answers the first chunk before set returns, yields to the event loop, and reaches every watch', async () => {
      const ids = agents(1_000);
      const cache = new SnapshotCache({ fanOutChunk: 100 });
      const seen = watchAll(cache, ids);
      let ranBetweenChunks = 0;
      const ticker = setInterval(() => (ranBetweenChunks += 1), 0);
      const ticks: number[] = [];
      const probe = (): void => {
        ticks.push([...seen.values()].filter((g) => g.length > 0).length);
      };
      cache.set(snapshotOf(1, ids));
      probe();
      setImmediate(probe);
      await cache.fanOutSettled();
      clearInterval(ticker);
      assert.equal(ticks[0], 100, 'one chunk synchronously');
      assert.ok((ticks[1] ?? 0) < ids.length, 'other work ran before the fan-out finished');
      assert.ok(ranBetweenChunks > 0, 'timers ran during the fan-out');
      for (const id of ids) assert.deepEqual(seen.get(id), [1]);
    });

    it('serves the new generation to polls and to watches opened during the fan-out', async () => {
      const ids = agents(500);
      const cache = new SnapshotCache({ fanOutChunk: 50 });
      const seen = watchAll(cache, ids.slice(0, 400));
      cache.set(snapshotOf(1, ids));
      assert.equal(cache.desired(ids[399] as AgentId)?.generation, 1);
      const late: number[] = [];
      cache.watch(ids[450] as AgentId, (d) => late.push(d.generation));
      await cache.fanOutSettled();
      assert.deepEqual(late, [1]);
      for (const id of ids.slice(0, 400)) assert.deepEqual(seen.get(id), [1]);
    });

    it('does not hand a watch closed during the fan-out anything more', async () => {
      const ids = agents(300);
      const cache = new SnapshotCache({ fanOutChunk: 100 });
      const got: number[] = [];
      for (const id of ids.slice(0, 299)) cache.watch(id, () => undefined);
      const close = cache.watch(ids[299] as AgentId, (d) => got.push(d.generation));
      cache.set(snapshotOf(1, ids));
      close();
      await cache.fanOutSettled();
      assert.deepEqual(got, []);
    });
  });

  describe('when a newer generation is published during a fan-out', () => {
    it('hands every watch the newest, never an older one after it nor the same one twice', async () => {
      const ids = agents(1_000);
      const cache = new SnapshotCache({ fanOutChunk: 100 });
      const seen = watchAll(cache, ids);
      cache.set(snapshotOf(1, ids));
      await turn();
      cache.set(snapshotOf(2, ids));
      await cache.fanOutSettled();
      await turn();
      for (const id of ids) {
        const generations = seen.get(id) ?? [];
        assert.equal(generations.at(-1), 2, `${id} ends on the newest generation`);
        assert.deepEqual(generations, [...new Set(generations)].sort(), `${id} got each generation once, in order`);
      }
      assert.ok([...seen.values()].some((g) => g.length === 1), 'the superseded fan-out was cut short');
    });

    it('reports each completed fan-out, not the superseded one', async () => {
      const ids = agents(250);
      const done: Array<{ generation: number; watches: number }> = [];
      const cache = new SnapshotCache({ fanOutChunk: 100, onFanOutDone: ({ generation, watches }) => done.push({ generation, watches }) });
      watchAll(cache, ids);
      cache.set(snapshotOf(1, ids));
      cache.set(snapshotOf(2, ids));
      await cache.fanOutSettled();
      assert.deepEqual(done, [{ generation: 2, watches: 250 }]);
    });
  });

  it('does not answer a watch again when the new generation gives its agent the same version', async () => {
    const ids = agents(10);
    const cache = new SnapshotCache({ fanOutChunk: 3 });
    const seen = watchAll(cache, ids);
    const first = snapshotOf(1, ids);
    cache.set(first);
    await cache.fanOutSettled();
    cache.set({ ...first, deliveries: new Map([...first.deliveries].map(([id, d]) => [id, { ...d, nonce: 'other' }])) });
    await cache.fanOutSettled();
    for (const id of ids) assert.deepEqual(seen.get(id), [1]);
  });
});
