import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import type { Client } from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import { sha256Digest } from '../../src/lib/index.js';
import { MemoryFleetStore } from '../../src/fleet/index.js';
import { EnrollmentTokens } from '../../src/pki/index.js';
import { ServerBackend } from '../../src/server/backend.js';
import { AgentCertificates } from '../../src/server/certificates.js';
import { FleetCache } from '../../src/server/fleet.js';
import { buildSnapshot, SnapshotCache } from '../../src/server/snapshot.js';
import { BundleSigner } from '../../src/signing/index.js';
import type { EnrollResponseMsg, FetchResponseMsg } from '../../src/transport/proto.js';
import type { GrpcServer } from '../../src/transport/server.js';
import { forgeCsr, rsaKey } from '../pki/helpers.js';
import {
  type AgentCredentials,
  clientCredentials,
  distributionClient,
  enrollmentClient,
  hello,
  makePki,
  openStream,
  type Pki,
  Recorder,
  startServer,
  unary,
  unaryError,
} from '../transport/helpers.js';
import { aid, cid } from '../helpers/ids.js';

const AGENT = 'edge-1';
const FETCH = { if_none_match: '', agent_id: '', active: null };

/**
 * Issue 7, item 1: revoking an agent revokes its identity — every certificate ever issued to
 * it — and a renewal retires the certificate it replaces. Real mTLS gRPC on loopback, the
 * real backend, CA and token store; only the fleet store is in memory (a restart is a new
 * AgentCertificates over the same store).
 */
