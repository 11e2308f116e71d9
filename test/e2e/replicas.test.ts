import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { waitFor } from '../helpers/process.js';
import { CONFIG_FILES, rolloutMeshcfg, sha256File, useDeployment, type AgentView, type Deployment, type RolloutView } from './harness.js';

interface Readyz {
  status: string;
  replica: { id: string; leader: boolean };
}

async function readyz(d: Deployment): Promise<Readyz | null> {
  const res = await fetch(`${d.adminUrl}/readyz`).catch(() => null);
  return res === null ? null : ((await res.json()) as Readyz);
}

/** What must read the same from every replica's admin API (the stream itself is per replica: `connected`, `lastSeen` are not compared). */
async function fleetAnswer(d: Deployment): Promise<unknown> {
  const agents = (await d.admin<AgentView[]>('/api/v1/agents')).body.map((a) => ({ id: a.id, state: a.state, desired: a.desired, active: a.active, quarantine: a.quarantine }));
  const rollout = (await d.admin<RolloutView>('/api/v1/rollout')).body;
  const source = (await d.admin<{ accepted: string; generation: number; refused: { commit: string } | null }>('/api/v1/source')).body;
  const audit = (await d.admin<unknown>('/api/v1/audit')).body;
  return { agents, rollout: { ...rollout, window: undefined }, source: { accepted: source.accepted, generation: source.generation, refused: source.refused?.commit ?? null }, audit };
}

/**
 * Three real `meshcfg serve` processes sharing one PostgreSQL database, each with a copy of the
 * first one's data directory; real agents enrolled with and connected to the followers.
 */
describe('three replicas on one PostgreSQL fleet', { timeout: 300_000 }, () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase('meshcfg_e2e_replicas');
  });
  const files = { ...CONFIG_FILES, 'meshcfg.yaml': rolloutMeshcfg('15s') };
  const suite = useDeployment('meshcfg-e2e-replicas-', files, (d) => {
    d.serverEnv['MESHCFG_POSTGRES_URL'] = db.url;
  });
  after(async () => {
    for (const replica of replicas) await replica.stopAll();
    await db?.drop();
  });
  let d: Deployment;
  let first: string;
  const replicas: Deployment[] = [];
  /** Which replica each agent runs against. */
  const home = new Map<string, Deployment>();

  before(async () => {
    ({ deployment: d, first } = suite);
    await waitFor('the first replica to lead', async () => (await readyz(d))?.replica.leader === true, 15_000);
    for (const name of ['r1', 'r2']) {
      const replica = await d.replica(name);
      await replica.startServer();
      replicas.push(replica);
    }
    const [r1, r2] = replicas as [Deployment, Deployment];
    for (const [id, replica] of [['edge-1', r1], ['edge-2', r2], ['edge-3', r1], ['edge-4', r2]] as const) {
      const enrolled = await replica.enroll(id);
      assert.equal(enrolled.code, 0, enrolled.stderr);
      replica.startAgent(id);
      home.set(id, replica);
    }
  });

  it('one replica leads; agents spread over the followers converge on the commit; every replica answers the same', async () => {
    const leaders = await Promise.all([d, ...replicas].map(async (r) => (await readyz(r))?.replica.leader));
    assert.deepEqual(leaders, [true, false, false]);
    for (const [id, replica] of home) await replica.waitSynced(id, first, 40_000);
    // Each replica reads the shared store (or refreshes from its change feed): the same answers, within moments.
    let answers: unknown[] = [];
    await waitFor(
      'every replica to answer the same',
      async () => {
        answers = await Promise.all([d, ...replicas].map((r) => fleetAnswer(r)));
        return JSON.stringify(answers[1]) === JSON.stringify(answers[0]) && JSON.stringify(answers[2]) === JSON.stringify(answers[0]);
      },
      10_000,
    ).catch(() => undefined);
    assert.deepEqual(answers[1], answers[0]);
    assert.deepEqual(answers[2], answers[0]);
  });

  it('the leader killed with kill -9 mid-rollout: another takes over within 15 s, no wave starts twice, the rollout completes', async () => {
    const next = d.push({ 'config/base/10-telemetry.yaml': 'telemetry: { accessLog: true }\n' }, 'access logs everywhere');
    const r1 = replicas[0] as Deployment;
    await r1.waitSynced('edge-1', next, 40_000);
    const during = await waitFor(
      'r1 to show the rollout of the new commit',
      async () => {
        const view = (await r1.admin<RolloutView>('/api/v1/rollout')).body;
        return view.commit === next ? view : undefined;
      },
      10_000,
    );
    const canary = during.waves.find((w) => w.name === 'canary');
    assert.ok(canary?.startedAt != null && during.waves.find((w) => w.name === 'rest')?.startedAt == null, JSON.stringify(during.waves));

    const killedAt = Date.now();
    await d.killServer();
    const leader = await waitFor(
      'a follower to take over',
      async () => {
        for (const r of replicas) if ((await readyz(r))?.replica.leader === true) return r;
        return undefined;
      },
      15_000,
    );
    const tookOverMs = Date.now() - killedAt;
    assert.ok(tookOverMs <= 15_000, `took over after ${tookOverMs} ms`);
    console.log(`# failover: a follower led ${tookOverMs} ms after the leader was killed`);

    for (const [id, replica] of home) await replica.waitSynced(id, next, 60_000);
    // The last acks reach the new leader's gates through the change feed, within moments.
    const done = await waitFor(
      'the rollout to complete',
      async () => {
        const view = (await leader.admin<RolloutView>('/api/v1/rollout')).body;
        return view.state === 'complete' ? view : undefined;
      },
      15_000,
    );
    const canaryAfter = done.waves.find((w) => w.name === 'canary');
    assert.equal(canaryAfter?.startedAt, canary?.startedAt, 'the canary wave was not started again');
    assert.equal(canaryAfter?.applied, 1, 'the canary’s ack recorded before the kill still counts');
    const rest = done.waves.find((w) => w.name === 'rest');
    assert.ok(rest?.startedAt != null && Date.parse(rest.startedAt) >= killedAt, 'the rest wave was started once, by the new leader');
    // The agents' files hold what every replica says they should.
    for (const [id, replica] of home) assert.equal(sha256File(replica.agentFile(id)), (await leader.agentView(id))?.desired?.digest);
  });

  it('an approval made on one replica releases an agent connected to another', async () => {
    const [r1, r2] = replicas as [Deployment, Deployment];
    const quarantined = await r1.admin('/api/v1/agents/edge-2/quarantine', { method: 'POST', body: JSON.stringify({ reason: 'drill' }) });
    assert.equal(quarantined.status, 200);
    await waitFor('edge-2 (on r2) to run the baseline', async () => (await r2.agentView('edge-2'))?.desired?.baseline === true && (await r2.agentView('edge-2'))?.state === 'QUARANTINED', 30_000);
    const approved = await r1.admin('/api/v1/agents/edge-2/approve', { method: 'POST', body: JSON.stringify({ reason: 'drill over' }) });
    assert.equal(approved.status, 200);
    const source = (await r2.admin<{ accepted: string }>('/api/v1/source')).body;
    await r2.waitSynced('edge-2', source.accepted, 40_000);
  });
});
