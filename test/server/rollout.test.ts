import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { RolloutStatus } from '../../src/rollout/index.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import type { AgentIdentity, Delivery, DistributionBackend } from '../../src/transport/backend.js';
import { forgeCsr, rsaKey } from '../pki/helpers.js';
import { configFor, exampleConfigFiles, fakeTransport, makeFixture, manualClock, silentLogger, webhookReceiver, type Fixture } from './helpers.js';

const ROLLOUT_YAML = `trustDomain: example.org
policy:
  secureZones: [pci]
  allowedDestinations: ["**.svc.cluster.local", "**.internal.example.org", "api.example.com"]
rollout:
  waves:
    - { name: canary, match: { ring: canary } }
    - { name: rest, percent: 100 }
  successRatio: 1
  maxNackRatio: 0
  expediteReverts: true
`;
const CANARY = ['edge-1', 'edge-4'];
const REST = ['edge-2', 'edge-3'];
const ALL = [...CANARY, ...REST];

/** A change to the shared base: every agent's bundle changes. */
function baseChange(n: number): Record<string, string> {
  const [accessLog, metrics] = [[false, true], [true, false], [false, false]][n - 1] ?? [true, true];
  return { 'config/base/10-telemetry.yaml': `telemetry:\n  accessLog: ${accessLog}\n  metrics: ${metrics}\n` };
}

