/**
 * Per-agent costs of the server's in-memory parts at fleet scale: `npm run bench:fleet-scale`.
 *
 * For N = 1,000, 5,000 and 10,000 agents (all connected, each sent and acked once), the time of:
 *
 *   list        FleetCache.list(): every status query and metrics collector reads it
 *   agents      GET /api/v1/agents' body (list + JSON), what the dashboard polls every 2 s
 *   silent      FleetCache.silentAgents(): the quarantine sweep
 *   metrics     one Prometheus scrape of the server's registry (ServerMetrics.text())
 *   acks        recording N acks in one turn through FleetCache into SQLite (synchronous=FULL), until durable
 *   fan-out     SnapshotCache.set to N watches, until every watch was answered, and the longest
 *               event-loop stall during it (perf_hooks.monitorEventLoopDelay)
 *
 * "per agent" is the time over N: flat across N means linear. Numbers are medians of a few runs.
 */
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { AgentId, Digest } from '../src/domain/types.js';
import { SqliteFleetStore } from '../src/fleet/index.js';
import { FleetCache } from '../src/server/fleet.js';
import { ServerMetrics } from '../src/server/metrics.js';
import { SnapshotCache, type Snapshot } from '../src/server/snapshot.js';
import type { Delivery } from '../src/transport/index.js';
import { tempDir } from '../test/helpers/git.js';
import { aid, cid } from '../test/helpers/ids.js';

const SIZES = (process.env['BENCH_SIZES'] ?? '1000,5000,10000').split(',').map(Number);
const RUNS = Number(process.env['BENCH_RUNS'] ?? 5);
const COMMIT = cid('c'.repeat(40));
const DIGEST = `sha256:${'1'.repeat(64)}` as Digest;
const AT = new Date();

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

async function time(fn: () => unknown | Promise<unknown>): Promise<number> {
  const runs: number[] = [];
  for (let i = 0; i < RUNS; i += 1) {
    const t = performance.now();
    await fn();
    runs.push(performance.now() - t);
  }
  return median(runs);
}

function fleetOf(ids: readonly AgentId[], store?: SqliteFleetStore): FleetCache {
  const fleet = new FleetCache({ now: () => AT, ...(store === undefined ? {} : { store }) });
  fleet.setDesired(ids.map((id, i) => ({ id, labels: { zone: `z${i % 3}` }, wave: 'rest', desired: { commit: COMMIT, digest: DIGEST, generation: 1 } })));
  for (const id of ids) {
    fleet.setConnected(id, true, AT);
    fleet.recordSeen(id, AT, { notAfter: new Date(AT.getTime() + 86_400_000), serial: 'abcd' });
  }
  return fleet;
}

function deliverAndAck(fleet: FleetCache, ids: readonly AgentId[], generation: number): void {
  for (const [i, id] of ids.entries()) fleet.recordSend(id, { commit: COMMIT, digest: DIGEST, generation, nonce: `n${generation}-${i}` }, AT);
  for (const [i, id] of ids.entries()) {
    fleet.recordAck(id, { commit: COMMIT, digest: DIGEST, generation, nonce: `n${generation}-${i}`, status: 'APPLIED', error: '' }, AT);
  }
}

function snapshotOf(generation: number, ids: readonly AgentId[]): Snapshot {
  const bytes = new Uint8Array(4096);
  const deliveries = new Map<AgentId, Delivery>(ids.map((id) => [id, { commit: COMMIT, digest: DIGEST, generation, bytes, signature: 'x'.repeat(600), nonce: `${generation}`, baseline: false }]));
  return { generation, commit: COMMIT, expiresAt: null, deliveries };
}

async function main(): Promise<void> {
  const tmp = tempDir('meshcfg-bench-scale-');
  const rows: string[][] = [['N', 'list', 'agents JSON', 'silent', 'metrics', 'acks→SQLite', 'fan-out', 'max stall']];
  try {
    for (const n of SIZES) {
      const ids = Array.from({ length: n }, (_, i) => aid(`agent-${String(i).padStart(6, '0')}`));
      const fleet = fleetOf(ids);
      deliverAndAck(fleet, ids, 1);
      const list = await time(() => fleet.list());
      const agents = await time(() => JSON.stringify(fleet.list()));
      const silent = await time(() => fleet.silentAgents(60_000));
      const metrics = new ServerMetrics({ fleet, connectedAgents: () => n });
      const scrape = await time(() => metrics.text());

      const store = await SqliteFleetStore.open(join(tmp.path, `fleet-${n}.db`));
      const durable = fleetOf(ids, store);
      await durable.flush();
      let generation = 1;
      const acks = await time(async () => {
        generation += 1;
        deliverAndAck(durable, ids, generation);
        await durable.flush();
      });
      await store.close();

      const cache = new SnapshotCache();
      // A watch does what a stream's does per delivery: build the message, hand it on (here: serialise it).
      let sink = 0;
      for (const id of ids) cache.watch(id, (d) => (sink += Buffer.from(JSON.stringify({ ...d, bytes: Buffer.from(d.bytes).toString('base64') })).length));
      const stalls: number[] = [];
      let g = 0;
      const fanOut = await time(async () => {
        const histogram = monitorEventLoopDelay({ resolution: 1 });
        histogram.enable();
        await new Promise((r) => setTimeout(r, 20));
        g += 1;
        cache.set(snapshotOf(g, ids));
        await cache.fanOutSettled();
        await new Promise((r) => setTimeout(r, 20));
        histogram.disable();
        stalls.push(histogram.max / 1e6);
      });
      const perAgent = (ms: number): string => `${ms.toFixed(1)} ms (${((ms * 1000) / n).toFixed(2)} µs/agent)`;
      rows.push([String(n), perAgent(list), perAgent(agents), perAgent(silent), perAgent(scrape), perAgent(acks), perAgent(fanOut), `${median(stalls).toFixed(1)} ms`]);
      if (sink < 0) process.stdout.write('');
    }
  } finally {
    tmp.cleanup();
  }
  const widths = rows[0]?.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length))) ?? [];
  for (const row of rows) process.stdout.write(`${row.map((cell, c) => cell.padEnd((widths[c] ?? 0) + 2)).join('')}\n`);
}

await main();
