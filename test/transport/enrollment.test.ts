import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { before, beforeEach, describe, it } from 'node:test';
import { type Client, status } from '@grpc/grpc-js';
import { PkiError, type PkiErrorCode } from '../../src/domain/errors.js';
import type { UnauthorizedReason } from '../../src/transport/backend.js';
import type { EnrollResponseMsg } from '../../src/transport/proto.js';
import { forgeCsr, rsaKey } from '../pki/helpers.js';
import { type AgentCredentials, clientCredentials, enrollmentClient, unary, unaryError, useServerSuite } from './helpers.js';
import { aid } from '../helpers/ids.js';

const TOKEN = 'mcet_super-secret-token-value';

describe('GrpcServer › Enrollment', () => {
  const suite = useServerSuite();
  const { backend, recorder, clients } = suite;
  let edge1: AgentCredentials;
  const key = rsaKey();
  const csrPem = forgeCsr(key);

  before(() => {
    edge1 = suite.pki.issue(aid('edge-1'));
  });

  beforeEach(() => {
    // A backend that enrolls for real with the CA under test.
    backend.enrollWith = async (_token, csr) => {
      const issued = suite.pki.ca.issueAgentCertificate({ csrPem: csr, agentId: aid('edge-1') });
      return { agentId: aid('edge-1'), certificatePem: issued.certPem, caPem: suite.pki.caPem, signingKeyPem: 'SIGNING KEY PEM', expiresAt: issued.notAfter };
    };
    backend.renewWith = async (identity, csr) => {
      const issued = suite.pki.ca.issueAgentCertificate({ csrPem: csr, agentId: identity.agentId });
      return { agentId: identity.agentId, certificatePem: issued.certPem, caPem: suite.pki.caPem, signingKeyPem: 'SIGNING KEY PEM', expiresAt: issued.notAfter };
    };
  });

  function connect(agent?: AgentCredentials): Client {
    const client = enrollmentClient(suite.server, clientCredentials(suite.pki, agent));
    clients.push(client);
    return client;
  }

  describe('Enroll without a client certificate', () => {
    it('hands token and CSR to the backend and returns the certificate, CA, signing key and expiry', async () => {
      const res = await unary<EnrollResponseMsg>(connect(), 'Enroll', { token: TOKEN, csr_pem: Buffer.from(csrPem) });
      assert.deepEqual(backend.callsOf('enroll'), [{ method: 'enroll', token: TOKEN, csrPem }]);
      const cert = new X509Certificate(res.certificate_pem);
      assert.equal(cert.subjectAltName, 'URI:spiffe://example.org/agent/edge-1');
      assert.equal(res.ca_pem.toString(), suite.pki.caPem);
      assert.equal(res.signing_key_pem.toString(), 'SIGNING KEY PEM');
      assert.equal(res.agent_id, 'edge-1');
      // RFC 3339; the certificate's notAfter has whole seconds.
      assert.ok(Math.abs(Date.parse(res.expires_at) - Date.parse(cert.validTo)) < 1_000, res.expires_at);
      assert.deepEqual(recorder.unauthorized, []);
    });
  });

  describe('when the backend refuses the enrollment', () => {
    const cases: { code: PkiErrorCode; status: status; reason: UnauthorizedReason }[] = [
      { code: 'TOKEN_UNKNOWN', status: status.UNAUTHENTICATED, reason: 'bad-token' },
      { code: 'TOKEN_EXPIRED', status: status.UNAUTHENTICATED, reason: 'expired-token' },
      { code: 'TOKEN_USED', status: status.UNAUTHENTICATED, reason: 'reused-token' },
      { code: 'CSR_INVALID', status: status.INVALID_ARGUMENT, reason: 'bad-csr' },
      { code: 'KEY_UNSUPPORTED', status: status.INVALID_ARGUMENT, reason: 'bad-csr' },
    ];
    for (const c of cases) {
      it(`answers ${status[c.status]} for ${c.code}, counted as ${c.reason} and logged without the token`, async () => {
        backend.enrollWith = () => Promise.reject(new PkiError({ code: c.code, message: `refused (${c.code})` }));
        const err = await unaryError(connect(), 'Enroll', { token: TOKEN, csr_pem: Buffer.from(csrPem) });
        assert.equal(err.code, c.status);
        assert.deepEqual(
          recorder.unauthorized.map((u) => u.reason),
          [c.reason],
        );
        const warns = recorder.logs.filter((l) => l.level === 'warn');
        assert.equal(warns.length, 1);
        assert.equal((warns[0]?.obj as { reason?: string }).reason, c.reason);
        assert.ok(!JSON.stringify(recorder.logs).includes(TOKEN), 'the token never reaches a log');
        assert.ok(!err.details.includes(TOKEN));
      });
    }

    it('answers INTERNAL for an unexpected failure, without an unauthorized count', async () => {
      backend.enrollWith = () => Promise.reject(new Error('disk full'));
      const err = await unaryError(connect(), 'Enroll', { token: TOKEN, csr_pem: Buffer.from(csrPem) });
      assert.equal(err.code, status.INTERNAL);
      assert.deepEqual(recorder.unauthorized, []);
      assert.ok(recorder.logs.some((l) => l.level === 'warn' && l.msg?.includes('disk full')));
    });

    it('answers INTERNAL when the backend throws instead of rejecting', async () => {
      backend.enrollWith = () => {
        throw new Error('synchronous bug');
      };
      const err = await unaryError(connect(), 'Enroll', { token: TOKEN, csr_pem: Buffer.from(csrPem) });
      assert.equal(err.code, status.INTERNAL);
    });
  });

  describe('Renew', () => {
    it('requires a client certificate: UNAUTHENTICATED without one', async () => {
      const err = await unaryError(connect(), 'Renew', { csr_pem: Buffer.from(csrPem) });
      assert.equal(err.code, status.UNAUTHENTICATED);
      assert.deepEqual(backend.callsOf('renew'), []);
      assert.deepEqual(
        recorder.unauthorized.map((u) => u.reason),
        ['no-client-certificate'],
      );
    });

    it('renews for the identity of the certificate', async () => {
      const res = await unary<EnrollResponseMsg>(connect(edge1), 'Renew', { csr_pem: Buffer.from(csrPem) });
      assert.deepEqual(backend.callsOf('renew'), [{ method: 'renew', agentId: 'edge-1', csrPem }]);
      assert.equal(new X509Certificate(res.certificate_pem).subjectAltName, 'URI:spiffe://example.org/agent/edge-1');
    });

    it('refuses a revoked agent with PERMISSION_DENIED', async () => {
      backend.revoked.add(aid('edge-1'));
      const err = await unaryError(connect(edge1), 'Renew', { csr_pem: Buffer.from(csrPem) });
      assert.equal(err.code, status.PERMISSION_DENIED);
      assert.deepEqual(backend.callsOf('renew'), []);
    });
  });
});
