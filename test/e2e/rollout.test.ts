import assert from 'node:assert/strict';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '../helpers/git.js';
import { waitFor } from '../helpers/process.js';
import { CONFIG_FILES, Deployment, pushRevert, rolloutMeshcfg, sha256File, type RolloutView } from './harness.js';

/**
 * Rollouts end to end with real processes: canary → rest; a halt when the canary's reload
 * command fails; a `git revert` reaching everyone at once; a restart mid-rollout resuming.
 */
describe('rollout end to end', { timeout: 300_000 }, () => {
  const tmp = tempDir('meshcfg-e2e-rollout-');
  const marker = join(tmp.path, 'canary-reload-fails');
  const AGENTS = ['edge-1', 'edge-2', 'edge-3'];
  let d: Deployment;
  let first: string;

  const rollout = async (): Promise<RolloutView> => (await d.admin<RolloutView>('/api/v1/rollout')).body;
  const fileDigest = (id: string): string | null => (existsSync(d.agentFile(id)) ? sha256File(d.agentFile(id)) : null);
  /** The digest the server wants `id` to have for `commit` (once it gives it that commit). */
  const desiredDigest = (id: string, commit: string): Promise<string> =>
    waitFor(`${id} to be given ${commit.slice(0, 12)}`, async () => {
      const v = await d.agentView(id);
      return v?.desired?.commit === commit ? v.desired.digest : undefined;
    });
  const telemetry = (accessLog: boolean, metrics: boolean): Record<string, string> => ({
    'config/base/10-telemetry.yaml': `telemetry: { accessLog: ${accessLog}, metrics: ${metrics} }\n`,
  });

  before(async () => {
    ({ deployment: d, first } = await Deployment.create(tmp.path, { ...CONFIG_FILES, 'meshcfg.yaml': rolloutMeshcfg(), ...telemetry(true, true) }));
    await d.startServer();
    for (const id of AGENTS) assert.equal((await d.enroll(id)).code, 0);
    // The canary's reload takes a moment (so the rest can be seen waiting) and fails while the marker exists.
    d.startAgent('edge-1', ['--exec', `sleep 1 && test ! -e ${marker}`]);
    d.startAgent('edge-2');
    d.startAgent('edge-3');
    // The first commit a fresh server accepts goes to everyone at once.
    for (const id of AGENTS) await d.waitSynced(id, first);
    assert.equal((await rollout()).state, 'complete');
  });

  after(async () => {
    await d?.stopAll();
    tmp.cleanup();
  });

  let good: string;
  it('rolls a commit out to the canary first, and to the rest once the canary applied it', async () => {
    const old = fileDigest('edge-2');
    good = d.push(telemetry(false, true), 'access log off');
    const canaryDigest = await desiredDigest('edge-1', good);
    await waitFor('the canary to have the new bytes', async () => fileDigest('edge-1') === canaryDigest);
    const during = await rollout();
    assert.equal(during.commit, good);
    assert.equal(fileDigest('edge-2'), old, 'the rest keep the old bytes while the canary wave runs');
    assert.equal((await d.agentView('edge-2'))?.desired?.commit, first);

    const restDigest = await desiredDigest('edge-2', good);
    await waitFor('edge-2 to have the new bytes', async () => fileDigest('edge-2') === restDigest);
    const done = await waitFor('the rollout to complete', async () => {
      const r = await rollout();
      return r.state === 'complete' ? r : undefined;
    });
    assert.deepEqual(done.waves.map((w) => [w.name, w.state]), [['canary', 'complete'], ['rest', 'complete']]);
    assert.ok(Date.parse(done.waves[1]?.startedAt ?? '') >= Date.parse(done.waves[0]?.completedAt ?? ''), 'rest started after the canary completed');
  });

  let bad: string;
  it('halts when the canary’s reload command fails; the rest never get the commit', async () => {
    const before = new Map(AGENTS.map((id) => [id, fileDigest(id)]));
    writeFileSync(marker, '');
    bad = d.push(telemetry(false, false), 'metrics off');
    const halted = await waitFor('the rollout to halt', async () => {
      const r = await rollout();
      return r.commit === bad && r.state === 'halted' ? r : undefined;
    });
    assert.equal(halted.waves[0]?.rejected, 1);
    assert.equal(halted.waves[1]?.state, 'pending');
    // Give a wrongly started wave time to show.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    for (const id of ['edge-2', 'edge-3']) {
      assert.equal(fileDigest(id), before.get(id), `${id} keeps its bytes`);
      assert.equal((await d.agentView(id))?.desired?.commit, good);
    }
    await waitFor('the canary back on its previous bytes', async () => fileDigest('edge-1') === before.get('edge-1'));
    const status = await d.operator('rollout', 'status');
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^STATE\s+halted$/m);
    rmSync(marker);
  });

  it('sends a `git revert` of the last commit to every agent at once', async () => {
    const revert = pushRevert(d, bad);
    const r = await waitFor('the revert to be rolled out', async () => {
      const s = await rollout();
      return s.commit === revert ? s : undefined;
    });
    assert.equal(r.state, 'complete', 'expedited: no wave waits');
    for (const w of r.waves) assert.equal(w.startedAt, w.completedAt);
    for (const id of AGENTS) assert.equal((await d.agentView(id))?.desired?.commit, revert);
    for (const id of AGENTS) await d.waitSynced(id, revert);
  });

  it('resumes a rollout in progress after a server restart, with the same status', async () => {
    const baking = d.push({ ...telemetry(true, false), 'meshcfg.yaml': rolloutMeshcfg('1h') }, 'canary bakes an hour');
    const before = await waitFor('the canary wave to bake', async () => {
      const r = await rollout();
      return r.commit === baking && r.waves[0]?.state === 'baking' ? r : undefined;
    });
    assert.equal(before.state, 'progressing');
    assert.equal(await d.stopServer(), 0);
    await d.startServer();
    // A fresh process starts with every agent disconnected; they count again once they reconnect.
    await waitFor('the agents to reconnect and the same status', async () => {
      const r = await rollout();
      return JSON.stringify(r) === JSON.stringify(before) ? r : undefined;
    });
    assert.deepEqual(await rollout(), before);
    const json = await d.operator('rollout', 'status', '--json');
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout), before);
    // The rest stay on the revert's bytes.
    assert.equal((await d.agentView('edge-2'))?.desired?.commit !== baking, true);
  });
});

