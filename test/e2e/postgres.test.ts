import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PostgresFleetStore } from '../../src/fleet/index.js';
import { aid } from '../helpers/ids.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { waitFor } from '../helpers/process.js';
import { CONFIG_FILES, Deployment, useDeployment } from './harness.js';

interface SourceView {
  accepted: string | null;
  generation: number;
}

/**
 * A real `meshcfg serve` whose fleet state is in PostgreSQL (MESHCFG_POSTGRES_URL, the way a
 * Secret hands it over): it delivers to real agents, and after `kill -9` and a restart it still
 * has its accepted commit, generation and agents — read from PostgreSQL, since the data dir
 * holds no fleet.db.
 */
describe('a server on PostgreSQL end to end', { timeout: 240_000 }, () => {
  let db: TestDatabase;
  // Registered before useDeployment's hooks, so the database exists when the server starts.
  before(async () => {
    db = await createTestDatabase('meshcfg_e2e');
  });
  const suite = useDeployment('meshcfg-e2e-postgres-', CONFIG_FILES, (d) => {
    d.serverEnv['MESHCFG_POSTGRES_URL'] = db.url;
  });
  after(async () => {
    await db?.drop();
  });
  let d: Deployment;
  let first: string;

  before(async () => {
    ({ deployment: d, first } = suite);
    for (const id of ['edge-1', 'edge-2']) {
      const enrolled = await d.enroll(id);
      assert.equal(enrolled.code, 0, enrolled.stderr);
      d.startAgent(id);
    }
    await d.waitSynced('edge-1', first);
    await d.waitSynced('edge-2', first);
  });

  it('keeps no fleet.db in the data dir, and logs the backend without the password', () => {
    assert.equal(existsSync(join(d.dataDir, 'fleet.db')), false);
    const log = (d.server?.stdout ?? '') + (d.server?.stderr ?? '');
    const password = new URL(db.url).password;
    assert.match(log, /fleet state: PostgreSQL at postgres:\/\/meshcfg:\*\*\*@127\.0\.0\.1/);
    assert.ok(!log.includes(`:${password}@`), 'the password is not in the log');
  });

  it('keeps its accepted commit, generation and agents across kill -9 and a restart', async () => {
    const next = d.push({ 'config/agents/edge-1.yaml': 'telemetry: { accessLog: true }\n' }, 'edge-1 access log');
    const synced = await d.waitSynced('edge-1', next);
    await d.waitSynced('edge-2', next);
    const before = (await d.admin<SourceView>('/api/v1/source')).body;
    assert.equal(before.accepted, next);

    // Acks reach the store through the fleet cache's write queue (batched, docs/architecture.md):
    // the kill comes once the ack is durable, and the assertions below check it outlived the kill.
    const probe = await PostgresFleetStore.open(db.url);
    try {
      await waitFor('the ack of edge-1 in PostgreSQL', async () => (await probe.listAcks(aid('edge-1'), { limit: 1 }))[0]?.digest === synced.desired?.digest);
    } finally {
      await probe.close();
    }
    await d.killServer();
    await Promise.all([...d.agents.values()].map((a) => a.stop()));

    // What the server left is in PostgreSQL.
    const store = await PostgresFleetStore.open(db.url);
    try {
      const state = await store.serverState();
      assert.equal(state.accepted, next);
      assert.equal(state.generation, before.generation);
      const acks = await store.listAcks(aid('edge-1'), { limit: 1 });
      assert.equal(acks[0]?.digest, synced.desired?.digest);
      assert.deepEqual((await store.listAgents()).map((a) => a.id), ['edge-1', 'edge-2', 'edge-3', 'edge-4']);
    } finally {
      await store.close();
    }

    await d.startServer();
    // The killed process's advisory lock is released when PostgreSQL sees its socket close; until
    // then the restarted server follows (retrying every 3 s), and only a leader re-signs.
    await waitFor('the restarted server to lead', async () => {
      const res = await fetch(`${d.adminUrl}/readyz`);
      return ((await res.json()) as { replica?: { leader: boolean } }).replica?.leader === true;
    });
    const after = await waitFor('the restarted leader to republish', async () => {
      const source = (await d.admin<SourceView>('/api/v1/source')).body;
      return source.generation > before.generation ? source : undefined;
    });
    assert.equal(after.accepted, next);
    // Republishing the accepted commit signs the next generation after the stored one: a
    // server that had lost its state would start again at 1 and reuse numbers agents have seen.
    assert.ok(after.generation > before.generation, `generation ${after.generation} continues after ${before.generation}`);
    const known = await d.agentView('edge-1');
    assert.equal(known?.active?.commit, next, 'the restarted server knows what the agent acked');
    assert.equal(known?.active?.digest, synced.desired?.digest);
    assert.equal(existsSync(join(d.dataDir, 'fleet.db')), false);

    // The agents come back to the restarted server and stay on their bundle; a new commit gets a higher generation.
    d.startAgent('edge-1');
    d.startAgent('edge-2');
    await d.waitSynced('edge-1', next);
    const third = d.push({ 'config/agents/edge-2.yaml': 'telemetry: { accessLog: true }\n' }, 'edge-2 access log');
    const view = await d.waitSynced('edge-2', third);
    assert.ok((view.desired?.generation ?? 0) > before.generation);
    await waitFor('the source to report the new commit', async () => (await d.admin<SourceView>('/api/v1/source')).body.accepted === third);
  });
});
