/**
 * Replicas on PostgreSQL: `npm run bench:replicas` (needs PostgreSQL: `bash scripts/test-postgres.sh`,
 * and `npm run build`: the servers and agents are real `meshcfg` processes).
 *
 *   acks       acks/s PostgreSQL sustains through `recordAck` (one transaction and one NOTIFY
 *              each), sequentially and with 32 in flight, and through `recordBatch` in batches
 *              of 250 (how the server writes them: one transaction per 20 ms window), alone
 *              and each after its agent's contact patch (the server's ack path); SQLite beside it
 *   converge   push → every agent SYNCED, for 6 agents all on one replica and spread over 3
 *              replicas, in the same run
 *   failover   the leader killed (`kill -9`) while the canary bakes: how long until a follower
 *              leads, and until it takes the next rollout step (starting the next wave)
 */
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import { PostgresFleetStore, SqliteFleetStore, type FleetStore } from '../src/fleet/index.js';
import { Deployment, INVENTORY, rolloutMeshcfg, type RolloutView } from '../test/e2e/harness.js';
import { tempDir } from '../test/helpers/git.js';
import { aid, cid } from '../test/helpers/ids.js';
import { createTestDatabase } from '../test/helpers/postgres.js';
import { waitFor } from '../test/helpers/process.js';

const ACKS = 2_000;
const IN_FLIGHT = 32;
const BATCH = 250;
const AGENTS = ['edge-1', 'edge-2', 'edge-3', 'edge-4', 'edge-5', 'edge-6'];

async function ackThroughput(store: FleetStore): Promise<{ sequential: number; concurrent: number; batched: number; mixed: number }> {
  const digest = `sha256:${'ab'.repeat(32)}`;
  const record = (i: number) =>
    ({ agentId: aid(`agent-${i % 500}`), commit: cid('a'.repeat(40)), digest, generation: 1, nonce: `n${i}`, status: 'APPLIED', error: '', at: new Date() }) as const;
  const ack = (i: number) => store.recordAck(record(i), { lastSeen: new Date(), state: 'SYNCED' });
  let start = performance.now();
  for (let i = 0; i < ACKS; i += 1) await ack(i);
  const sequential = ACKS / ((performance.now() - start) / 1000);
  start = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < ACKS) await ack((next += 1));
    }),
  );
  const concurrent = ACKS / ((performance.now() - start) / 1000);
  start = performance.now();
  for (let i = 0; i < ACKS * 5; i += BATCH) {
    await store.recordBatch(
      Array.from({ length: BATCH }, (_, j) => ({ kind: 'ack' as const, ack: record(i + j), agent: { lastSeen: new Date(), state: 'SYNCED' as const } })),
    );
  }
  const batched = (ACKS * 5) / ((performance.now() - start) / 1000);
  // As the server's ack path writes them: the contact patch (last seen, certificate), then the ack with its patch.
  start = performance.now();
  for (let i = 0; i < ACKS * 5; i += BATCH / 2) {
    await store.recordBatch(
      Array.from({ length: BATCH / 2 }, (_, j) => {
        const agentId = aid(`agent-${(i + j) % 5_000}`);
        const contact = { kind: 'agent' as const, id: agentId, patch: { lastSeen: new Date(), certSerial: 'ab12', certExpiry: new Date(Date.now() + 86_400_000), state: 'PENDING' as const } };
        return [contact, { kind: 'ack' as const, ack: { ...record(i + j), agentId }, agent: { lastSeen: new Date(), state: 'SYNCED' as const } }];
      }).flat(),
    );
  }
  const mixed = (ACKS * 5) / ((performance.now() - start) / 1000);
  return { sequential, concurrent, batched, mixed };
}

const inventory = `${INVENTORY}  - { id: edge-5, labels: { zone: public, env: prod } }\n  - { id: edge-6, labels: { zone: public, env: prod } }\n`;

/** A deployment on its own database with `replicas` server processes (the first leads). */
async function deployment(root: string, dbUrl: string, replicas: number, canaryBake: string): Promise<Deployment[]> {
  const files = {
    'meshcfg.yaml': rolloutMeshcfg(canaryBake),
    'inventory/edge.yaml': inventory,
    'config/base/00-mtls.yaml': 'mtls: { mode: STRICT, minTlsVersion: "1.2" }\nidentity: { trustDomain: example.org }\n',
    'baseline/00-safe.yaml': 'mtls: { mode: STRICT, minTlsVersion: "1.3" }\n',
  };
  const { deployment: first } = await Deployment.create(root, files);
  first.serverEnv['MESHCFG_POSTGRES_URL'] = dbUrl;
  await first.startServer();
  const all = [first];
  for (let i = 1; i < replicas; i += 1) {
    const replica = await first.replica(`r${i}`);
    await replica.startServer();
    all.push(replica);
  }
  return all;
}

