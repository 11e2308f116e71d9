import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { RolloutStatus } from '../../src/rollout/index.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import type { AgentIdentity, Delivery } from '../../src/transport/backend.js';
import { meshcfg, type Run } from '../helpers/cli.js';
import { forgeCsr, rsaKey } from '../pki/helpers.js';
import { configFor, exampleConfigFiles, fakeTransport, makeFixture, silentLogger, type Fixture } from '../server/helpers.js';
import { aid } from '../helpers/ids.js';

const ROLLOUT_YAML = `trustDomain: example.org
policy:
  secureZones: [pci]
  allowedDestinations: ["**.svc.cluster.local", "**.internal.example.org", "api.example.com"]
rollout:
  waves:
    - { name: canary, match: { ring: canary }, bake: 1h }
    - { name: rest, percent: 100 }
  successRatio: 1
  maxNackRatio: 0
`;
const AGENTS = ['edge-1', 'edge-2', 'edge-3', 'edge-4'];

describe('meshcfg rollout pause|resume|promote|abort (against a running server)', () => {
  let fixture: Fixture;
  let server: RunningServer;
  let transport: ReturnType<typeof fakeTransport>;
  let staged: string;
  const unwatch: Array<() => void> = [];
  const admin = (): string[] => ['--admin', server.adminUrl, '--admin-token-file', server.adminTokenPath];
  const rollout = (...args: string[]): Promise<Run> => meshcfg('rollout', ...args, ...admin());
  const refused = async (run: Run, code: string): Promise<void> => {
    assert.equal(run.code, 2, `exit code (stdout ${run.stdout}, stderr ${run.stderr})`);
    assert.match(run.stderr, new RegExp(code));
    assert.equal(run.stdout, '');
  };

  before(async () => {
    fixture = makeFixture({ empty: true });
    fixture.first = fixture.repo.write({ ...exampleConfigFiles(), 'meshcfg.yaml': ROLLOUT_YAML }).commit('initial config', fixture.signer);
    transport = fakeTransport();
    server = await startServer(configFor(fixture), { logger: silentLogger, transport: transport.start, rolloutTickMs: 3_600_000 });
    await server.syncNow();
    const backend = transport.backend();
    for (const id of AGENTS) {
      const issued = server.dataDir.ca.issueAgentCertificate({ csrPem: forgeCsr(rsaKey()), agentId: aid(id) });
      const certificate = new X509Certificate(issued.certPem);
      const identity: AgentIdentity = { agentId: aid(id), certificate, serialNumber: certificate.serialNumber, notAfter: issued.notAfter };
      unwatch.push(backend.watch(aid(id), () => {}));
      const d = backend.desired(aid(id)) as Delivery;
      backend.ack(identity, { commit: d.commit, digest: d.digest, generation: d.generation, nonce: d.nonce, status: 'APPLIED', error: '' });
    }
    await server.rollout.settled();
    // A second commit is staged: the canary wave starts, the rest wait.
    staged = fixture.repo.write({ 'config/base/10-telemetry.yaml': 'telemetry:\n  accessLog: false\n  metrics: true\n' }).commit('telemetry', fixture.signer);
    assert.equal((await server.syncNow()).kind, 'accepted');
    await server.rollout.settled();
    assert.equal(server.rollout.status().state, 'progressing');
  });
  after(async () => {
    for (const u of unwatch.splice(0)) u();
    await server?.close();
    fixture?.cleanup();
  });

  it('pause exits 0 and says the state; a second pause is refused: exit 2 with ALREADY_PAUSED', async () => {
    // --actor is still accepted, and ignored: the audit log records the token's name.
    const run = await rollout('pause', '--reason', 'change freeze', '--actor', 'carol');
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'rollout paused; state paused\n');
    await refused(await rollout('pause'), 'ALREADY_PAUSED');
  });

  it('resume exits 0; a second resume is refused: exit 2 with NOT_PAUSED', async () => {
    const run = await rollout('resume', '--json');
    assert.equal(run.code, 0, run.stderr);
    const body = JSON.parse(run.stdout) as { rollout: RolloutStatus; actor: string };
    assert.equal(body.rollout.state, 'progressing');
    assert.equal(body.actor, 'admin');
    await refused(await rollout('resume'), 'NOT_PAUSED');
  });

  it('promote starts the next wave now, overriding the bake', async () => {
    assert.equal(server.rollout.status().waves[1]?.state, 'pending');
    const run = await rollout('promote', '--reason', 'canary looks fine');
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'rollout promoted; state progressing\n');
    const waves = server.rollout.status().waves;
    assert.deepEqual(waves.map((w) => [w.name, w.state]), [['canary', 'complete'], ['rest', 'progressing']]);
  });

  it('abort exits 0; then abort and promote are refused: exit 2 with NO_ROLLOUT', async () => {
    const run = await rollout('abort', '--reason', 'bad reload');
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'rollout aborted; state aborted\n');
    await refused(await rollout('abort'), 'NO_ROLLOUT');
    await refused(await rollout('promote'), 'NO_ROLLOUT');
  });

  it('records each action with its actor, --reason and the rollout commit in the audit log', async () => {
    const entries = (await server.fleetStore.listAudit({ limit: 20 })).filter((e) => e.action.startsWith('rollout.')).reverse();
    assert.deepEqual(
      entries.map((e) => [e.action, e.actor, e.reason, e.target]),
      [
        ['rollout.pause', 'admin', 'change freeze', staged],
        ['rollout.resume', 'admin', '', staged],
        ['rollout.promote', 'admin', 'canary looks fine', staged],
        ['rollout.abort', 'admin', 'bad reload', staged],
      ],
    );
  });

  it('exits 2 without an admin token, naming the problem', async () => {
    const run = await meshcfg('rollout', 'pause', '--admin', server.adminUrl);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /no admin token/);
  });
});