describe('the rollout in the server (fake transport, manual clock)', () => {
  let fixture: Fixture;
  let server: RunningServer;
  let transport: ReturnType<typeof fakeTransport>;
  let hook: Awaited<ReturnType<typeof webhookReceiver>>;
  let token: string;
  const clock = manualClock(new Date('2026-03-02T10:00:00Z'));
  const identities = new Map<string, AgentIdentity>();
  const unwatch: Array<() => void> = [];

  const backend = (): DistributionBackend => transport.backend();
  const digest = (id: string): string => (backend().desired(id) as Delivery).digest;
  const ack = (id: string, status: 'APPLIED' | 'REJECTED'): void => {
    const d = backend().desired(id) as Delivery;
    backend().ack(identities.get(id) as AgentIdentity, { commit: d.commit, digest: d.digest, generation: d.generation, nonce: d.nonce, status, error: status === 'REJECTED' ? 'reload failed' : '' });
  };
  const settle = async (): Promise<void> => {
    await server.rollout.tick();
    await server.reconciler.republish().then(() => server.rollout.settled());
  };
  const api = async <T>(path: string, method: 'GET' | 'POST' = 'GET', body?: unknown): Promise<{ status: number; body: T }> => {
    const res = await fetch(`${server.adminUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'x-meshcfg-actor': 'alice', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as T };
  };
  const commit = async (files: Record<string, string>, message: string): Promise<string> => {
    const sha = fixture.repo.write(files).commit(message, fixture.signer);
    const result = await server.syncNow();
    assert.equal(result.kind, 'accepted');
    await server.rollout.settled();
    return sha;
  };
  const start = async (): Promise<void> => {
    transport = fakeTransport();
    server = await startServer(configFor(fixture, { webhook: hook.url }), { logger: silentLogger, transport: transport.start, now: clock.now, rolloutTickMs: 3_600_000 });
    token = readFileSync(server.adminTokenPath, 'utf8').trim();
    for (const id of ALL) {
      if (!identities.has(id)) {
        const issued = server.dataDir.ca.issueAgentCertificate({ csrPem: forgeCsr(rsaKey()), agentId: id });
        const certificate = new X509Certificate(issued.certPem);
        identities.set(id, { agentId: id, certificate, serialNumber: certificate.serialNumber, notAfter: issued.notAfter });
      }
    }
  };
  const connectAll = (): void => {
    for (const id of ALL) unwatch.push(backend().watch(id, () => {}));
  };

  before(async () => {
    hook = await webhookReceiver();
    fixture = makeFixture({ empty: true });
    fixture.first = fixture.repo.write({ ...exampleConfigFiles(), 'meshcfg.yaml': ROLLOUT_YAML }).commit('initial config', fixture.signer);
    await start();
    await server.syncNow();
    connectAll();
    for (const id of ALL) ack(id, 'APPLIED');
    await server.rollout.settled();
  });
  after(async () => {
    for (const u of unwatch.splice(0)) u();
    await server?.close();
    await hook?.close();
    fixture?.cleanup();
  });

  it('sends the first commit to every agent at once', () => {
    const status = server.rollout.status();
    assert.equal(status.commit, fixture.first);
    assert.equal(status.state, 'complete');
  });

  describe('a staged commit', () => {
    let old: Map<string, string>;
    let second: string;
    before(async () => {
      old = new Map(ALL.map((id) => [id, digest(id)]));
      second = await commit(baseChange(1), 'sampling 1');
    });

    it('goes to the canary wave first; the rest keep their old bundle', async () => {
      const { body } = await api<RolloutStatus>('/api/v1/rollout');
      assert.equal(body.commit, second);
      assert.equal(body.previous, fixture.first);
      assert.equal(body.state, 'progressing');
      assert.deepEqual(body.waves.map((w) => [w.name, w.state]), [['canary', 'progressing'], ['rest', 'pending']]);
      for (const id of CANARY) assert.notEqual(digest(id), old.get(id));
      for (const id of REST) assert.equal(digest(id), old.get(id));
      // Fleet state names the commit the agent is held on, not the generation's.
      for (const id of REST) assert.equal(server.fleet.get(id)?.desired?.commit, fixture.first);
    });

    it('moves on to the rest once the canaries applied it', async () => {
      for (const id of CANARY) ack(id, 'APPLIED');
      await settle();
      // edge-3's own file overrides the changed keys: only edge-2's bytes change.
      assert.notEqual(digest('edge-2'), old.get('edge-2'));
      for (const id of REST) assert.equal(server.fleet.get(id)?.desired?.commit, second);
      for (const id of REST) ack(id, 'APPLIED');
      await settle();
      assert.equal(server.rollout.status().state, 'complete');
    });
  });

  describe('a canary that rejects', () => {
    let before3: Map<string, string>;
    let third: string;
    before(async () => {
      before3 = new Map(ALL.map((id) => [id, digest(id)]));
      third = await commit(baseChange(2), 'sampling 2');
      ack('edge-1', 'REJECTED');
      await settle();
    });

    it('halts the rollout, sends the rejecting agent its previous bundle, and never starts the rest', async () => {
      const status = server.rollout.status();
      assert.equal(status.commit, third);
      assert.equal(status.state, 'halted');
      assert.equal(digest('edge-1'), before3.get('edge-1'));
      for (const id of REST) assert.equal(digest(id), before3.get(id));
    });

    it('raises the rollout-halted alert', async () => {
      await hook.waitFor(1);
      const alert = hook.bodies.find((b) => (b as { kind: string }).kind === 'rollout-halted') as Record<string, unknown> | undefined;
      assert.ok(alert);
      assert.equal(alert['commit'], third);
      assert.equal(alert['wave'], 'canary');
    });

    it('refuses promote on a halted rollout with 409 HALTED', async () => {
      const res = await api<{ error: { code: string } }>('/api/v1/rollout/promote', 'POST', { reason: 'push on' });
      assert.equal(res.status, 409);
      assert.equal(res.body.error.code, 'HALTED');
    });

    it('aborts on POST /api/v1/rollout/abort, audited with actor and reason', async () => {
      const res = await api<{ rollout: RolloutStatus; actor: string }>('/api/v1/rollout/abort', 'POST', { reason: 'bad reload' });
      assert.equal(res.status, 200);
      assert.equal(res.body.actor, 'alice');
      assert.equal(res.body.rollout.state, 'aborted');
      const audit = await api<Array<{ action: string; actor: string; reason: string; target: string }>>('/api/v1/audit');
      const entry = audit.body.find((e) => e.action === 'rollout.abort');
      assert.deepEqual(entry && { actor: entry.actor, reason: entry.reason, target: entry.target }, { actor: 'alice', reason: 'bad reload', target: third });
    });
  });

  describe('pause and resume', () => {
    it('pauses once, then refuses a second pause with 409 ALREADY_PAUSED, then resumes', async () => {
      assert.equal((await api('/api/v1/rollout/pause', 'POST', { reason: 'freeze' })).status, 200);
      const again = await api<{ error: { code: string } }>('/api/v1/rollout/pause', 'POST');
      assert.equal(again.status, 409);
      assert.equal(again.body.error.code, 'ALREADY_PAUSED');
      assert.equal((await api('/api/v1/rollout/resume', 'POST')).status, 200);
    });
  });

  describe('after a restart mid-rollout', () => {
    it('resumes with the same rollout status and the same desired bundles', async () => {
      await commit(baseChange(3), 'sampling 3');
      for (const id of CANARY) ack(id, 'APPLIED');
      await server.rollout.settled();
      const statusBefore = server.rollout.status();
      assert.equal(statusBefore.state, 'progressing');
      const digests = new Map(ALL.map((id) => [id, digest(id)]));
      // The fake transport keeps its watches open: shutting down must not count as agents leaving.
      unwatch.splice(0);
      await server.close();

      await start();
      assert.deepEqual(server.rollout.status(), statusBefore);
      for (const id of ALL) assert.equal(digest(id), digests.get(id), id);
    });
  });
});
