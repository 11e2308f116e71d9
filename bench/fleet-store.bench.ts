/**
 * Fleet store benchmark: `npm run bench:store` (PostgreSQL from `bash scripts/test-postgres.sh`,
 * or MESHCFG_TEST_POSTGRES_URL).
 *
 * The write an ack costs — `recordAck` with the agent update it causes, one transaction — on
 * SQLite (synchronous=FULL, the server's setting) and on PostgreSQL (a pool of 10, the server's
 * default), one at a time and with 16 in flight (acks of many agents arriving at once), and a
 * publish to the whole fleet (`updateAgents` of 10,000 agents in one transaction).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { PostgresFleetStore, SqliteFleetStore, type FleetStore } from '../src/fleet/index.js';
import { aid, cid } from '../test/helpers/ids.js';
import { createTestDatabase } from '../test/helpers/postgres.js';

const SEQUENTIAL = 1_000;
const CONCURRENT = 5_000;
const IN_FLIGHT = 16;
const FLEET = 10_000;
const COMMIT = cid('a'.repeat(40));
const DIGEST = `sha256:${'1'.repeat(64)}`;

async function acks(store: FleetStore, count: number, inFlight: number, offset: number): Promise<number> {
  let next = 0;
  const started = performance.now();
  const worker = async (): Promise<void> => {
    for (let i = next++; i < count; i = next++) {
      const agentId = aid(`edge-${(offset + i) % FLEET}`);
      const at = new Date(1_900_000_000_000 + i);
      await store.recordAck(
        { agentId, commit: COMMIT, digest: DIGEST, generation: 1, nonce: `n${i}`, status: 'APPLIED', error: '', at },
        { active: { commit: COMMIT, digest: DIGEST, generation: 1, at }, lastSeen: at, state: 'SYNCED' },
      );
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return count / ((performance.now() - started) / 1000);
}

async function publish(store: FleetStore): Promise<number> {
  const updates = Array.from({ length: FLEET }, (_, i) => ({ id: aid(`edge-${i}`), patch: { desired: { commit: COMMIT, digest: DIGEST, generation: 2 } } }));
  const started = performance.now();
  await store.updateAgents(updates);
  return performance.now() - started;
}

async function run(name: string, store: FleetStore): Promise<void> {
  const publishMs = await publish(store);
  const sequential = await acks(store, SEQUENTIAL, 1, 0);
  const concurrent = await acks(store, CONCURRENT, IN_FLIGHT, SEQUENTIAL);
  console.log(
    `${name.padEnd(12)} acks/s sequential ${sequential.toFixed(0).padStart(6)}   ${IN_FLIGHT} in flight ${concurrent.toFixed(0).padStart(6)}   publish to ${FLEET} agents ${publishMs.toFixed(0)} ms`,
  );
  await store.close();
}

const dir = mkdtempSync(join(tmpdir(), 'meshcfg-bench-store-'));
const db = await createTestDatabase('meshcfg_bench');
try {
  await run('SQLite', await SqliteFleetStore.open(join(dir, 'fleet.db')));
  await run('PostgreSQL', await PostgresFleetStore.open(db.url));
} finally {
  rmSync(dir, { recursive: true, force: true });
  await db.drop();
}
