import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { type Client, status } from '@grpc/grpc-js';
import type { FetchResponseMsg } from '../../src/transport/proto.js';
import {
  type AgentCredentials,
  clientCredentials,
  delivery,
  distributionClient,
  eventually,
  FakeBackend,
  makePki,
  openStream,
  Recorder,
  startServer,
  unary,
  unaryError,
  useServerSuite,
} from './helpers.js';
import { aid } from '../helpers/ids.js';

const HOUR_MS = 60 * 60_000;

describe('GrpcServer › authentication and polling', () => {
  const suite = useServerSuite();
  const { backend, recorder, clients } = suite;
  let edge1: AgentCredentials;
  let stranger: AgentCredentials;

  before(() => {
    edge1 = suite.pki.issue(aid('edge-1'));
    stranger = suite.pki.issue(aid('edge-9'));
  });

  function connect(agent?: AgentCredentials): Client {
    const client = distributionClient(suite.server, clientCredentials(suite.pki, agent));
    clients.push(client);
    return client;
  }

  const fetchRequest = (ifNoneMatch = '', agentId = '') => ({
    if_none_match: ifNoneMatch,
    agent_id: agentId,
    active: ifNoneMatch === '' ? null : { commit: 'c'.repeat(40), digest: ifNoneMatch, generation: 1 },
  });

  describe('Distribution.Fetch', () => {
    it('returns the desired bundle when the agent runs something else, and reports what it runs', async () => {
      const desired = delivery(aid('edge-1'));
      backend.current.set(aid('edge-1'), desired);
      const running = `sha256:${'1'.repeat(64)}`;
      const res = await unary<FetchResponseMsg>(connect(edge1), 'Fetch', fetchRequest(running, 'edge-1'));
      assert.equal(res.result, 'bundle');
      assert.equal(res.bundle?.digest, desired.digest);
      assert.equal(res.bundle?.nonce, desired.nonce);
      assert.deepEqual(res.bundle?.bytes, Buffer.from(desired.bytes));
      assert.deepEqual(backend.callsOf('reportActive'), [
        { method: 'reportActive', agentId: 'edge-1', active: { commit: 'c'.repeat(40), digest: running, generation: 1 } },
      ]);
    });

    it('answers not_modified when if_none_match is the desired digest', async () => {
      const desired = delivery(aid('edge-1'));
      backend.current.set(aid('edge-1'), desired);
      const res = await unary<FetchResponseMsg>(connect(edge1), 'Fetch', fetchRequest(desired.digest));
      assert.equal(res.result, 'not_modified');
      assert.equal(res.not_modified, true);
      assert.equal(res.bundle, undefined);
    });

    it('answers UNAVAILABLE before any commit is accepted', async () => {
      const err = await unaryError(connect(edge1), 'Fetch', fetchRequest());
      assert.equal(err.code, status.UNAVAILABLE);
      assert.match(err.details, /no accepted commit yet/);
    });

    it('refuses a fetch naming another agent with PERMISSION_DENIED', async () => {
      backend.current.set(aid('edge-1'), delivery(aid('edge-1')));
      const err = await unaryError(connect(edge1), 'Fetch', fetchRequest('', 'edge-2'));
      assert.equal(err.code, status.PERMISSION_DENIED);
      assert.deepEqual(
        recorder.unauthorized.map((u) => [u.reason, u.agentId]),
        [['identity-mismatch', 'edge-1']],
      );
      assert.equal(backend.callsOf('reportActive').length, 0);
    });
  });

  describe('Distribution.Fetch with a malformed active commit', () => {
    it('refuses it with INVALID_ARGUMENT, counted as malformed-commit, and reports nothing', async () => {
      backend.current.set(aid('edge-1'), delivery(aid('edge-1')));
      const request = { if_none_match: '', agent_id: 'edge-1', active: { commit: 'not-a-commit', digest: `sha256:${'1'.repeat(64)}`, generation: 1 } };
      const err = await unaryError(connect(edge1), 'Fetch', request);
      assert.equal(err.code, status.INVALID_ARGUMENT);
      assert.deepEqual(
        recorder.unauthorized.map((u) => [u.reason, u.agentId]),
        [['malformed-commit', 'edge-1']],
      );
      assert.equal(backend.callsOf('reportActive').length, 0);
    });
  });

  describe('Distribution.Report', () => {
    const ack = (extra: object = {}) => ({
      commit: 'c'.repeat(40),
      digest: `sha256:${'2'.repeat(64)}`,
      generation: 7,
      nonce: 'nonce-x',
      status: 'APPLIED',
      error: '',
      agent_id: 'edge-1',
      ...extra,
    });

    it('records the ack of a polling agent', async () => {
      assert.deepEqual(await unary(connect(edge1), 'Report', ack()), {});
      assert.deepEqual(backend.callsOf('ack'), [
        {
          method: 'ack',
          agentId: 'edge-1',
          ack: { commit: 'c'.repeat(40), digest: `sha256:${'2'.repeat(64)}`, generation: 7, nonce: 'nonce-x', status: 'APPLIED', error: '' },
        },
      ]);
    });

    it('answers OK to an ack the backend calls stale', async () => {
      backend.ackOutcome = { kind: 'stale' };
      assert.deepEqual(await unary(connect(edge1), 'Report', ack({ status: 'REJECTED', error: 'bad' })), {});
    });

    it('refuses an ack without APPLIED or REJECTED with INVALID_ARGUMENT', async () => {
      const err = await unaryError(connect(edge1), 'Report', ack({ status: 'ACK_STATUS_UNSPECIFIED' }));
      assert.equal(err.code, status.INVALID_ARGUMENT);
      assert.equal(backend.callsOf('ack').length, 0);
    });

    it('refuses an ack with a malformed commit with INVALID_ARGUMENT, counted as malformed-commit', async () => {
      const err = await unaryError(connect(edge1), 'Report', ack({ commit: 'C'.repeat(40) }));
      assert.equal(err.code, status.INVALID_ARGUMENT);
      assert.equal(backend.callsOf('ack').length, 0);
      assert.deepEqual(
        recorder.unauthorized.map((u) => [u.reason, u.agentId]),
        [['malformed-commit', 'edge-1']],
      );
    });

    it('refuses an ack naming another agent with PERMISSION_DENIED', async () => {
      const err = await unaryError(connect(edge1), 'Report', ack({ agent_id: 'edge-2' }));
      assert.equal(err.code, status.PERMISSION_DENIED);
      assert.equal(backend.callsOf('ack').length, 0);
      assert.deepEqual(
        recorder.unauthorized.map((u) => u.reason),
        ['identity-mismatch'],
      );
    });
  });

  describe('when the agent presents no client certificate', () => {
    it('completes the TLS handshake (for Enroll) but refuses Fetch, Report and Stream with UNAUTHENTICATED', async () => {
      const client = connect();
      const fetchErr = await unaryError(client, 'Fetch', fetchRequest());
      assert.equal(fetchErr.code, status.UNAUTHENTICATED);
      const reportErr = await unaryError(client, 'Report', { status: 'APPLIED' });
      assert.equal(reportErr.code, status.UNAUTHENTICATED);
      const stream = openStream(client);
      assert.equal((await stream.ended).code, status.UNAUTHENTICATED);
      assert.deepEqual(
        recorder.unauthorized.map((u) => u.reason),
        ['no-client-certificate', 'no-client-certificate', 'no-client-certificate'],
      );
      assert.deepEqual(recorder.handshakes, [{ result: 'ok', detail: 'no-client-certificate' }]);
      assert.equal(backend.calls.length, 0);
    });
  });

  describe('when the client certificate is from another CA', () => {
    it('counts a failed handshake, records an untrusted-certificate attempt, and the call fails', async () => {
      const foreign = await suite.pki.foreign(aid('edge-1'));
      const err = await unaryError(connect(foreign), 'Fetch', fetchRequest());
      assert.equal(err.code, status.UNAVAILABLE);
      await eventually(() => recorder.handshakes.length > 0, 'the handshake count');
      assert.ok(recorder.handshakes.every((h) => h.result === 'failed'));
      assert.ok(recorder.unauthorized.length > 0);
      // The id in a certificate nobody vouches for is not recorded as the caller's.
      assert.ok(recorder.unauthorized.every((u) => u.reason === 'untrusted-certificate' && u.agentId === undefined));
      assert.equal(backend.calls.length, 0);
    });
  });

  describe('when the client certificate from our CA has expired', () => {
    it('refuses it at the handshake and records expired-certificate with the agent id', async () => {
      const expired = suite.pki.issue(aid('edge-1'), { notBefore: new Date(Date.now() - 48 * HOUR_MS), ttlMs: HOUR_MS });
      const err = await unaryError(connect(expired), 'Fetch', fetchRequest());
      assert.equal(err.code, status.UNAVAILABLE);
      // A handshake of the previous test's client may still land after the reset (a slow
      // machine): judge this certificate's refusal, the one that names its agent.
      await eventually(() => recorder.unauthorized.some((u) => u.agentId === 'edge-1'), 'the refusal naming edge-1');
      assert.ok(recorder.unauthorized.filter((u) => u.agentId === 'edge-1').every((u) => u.reason === 'expired-certificate'));
      assert.ok(recorder.handshakes.some((h) => h.result === 'failed' && h.detail === 'CERT_HAS_EXPIRED'));
      assert.ok(recorder.handshakes.every((h) => h.result === 'failed'));
    });
  });

  describe('when the agent is not in the inventory', () => {
    it('refuses Fetch with PERMISSION_DENIED', async () => {
      backend.current.set(aid('edge-9'), delivery(aid('edge-9')));
      const err = await unaryError(connect(stranger), 'Fetch', fetchRequest());
      assert.equal(err.code, status.PERMISSION_DENIED);
      assert.deepEqual(
        recorder.unauthorized.map((u) => [u.reason, u.agentId]),
        [['unknown-agent', 'edge-9']],
      );
      assert.equal(backend.callsOf('reportActive').length, 0);
      assert.ok(recorder.logs.some((l) => l.level === 'warn' && (l.obj as { reason?: string }).reason === 'unknown-agent'));
    });
  });

  describe('when the backend has revoked the agent', () => {
    it('refuses Report with PERMISSION_DENIED', async () => {
      backend.revoked.add(aid('edge-1'));
      const err = await unaryError(connect(edge1), 'Report', { status: 'APPLIED' });
      assert.equal(err.code, status.PERMISSION_DENIED);
      assert.deepEqual(
        recorder.unauthorized.map((u) => u.reason),
        ['revoked'],
      );
    });
  });
});

describe('GrpcServer › a certificate that expires while its connection is open', () => {
  it('refuses later calls with UNAUTHENTICATED expired-certificate', async () => {
    const pki = await makePki();
    const backend = new FakeBackend();
    const recorder = new Recorder();
    // The server's clock runs two days ahead of the handshake's: the certificate (24 h) has
    // expired for every call although the TLS layer accepted it.
    const server = await startServer(pki, backend, recorder, { now: () => new Date(Date.now() + 48 * HOUR_MS) });
    const client = distributionClient(server, clientCredentials(pki, pki.issue(aid('edge-1'))));
    try {
      const err = await unaryError(client, 'Fetch', { if_none_match: '', agent_id: '', active: null });
      assert.equal(err.code, status.UNAUTHENTICATED);
      assert.deepEqual(
        recorder.unauthorized.map((u) => [u.reason, u.agentId]),
        [['expired-certificate', 'edge-1']],
      );
      assert.equal(backend.calls.length, 0);
    } finally {
      client.close();
      await server.shutdown(1_000);
      await pki.cleanup();
    }
  });
});
