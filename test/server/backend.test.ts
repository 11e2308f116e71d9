import assert from 'node:assert/strict';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { before, beforeEach, describe, it } from 'node:test';
import { sha256Digest } from '../../src/lib/index.js';
import { PkiError } from '../../src/domain/errors.js';
import { createCa, EnrollmentCa, EnrollmentTokens, type TokenRecord, type TokenStore } from '../../src/pki/index.js';
import { ServerBackend, type BackendHooks, type CertificateStanding } from '../../src/server/backend.js';
import { FleetCache, normalizeSerial } from '../../src/server/fleet.js';
import { buildSnapshot, SnapshotCache, type DesiredBundle } from '../../src/server/snapshot.js';
import { BundleSigner } from '../../src/signing/index.js';
import type { AckReport, AgentIdentity, Delivery } from '../../src/transport/backend.js';
import { forgeCsr, rsaKey } from '../pki/helpers.js';
import { aid, cid } from '../helpers/ids.js';
import type { AgentId } from '../../src/domain/types.js';

const COMMIT = 'a'.repeat(40);
const NEXT_COMMIT = 'b'.repeat(40);

class MemoryTokenStore implements TokenStore {
  records: TokenRecord[] = [];
  async insert(record: TokenRecord): Promise<void> {
    this.records.push(record);
  }
  async claim(hash: Buffer, at: Date): Promise<TokenRecord | undefined> {
    const i = this.records.findIndex((r) => r.hash.equals(hash));
    const before = this.records[i];
    if (before !== undefined && before.usedAt === undefined && before.expiresAt > at) this.records[i] = { ...before, usedAt: at };
    return before;
  }
}

function desired(agentId: AgentId, text: string): DesiredBundle {
  const bytes = new TextEncoder().encode(text);
  return { agentId: aid(agentId), digest: sha256Digest(bytes), bytes, baseline: false };
}

