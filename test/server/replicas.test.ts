import assert from 'node:assert/strict';
import { cpSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { AdvisoryLockLeadership } from '../../src/server/leadership.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { importFleet, SqliteFleetStore } from '../../src/fleet/index.js';
import { openDataDir } from '../../src/pki/index.js';
import { aid } from '../helpers/ids.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { shareStore, type SharedStore } from '../helpers/shared-store.js';
import { configFor, fakeTransport, makeFixture, silentLogger, type Fixture } from './helpers.js';

async function until(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function readyz(server: RunningServer): Promise<{ status: number; body: { status: string; replica: { id: string; leader: boolean } } }> {
  const res = await fetch(`${server.adminUrl}/readyz`);
  return { status: res.status, body: (await res.json()) as { status: string; replica: { id: string; leader: boolean } } };
}

describe('a server alone on its store (SQLite)', () => {
  let fixture: Fixture;
  let server: RunningServer;
  beforeEach(async () => {
    fixture = makeFixture();
    server = await startServer(configFor(fixture), { logger: silentLogger, transport: fakeTransport().start });
  });
  afterEach(async () => {
    await server.close();
    fixture.cleanup();
  });

  it('leads from the start: it polls, and /readyz and /api/v1/source say it leads', async () => {
    assert.equal(server.leadership.isLeader(), true);
    await until(() => server.ready(), 10_000, 'the head to be accepted by the first poll');
    const probe = await readyz(server);
    assert.equal(probe.status, 200);
    assert.deepEqual(probe.body.replica, { id: server.leadership.replica, leader: true });
    const token = readFileSync(server.adminTokenPath, 'utf8').trim();
    const source = (await (await fetch(`${server.adminUrl}/api/v1/source`, { headers: { authorization: `Bearer ${token}` } })).json()) as {
      replica: { id: string; leader: boolean };
    };
    assert.deepEqual(source.replica, { id: server.leadership.replica, leader: true });
  });
});

describe('two servers electing a leader on one PostgreSQL database', () => {
  let db: TestDatabase;
  let fixture: Fixture;
  const servers: RunningServer[] = [];
  before(async () => {
    db = await createTestDatabase();
  });
  after(async () => {
    await db.drop();
  });
  beforeEach(() => {
    fixture = makeFixture();
  });
  afterEach(async () => {
    for (const server of servers.splice(0)) await server.close();
    fixture.cleanup();
  });

  const start = (name: string): Promise<RunningServer> =>
    startServer(
      { ...configFor(fixture), dataDir: join(fixture.root, name) },
      {
        logger: silentLogger,
        transport: fakeTransport().start,
        leadership: new AdvisoryLockLeadership({ connectionString: db.url, replica: name, retryMs: 200, checkMs: 200, checkTimeoutMs: 500 }),
      },
    ).then((server) => (servers.push(server), server));

  it('only the leader polls the repository; the other takes over (and polls) when the leader stops', async () => {
    const a = await start('replica-a');
    await until(() => a.leadership.isLeader(), 5_000, 'a to lead');
    const b = await start('replica-b');
    await until(() => a.ready(), 10_000, 'the leader to accept the head');
    await new Promise((resolve) => setTimeout(resolve, 600));
    assert.equal(b.leadership.isLeader(), false);
    assert.equal(b.reconciler.status().head, null, 'a follower never fetches');
    assert.deepEqual((await readyz(b)).body.replica, { id: 'replica-b', leader: false });

    await a.close();
    servers.splice(servers.indexOf(a), 1);
    await until(() => b.leadership.isLeader(), 5_000, 'b to take over');
    await until(() => b.reconciler.status().head === fixture.first, 10_000, 'the new leader to poll');
    assert.deepEqual((await readyz(b)).body.replica, { id: 'replica-b', leader: true });
  });
});

describe('replicas sharing one fleet store (in one process, with its change feed)', () => {
  let db: TestDatabase;
  let fixture: Fixture;
  let shared: SharedStore;
  const servers: RunningServer[] = [];
  const transports = new Map<RunningServer, ReturnType<typeof fakeTransport>>();
  before(async () => {
    db = await createTestDatabase();
  });
  after(async () => {
    await db.drop();
  });
  beforeEach(async () => {
    fixture = makeFixture();
    shared = shareStore(await SqliteFleetStore.open(join(fixture.root, 'shared-fleet.db')));
  });
  afterEach(async () => {
    for (const server of servers.splice(0)) await server.close();
    await shared.store.close();
    fixture.cleanup();
  });

  /** A replica with its own data directory holding copies of the first one's keys and token. */
  const start = async (name: string): Promise<RunningServer> => {
    const dataDir = join(fixture.root, name);
    if (servers.length > 0) cpSync(servers[0]!.config.dataDir, dataDir, { recursive: true, filter: (src) => !src.includes('repo') });
    const transport = fakeTransport();
    const server = await startServer(
      { ...configFor(fixture), dataDir },
      {
        logger: silentLogger,
        transport: transport.start,
        fleetStore: shared.store,
        leadership: new AdvisoryLockLeadership({ connectionString: db.url, replica: name, retryMs: 200, checkMs: 200, checkTimeoutMs: 500 }),
      },
    );
    servers.push(server);
    transports.set(server, transport);
    return server;
  };
  const delivery = (server: RunningServer, id: string) => server.reconciler.served()?.snapshot.deliveries.get(aid(id));
  const admin = async (server: RunningServer, path: string, body?: unknown): Promise<Response> =>
    fetch(`${server.adminUrl}${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: {
        authorization: `Bearer ${readFileSync(server.adminTokenPath, 'utf8').trim()}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });

  it('the follower serves the generation the leader signed, byte for byte, and numbers continue after a takeover', async () => {
    const a = await start('replica-a');
    await until(() => a.leadership.isLeader() && a.ready(), 10_000, 'a to lead and serve');
    const b = await start('replica-b');
    await until(() => b.ready(), 10_000, 'b to serve the stored generation');
    assert.equal(b.leadership.isLeader(), false);
    const [fromA, fromB] = [delivery(a, 'edge-3'), delivery(b, 'edge-3')];
    assert.ok(fromA !== undefined && fromB !== undefined);
    assert.equal(fromB.generation, fromA.generation);
    assert.equal(fromB.signature, fromA.signature, 'the same signed statement and proof');
    assert.deepEqual(Buffer.from(fromB.bytes), Buffer.from(fromA.bytes));
    assert.equal(b.reconciler.status().generation, a.reconciler.status().generation);

    const generation = fromA.generation;
    await a.close();
    servers.splice(servers.indexOf(a), 1);
    await until(() => b.leadership.isLeader(), 5_000, 'b to take over');
    // The new leader signs on from the highest generation anyone signed, never below it.
    const result = await b.reconciler.republish();
    assert.equal(result?.kind, 'accepted');
    assert.ok((delivery(b, 'edge-3')?.generation ?? 0) > generation);
  });

  it('an approval made through the follower releases an agent for the leader, and the follower serves the result', async () => {
    const a = await start('replica-a');
    await until(() => a.leadership.isLeader() && a.ready(), 10_000, 'a to lead and serve');
    const b = await start('replica-b');
    await until(() => b.ready(), 10_000, 'b to serve');

    assert.equal((await admin(a, '/api/v1/agents/edge-3/quarantine', { reason: 'suspicious' })).status, 200);
    await until(() => delivery(a, 'edge-3')?.baseline === true, 5_000, 'the leader to put edge-3 on the baseline');
    await until(() => delivery(b, 'edge-3')?.baseline === true, 5_000, 'the follower to serve the baseline too');

    assert.equal((await admin(b, '/api/v1/agents/edge-3/approve', { reason: 'checked' })).status, 200);
    await until(() => delivery(a, 'edge-3')?.baseline === false, 5_000, 'the leader to give edge-3 its own bundle again');
    await until(() => delivery(b, 'edge-3')?.baseline === false, 5_000, 'the follower to serve it');
    assert.equal(delivery(b, 'edge-3')?.signature, delivery(a, 'edge-3')?.signature);
    const audit = (await (await admin(a, '/api/v1/audit')).json()) as { entries?: Array<{ action: string }> } | Array<{ action: string }>;
    const actions = (Array.isArray(audit) ? audit : (audit.entries ?? [])).map((e) => e.action);
    assert.ok(actions.includes('agent.approve') && actions.includes('agent.quarantine'), JSON.stringify(actions));
  });

  it('a revocation made on one replica ends the agent’s streams on the other', async () => {
    const a = await start('replica-a');
    await until(() => a.leadership.isLeader() && a.ready(), 10_000, 'a to lead and serve');
    const b = await start('replica-b');
    await until(() => b.ready(), 10_000, 'b to serve');
    await shared.store.setCurrentCertificate({ agentId: aid('edge-2'), serial: 'abcd01', kind: 'enroll', at: new Date() });
    await until(() => transports.get(b)!.rechecked().includes('edge-2'), 5_000, 'b to learn of the new certificate');
    const before = transports.get(b)!.rechecked().length;
    assert.equal((await admin(a, '/api/v1/agents/edge-2/revoke', { reason: 'stolen laptop' })).status, 200);
    await until(() => transports.get(b)!.rechecked().length > before, 5_000, 'b to check edge-2’s streams again');
  });

  it('a rollout command given to the follower changes the leader’s rollout', async () => {
    const a = await start('replica-a');
    await until(() => a.leadership.isLeader() && a.ready(), 10_000, 'a to lead and serve');
    const b = await start('replica-b');
    await until(() => b.ready(), 10_000, 'b to serve');
    assert.equal((await admin(b, '/api/v1/rollout/pause', { reason: 'freeze' })).status, 200);
    // The leader learns of the pause from the change feed: a resume through it is not refused (NOT_PAUSED).
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal((await admin(a, '/api/v1/rollout/resume', { reason: 'thaw' })).status, 200);
    assert.equal((await admin(b, '/api/v1/rollout/resume', { reason: 'again' })).status, 409, 'the follower acts on the leader’s document');
    const stored = await shared.store.loadRollout();
    assert.equal((stored?.document as { paused: boolean }).paused, false);
    const actions = (await shared.store.listAudit()).map((e) => e.action);
    assert.deepEqual(actions.filter((x) => x.startsWith('rollout.')), ['rollout.resume', 'rollout.pause']);
  });

  it('a commit the leader refused is reported by every replica, also one started later, until a newer commit is accepted', async () => {
    const a = await start('replica-a');
    await until(() => a.leadership.isLeader() && a.ready(), 10_000, 'a to lead and serve');
    const b = await start('replica-b');
    await until(() => b.ready(), 10_000, 'b to serve');
    const source = async (server: RunningServer) =>
      (await (await admin(server, '/api/v1/source')).json()) as { accepted: string; refused: { commit: string; code: string } | null; conditions: Array<{ type: string; reason: string }> };

    const stranger = fixture.repo.write({ 'README.md': 'not reviewed\n' }).commit('unreviewed change', fixture.stranger);
    assert.equal((await a.syncNow()).kind, 'refused');
    await until(() => b.reconciler.status().refused?.commit === stranger, 5_000, 'b to report the refusal');
    const [fromA, fromB] = [await source(a), await source(b)];
    assert.deepEqual(fromB.refused, fromA.refused);
    assert.equal(fromB.refused?.code, 'UNTRUSTED_SIGNER');
    assert.equal(fromB.accepted, fixture.first, 'still serving the previous commit');
    assert.equal(fromB.conditions.find((c) => c.type === 'Ready')?.reason, 'ServingPrevious');

    // A replica started after the refusal reads it from the store; it is not judged again there.
    const c = await start('replica-c');
    await until(() => c.ready() && c.reconciler.status().refused?.commit === stranger, 10_000, 'c to report the refusal');

    const good = fixture.repo.write({ 'README.md': 'reviewed\n' }).commit('reviewed change', fixture.signer);
    assert.equal((await a.syncNow()).kind, 'accepted');
    assert.equal(a.reconciler.status().refused, null);
    for (const follower of [b, c]) {
      await until(() => follower.reconciler.status().serving === good && follower.reconciler.status().refused === null, 10_000, 'the followers to serve the new commit and drop the refusal');
    }
    assert.equal((await shared.store.serverState()).lastRefusal, null);
  });
});

describe('replicas on one PostgreSQL fleet store (state.postgres, in one process)', () => {
  let db: TestDatabase;
  let fixture: Fixture;
  const servers: RunningServer[] = [];
  beforeEach(async () => {
    db = await createTestDatabase();
    fixture = makeFixture();
  });
  afterEach(async () => {
    for (const server of servers.splice(0)) await server.close();
    fixture.cleanup();
    await db.drop();
  });

  const start = async (name: string): Promise<RunningServer> => {
    const dataDir = join(fixture.root, name);
    if (servers.length > 0) cpSync(servers[0]!.config.dataDir, dataDir, { recursive: true });
    const config = { ...configFor(fixture), dataDir, state: { kind: 'postgres' as const, url: db.url, from: 'server.yaml' as const } };
    const server = await startServer(config, { logger: silentLogger, transport: fakeTransport().start });
    servers.push(server);
    return server;
  };

  it('two replicas started at the same moment on an empty database: one leads, both serve the same signed bytes', async () => {
    // Key material is shared: the second data directory is a copy of the first.
    const config = configFor(fixture);
    await openDataDir({ dataDir: join(fixture.root, 'replica-a'), trustDomain: config.trustDomain, serverNames: config.tls.serverNames, agentCertTtlMs: config.enrollment.certificateTtlMs });
    cpSync(join(fixture.root, 'replica-a'), join(fixture.root, 'replica-b'), { recursive: true });
    const [a, b] = await Promise.all([start('replica-a'), start('replica-b')]);
    await until(() => a.ready() && b.ready(), 15_000, 'both to serve');
    assert.equal([a, b].filter((s) => s.leadership.isLeader()).length, 1);
    const leader = a.leadership.isLeader() ? a : b;
    const follower = leader === a ? b : a;
    const id = aid('edge-1');
    await until(
      () => follower.reconciler.served()?.snapshot.generation === leader.reconciler.served()?.snapshot.generation,
      5_000,
      'the follower to serve the leader’s newest generation',
    );
    const [l, f] = [leader.reconciler.served()?.snapshot.deliveries.get(id), follower.reconciler.served()?.snapshot.deliveries.get(id)];
    assert.equal(f?.signature, l?.signature);
    assert.deepEqual(Buffer.from(f?.bytes ?? []), Buffer.from(l?.bytes ?? []));
    const stored = await leader.fleetStore.latestGeneration();
    assert.equal(stored?.generation, l?.generation);
  });

  it('a server on SQLite moved to PostgreSQL with importFleet: the replicas number generations on from it and keep its quarantines', async () => {
    const alone = await startServer({ ...configFor(fixture), dataDir: join(fixture.root, 'alone') }, { logger: silentLogger, transport: fakeTransport().start });
    try {
      if (alone.reconciler.served() === null) await alone.syncNow();
      await alone.fleetStore.updateAgent(aid('edge-3'), { quarantine: { since: new Date(), reason: 'ran config it was not issued', by: 'meshcfg' }, state: 'QUARANTINED' });
      for (let i = 0; i < 3; i += 1) await alone.reconciler.republish();
    } finally {
      await alone.close();
    }
    const before = await SqliteFleetStore.open(join(fixture.root, 'alone', 'fleet.db'));
    const { generation } = await before.serverState();
    await before.close();
    assert.ok(generation >= 4);
    await importFleet(join(fixture.root, 'alone', 'fleet.db'), db.url);

    cpSync(join(fixture.root, 'alone'), join(fixture.root, 'replica-a'), { recursive: true, filter: (src) => !src.includes('fleet.db') });
    const a = await start('replica-a');
    await until(() => a.leadership.isLeader() && a.ready(), 15_000, 'the first replica to lead and serve');
    const served = a.reconciler.served()?.snapshot;
    assert.ok((served?.generation ?? 0) > generation, `generation ${served?.generation} after ${generation}`);
    assert.equal(served?.deliveries.get(aid('edge-3'))?.baseline, true, 'edge-3 stays quarantined on the baseline');
  });
});
