import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { startServer, type RunningServer } from '../../src/server/server.js';
import type { AckReport, AgentIdentity, Delivery } from '../../src/transport/backend.js';
import { forgeCsr, rsaKey } from '../pki/helpers.js';
import { configFor, fakeTransport, makeFixture, silentLogger, webhookReceiver, type Fixture } from './helpers.js';
import { aid, cid } from '../helpers/ids.js';
import type { AgentId } from '../../src/domain/types.js';

const FOREIGN = `sha256:${'f'.repeat(64)}`;

/** Waits (briefly) for an asynchronous consequence: drift checks and republishing run after the call that caused them. */
async function eventually<T>(what: string, probe: () => T | undefined | false, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('fleet state, drift and quarantine (startServer with fleet.db)', () => {
  let fixture: Fixture;
  let server: RunningServer | undefined;
  let transport: ReturnType<typeof fakeTransport>;
  const agentKey = rsaKey();

  beforeEach(() => {
    fixture = makeFixture();
  });
  afterEach(async () => {
    await server?.close();
    server = undefined;
    fixture.cleanup();
  });

  async function start(webhook?: string): Promise<RunningServer> {
    transport = fakeTransport();
    server = await startServer(configFor(fixture, webhook === undefined ? {} : { webhook }), { logger: silentLogger, transport: transport.start });
    if (server.reconciler.served() === null) await server.syncNow();
    return server;
  }

  function identityOf(s: RunningServer, agentId: AgentId): AgentIdentity {
    const issued = s.dataDir.ca.issueAgentCertificate({ csrPem: forgeCsr(agentKey), agentId: aid(agentId) });
    const certificate = new X509Certificate(issued.certPem);
    return { agentId: aid(agentId), certificate, serialNumber: certificate.serialNumber, notAfter: issued.notAfter };
  }

  function ackFor(delivery: Delivery, digest: string = delivery.digest): AckReport {
    return { commit: delivery.commit, digest, generation: delivery.generation, nonce: delivery.nonce, status: 'APPLIED', error: '' };
  }

  async function admin(s: RunningServer, path: string, init: RequestInit & { actor?: string } = {}): Promise<{ status: number; body: unknown }> {
    const token = readFileSync(s.adminTokenPath, 'utf8').trim();
    const { actor, ...rest } = init;
    const res = await fetch(`${s.adminUrl}${path}`, {
      ...rest,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...(actor === undefined ? {} : { 'x-meshcfg-actor': actor }) },
    });
    return { status: res.status, body: await res.json() };
  }

  describe('across a restart', () => {
    it('keeps acks, agent state, the generation and enrollment tokens', async () => {
      let s = await start();
      const backend = transport.backend();
      const identity = identityOf(s, aid('edge-1'));
      backend.reportActive(identity, null);
      const delivery = backend.desired(aid('edge-1')) as Delivery;
      assert.equal(backend.ack(identity, ackFor(delivery)).kind, 'recorded');
      const token = (await admin(s, '/api/v1/tokens', { method: 'POST', body: JSON.stringify({ agentId: 'edge-2' }) })).body as { token: string };
      const generation = s.reconciler.status().generation;
      await s.close();
      assert.equal(existsSync(join(fixture.dataDir, 'state.json')), false, 'state lives in fleet.db, not state.json');

      s = await start();
      const agent = s.fleet.get(aid('edge-1'));
      assert.equal(agent?.active?.digest, delivery.digest);
      assert.equal(agent?.state, 'SYNCED');
      assert.equal(agent?.certSerial !== null, true);
      assert.equal((await s.fleetStore.listAcks(aid('edge-1'))).length, 1);
      assert.ok(s.reconciler.status().generation > generation, 'generations keep growing');
      const enrolled = await transport.backend().enroll(token.token, forgeCsr(agentKey));
      assert.equal(enrolled.agentId, 'edge-2', 'a token created before the restart still enrolls');
    });

    it('imports a state.json of an older version once, and renames it', async () => {
      const first = await start();
      await first.close();
      server = undefined;
      // Simulate an upgrade: a data directory with state.json and no fleet.db.
      const { rmSync } = await import('node:fs');
      for (const f of ['fleet.db', 'fleet.db-wal', 'fleet.db-shm']) rmSync(join(fixture.dataDir, f), { force: true });
      writeFileSync(join(fixture.dataDir, 'state.json'), JSON.stringify({ version: 1, accepted: fixture.first, generation: 41 }));
      const s = await start();
      assert.equal(s.reconciler.status().generation, 42);
      assert.equal(existsSync(join(fixture.dataDir, 'state.json')), false);
      assert.equal(existsSync(join(fixture.dataDir, 'state.json.imported')), true);
    });
  });

  describe('when an agent reports a digest the server never issued to it', () => {
    it('quarantines it, alerts, sends the baseline through later commits, and approval brings its bundle back', async () => {
      const hook = await webhookReceiver();
      try {
        const s = await start(hook.url);
        const backend = transport.backend();
        const identity = identityOf(s, aid('edge-1'));
        const baseline = s.reconciler.served()?.compilation.baseline;
        assert.ok(baseline, 'the example config has a baseline');
        const own = (backend.desired(aid('edge-1')) as Delivery).digest;

        backend.reportActive(identity, { commit: cid(fixture.first), digest: FOREIGN, generation: 1 });
        const quarantined = await eventually('the baseline delivery', () => {
          const d = backend.desired(aid('edge-1'));
          return d?.baseline === true ? d : undefined;
        });
        assert.equal(quarantined.digest, baseline.digest);
        assert.equal(s.fleet.get(aid('edge-1'))?.state, 'QUARANTINED');
        assert.equal(backend.desired(aid('edge-2'))?.baseline, false, 'other agents keep their bundles');

        await hook.waitFor(1);
        const alert = hook.bodies[0] as Record<string, unknown>;
        assert.equal(alert['kind'], 'agent-quarantined');
        assert.equal(alert['agent'], 'edge-1');
        assert.equal(alert['commit'], fixture.first);
        assert.equal(typeof alert['message'], 'string');
        assert.equal(typeof alert['at'], 'string');

        const [entry] = await s.fleetStore.listAudit({ limit: 1 });
        assert.equal(entry?.action, 'agent.quarantine');
        assert.equal(entry?.actor, 'system');
        assert.equal(entry?.target, 'edge-1');

        // A later commit does not lift it.
        fixture.repo.write({ 'config/agents/edge-1.yaml': 'telemetry: { accessLog: true }\n' }).commit('edge-1 access log', fixture.signer);
        await s.syncNow();
        assert.equal(backend.desired(aid('edge-1'))?.baseline, true);

        const approved = await admin(s, '/api/v1/agents/edge-1/approve', { method: 'POST', body: JSON.stringify({ reason: 'file restored' }), actor: 'alice' });
        assert.equal(approved.status, 200, JSON.stringify(approved.body));
        const back = backend.desired(aid('edge-1')) as Delivery;
        assert.equal(back.baseline, false);
        const compiled = s.reconciler.served()?.compilation.agents.find((a) => a.id === 'edge-1');
        assert.equal(back.digest, compiled?.bundle.digest, 'the desired bundle of the newer commit');
        assert.equal(back.commit, fixture.repo.head());
        assert.notEqual(own, baseline.digest);
        assert.notEqual(s.fleet.get(aid('edge-1'))?.state, 'QUARANTINED');

        const audit = (await admin(s, '/api/v1/audit?limit=2')).body as Array<Record<string, unknown>>;
        assert.deepEqual(
          audit.map((e) => [e['action'], e['actor'], e['reason']]),
          [
            // X-Meshcfg-Actor is not trusted: the actor is the bootstrap token's name.
            ['agent.approve', 'admin', 'file restored'],
            ['agent.quarantine', 'system', audit[1]?.['reason']],
          ],
        );
        assert.equal((await admin(s, '/api/v1/agents/edge-1/approve', { method: 'POST', body: JSON.stringify({ reason: 'again' }) })).status, 409);
      } finally {
        await hook.close();
      }
    });

    it('does not quarantine an agent reporting a digest it was sent, or nothing at all', async () => {
      const s = await start();
      const backend = transport.backend();
      const identity = identityOf(s, aid('edge-2'));
      const delivery = backend.desired(aid('edge-2')) as Delivery;
      backend.reportActive(identity, { commit: cid(''), digest: '', generation: 0 });
      backend.reportActive(identity, { commit: delivery.commit, digest: delivery.digest, generation: delivery.generation });
      await new Promise((r) => setTimeout(r, 100));
      assert.notEqual(s.fleet.get(aid('edge-2'))?.state, 'QUARANTINED');
    });

    it('quarantines an agent that acks APPLIED for a digest other than the one sent', async () => {
      const s = await start();
      const backend = transport.backend();
      const identity = identityOf(s, aid('edge-3'));
      const delivery = backend.desired(aid('edge-3')) as Delivery;
      backend.ack(identity, ackFor(delivery, FOREIGN));
      await eventually('QUARANTINED', () => s.fleet.get(aid('edge-3'))?.state === 'QUARANTINED');
      assert.equal(s.fleet.get(aid('edge-3'))?.quarantine?.by, 'system');
      assert.equal(s.rollout.status().waves.reduce((n, w) => n + w.applied, 0), 0, 'the rollout does not count it as having applied what it was sent');
    });

    it('keeps a quarantine across a restart', async () => {
      let s = await start();
      assert.equal((await admin(s, '/api/v1/agents/edge-4/quarantine', { method: 'POST', body: JSON.stringify({ reason: 'suspicious' }) })).status, 200);
      assert.equal(transport.backend().desired(aid('edge-4'))?.baseline, true);
      await s.close();
      s = await start();
      assert.equal(s.fleet.get(aid('edge-4'))?.state, 'QUARANTINED');
      assert.equal(transport.backend().desired(aid('edge-4'))?.baseline, true, 'restored generations keep the baseline');
    });
  });

  describe('operator actions', () => {
    it('revoke: the agent certificate is refused from then on, also after a restart, and it is audited', async () => {
      let s = await start();
      const identity = identityOf(s, aid('edge-1'));
      transport.backend().reportActive(identity, null);
      assert.deepEqual(transport.backend().authorize(identity), { ok: true });
      const res = await admin(s, '/api/v1/agents/edge-1/revoke', { method: 'POST', body: '{}', actor: 'bob' });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const verdict = transport.backend().authorize(identity);
      assert.equal(!verdict.ok && verdict.reason, 'revoked');
      assert.deepEqual(transport.rechecked(), ['edge-1'], 'its open streams are re-checked (ended) at once');
      const another = identityOf(s, aid('edge-1'));
      const other = transport.backend().authorize(another);
      assert.equal(!other.ok && other.reason, 'revoked', 'the identity is revoked, not one serial');
      const [entry] = await s.fleetStore.listAudit({ limit: 1 });
      assert.deepEqual([entry?.action, entry?.actor, entry?.target], ['agent.revoke', 'admin', 'edge-1']);
      assert.equal((await admin(s, '/api/v1/agents/edge-1/revoke', { method: 'POST', body: '{}' })).status, 409);
      await s.close();
      s = await start();
      for (const cert of [identity, another, identityOf(s, aid('edge-1'))]) {
        const after = transport.backend().authorize(cert);
        assert.equal(!after.ok && after.reason, 'revoked');
      }
    });

    it('ends the streams of a replaced certificate: at once after an enrollment, after the grace after a renewal', async () => {
      transport = fakeTransport();
      server = await startServer(configFor(fixture), { logger: silentLogger, transport: transport.start, replacedStreamGraceMs: 50 });
      const s = server;
      if (s.reconciler.served() === null) await s.syncNow();
      const token = (await admin(s, '/api/v1/tokens', { method: 'POST', body: JSON.stringify({ agentId: 'edge-1' }) })).body as { token: string };
      const enrolled = await transport.backend().enroll(token.token, forgeCsr(agentKey));
      assert.deepEqual(transport.rechecked(), ['edge-1']);
      const certificate = new X509Certificate(enrolled.certificatePem);
      const identity = { agentId: aid('edge-1'), certificate, serialNumber: certificate.serialNumber, notAfter: enrolled.expiresAt };
      await transport.backend().renew(identity, forgeCsr(agentKey));
      assert.deepEqual(transport.rechecked(), ['edge-1'], 'a renewing agent moves its stream itself first');
      await eventually('the re-check after the grace', () => transport.rechecked().length === 2);
      const verdict = transport.backend().authorize(identity);
      assert.equal(!verdict.ok && verdict.reason, 'replaced-certificate');
    });

    const refusals: ReadonlyArray<{ what: string; path: string; body: unknown; status: number; code: string }> = [
      { what: 'an unknown agent', path: '/api/v1/agents/nobody/quarantine', body: { reason: 'x' }, status: 404, code: 'UNKNOWN_AGENT' },
      { what: 'approve without a reason', path: '/api/v1/agents/edge-1/approve', body: {}, status: 400, code: 'BAD_REQUEST' },
      { what: 'approve of an agent not quarantined', path: '/api/v1/agents/edge-1/approve', body: { reason: 'x' }, status: 409, code: 'NOT_QUARANTINED' },
      { what: 'revoke of an agent that never connected', path: '/api/v1/agents/edge-2/revoke', body: {}, status: 409, code: 'NO_CERTIFICATE' },
    ];
    for (const { what, path, body, status, code } of refusals) {
      it(`answers ${status} ${code} for ${what}`, async () => {
        const s = await start();
        const res = await admin(s, path, { method: 'POST', body: JSON.stringify(body) });
        assert.equal(res.status, status);
        assert.equal((res.body as { error: { code: string } }).error.code, code);
      });
    }

    it('GET /api/v1/audit lists newest first and honours ?limit', async () => {
      const s = await start();
      for (const id of ['edge-1', 'edge-2', 'edge-3']) {
        await admin(s, `/api/v1/agents/${id}/quarantine`, { method: 'POST', body: JSON.stringify({ reason: `r-${id}` }) });
      }
      const res = await admin(s, '/api/v1/audit?limit=2');
      assert.deepEqual((res.body as Array<{ target: string; actor: string }>).map((e) => [e.target, e.actor]), [
        ['edge-3', 'admin'],
        ['edge-2', 'admin'],
      ]);
      assert.equal((await admin(s, '/api/v1/audit?limit=0')).status, 400);
    });
  });
});
