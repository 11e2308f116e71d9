import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createConnection, createServer, type AddressInfo, type Socket } from 'node:net';
import pg from 'pg';
import { AdvisoryLockLeadership, SoleLeadership, type StepDownReason } from '../../src/server/leadership.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';

/** Polls `condition` every 25 ms until it holds or `ms` pass. */
async function until(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

function candidate(db: TestDatabase, replica: string, deposed: StepDownReason[] = []): AdvisoryLockLeadership {
  return new AdvisoryLockLeadership({
    connectionString: db.url,
    replica,
    retryMs: 200,
    checkMs: 200,
    checkTimeoutMs: 500,
    hooks: { onDeposed: ({ reason }) => deposed.push(reason) },
  });
}

/** Terminates the database sessions whose application_name names `replica` (as an operator or a failover would). */
async function terminateSessionsOf(db: TestDatabase, replica: string): Promise<number> {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    const result = await client.query<{ terminated: boolean }>(
      "SELECT pg_terminate_backend(pid) AS terminated FROM pg_stat_activity WHERE application_name = 'meshcfg-leader ' || $1",
      [replica],
    );
    return result.rows.filter((r) => r.terminated).length;
  } finally {
    await client.end();
  }
}

describe('SoleLeadership (a store only this process writes)', () => {
  it('leads from the start and needs no database', async () => {
    const leadership = new SoleLeadership('only');
    leadership.start();
    assert.equal(leadership.isLeader(), true);
    assert.equal(leadership.state().kind, 'leader');
    await leadership.stop();
  });
});

describe('AdvisoryLockLeadership (replicas sharing PostgreSQL)', () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase();
  });
  after(async () => {
    await db.drop();
  });

  describe('when two candidates campaign on one database', () => {
    it('elects exactly one, and the other takes over when the leader stops', async () => {
      const a = candidate(db, 'replica-a');
      const b = candidate(db, 'replica-b');
      a.start();
      await until(() => a.isLeader(), 5_000, 'a to lead');
      b.start();
      // b keeps trying (retryMs 200): a full second of tries never makes two leaders.
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      assert.equal(a.isLeader(), true);
      assert.equal(b.isLeader(), false);
      await a.stop();
      assert.equal(a.isLeader(), false);
      await until(() => b.isLeader(), 5_000, 'b to take over');
      await b.stop();
    });
  });

  describe("when the leader's backend is terminated (pg_terminate_backend)", () => {
    it('steps down at once with connection-lost, and the other candidate takes over', async () => {
      const deposedA: StepDownReason[] = [];
      const a = candidate(db, 'replica-c', deposedA);
      const b = candidate(db, 'replica-d');
      const changes: boolean[] = [];
      a.subscribe((leader) => changes.push(leader));
      a.start();
      await until(() => a.isLeader(), 5_000, 'c to lead');
      b.start();
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.equal(b.isLeader(), false);

      const killedAt = Date.now();
      assert.equal(await terminateSessionsOf(db, 'replica-c'), 1);
      await until(() => !a.isLeader(), 2_000, 'c to step down');
      assert.deepEqual(deposedA, ['connection-lost']);
      await until(() => b.isLeader(), 5_000, 'd to take over');
      assert.ok(Date.now() - killedAt < 5_000);
      // The deposed replica campaigns again and, while d holds the lock, stays a follower.
      await new Promise((resolve) => setTimeout(resolve, 600));
      assert.equal(a.isLeader(), false);
      assert.deepEqual(changes, [true, false]);
      await Promise.all([a.stop(), b.stop()]);
    });
  });

  describe('when the database cannot be reached', () => {
    it('stays a follower and reports each failed try', async () => {
      const errors: unknown[] = [];
      const lonely = new AdvisoryLockLeadership({
        connectionString: 'postgres://meshcfg:meshcfg@127.0.0.1:1/none',
        retryMs: 100,
        checkTimeoutMs: 300,
        hooks: { onCandidateError: ({ error }) => errors.push(error) },
      });
      lonely.start();
      await until(() => errors.length >= 2, 5_000, 'two failed tries');
      assert.equal(lonely.isLeader(), false);
      await lonely.stop();
    });
  });
});

/** A TCP relay that can freeze: it stops forwarding but keeps both sockets open (a hung network, not a closed one). */
async function freezableRelay(targetPort: number): Promise<{ port: number; freeze(): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let frozen = false;
  const server = createServer((inbound) => {
    const outbound = createConnection({ port: targetPort, host: '127.0.0.1' });
    for (const socket of [inbound, outbound]) {
      sockets.add(socket);
      socket.on('error', () => undefined);
    }
    inbound.on('data', (chunk: Buffer) => (frozen ? undefined : outbound.write(chunk)));
    outbound.on('data', (chunk: Buffer) => (frozen ? undefined : inbound.write(chunk)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    freeze: () => {
      frozen = true;
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('AdvisoryLockLeadership when the leader’s network hangs (nothing closed)', () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase();
  });
  after(async () => {
    await db.drop();
  });

  it('steps down with check-failed within a check and its timeout; PostgreSQL ends the idle session and another takes over', async () => {
    const relay = await freezableRelay(Number(new URL(db.url).port || 5432));
    const viaRelay = new URL(db.url);
    viaRelay.port = String(relay.port);
    const deposed: StepDownReason[] = [];
    const a = new AdvisoryLockLeadership({
      connectionString: viaRelay.toString(),
      replica: 'hung',
      retryMs: 200,
      checkMs: 200,
      checkTimeoutMs: 300,
      sessionTimeoutMs: 1_500,
      hooks: { onDeposed: ({ reason }) => deposed.push(reason) },
    });
    const b = candidate(db, 'healthy');
    try {
      a.start();
      await until(() => a.isLeader(), 5_000, 'the relayed candidate to lead');
      b.start();
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.equal(b.isLeader(), false);

      const frozenAt = Date.now();
      relay.freeze();
      await until(() => !a.isLeader(), 1_500, 'the cut-off leader to step down');
      assert.deepEqual(deposed, ['check-failed']);
      // PostgreSQL still has the session (it saw no close): b leads once it ends the idle session.
      await until(() => b.isLeader(), 6_000, 'the healthy candidate to take over');
      assert.ok(Date.now() - frozenAt >= 1_000, 'not before PostgreSQL released the lock');
    } finally {
      await Promise.all([a.stop(), b.stop()]);
      await relay.close();
    }
  });
});
