import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { FleetChangeEvent } from '../../src/fleet/changes.js';
import { StoreError } from '../../src/fleet/errors.js';
import { redactUrl } from '../../src/fleet/postgres/connection.js';
import { MAX_PAYLOAD_BYTES } from '../../src/fleet/postgres/feed.js';
import { MIGRATIONS } from '../../src/fleet/postgres/migrations.js';
import { PostgresFleetStore, type PostgresStoreEvent } from '../../src/fleet/postgres/store.js';
import type { AdminTokenRecord } from '../../src/fleet/store.js';
import { hashToken } from '../../src/pki/tokens.js';
import { aid, cid } from '../helpers/ids.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { freePort, waitFor } from '../helpers/process.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';
import { COMMIT_A, COMMIT_B, DIGEST_A, T0, at, auditEntry, storeCode } from './helpers.js';

const databases: TestDatabase[] = [];
async function freshDatabase(): Promise<TestDatabase> {
  const db = await createTestDatabase('meshcfg_pgstore');
  databases.push(db);
  return db;
}
after(async () => {
  for (const db of databases) await db.drop();
});

async function query<R extends pg.QueryResultRow>(url: string, sql: string, params: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

/** Two store instances (two pools) on one database: two replicas. */
async function twoStores(): Promise<{ a: PostgresFleetStore; b: PostgresFleetStore; db: TestDatabase; close: () => Promise<void> }> {
  const db = await freshDatabase();
  const a = await PostgresFleetStore.open(db.url, { poolSize: 4 });
  const b = await PostgresFleetStore.open(db.url, { poolSize: 4 });
  return { a, b, db, close: async () => void (await Promise.all([a.close(), b.close()])) };
}

function withPassword(url: string, password: string, port?: number): string {
  const parsed = new URL(url);
  parsed.password = password;
  if (port !== undefined) parsed.port = String(port);
  return parsed.toString();
}

function adminToken(name: string, secret: string): AdminTokenRecord {
  return { name, role: 'operator', hash: hashToken(secret), createdAt: T0, createdBy: 'alice', expiresAt: null, revokedAt: null };
}

describe('PostgresFleetStore', () => {
  describe('migrations', () => {
    it('two stores opened at the same moment on an empty database both succeed, and the schema is applied once', async () => {
      const db = await freshDatabase();
      const stores = await Promise.all([PostgresFleetStore.open(db.url), PostgresFleetStore.open(db.url), PostgresFleetStore.open(db.url)]);
      try {
        for (const store of stores) assert.deepEqual(await store.schemaVersions(), MIGRATIONS.map((_, i) => i + 1));
        const rows = await query<{ version: number }>(db.url, 'SELECT version FROM schema_migrations');
        assert.equal(rows.length, MIGRATIONS.length);
        assert.deepEqual(await stores[0]?.serverState(), { accepted: null, generation: 0, lastRefusal: null });
      } finally {
        await Promise.all(stores.map((s) => s.close()));
      }
    });

    it('opens a database it migrated before without applying anything again, and keeps what it holds', async () => {
      const db = await freshDatabase();
      const first = await PostgresFleetStore.open(db.url);
      await first.saveAccepted({ accepted: cid(COMMIT_A), generation: 4, seenAt: at(3) });
      await first.close();
      const second = await PostgresFleetStore.open(db.url);
      assert.deepEqual(await second.serverState(), { accepted: COMMIT_A, generation: 4, seenAt: at(3), lastRefusal: null });
      assert.deepEqual(await second.schemaVersions(), MIGRATIONS.map((_, i) => i + 1));
      await second.close();
    });

    it('refuses with SCHEMA_TOO_NEW a database a newer meshcfg migrated, and changes nothing', async () => {
      const db = await freshDatabase();
      await (await PostgresFleetStore.open(db.url)).close();
      await query(db.url, 'INSERT INTO schema_migrations (version, applied_at) VALUES ($1, 0)', [MIGRATIONS.length + 1]);
      await assert.rejects(PostgresFleetStore.open(db.url), storeCode('SCHEMA_TOO_NEW'));
      assert.equal((await query(db.url, 'SELECT version FROM schema_migrations')).length, MIGRATIONS.length + 1);
    });

    it('rolls back a migration that fails, with its version row', async () => {
      const db = await freshDatabase();
      await assert.rejects(PostgresFleetStore.open(db.url, { migrations: [...MIGRATIONS, 'CREATE TABLE extra (x INTEGER); SELECT no_such_function()'] }), storeCode('CORRUPT'));
      assert.deepEqual(
        (await query<{ version: number }>(db.url, 'SELECT version FROM schema_migrations ORDER BY version')).map((r) => r.version),
        MIGRATIONS.map((_, i) => i + 1),
      );
      assert.equal((await query(db.url, "SELECT 1 FROM pg_tables WHERE tablename = 'extra'")).length, 0);
    });
  });

  describe('compare-and-set across two stores (two pools, as two replicas)', () => {
    let stores: Awaited<ReturnType<typeof twoStores>>;
    before(async () => {
      stores = await twoStores();
    });
    after(() => stores.close());

    it('saveRollout with ifRevision: of two saves against the same revision exactly one wins, every time', async () => {
      const { a, b } = stores;
      let revision: number | null = null;
      for (let round = 0; round < 20; round += 1) {
        const results: PromiseSettledResult<number>[] = await Promise.allSettled([
          a.saveRollout({ commit: cid(COMMIT_A), document: { by: 'a', round }, at: T0 }, { ifRevision: revision }),
          b.saveRollout({ commit: cid(COMMIT_B), document: { by: 'b', round }, at: T0 }, { ifRevision: revision }),
        ]);
        const won = results.filter((r): r is PromiseFulfilledResult<number> => r.status === 'fulfilled');
        const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
        assert.equal(won.length, 1, `round ${round}: ${results.map((r) => r.status).join(', ')}`);
        assert.ok(lost[0] !== undefined && storeCode('CONFLICT')(lost[0].reason));
        revision = won[0]?.value ?? null;
        assert.equal(revision, round + 1);
        assert.equal((await a.loadRollout())?.revision, revision);
      }
    });

    it('saveRollout without ifRevision: concurrent saves all succeed with distinct revisions', async () => {
      const { a, b } = stores;
      const before = (await a.loadRollout())?.revision ?? 0;
      const revisions = await Promise.all(
        Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? a : b).saveRollout({ commit: cid(COMMIT_A), document: { i }, at: T0 })),
      );
      assert.deepEqual(
        [...revisions].sort((x, y) => x - y),
        Array.from({ length: 10 }, (_, i) => before + i + 1),
      );
    });

    it('saveAccepted: concurrent saves never leave a generation below the highest one saved', async () => {
      const { a, b } = stores;
      for (let round = 0; round < 10; round += 1) {
        const base = (await a.serverState()).generation;
        const generations = [base + 3, base + 1, base + 2, base + 5, base + 4];
        const results = await Promise.allSettled(generations.map((generation, i) => (i % 2 === 0 ? a : b).saveAccepted({ accepted: cid(COMMIT_A), generation })));
        for (const r of results) if (r.status === 'rejected') assert.ok(storeCode('CONFLICT')(r.reason));
        assert.equal((await b.serverState()).generation, base + 5, `round ${round}`);
      }
    });

    it('token claim: of two claims of one token exactly one finds it unused, every time', async () => {
      const { a, b } = stores;
      for (let round = 0; round < 20; round += 1) {
        const hash = hashToken(`token-${round}`);
        await a.tokens.insert({ hash, agentId: aid('edge-1'), expiresAt: at(3_600_000) });
        const claims = await Promise.all([a.tokens.claim(hash, at(1)), b.tokens.claim(hash, at(2))]);
        const unused = claims.filter((c) => c !== undefined && c.usedAt === undefined);
        assert.equal(unused.length, 1, `round ${round}`);
      }
    });

    it('admin tokens: of two inserts of one name exactly one succeeds, the other is CONFLICT', async () => {
      const { a, b } = stores;
      for (let round = 0; round < 10; round += 1) {
        const results = await Promise.allSettled([a.insertAdminToken(adminToken(`ci-${round}`, `s-a-${round}`)), b.insertAdminToken(adminToken(`ci-${round}`, `s-b-${round}`))]);
        assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1, `round ${round}`);
        const lost = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        assert.ok(lost !== undefined && storeCode('CONFLICT')(lost.reason));
      }
    });
  });

  describe('when PostgreSQL cannot be reached', () => {
    it('open fails with STORE_UNAVAILABLE naming the server, without the password', async () => {
      const port = await freePort();
      const url = withPassword('postgres://meshcfg@127.0.0.1/meshcfg', 'hunter2-secret', port);
      const err = await PostgresFleetStore.open(url, { connectTimeoutMs: 2_000 }).then(
        () => assert.fail('open succeeded'),
        (e: unknown) => e,
      );
      assert.ok(storeCode('STORE_UNAVAILABLE')(err));
      const message = (err as StoreError).message;
      assert.ok(message.includes(`127.0.0.1:${port}`), message);
      assert.ok(!message.includes('hunter2-secret'), message);
    });

    it('a wrong password fails with STORE_UNAVAILABLE, and the password is in no message', async () => {
      const db = await freshDatabase();
      const url = withPassword(db.url, 'not-the-password-42');
      const err = await PostgresFleetStore.open(url).then(
        () => assert.fail('open succeeded'),
        (e: unknown) => e,
      );
      assert.ok(storeCode('STORE_UNAVAILABLE')(err));
      assert.ok(!JSON.stringify({ message: (err as Error).message, stack: (err as Error).stack }).includes('not-the-password-42'));
    });

    it('calls fail with STORE_UNAVAILABLE while the network is cut, and succeed again once it is back', async () => {
      const db = await freshDatabase();
      const proxy = await startTcpProxy(Number(new URL(db.url).port || 5432));
      const events: PostgresStoreEvent[] = [];
      const store = await PostgresFleetStore.open(withPassword(db.url, 'meshcfg', proxy.port), { connectTimeoutMs: 1_000, onEvent: (e) => events.push(e) });
      try {
        await store.updateAgent(aid('edge-1'), { state: 'SYNCED' });
        await proxy.cut();
        await assert.rejects(store.updateAgent(aid('edge-1'), { state: 'PENDING' }), storeCode('STORE_UNAVAILABLE'));
        await assert.rejects(store.listAgents(), storeCode('STORE_UNAVAILABLE'));
        await proxy.restore();
        const agent = await waitFor('a write through the restored proxy', () => store.updateAgent(aid('edge-1'), { state: 'PENDING' }), 10_000, 100);
        assert.equal(agent.state, 'PENDING');
        assert.equal((await store.getAgent(aid('edge-1')))?.state, 'PENDING');
      } finally {
        await store.close();
        await proxy.close();
      }
    });
  });

  describe('redactUrl', () => {
    const cases: ReadonlyArray<readonly [string, string]> = [
      ['postgres://meshcfg:s3cret@db.example:5432/fleet', 'postgres://meshcfg:***@db.example:5432/fleet'],
      ['postgresql://meshcfg@db.example/fleet?sslmode=require', 'postgresql://meshcfg@db.example/fleet?sslmode=require'],
      ['postgres://db.example/fleet?user=meshcfg&password=s3cret', 'postgres://db.example/fleet?user=meshcfg&password=***'],
      ['not a url s3cret', '(a PostgreSQL URL that does not parse)'],
    ];
    for (const [url, redacted] of cases) {
      it(`shows ${redacted}`, () => assert.equal(redactUrl(url), redacted));
    }

    it('refuses a URL that is not postgres:// with STORE_UNAVAILABLE, without echoing its password', async () => {
      const err = await PostgresFleetStore.open('mysql://u:s3cretpw@h/db').then(
        () => assert.fail('open succeeded'),
        (e: unknown) => e,
      );
      assert.ok(storeCode('STORE_UNAVAILABLE')(err));
      assert.ok(!(err as Error).message.includes('s3cretpw'));
    });
  });

  describe('a table dropped by hand', () => {
    it('is CORRUPT (an operator acts), not retried', async () => {
      const db = await freshDatabase();
      const store = await PostgresFleetStore.open(db.url);
      await query(db.url, 'DROP TABLE agents');
      await assert.rejects(store.listAgents(), storeCode('CORRUPT'));
      await store.close();
    });
  });

  describe('change notifications', () => {
    let stores: Awaited<ReturnType<typeof twoStores>>;
    let events: FleetChangeEvent[];
    before(async () => {
      stores = await twoStores();
      events = [];
      stores.b.changes.subscribe((e) => events.push(e));
      await stores.b.changes.ready();
    });
    after(() => stores.close());

    /** Runs `write` on A, then a marker write, and returns what B heard in between. */
    async function heardOn(write: () => Promise<unknown>): Promise<FleetChangeEvent[]> {
      const start = events.length;
      await write().catch(() => undefined);
      const marker = `marker-${start}`;
      await stores.a.updateAgent(aid(marker), {});
      await waitFor('the marker notification', () => events.slice(start).some((e) => e.kind === 'agents' && e.ids !== 'all' && e.ids.includes(aid(marker))), 5_000, 10);
      return events.slice(start, events.length - 1);
    }

    it('emits resync once LISTEN is in place', () => {
      assert.deepEqual(events[0], { kind: 'resync' });
    });

    it("tells B of A's writes, with their kind and agent ids", async () => {
      assert.deepEqual(await heardOn(() => stores.a.updateAgent(aid('edge-1'), { state: 'SYNCED' })), [{ kind: 'agents', ids: ['edge-1'] }]);
      assert.deepEqual(await heardOn(() => stores.a.saveAccepted({ accepted: cid(COMMIT_A), generation: 1 })), [{ kind: 'server-state' }]);
      assert.deepEqual(await heardOn(() => stores.a.saveRollout({ commit: cid(COMMIT_A), document: {}, at: T0 })), [{ kind: 'rollout', revision: 1 }]);
      assert.deepEqual(await heardOn(() => stores.a.revoke({ serial: '0a', agentId: aid('edge-1'), at: T0, by: 'alice' })), [{ kind: 'credentials' }]);
      assert.deepEqual(await heardOn(() => stores.a.appendAudit(auditEntry())), [{ kind: 'audit' }]);
      assert.deepEqual(
        await heardOn(() => stores.a.updateAgent(aid('edge-2'), { quarantine: { since: T0, reason: 'drift', by: 'alice' } }, auditEntry())),
        [{ kind: 'agents', ids: ['edge-2'] }, { kind: 'audit' }],
      );
      assert.deepEqual(
        await heardOn(() => stores.a.recordAck({ agentId: aid('edge-3'), commit: cid(COMMIT_A), digest: DIGEST_A, generation: 1, nonce: 'n', status: 'APPLIED', error: '', at: T0 })),
        [{ kind: 'agents', ids: ['edge-3'] }],
      );
    });

    it('tells nothing of a write that rolled back', async () => {
      assert.deepEqual(await heardOn(() => stores.a.saveAccepted({ accepted: cid(COMMIT_A), generation: 0 })), []);
      assert.deepEqual(await heardOn(() => stores.a.saveRollout({ commit: cid(COMMIT_A), document: {}, at: T0 }, { ifRevision: 99 })), []);
    });

    it("names 'all' agents when their ids would not fit in one notification", async () => {
      const ids = Array.from({ length: 300 }, (_, i) => aid(`agent-with-a-rather-long-identifier-${String(i).padStart(4, '0')}`));
      assert.ok(JSON.stringify(ids).length > MAX_PAYLOAD_BYTES);
      assert.deepEqual(await heardOn(() => stores.a.updateAgents(ids.map((id) => ({ id, patch: { state: 'PENDING' } })))), [{ kind: 'agents', ids: 'all' }]);
      const few = ids.slice(0, 50);
      assert.deepEqual(await heardOn(() => stores.a.updateAgents(few.map((id) => ({ id, patch: { state: 'SYNCED' } })))), [{ kind: 'agents', ids: few }]);
    });

    it('ignores and counts a payload on the channel that is not a change', async () => {
      const before = stores.b.changes.stats().malformed;
      assert.deepEqual(await heardOn(() => query(stores.db.url, "NOTIFY meshcfg_fleet, 'not json'")), []);
      assert.deepEqual(await heardOn(() => query(stores.db.url, `NOTIFY meshcfg_fleet, '{"kind":"nonsense"}'`)), []);
      assert.equal(stores.b.changes.stats().malformed, before + 2);
    });

    it('reconnects after its connection is killed, emits resync, and hears writes again', async () => {
      const pid = stores.b.changes.backendPid();
      assert.ok(pid !== null);
      const start = events.length;
      await query(stores.db.url, 'SELECT pg_terminate_backend($1)', [pid]);
      await waitFor('a resync after the reconnect', () => events.slice(start).some((e) => e.kind === 'resync'), 10_000, 20);
      assert.notEqual(stores.b.changes.backendPid(), pid);
      assert.equal(stores.b.changes.stats().reconnects, 1);
      assert.deepEqual(await heardOn(() => stores.a.saveRefusal(null)), [{ kind: 'server-state' }]);
    });

    it('close() ends the listening connection', async () => {
      const db = await freshDatabase();
      const store = await PostgresFleetStore.open(db.url);
      store.changes.subscribe(() => undefined);
      await store.changes.ready();
      const count = async (): Promise<number> =>
        (await query<{ n: number }>(db.url, "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND query ILIKE 'LISTEN%'", [db.name]))[0]?.n ?? -1;
      assert.equal(await count(), 1);
      await store.close();
      await waitFor('the LISTEN connection to end', async () => (await count()) === 0, 5_000);
    });
  });
});