/** Enrolls and starts the agents, round-robin over `servers`; resolves when all run `commit`. */
async function startAgents(servers: readonly Deployment[], commit: string): Promise<Map<string, Deployment>> {
  const home = new Map<string, Deployment>();
  for (const [i, id] of AGENTS.entries()) {
    const server = servers[i % servers.length] as Deployment;
    const enrolled = await server.enroll(id);
    if (enrolled.code !== 0) throw new Error(enrolled.stderr);
    server.startAgent(id);
    home.set(id, server);
  }
  for (const [id, server] of home) await server.waitSynced(id, commit, 60_000);
  return home;
}

async function convergence(label: string, replicas: number): Promise<number> {
  const tmp = tempDir(`meshcfg-bench-replicas-${replicas}-`);
  const db = await createTestDatabase('meshcfg_bench');
  const servers = await deployment(tmp.path, db.url, replicas, '0s');
  try {
    const first = (servers[0] as Deployment).work.head();
    const home = await startAgents(servers, first);
    const runs: number[] = [];
    for (let round = 0; round < 3; round += 1) {
      const start = performance.now();
      const next = (servers[0] as Deployment).push({ 'config/base/10-round.yaml': `telemetry: { accessLog: ${round % 2 === 0} }\n` }, `round ${round}`);
      await Promise.all([...home].map(([id, server]) => server.waitSynced(id, next, 60_000)));
      runs.push(performance.now() - start);
    }
    runs.sort((a, b) => a - b);
    const median = runs[1] as number;
    console.log(`converge  ${label.padEnd(32)} median ${median.toFixed(0)} ms of 3 pushes (${runs.map((r) => r.toFixed(0)).join(', ')})`);
    return median;
  } finally {
    for (const server of servers) await server.stopAll();
    await db.drop();
    tmp.cleanup();
  }
}

async function failover(): Promise<void> {
  const tmp = tempDir('meshcfg-bench-failover-');
  const db = await createTestDatabase('meshcfg_bench');
  const servers = await deployment(tmp.path, db.url, 3, '6s');
  try {
    const [leader, ...followers] = servers as [Deployment, ...Deployment[]];
    const home = await startAgents(followers, leader.work.head());
    const next = leader.push({ 'config/base/10-failover.yaml': 'telemetry: { accessLog: true }\n' }, 'failover');
    const canaryHome = home.get('edge-1') as Deployment;
    await canaryHome.waitSynced('edge-1', next, 60_000);
    const rollout = (await canaryHome.admin<RolloutView>('/api/v1/rollout')).body;
    const bakeEnds = Date.parse(rollout.waves[0]?.startedAt ?? '') + 6_000;
    // Kill 1.5 s before the bake ends: the next step (starting the rest wave) is the new leader's.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, bakeEnds - 1_500 - Date.now())));
    const killedAt = Date.now();
    await leader.killServer();
    const newLeader = await waitFor(
      'a follower to lead',
      async () => {
        for (const f of followers) {
          const res = await fetch(`${f.adminUrl}/readyz`).catch(() => null);
          if (((await res?.json()) as { replica?: { leader?: boolean } } | undefined)?.replica?.leader === true) return f;
        }
        return undefined;
      },
      30_000,
      20,
    );
    const ledAfter = Date.now() - killedAt;
    const started = await waitFor(
      'the rest wave to start',
      async () => (await newLeader.admin<RolloutView>('/api/v1/rollout')).body.waves[1]?.startedAt ?? undefined,
      60_000,
      20,
    );
    const stepAfter = Date.parse(started) - killedAt;
    console.log(`failover  a follower led ${ledAfter} ms after kill -9; the next rollout step (rest wave started) ${stepAfter} ms after (the bake ended ${Math.max(0, bakeEnds - killedAt)} ms after the kill)`);
    for (const [id, server] of home) if (server !== leader) await server.waitSynced(id, next, 60_000);
  } finally {
    for (const server of servers) await server.stopAll();
    await db.drop();
    tmp.cleanup();
  }
}

const pgDb = await createTestDatabase('meshcfg_bench');
const pg = await PostgresFleetStore.open(pgDb.url);
const pgAcks = await ackThroughput(pg);
await pg.close();
await pgDb.drop();
const sqliteDir = tempDir('meshcfg-bench-sqlite-');
const sqlite = await SqliteFleetStore.open(join(sqliteDir.path, 'fleet.db'));
const sqliteAcks = await ackThroughput(sqlite);
await sqlite.close();
sqliteDir.cleanup();
for (const [name, acks] of [['PostgreSQL', pgAcks], ['SQLite    ', sqliteAcks]] as const) {
  console.log(
    `acks      ${name} recordAck: ${acks.sequential.toFixed(0)}/s sequential, ${acks.concurrent.toFixed(0)}/s with ${IN_FLIGHT} in flight (${ACKS} acks each); ` +
      `recordBatch of ${BATCH}: ${acks.batched.toFixed(0)}/s (${ACKS * 5} acks); ` +
      `each after its agent's contact patch: ${acks.mixed.toFixed(0)} acks/s`,
  );
}
await convergence('6 agents on 1 replica', 1);
await convergence('6 agents spread over 3 replicas', 3);
await failover();
