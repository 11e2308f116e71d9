import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { AdvisoryLockLeadership } from '../../src/server/leadership.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
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
    const token = (await import('node:fs')).readFileSync(server.adminTokenPath, 'utf8').trim();
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
