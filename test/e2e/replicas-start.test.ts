import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { tempDir } from '../helpers/git.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { waitFor } from '../helpers/process.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { CONFIG_FILES, Deployment, sha256File, useDeployment } from './harness.js';

interface Readyz {
  status: string;
  replica: { id: string; leader: boolean };
}

/** Tables in the public schema of the database at `url`. */
async function tablesIn(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ n: string }>("SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'public'");
    return Number(rows[0]?.n);
  } finally {
    await client.end();
  }
}

async function readyz(d: Deployment): Promise<Readyz | null> {
  const res = await fetch(`${d.adminUrl}/readyz`).catch(() => null);
  return res === null ? null : ((await res.json()) as Readyz);
}

/**
 * Two real `meshcfg serve` processes started together on an empty PostgreSQL database: neither
 * has run the migrations or taken the lease before the other starts.
 */
describe('two replicas started at the same moment on an empty database', { timeout: 180_000 }, () => {
  const tmp = tempDir('meshcfg-e2e-replicas-start-');
  let db: TestDatabase;
  let d: Deployment;
  let r1: Deployment;
  let first: string;

  before(async () => {
    db = await createTestDatabase('meshcfg_e2e_replicas_start');
    ({ deployment: d, first } = await Deployment.create(tmp.path, CONFIG_FILES));
    // The replicas share a data directory (CA, keys, admin token). Create it with one run on the
    // local SQLite store — the PostgreSQL database is not touched — then drop that store.
    await d.startServer();
    await d.stopServer();
    rmSync(join(d.dataDir, 'fleet.db'), { force: true });
    rmSync(join(d.dataDir, 'fleet.db-wal'), { force: true });
    rmSync(join(d.dataDir, 'fleet.db-shm'), { force: true });
    r1 = await d.replica('r1');
    for (const r of [d, r1]) r.serverEnv['MESHCFG_POSTGRES_URL'] = db.url;
  });
  after(async () => {
    await r1?.stopAll();
    await d?.stopAll();
    await db?.drop();
    tmp.cleanup();
  });

  it('both become ready, exactly one leads, and an agent enrolled on the follower syncs the first commit', async () => {
    assert.equal(await tablesIn(db.url), 0, 'the database is empty: no replica has run the migrations');
    await Promise.all([d.startServer(), r1.startServer()]);
    assert.ok((await tablesIn(db.url)) > 0, 'the migrations ran');
    const views = await Promise.all([readyz(d), readyz(r1)]);
    assert.ok(views[0] !== null && views[1] !== null, JSON.stringify(views));
    assert.notEqual(views[0]?.replica.id, views[1]?.replica.id);
    // Leadership is settled once one replica holds the lease; wait for that, then exactly one leads.
    const leaders = await waitFor(
      'one replica to hold the lease',
      async () => {
        const now = await Promise.all([d, r1].map(async (r) => (await readyz(r))?.replica.leader === true));
        return now.some(Boolean) ? now : undefined;
      },
      15_000,
    );
    assert.equal(leaders.filter(Boolean).length, 1, `leaders: ${JSON.stringify(leaders)}`);
    const follower = leaders[0] ? r1 : d;
    const enrolled = await follower.enroll('edge-2');
    assert.equal(enrolled.code, 0, enrolled.stderr);
    follower.startAgent('edge-2');
    await follower.waitSynced('edge-2', first, 40_000);
    // Still exactly one leader after the agent synced.
    const settled = await Promise.all([d, r1].map(async (r) => (await readyz(r))?.replica.leader === true));
    assert.equal(settled.filter(Boolean).length, 1, `leaders: ${JSON.stringify(settled)}`);
  });
});

/**
 * Two real replicas whose shared PostgreSQL goes away (a TCP proxy on loopback, cut and
 * restored) while agents are connected to each: the agents keep their config while it is
 * unreachable, and once it is back a new commit reaches the agents on both replicas.
 */
describe('PostgreSQL stopped and restarted while agents are connected to two replicas', { timeout: 240_000 }, () => {
  let db: TestDatabase;
  let proxy: TcpProxy;
  before(async () => {
    db = await createTestDatabase('meshcfg_e2e_replicas_pg_restart');
    proxy = await startTcpProxy(Number(new URL(db.url).port || 5432));
  });
  const suite = useDeployment('meshcfg-e2e-replicas-pg-restart-', CONFIG_FILES, (d) => {
    const url = new URL(db.url);
    url.port = String(proxy.port);
    d.serverEnv['MESHCFG_POSTGRES_URL'] = url.toString();
  });
  let d: Deployment;
  let r1: Deployment;
  let first: string;
  after(async () => {
    await r1?.stopAll();
    await proxy?.close();
    await db?.drop();
  });

  before(async () => {
    ({ deployment: d, first } = suite);
    r1 = await d.replica('r1');
    await r1.startServer();
    for (const [id, replica] of [['edge-1', d], ['edge-2', r1]] as const) {
      const enrolled = await replica.enroll(id);
      assert.equal(enrolled.code, 0, enrolled.stderr);
      replica.startAgent(id);
      await replica.waitSynced(id, first, 40_000);
    }
  });

  it('agents on both replicas keep their config while it is unreachable; after it is back a new commit reaches both', async () => {
    const home = [['edge-1', d], ['edge-2', r1]] as const;
    const onDisk = new Map(home.map(([id, replica]) => [id, sha256File(replica.agentFile(id))]));
    await proxy.cut();

    // Both replicas know the store is gone: a state change is refused with STORE_UNAVAILABLE.
    const statuses: number[] = [];
    for (const [id, replica] of home) {
      await waitFor(
        `${replica.root} to refuse writes while PostgreSQL is unreachable`,
        async () => {
          const res = await replica.admin<{ error?: { code: string } }>(`/api/v1/agents/${id}/quarantine`, { method: 'POST', body: JSON.stringify({ reason: 'while the database is away' }) });
          statuses.push(res.status);
          return res.status === 503 && res.body.error?.code === 'STORE_UNAVAILABLE';
        },
        30_000,
        250,
      );
    }
    assert.ok(!statuses.includes(200), `no quarantine succeeded while PostgreSQL was unreachable: ${JSON.stringify(statuses)}`);
    for (const [id, replica] of home) assert.equal((await replica.agentView(id))?.quarantine ?? null, null, `${id} was not quarantined`);
    // The agents keep running on the config they had.
    for (const [id, replica] of home) {
      assert.equal(sha256File(replica.agentFile(id)), onDisk.get(id), `${id} keeps its config`);
      assert.equal(replica.agents.get(id)?.child.exitCode, null, `${id} keeps running`);
    }

    await proxy.restore();

    const next = d.push({ 'config/base/10-telemetry.yaml': 'telemetry: { accessLog: true }\n' }, 'access logs everywhere');
    for (const [id, replica] of home) await replica.waitSynced(id, next, 60_000);
    for (const [id, replica] of home) assert.notEqual(sha256File(replica.agentFile(id)), onDisk.get(id), `${id} applied the new commit`);
  });
});
