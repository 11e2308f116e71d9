import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { MeshcfgProcess, waitFor } from '../helpers/process.js';
import { type AgentView, CONFIG_FILES, Deployment, rolloutMeshcfg, sha256File, type RolloutView, useDeployment } from './harness.js';

/**
 * An agent that cannot write its config file, end to end with real processes (issue 7, item 8):
 * it refuses to start when --out cannot be written, and a failure to write after start is
 * answered REJECTED, so the canary wave halts visibly instead of stalling on PENDING.
 */
describe('an agent that cannot write its output, end to end', { timeout: 300_000 }, () => {
  const telemetry = (accessLog: boolean, metrics: boolean): Record<string, string> => ({
    'config/base/10-telemetry.yaml': `telemetry: { accessLog: ${accessLog}, metrics: ${metrics} }\n`,
  });
  const suite = useDeployment('meshcfg-e2e-output-', { ...CONFIG_FILES, 'meshcfg.yaml': rolloutMeshcfg(), ...telemetry(true, true) });
  const outDir = join(suite.root, 'edge-1-out');
  const out = join(outDir, 'edge-1.json');
  let d: Deployment;
  let first: string;
  let canary: MeshcfgProcess;

  const rollout = async (): Promise<RolloutView> => (await d.admin<RolloutView>('/api/v1/rollout')).body;
  /** edge-1 writes to `out`, not to the harness's agentFile. */
  const canarySynced = (commit: string): Promise<AgentView> =>
    waitFor(`edge-1 to be SYNCED on ${commit.slice(0, 12)}`, async () => {
      const view = await d.agentView('edge-1');
      if (view?.state !== 'SYNCED' || view.active?.commit !== commit) return undefined;
      return existsSync(out) && sha256File(out) === view.desired?.digest ? view : undefined;
    });

  const serverLog = (): Array<Record<string, unknown>> =>
    (d.server?.stdout ?? '')
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);

  before(async () => {
    ({ deployment: d, first } = suite);
    for (const id of ['edge-1', 'edge-2']) assert.equal((await d.enroll(id)).code, 0);
  });

  it('refuses to start with OUTPUT_INVALID and exit 2 when the directory of --out does not exist', async () => {
    const missing = join(suite.root, 'missing', 'edge-1.json');
    const agent = new MeshcfgProcess(['agent', '--server', d.grpcAddress, '--dir', d.agentDir('edge-1'), '--out', missing]);
    const exited = await Promise.race([agent.exited, new Promise<'running'>((resolve) => setTimeout(() => resolve('running'), 15_000))]);
    if (exited === 'running') {
      await agent.stop();
      assert.fail('the agent kept running with an output it cannot write');
    }
    assert.equal(exited, 2);
    assert.match(agent.stderr, /^meshcfg agent: OUTPUT_INVALID: /m);
    assert.ok(agent.stderr.includes(missing), 'the error names the path');
  });

  it('answers REJECTED when its output directory is removed after start, and the canary wave halts visibly', async () => {
    mkdirSync(outDir);
    canary = d.startAgent('edge-1', [], {}, out);
    d.startAgent('edge-2');
    await canarySynced(first);
    await d.waitSynced('edge-2', first);

    rmSync(outDir, { recursive: true });
    const next = d.push(telemetry(false, true), 'access log off');
    const halted = await waitFor('the rollout to halt', async () => {
      const r = await rollout();
      return r.commit === next && r.state === 'halted' ? r : undefined;
    });
    assert.equal(halted.waves[0]?.rejected, 1);
    assert.equal(halted.waves[1]?.state, 'pending');
    // The halt hands edge-1 its previous commit again, so its NACKED state is brief; the server's log keeps the error.
    const nack = await waitFor('the server to log edge-1’s rejection', () =>
      serverLog().find((line) => line.event === 'ack' && line.agentId === 'edge-1' && line.status === 'REJECTED' && line.commit === next),
    );
    assert.match(String(nack.error), /^APPLY_FAILED: /);
    assert.equal((await d.agentView('edge-2'))?.desired?.commit, first, 'the rest never get the commit');
    assert.equal(canary.child.exitCode, null, 'the agent keeps running');
  });

  it('keeps running: once the directory is back, a newer commit reaches it and the rest', async () => {
    mkdirSync(outDir);
    const fixed = d.push(telemetry(true, false), 'metrics off');
    await canarySynced(fixed);
    await d.waitSynced('edge-2', fixed);
  });
});
