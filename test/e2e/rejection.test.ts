import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '../helpers/git.js';
import { waitFor } from '../helpers/process.js';
import { CONFIG_FILES, Deployment, rolloutMeshcfg, type AgentView, type RolloutView } from './harness.js';

/**
 * Issue 8, end to end with real processes: a canary rejects commit B, the halt sends it back
 * to A, and commit C is accepted while the rollout (paused) still holds the canary on A. A is
 * older than B: the canary applying A again under C's generation must not clear the rejection
 * of B — neither live nor after a server restart. Applying C's own bundle clears it.
 */
describe('a rejection end to end, while a newer commit holds the agent on its previous bundle', { timeout: 240_000 }, () => {
  const tmp = tempDir('meshcfg-e2e-rejection-');
  let d: Deployment;
  let a: string;
  let b: string;
  let c: string;

  const telemetry = (accessLog: boolean, metrics: boolean): Record<string, string> => ({
    'config/base/10-telemetry.yaml': `telemetry: { accessLog: ${accessLog}, metrics: ${metrics} }\n`,
  });
  const rollout = async (): Promise<RolloutView> => (await d.admin<RolloutView>('/api/v1/rollout')).body;
  const source = async (): Promise<{ accepted: string; generation: number }> => (await d.admin<{ accepted: string; generation: number }>('/api/v1/source')).body;
  /** Waits until the canary acked APPLIED under the served generation of `commit` (or a later one). */
  const canaryAppliedUnder = async (commit: string): Promise<AgentView> => {
    const generation = await waitFor(`${commit.slice(0, 12)} to be served`, async () => {
      const s = await source();
      return s.accepted === commit ? s.generation : undefined;
    });
    return waitFor(`the canary to ack under generation ${generation}`, async () => {
      const v = await d.agentView('edge-1');
      return v?.state === 'SYNCED' && (v.active?.generation ?? 0) >= generation ? v : undefined;
    });
  };

  before(async () => {
    ({ deployment: d, first: a } = await Deployment.create(tmp.path, { ...CONFIG_FILES, 'meshcfg.yaml': rolloutMeshcfg(), ...telemetry(true, true) }));
    await d.startServer();
    for (const id of ['edge-1', 'edge-2']) assert.equal((await d.enroll(id)).code, 0);
    // The canary's proxy refuses a config with metrics off (B), and loads every other one.
    d.startAgent('edge-1', ['--exec', `! grep -q '"metrics":false' "$MESHCFG_FILE"`]);
    d.startAgent('edge-2');
    for (const id of ['edge-1', 'edge-2']) await d.waitSynced(id, a);
  });

  after(async () => {
    await d?.stopAll();
    tmp.cleanup();
  });

  it('the canary rejects B, and the halt sends it back to A', async () => {
    b = d.push(telemetry(true, false), 'metrics off');
    await waitFor('the rollout of B to halt', async () => {
      const r = await rollout();
      return r.commit === b && r.state === 'halted' || undefined;
    });
    const canary = await d.waitSynced('edge-1', a);
    assert.equal(canary.lastRejection?.commit, b);
    assert.notEqual(canary.lastRejection?.digest, canary.active?.digest);
  });

  it('keeps naming B while the paused rollout of C holds the canary on A', async () => {
    const rejection = (await d.agentView('edge-1'))?.lastRejection;
    const pause = await d.operator('rollout', 'pause', '--reason', 'hold the canary on A');
    assert.equal(pause.code, 0, pause.stderr);
    c = d.push(telemetry(false, true), 'access log off');
    const canary = await canaryAppliedUnder(c);
    assert.equal(canary.desired?.commit, a, 'held back on A');
    assert.equal(canary.active?.commit, a);
    assert.deepEqual(canary.lastRejection, rejection, 'A is older than B: the rejection of B stands');
    const status = await d.operator('status');
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^edge-1 +canary +SYNCED \(NACK\) /m);
    assert.match(status.stdout, new RegExp(`^NACK edge-1: rejected ${b.slice(0, 7)}:`, 'm'));
  });

  it('keeps naming B after a server restart, the canary still held on A', async () => {
    const rejection = (await d.agentView('edge-1'))?.lastRejection;
    assert.equal(await d.stopServer(), 0);
    await d.startServer();
    const canary = await canaryAppliedUnder(c);
    assert.equal(canary.active?.commit, a);
    assert.deepEqual(canary.lastRejection, rejection);
  });

  it('clears once the canary applies C, a commit newer than B', async () => {
    const resume = await d.operator('rollout', 'resume');
    assert.equal(resume.code, 0, resume.stderr);
    const canary = await d.waitSynced('edge-1', c);
    assert.equal(canary.lastRejection, null);
  });
});