describe('ServerBackend', () => {
  let ca: EnrollmentCa;
  const signingKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const signingPublicKeyPem = signingKey.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const agentKey = rsaKey();
  let signer: BundleSigner;
  let snapshots: SnapshotCache;
  let fleet: FleetCache;
  let tokens: EnrollmentTokens;
  let backend: ServerBackend;
  let acks: Array<Parameters<NonNullable<BackendHooks['onAck']>>[0]>;
  let inventory: Set<string>;

  before(async () => {
    ca = new EnrollmentCa(await createCa({ trustDomain: 'example.org' }));
  });

  beforeEach(() => {
    signer = new BundleSigner({ privateKey: signingKey.privateKey });
    snapshots = new SnapshotCache();
    fleet = new FleetCache();
    tokens = new EnrollmentTokens({ store: new MemoryTokenStore() });
    acks = [];
    inventory = new Set(['edge-1', 'edge-2']);
    backend = new ServerBackend({
      snapshots,
      fleet,
      inventory: { has: (id) => inventory.has(id) },
      tokens,
      ca,
      signingPublicKeyPem,
      certificateTtlMs: 3_600_000,
      hooks: { onAck: (e) => acks.push(e) },
    });
  });

  function publish(generation: number, commit: string, bundles: DesiredBundle[]): void {
    const signed = signer.signGeneration({ generation, commit: cid(commit), agents: bundles.map((b) => ({ agentId: b.agentId, digest: b.digest })) });
    snapshots.set(buildSnapshot({ generation, commit: cid(commit), desired: bundles, signed }));
    fleet.setDesired(
      bundles.map((b) => ({ id: b.agentId, labels: { zone: 'pci' }, desired: { commit: cid(commit), digest: b.digest, generation } })),
    );
  }

  function identityOf(agentId: AgentId): AgentIdentity {
    const issued = ca.issueAgentCertificate({ csrPem: forgeCsr(agentKey), agentId: aid(agentId) });
    const certificate = new X509Certificate(issued.certPem);
    return { agentId: aid(agentId), certificate, serialNumber: certificate.serialNumber, notAfter: issued.notAfter };
  }

  function ackFor(delivery: Delivery, status: AckReport['status'] = 'APPLIED', nonce = delivery.nonce): AckReport {
    return { commit: delivery.commit, digest: delivery.digest, generation: delivery.generation, nonce, status, error: status === 'REJECTED' ? 'reload failed' : '' };
  }

  describe('authorize', () => {
    it('accepts an inventory agent with a valid certificate', () => {
      assert.deepEqual(backend.authorize(identityOf(aid('edge-1'))), { ok: true });
    });

    it('refuses an agent that is not in the inventory of the served commit with unknown-agent', () => {
      const verdict = backend.authorize(identityOf(aid('edge-9')));
      assert.equal(verdict.ok, false);
      assert.equal(!verdict.ok && verdict.reason, 'unknown-agent');
    });

    it('refuses a certificate that has expired while connected with expired-certificate', () => {
      const identity = { ...identityOf(aid('edge-1')), notAfter: new Date(Date.now() - 1_000) };
      const verdict = backend.authorize(identity);
      assert.equal(!verdict.ok && verdict.reason, 'expired-certificate');
    });

    const standings: ReadonlyArray<{ standing: CertificateStanding['kind']; reason: string | null }> = [
      { standing: 'current', reason: null },
      { standing: 'revoked', reason: 'revoked' },
      { standing: 'replaced', reason: 'replaced-certificate' },
    ];
    for (const { standing, reason } of standings) {
      it(`answers a ${standing} certificate with ${reason ?? 'ok'}`, () => {
        const withRegistry = new ServerBackend({
          snapshots,
          fleet,
          inventory: { has: () => true },
          tokens,
          ca,
          signingPublicKeyPem,
          certificates: { standing: () => ({ kind: standing }), issued: () => Promise.resolve() },
        });
        const verdict = withRegistry.authorize(identityOf(aid('edge-1')));
        assert.equal(verdict.ok ? null : verdict.reason, reason);
      });
    }
  });

  describe('watch and desired', () => {
    it('answers a watch at once with the current delivery and again on a new generation; connection follows the watches', () => {
      publish(1, COMMIT, [desired(aid('edge-1'), '{"v":1}'), desired(aid('edge-2'), '{"v":1}')]);
      const seen: Delivery[] = [];
      const unwatch = backend.watch(aid('edge-1'), (d) => seen.push(d));
      assert.equal(fleet.get(aid('edge-1'))?.connected, true);
      assert.equal(backend.connectedCount(), 1);

      publish(2, NEXT_COMMIT, [desired(aid('edge-1'), '{"v":2}'), desired(aid('edge-2'), '{"v":1}')]);
      unwatch();
      unwatch();
      assert.deepEqual(seen.map((d) => [d.commit, d.generation]), [
        [COMMIT, 1],
        [NEXT_COMMIT, 2],
      ]);
      assert.equal(fleet.get(aid('edge-1'))?.connected, false);
      assert.equal(backend.connectedCount(), 0);
      assert.equal(backend.desired(aid('edge-1')), seen[1]);
      assert.equal(backend.desired(aid('edge-9')), null);
    });
  });

  describe('ack', () => {
    it('records an APPLIED ack with the current nonce and marks the agent SYNCED', () => {
      publish(1, COMMIT, [desired(aid('edge-1'), '{"v":1}')]);
      const identity = identityOf(aid('edge-1'));
      const delivery = backend.desired(aid('edge-1')) as Delivery;
      backend.reportActive(identity, null);
      assert.equal(fleet.get(aid('edge-1'))?.state, 'PENDING');

      assert.deepEqual(backend.ack(identity, ackFor(delivery)), { kind: 'recorded' });
      const agent = fleet.get(aid('edge-1'));
      assert.equal(agent?.state, 'SYNCED');
      assert.equal(agent?.active?.digest, delivery.digest);
      assert.equal(agent?.certExpiry?.getTime(), identity.notAfter.getTime());
      assert.equal(acks[0]?.outcome.kind, 'recorded');
    });

    it('ignores an ack whose nonce is not the current delivery’s as stale', () => {
      publish(1, COMMIT, [desired(aid('edge-1'), '{"v":1}')]);
      const old = backend.desired(aid('edge-1')) as Delivery;
      publish(2, NEXT_COMMIT, [desired(aid('edge-1'), '{"v":2}')]);
      const identity = identityOf(aid('edge-1'));

      assert.deepEqual(backend.ack(identity, ackFor(old)), { kind: 'stale' });
      assert.deepEqual(backend.ack(identity, ackFor(backend.desired(aid('edge-1')) as Delivery, 'APPLIED', 'made-up')), { kind: 'stale' });
      assert.equal(fleet.get(aid('edge-1'))?.active, null);
      assert.deepEqual(acks.map((a) => a.outcome.kind), ['stale', 'stale']);
    });

    it('marks an agent that REJECTED its desired bundle NACKED', () => {
      publish(1, COMMIT, [desired(aid('edge-1'), '{"v":1}')]);
      const identity = identityOf(aid('edge-1'));
      backend.ack(identity, ackFor(backend.desired(aid('edge-1')) as Delivery, 'REJECTED'));
      assert.equal(fleet.get(aid('edge-1'))?.state, 'NACKED');
      assert.equal(fleet.get(aid('edge-1'))?.lastError, 'reload failed');
    });

    it('shows an agent with an active digest from its hello as SYNCED', () => {
      publish(1, COMMIT, [desired(aid('edge-1'), '{"v":1}')]);
      const delivery = backend.desired(aid('edge-1')) as Delivery;
      backend.reportActive(identityOf(aid('edge-1')), { commit: cid(COMMIT), digest: delivery.digest, generation: 1 });
      assert.equal(fleet.get(aid('edge-1'))?.state, 'SYNCED');
    });
  });

  describe('enroll', () => {
    it('redeems a real token and a real CSR for a certificate of the token’s agent, with the CA and signing key', async () => {
      const { token } = await tokens.create(aid('edge-2'), 60_000);
      const result = await backend.enroll(token, forgeCsr(agentKey, { commonName: 'edge-1', uris: ['spiffe://example.org/agent/edge-1'] }));
      assert.equal(result.agentId, 'edge-2');
      const cert = new X509Certificate(result.certificatePem);
      assert.equal(cert.subjectAltName, 'URI:spiffe://example.org/agent/edge-2');
      assert.ok(cert.verify(new X509Certificate(result.caPem).publicKey));
      assert.equal(result.signingKeyPem, signingPublicKeyPem);
      assert.ok(result.expiresAt.getTime() <= Date.now() + 3_600_000);
    });

    const refusals: ReadonlyArray<readonly [string, string, () => Promise<string>]> = [
      ['an unknown token', 'TOKEN_UNKNOWN', async () => 'mcet_' + 'A'.repeat(43)],
      ['text that is no token', 'TOKEN_UNKNOWN', async () => 'hello'],
      [
        'a reused token',
        'TOKEN_USED',
        async () => {
          const { token } = await tokens.create(aid('edge-1'), 60_000);
          await backend.enroll(token, forgeCsr(agentKey));
          return token;
        },
      ],
    ];
    for (const [what, code, token] of refusals) {
      it(`refuses ${what} with ${code}`, async () => {
        const text = await token();
        await assert.rejects(backend.enroll(text, forgeCsr(agentKey)), (err: unknown) => err instanceof PkiError && err.code === code);
      });
    }

    it('refuses an expired token with TOKEN_EXPIRED', async () => {
      let now = new Date();
      const clocked = new EnrollmentTokens({ store: new MemoryTokenStore(), now: () => now });
      const b = new ServerBackend({ snapshots, fleet, inventory: { has: () => true }, tokens: clocked, ca, signingPublicKeyPem, now: () => now });
      const { token } = await clocked.create(aid('edge-1'), 60_000);
      now = new Date(now.getTime() + 61_000);
      await assert.rejects(b.enroll(token, forgeCsr(agentKey)), (err: unknown) => err instanceof PkiError && err.code === 'TOKEN_EXPIRED');
    });

    it('refuses a CSR that does not parse with CSR_INVALID', async () => {
      const { token } = await tokens.create(aid('edge-1'), 60_000);
      await assert.rejects(backend.enroll(token, '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n'), (err: unknown) => err instanceof PkiError && err.code === 'CSR_INVALID');
    });
  });

  describe('renew', () => {
    it('issues a certificate for the authenticated identity, whatever the CSR asks for', async () => {
      const result = await backend.renew(identityOf(aid('edge-1')), forgeCsr(agentKey, { uris: ['spiffe://example.org/agent/edge-2'] }));
      assert.equal(new X509Certificate(result.certificatePem).subjectAltName, 'URI:spiffe://example.org/agent/edge-1');
      assert.equal(fleet.get(aid('edge-1')), undefined, 'not listed before it is in a published inventory');
    });

    it('makes the new certificate current before handing it out, and hands out none it cannot record', async () => {
      const recorded: Array<{ agentId: AgentId; serial: string; kind: string }> = [];
      let fail = false;
      const withRegistry = new ServerBackend({
        snapshots,
        fleet,
        inventory: { has: () => true },
        tokens,
        ca,
        signingPublicKeyPem,
        certificates: {
          standing: () => ({ kind: 'current' }),
          issued: async (agentId, serial, kind) => {
            if (fail) throw new Error('disk full');
            recorded.push({ agentId, serial, kind });
          },
        },
      });
      const result = await withRegistry.renew(identityOf(aid('edge-1')), forgeCsr(agentKey));
      assert.deepEqual(
        recorded.map((r) => ({ ...r, serial: normalizeSerial(r.serial) })),
        [{ agentId: 'edge-1', serial: normalizeSerial(new X509Certificate(result.certificatePem).serialNumber), kind: 'renew' }],
      );
      fail = true;
      await assert.rejects(withRegistry.renew(identityOf(aid('edge-1')), forgeCsr(agentKey)), /disk full/);
    });
  });
});
