import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { waitFor } from '../helpers/process.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { CONFIG_FILES, Deployment, sha256File, useDeployment } from './harness.js';

async function acksOf(url: string, agentId: string): Promise<Array<{ at: number; status: string }>> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000, query_timeout: 10_000 });
  await client.connect();
  try {
    const { rows } = await client.query<{ at: string; status: string }>('SELECT at, status FROM acks WHERE agent_id = $1 ORDER BY id', [agentId]);
    return rows.map((r) => ({ at: Number(r.at), status: r.status }));
  } finally {
    await client.end();
  }
}

/**
 * One real server whose PostgreSQL goes away (a TCP proxy on loopback, cut and restored):
 * connected agents keep their config, admin writes answer 503 STORE_UNAVAILABLE, enrollment
 * answers UNAVAILABLE, and once PostgreSQL is back what the agents acked meanwhile is in it
 * and writes succeed again.
 */
describe('a server whose PostgreSQL goes away', { timeout: 300_000 }, () => {
  let db: TestDatabase;
  let proxy: TcpProxy;
  before(async () => {
    db = await createTestDatabase('meshcfg_e2e_down');
    proxy = await startTcpProxy(Number(new URL(db.url).port || 5432));
  });
  const suite = useDeployment('meshcfg-e2e-postgres-down-', CONFIG_FILES, (d) => {
    const url = new URL(db.url);
    url.port = String(proxy.port);
    d.serverEnv['MESHCFG_POSTGRES_URL'] = url.toString();
  });
  after(async () => {
    await proxy?.close();
    await db?.drop();
  });
  let d: Deployment;
  let first: string;

  before(async () => {
    ({ deployment: d, first } = suite);
    assert.equal((await d.enroll('edge-1')).code, 0);
    d.startAgent('edge-1');
    await d.waitSynced('edge-1', first);
  });

  it('keeps agents on their config, refuses state changes with clear codes, and records what was acked meanwhile once it is back', async () => {
    const token = await d.token('edge-2');
    const onDisk = sha256File(d.agentFile('edge-1'));
    const cutAt = Date.now();
    await proxy.cut();

    // An agent that reconnects during the outage is served its bundle and acks it: the ack
    // (and the send) wait in the server for PostgreSQL.
    const applied = await d.metric('meshcfg_acks_total', 'status="applied"');
    await d.agents.get('edge-1')?.stop();
    const agent = d.startAgent('edge-1');
    await waitFor('edge-1 to ack its bundle again', async () => (await d.metric('meshcfg_acks_total', 'status="applied"')) > applied, 20_000);
    await waitFor('the server to see edge-1 again', async () => (await d.agentView('edge-1'))?.connected === true, 20_000);

    // Connected agents keep their config; reads of the live fleet still answer.
    const view = await d.agentView('edge-1');
    assert.equal(view?.state, 'SYNCED');
    assert.equal(sha256File(d.agentFile('edge-1')), onDisk);
    assert.equal(agent.child.exitCode, null, 'the agent keeps running');

    // A state change is refused, with a code saying why, and changes nothing.
    const refused = await d.admin<{ error: { code: string } }>('/api/v1/agents/edge-1/quarantine', { method: 'POST', body: JSON.stringify({ reason: 'while the database is away' }) });
    assert.equal(refused.status, 503);
    assert.equal(refused.body.error.code, 'STORE_UNAVAILABLE');
    assert.equal((await d.agentView('edge-1'))?.quarantine ?? null, null);

    // Enrollment needs the token record: UNAVAILABLE, and the token is not spent.
    const enroll = await d.enroll('edge-2', { token });
    assert.notEqual(enroll.code, 0);
    assert.match(enroll.stderr, /BACKEND_UNAVAILABLE/);

    // Past the grace period (30 s from the first failed write, checked every 5 s) the replica
    // reports not ready, so a load balancer sends agents elsewhere, and alerts once.
    const readyzStatus = async (): Promise<number> => (await fetch(`${d.adminUrl}/readyz`, { signal: AbortSignal.timeout(20_000) })).status;
    assert.equal(await readyzStatus(), 200, 'a short outage changes nothing visible');
    await waitFor('/readyz to answer 503', async () => (await readyzStatus()) === 503, 60_000, 500);
    const alerts = (await d.admin<Array<{ kind: string; since?: string }>>('/api/v1/alerts')).body;
    assert.equal(alerts.filter((a) => a.kind === 'fleet-store-unavailable').length, 1);

    await proxy.restore();
    await waitFor('/readyz to answer 200 again', async () => (await readyzStatus()) === 200, 30_000, 250);

    // Writes succeed again by themselves, in order; the acks made during the outage are in PostgreSQL.
    const quarantined = await waitFor(
      'a quarantine to succeed once PostgreSQL is back',
      async () => {
        const res = await d.admin<{ error?: { code: string } }>('/api/v1/agents/edge-1/quarantine', { method: 'POST', body: JSON.stringify({ reason: 'after the outage' }) });
        return res.status === 200 ? res : undefined;
      },
      30_000,
      250,
    );
    assert.equal(quarantined.status, 200);
    const acks = await acksOf(db.url, 'edge-1');
    assert.ok(acks.some((a) => a.at >= cutAt && a.status === 'APPLIED'), `an ack made during the outage is stored: ${JSON.stringify(acks)}`);
    assert.equal((await d.admin<{ status: number }>('/api/v1/agents/edge-1/approve', { method: 'POST', body: JSON.stringify({ reason: 'done' }) })).status, 200);

    // The token was not spent by the refused enrollment: it works now.
    const enrolled = await d.enroll('edge-2', { token });
    assert.equal(enrolled.code, 0, enrolled.stderr);
    assert.ok(readFileSync(d.agentFile('edge-1')).length > 0);
  });
});
