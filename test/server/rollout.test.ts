import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SqliteFleetStore } from '../../src/fleet/index.js';
import type { RolloutDocumentV1, RolloutStatus } from '../../src/rollout/index.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import type { AgentIdentity, Delivery, DistributionBackend } from '../../src/transport/backend.js';
import { forgeCsr, rsaKey } from '../pki/helpers.js';
import { configFor, exampleConfigFiles, fakeTransport, makeFixture, manualClock, silentLogger, webhookReceiver, type Fixture } from './helpers.js';
import { aid } from '../helpers/ids.js';

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
  const digest = (id: string): string => (backend().desired(aid(id)) as Delivery).digest;
  /** What each agent runs: the last delivery it acked APPLIED. */
  const running = new Map<string, Delivery>();
  const ack = (id: string, status: 'APPLIED' | 'REJECTED'): void => {
    const d = backend().desired(aid(id)) as Delivery;
    if (status === 'APPLIED') running.set(id, d);
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
        const issued = server.dataDir.ca.issueAgentCertificate({ csrPem: forgeCsr(rsaKey()), agentId: aid(id) });
        const certificate = new X509Certificate(issued.certPem);
        identities.set(id, { agentId: aid(id), certificate, serialNumber: certificate.serialNumber, notAfter: issued.notAfter });
      }
    }
  };
  const connectAll = (): void => {
    for (const id of ALL) unwatch.push(backend().watch(aid(id), () => {}));
  };
  /** As a real agent reconnects: a hello saying what it runs (the last bundle it applied), then the stream. */
  const helloAll = (): void => {
    for (const id of ALL) {
      const d = running.get(id) as Delivery;
      backend().reportActive(identities.get(id) as AgentIdentity, { commit: d.commit, digest: d.digest, generation: d.generation });
    }
    connectAll();
  };
  const agents = async (): Promise<Map<string, { state: string; desired: { commit: string } | null; active: { commit: string } | null }>> => {
    const { body } = await api<Array<{ id: string; state: string; desired: { commit: string } | null; active: { commit: string } | null }>>('/api/v1/agents');
    return new Map(body.map((a) => [a.id, a]));
  };
  /** The stored rollout document, read from fleet.db while the server is down. */
  const storedDocument = async (): Promise<RolloutDocumentV1> => {
    const store = await SqliteFleetStore.open(join(fixture.dataDir, 'fleet.db'));
    try {
      return (await store.loadRollout())?.document as RolloutDocumentV1;
    } finally {
      await store.close();
    }
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
      for (const id of REST) assert.equal(server.fleet.get(aid(id))?.desired?.commit, fixture.first);
    });

    it('shows held-back agents ACTIVE on the commit they run, not the generation\'s (DESIRED = ACTIVE when SYNCED)', async () => {
      // The rest get their old bundle again under the new generation (whose commit is the new one) and ack it.
      for (const id of REST) assert.equal((backend().desired(aid(id)) as Delivery).commit, second);
      for (const id of REST) ack(id, 'APPLIED');
      await server.rollout.settled();
      const view = await agents();
      for (const id of REST) {
        const a = view.get(id);
        assert.equal(a?.state, 'SYNCED', id);
        assert.equal(a?.desired?.commit, fixture.first, id);
        assert.equal(a?.active?.commit, fixture.first, id);
      }
      // The canaries were sent the new commit; they have not acked it yet.
      for (const id of CANARY) assert.equal(view.get(id)?.active?.commit, fixture.first, id);
    });

    it('takes ACTIVE from the digest a hello reports too', () => {
      const d = backend().desired(aid('edge-2')) as Delivery;
      backend().reportActive(identities.get('edge-2') as AgentIdentity, { commit: d.commit, digest: d.digest, generation: d.generation });
      assert.equal(server.fleet.get(aid('edge-2'))?.active?.commit, fixture.first);
    });

    it('moves on to the rest once the canaries applied it', async () => {
      for (const id of CANARY) ack(id, 'APPLIED');
      await settle();
      // edge-3's own file overrides the changed keys: only edge-2's bytes change.
      assert.notEqual(digest('edge-2'), old.get('edge-2'));
      for (const id of REST) assert.equal(server.fleet.get(aid(id))?.desired?.commit, second);
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
      // The X-Meshcfg-Actor header (alice) is not trusted: the actor is the token's name.
      assert.equal(res.body.actor, 'admin');
      assert.equal(res.body.rollout.state, 'aborted');
      const audit = await api<Array<{ action: string; actor: string; reason: string; target: string }>>('/api/v1/audit');
      const entry = audit.body.find((e) => e.action === 'rollout.abort');
      assert.deepEqual(entry && { actor: entry.actor, reason: entry.reason, target: entry.target }, { actor: 'admin', reason: 'bad reload', target: third });
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
      // Nobody is connected to the fresh process: every agent starts DISCONNECTED, and the waves
      // are not judged on that (the rest wave would complete if "no connected agent" counted now).
      assert.ok(ALL.every((id) => server.rollout.agentStatus(aid(id)).state === 'DISCONNECTED'));
      await server.rollout.tick();
      assert.deepEqual(
        server.rollout.status().waves.map((w) => [w.name, w.state]),
        statusBefore.waves.map((w) => [w.name, w.state]),
      );
      // Agents hello again (with what they run) and count again: the same status as before.
      helloAll();
      await server.rollout.settled();
      assert.deepEqual(server.rollout.status(), statusBefore);
      for (const id of ALL) assert.equal(digest(id), digests.get(id), id);
    });

    it('loses no ack the saved document missed: they are replayed at restore', async () => {
      const waveOf = (status: RolloutStatus, name: string) => status.waves.find((w) => w.name === name);
      assert.equal(waveOf(server.rollout.status(), 'rest')?.state, 'progressing');
      // One of the two rest agents acks: no transition, so no event and no save of the document.
      ack('edge-2', 'APPLIED');
      await server.rollout.settled();
      assert.equal(waveOf(server.rollout.status(), 'rest')?.applied, 1);
      // Crash-like: the shutdown save does not run (the ack is in fleet.db, not in the document).
      (server.rollout as { stop: () => Promise<void> }).stop = async () => {};
      unwatch.splice(0);
      await server.close();
      const saved = await storedDocument();
      assert.equal(saved.agents.find((a) => a.id === 'edge-2')?.result, null, 'the saved document predates the ack');

      await start();
      // Counted before edge-2 even reconnects (its hello would not be needed).
      const rest = waveOf(server.rollout.status(), 'rest');
      assert.equal(rest?.applied, 1);
      assert.equal(rest?.state, 'progressing');
      helloAll();
      ack('edge-3', 'APPLIED');
      await settle();
      assert.equal(server.rollout.status().state, 'complete');
    });
  });
});