describe('agent identity over mTLS gRPC (ServerBackend + AgentCertificates)', () => {
  let pki: Pki;
  let store: MemoryFleetStore;
  let certificates: AgentCertificates;
  let tokens: EnrollmentTokens;
  let recorder: Recorder;
  let server: GrpcServer;
  let issued: number;
  const clients: Client[] = [];

  before(async () => {
    pki = await makePki();
  });
  after(() => pki.cleanup());

  async function startWith(registry: AgentCertificates): Promise<void> {
    const signingKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const snapshots = new SnapshotCache();
    const bytes = new TextEncoder().encode('{"v":1}');
    const desired = [{ agentId: aid(AGENT), digest: sha256Digest(bytes), bytes, baseline: false }];
    const signed = new BundleSigner({ privateKey: signingKey.privateKey }).signGeneration({ generation: 1, commit: cid('a'.repeat(40)), agents: [{ agentId: aid(AGENT), digest: desired[0]!.digest }] });
    snapshots.set(buildSnapshot({ generation: 1, commit: cid('a'.repeat(40)), desired, signed }));
    const backend = new ServerBackend({
      snapshots,
      fleet: new FleetCache(),
      inventory: { has: (id) => id === AGENT },
      tokens,
      ca: pki.ca,
      signingPublicKeyPem: signingKey.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      certificates: registry,
      hooks: { onCertificateIssued: () => (issued += 1) },
    });
    server = await startServer(pki, backend, recorder);
  }

  beforeEach(async () => {
    store = new MemoryFleetStore();
    tokens = new EnrollmentTokens({ store: store.tokens });
    certificates = await AgentCertificates.load(store);
    recorder = new Recorder();
    issued = 0;
    await startWith(certificates);
  });
  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    await server.shutdown(1_000);
  });

  function connect(agent?: AgentCredentials): { distribution: Client; enrollment: Client } {
    const creds = clientCredentials(pki, agent);
    const pair = { distribution: distributionClient(server, creds), enrollment: enrollmentClient(server, creds) };
    clients.push(pair.distribution, pair.enrollment);
    return pair;
  }

  async function enroll(): Promise<AgentCredentials> {
    const { token } = await tokens.create(aid(AGENT), 60_000);
    const key = rsaKey();
    const res = await unary<EnrollResponseMsg>(connect().enrollment, 'Enroll', { token, csr_pem: Buffer.from(forgeCsr(key)) });
    return { agentId: aid(AGENT), keyPem: key.privateKeyPem, certPem: res.certificate_pem.toString() };
  }

  async function renew(current: AgentCredentials): Promise<AgentCredentials> {
    const key = rsaKey();
    const res = await unary<EnrollResponseMsg>(connect(current).enrollment, 'Renew', { csr_pem: Buffer.from(forgeCsr(key)) });
    return { agentId: aid(AGENT), keyPem: key.privateKeyPem, certPem: res.certificate_pem.toString() };
  }

  async function fetchCode(agent: AgentCredentials): Promise<number> {
    try {
      await unary<FetchResponseMsg>(connect(agent).distribution, 'Fetch', FETCH);
      return status.OK;
    } catch (err) {
      return (err as { code: number }).code;
    }
  }

  describe('when an agent renewed twice (e3 → r1 → r2) and is then revoked', () => {
    it('refuses every one of its certificates, for Fetch and for Renew, as revoked, until it enrolls with a new token', async () => {
      const e3 = await enroll();
      const r1 = await renew(e3);
      const r2 = await renew(r1);
      assert.equal(await fetchCode(r2), status.OK);

      const outcome = await certificates.revoke(aid(AGENT), null, 'alice', 'key leaked', new Date());
      assert.equal(outcome.kind, 'revoked');
      recorder.reset();

      for (const cert of [e3, r1, r2]) assert.equal(await fetchCode(cert), status.PERMISSION_DENIED);
      const issuedBefore = issued;
      const renewal = await unaryError(connect(e3).enrollment, 'Renew', { csr_pem: Buffer.from(forgeCsr(rsaKey())) });
      assert.equal(renewal.code, status.PERMISSION_DENIED);
      assert.equal(issued, issuedBefore, 'no certificate is issued to a revoked identity');
      assert.deepEqual(
        recorder.unauthorized.map((u) => [u.reason, u.agentId]),
        [
          ['revoked', AGENT],
          ['revoked', AGENT],
          ['revoked', AGENT],
          ['revoked', AGENT],
        ],
      );
      assert.equal(outcome.kind === 'revoked' && outcome.serial, certificates.current(aid(AGENT)));
      assert.deepEqual(await certificates.revoke(aid(AGENT), null, 'alice', 'again', new Date()), { kind: 'already-revoked', serial: certificates.current(aid(AGENT)) });

      const fresh = await enroll();
      assert.equal(await fetchCode(fresh), status.OK, 'a new enrollment lifts the revocation');
      recorder.reset();
      for (const cert of [e3, r1, r2]) assert.equal(await fetchCode(cert), status.PERMISSION_DENIED);
      assert.deepEqual(
        recorder.unauthorized.map((u) => u.reason),
        ['replaced-certificate', 'replaced-certificate', 'revoked'],
        'older certificates stay refused: replaced ones as replaced, the revoked one as revoked',
      );
    });

    it('keeps refusing them after a restart (state from the fleet store)', async () => {
      const e3 = await enroll();
      const r1 = await renew(e3);
      await certificates.revoke(aid(AGENT), null, 'alice', '', new Date());
      await server.shutdown(1_000);
      await startWith(await AgentCertificates.load(store));
      for (const cert of [e3, r1]) assert.equal(await fetchCode(cert), status.PERMISSION_DENIED);
      assert.deepEqual(
        recorder.unauthorized.map((u) => u.reason),
        ['revoked', 'revoked'],
      );
    });

    it('ends its open streams at once when asked to re-check them', async () => {
      const e3 = await enroll();
      const stream = openStream(connect(e3).distribution);
      stream.call.write(hello());
      await stream.nth(1);
      await certificates.revoke(aid(AGENT), null, 'alice', '', new Date());
      assert.equal(server.recheckStreams(aid(AGENT)), 1);
      const ended = await stream.ended;
      assert.equal(ended.code, status.PERMISSION_DENIED);
      assert.deepEqual(
        recorder.unauthorized.map((u) => u.reason),
        ['revoked'],
      );
    });
  });

  describe('when an agent renews', () => {
    it('retires the certificate it replaced: it can neither fetch nor renew again, and each refusal is counted', async () => {
      const e3 = await enroll();
      const r1 = await renew(e3);
      assert.equal(await fetchCode(r1), status.OK);
      assert.equal(await fetchCode(e3), status.PERMISSION_DENIED);
      const issuedBefore = issued;
      const renewal = await unaryError(connect(e3).enrollment, 'Renew', { csr_pem: Buffer.from(forgeCsr(rsaKey())) });
      assert.equal(renewal.code, status.PERMISSION_DENIED);
      assert.equal(issued, issuedBefore);
      assert.deepEqual(
        recorder.unauthorized.map((u) => [u.reason, u.agentId]),
        [
          ['replaced-certificate', AGENT],
          ['replaced-certificate', AGENT],
        ],
      );
    });

    it('lets an open stream of the replaced certificate go on only until it is re-checked', async () => {
      const e3 = await enroll();
      const stream = openStream(connect(e3).distribution);
      stream.call.write(hello());
      await stream.nth(1);
      await renew(e3);
      assert.equal(server.recheckStreams(aid(AGENT)), 1);
      assert.equal((await stream.ended).code, status.PERMISSION_DENIED);
    });
  });

  describe('an agent enrolled before current certificates were recorded', () => {
    it('has the first certificate it presents adopted, and its others refused as replaced', async () => {
      const legacy = pki.issue(aid(AGENT));
      const other = pki.issue(aid(AGENT));
      assert.equal(await fetchCode(legacy), status.OK);
      assert.equal(await fetchCode(legacy), status.OK);
      assert.equal(await fetchCode(other), status.PERMISSION_DENIED);
      // Adoptions are recorded in batches (a reconnecting fleet adopts thousands at once).
      await certificates.flush();
      assert.deepEqual(
        (await store.listCurrentCertificates()).map((c) => [c.agentId, c.kind]),
        [[AGENT, 'adopted']],
      );
      assert.deepEqual(
        recorder.unauthorized.map((u) => u.reason),
        ['replaced-certificate'],
      );
    });
  });
});