/**
 * An agent that has never applied anything has nothing to go back to: a failed first load
 * leaves it offered its desired bundle, so a restarted agent (stream or poll) gets it again
 * without a new commit, and the rejection stays visible until it applies.
 */
describe('an agent whose very first load fails (end to end)', { timeout: 180_000 }, () => {
  const tmp = tempDir('meshcfg-e2e-first-load-');
  let d: Deployment;
  let first: string;

  before(async () => {
    ({ deployment: d, first } = await Deployment.create(tmp.path, CONFIG_FILES));
    await d.startServer();
    for (const id of ['edge-1', 'edge-2']) assert.equal((await d.enroll(id)).code, 0);
  });

  after(async () => {
    await d?.stopAll();
    tmp.cleanup();
  });

  it('is offered its desired bundle again when it comes back with a working reload, on a stream and by polling', async () => {
    const modes: Record<string, string[]> = { 'edge-1': [], 'edge-2': ['--poll', '300ms'] };
    for (const [id, mode] of Object.entries(modes)) d.startAgent(id, [...mode, '--exec', 'exit 3']);
    for (const id of Object.keys(modes)) {
      const rejected = await waitFor(`${id} to reject its first bundle`, async () => {
        const v = await d.agentView(id);
        return v?.lastRejection != null ? v : undefined;
      });
      assert.equal(rejected.lastRejection?.commit, first);
      assert.equal(rejected.lastRejection?.digest, rejected.desired?.digest, 'what it rejected is still what it should have');
      assert.match(rejected.lastRejection?.error ?? '', /^RELOAD_FAILED/);
      assert.equal(rejected.state, 'NACKED');
      assert.equal(existsSync(d.agentFile(id)), false, 'nothing was left on disk');
      await d.agents.get(id)?.stop();
    }

    for (const [id, mode] of Object.entries(modes)) d.startAgent(id, [...mode, '--exec', 'true']);
    for (const id of Object.keys(modes)) {
      const synced = await d.waitSynced(id, first);
      assert.equal(synced.lastRejection, null, 'applying what it rejected clears the rejection');
    }
    assert.equal((await d.admin<{ accepted: string }>('/api/v1/source')).body.accepted, first, 'no new commit was needed');
  });
});
