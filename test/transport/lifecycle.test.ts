import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { TransportError } from '../../src/domain/errors.js';
import { GrpcServer, parseAddress } from '../../src/transport/server.js';
import { LatestWinsWriter } from '../../src/transport/stream-session.js';
import {
  clientCredentials,
  distributionClient,
  enrollmentClient,
  eventually,
  FakeBackend,
  healthClient,
  hello,
  makePki,
  openStream,
  Recorder,
  startServer,
  TRUST_DOMAIN,
  unary,
  unaryError,
} from './helpers.js';
import { aid } from '../helpers/ids.js';

describe('GrpcServer › lifecycle', () => {
  describe('health', () => {
    it('reports NOT_SERVING until setServing(true), for the server and for Distribution, without a client certificate', async () => {
      const pki = await makePki();
      const server = await startServer(pki, new FakeBackend(), new Recorder());
      const client = healthClient(server, clientCredentials(pki));
      try {
        for (const service of ['', 'meshcfg.v1.Distribution']) {
          assert.deepEqual(await unary(client, 'check', { service }), { status: 'NOT_SERVING' });
        }
        server.setServing(true);
        for (const service of ['', 'meshcfg.v1.Distribution']) {
          assert.deepEqual(await unary(client, 'check', { service }), { status: 'SERVING' });
        }
        server.setServing(false);
        assert.deepEqual(await unary(client, 'check', { service: '' }), { status: 'NOT_SERVING' });
      } finally {
        client.close();
        await server.shutdown(1_000);
        await pki.cleanup();
      }
    });
  });

  describe('shutdown', () => {
    it('ends open streams with UNAVAILABLE and finishes well within the deadline', async () => {
      const pki = await makePki();
      const backend = new FakeBackend();
      const recorder = new Recorder();
      const server = await startServer(pki, backend, recorder);
      const agents = ['edge-1', 'edge-2'].map((id) => distributionClient(server, clientCredentials(pki, pki.issue(aid(id)))));
      try {
        const streams = agents.map((client) => openStream(client));
        for (const stream of streams) stream.call.write(hello());
        await eventually(() => server.openStreams === 2, 'both streams to open');
        const started = Date.now();
        await server.shutdown(3_000);
        const took = Date.now() - started;
        // Graceful: done before the deadline, nothing had to be cut.
        assert.ok(took < 3_000, `shutdown took ${took} ms`);
        assert.ok(!recorder.logs.some((l) => l.msg?.includes('deadline')), 'no forced shutdown');
        for (const stream of streams) assert.equal((await stream.ended).code, status.UNAVAILABLE);
        assert.deepEqual(backend.callsOf('disconnected').map((c) => c.agentId).sort(), ['edge-1', 'edge-2']);
        assert.equal(backend.watcherCount(aid('edge-1')) + backend.watcherCount(aid('edge-2')), 0);
        // The port is closed: a new call cannot connect.
        const late = distributionClient(server, clientCredentials(pki, pki.issue(aid('edge-1'))));
        const err = await unaryError(late, 'Fetch', {});
        assert.equal(err.code, status.UNAVAILABLE);
        late.close();
      } finally {
        for (const client of agents) client.close();
        await pki.cleanup();
      }
    });

    it('cuts connections that will not close by the deadline', async () => {
      const pki = await makePki();
      const backend = new FakeBackend();
      // A backend that never answers keeps an Enroll call in flight past the deadline.
      backend.enrollWith = () => new Promise(() => undefined);
      const server = await startServer(pki, backend, new Recorder());
      const client = enrollmentClient(server, clientCredentials(pki));
      try {
        const pending = unaryError(client, 'Enroll', { token: 't', csr_pem: Buffer.from('x') });
        await eventually(() => backend.callsOf('enroll').length === 1, 'the enroll call');
        const started = Date.now();
        await server.shutdown(300);
        const took = Date.now() - started;
        assert.ok(took >= 250 && took < 2_500, `shutdown took ${took} ms`);
        assert.ok([status.UNAVAILABLE, status.CANCELLED, status.INTERNAL].includes((await pending).code));
      } finally {
        client.close();
        await pki.cleanup();
      }
    });
  });

  describe('updateCertificates', () => {
    it('serves new handshakes with the new certificate and keeps the old one when the new one does not load', async () => {
      const pki = await makePki();
      const recorder = new Recorder();
      const server = await startServer(pki, new FakeBackend(), recorder);
      const other = await makePki();
      try {
        assert.throws(
          () => server.updateCertificates({ serverCertPem: 'not a certificate', serverKeyPem: pki.serverKeyPem, caPem: pki.caPem }),
          (err: unknown) => err instanceof TransportError && err.code === 'TLS_CONFIG_INVALID',
        );
        // Switch to another CA: agents of the old CA are now refused at the handshake.
        server.updateCertificates({ serverCertPem: other.serverCertPem, serverKeyPem: other.serverKeyPem, caPem: other.caPem });
        const oldAgent = distributionClient(server, clientCredentials(other, pki.issue(aid('edge-1'))));
        const err = await unaryError(oldAgent, 'Fetch', {});
        assert.equal(err.code, status.UNAVAILABLE);
        oldAgent.close();
        await eventually(() => recorder.unauthorized.some((u) => u.reason === 'untrusted-certificate'), 'the refusal');
        const newAgent = distributionClient(server, clientCredentials(other, other.issue(aid('edge-1'))));
        const ok = await unaryError(newAgent, 'Fetch', {});
        // Past TLS and authentication: the fake backend has no commit yet.
        assert.equal(ok.code, status.UNAVAILABLE);
        assert.match(ok.details, /no accepted commit yet/);
        newAgent.close();
      } finally {
        await server.shutdown(1_000);
        await pki.cleanup();
        await other.cleanup();
      }
    });
  });

  describe('start', () => {
    it('refuses an address it cannot listen on with LISTEN_FAILED', async () => {
      const pki = await makePki();
      const first = await startServer(pki, new FakeBackend(), new Recorder());
      try {
        await assert.rejects(
          GrpcServer.start({
            address: `127.0.0.1:${first.port}`,
            trustDomain: TRUST_DOMAIN,
            serverCertPem: pki.serverCertPem,
            serverKeyPem: pki.serverKeyPem,
            caPem: pki.caPem,
            backend: new FakeBackend(),
          }),
          (err: unknown) => err instanceof TransportError && err.code === 'LISTEN_FAILED',
        );
      } finally {
        await first.shutdown(1_000);
        await pki.cleanup();
      }
    });

    it('parses host:port and [v6]:port addresses', () => {
      assert.deepEqual(parseAddress('127.0.0.1:7443'), { host: '127.0.0.1', port: 7443 });
      assert.deepEqual(parseAddress('[::1]:0'), { host: '::1', port: 0 });
      assert.deepEqual(parseAddress('localhost:7443'), { host: 'localhost', port: 7443 });
      for (const bad of ['7443', '::1:7443', 'host:', 'host:99999', '[nope]:1']) {
        assert.throws(
          () => parseAddress(bad),
          (err: unknown) => err instanceof TransportError && err.code === 'LISTEN_FAILED',
          bad,
        );
      }
    });
  });
});

describe('GrpcServer › stream timers', () => {
  it('ends a stream that says no hello within helloTimeoutMs with DEADLINE_EXCEEDED', async () => {
    const pki = await makePki();
    const backend = new FakeBackend();
    const server = await startServer(pki, backend, new Recorder(), { helloTimeoutMs: 150 });
    const client = distributionClient(server, clientCredentials(pki, pki.issue(aid('edge-1'))));
    try {
      const stream = openStream(client);
      assert.equal((await stream.ended).code, status.DEADLINE_EXCEEDED);
      assert.equal(backend.callsOf('reportActive').length, 0);
      assert.equal(server.openStreams, 0);
    } finally {
      client.close();
      await server.shutdown(1_000);
      await pki.cleanup();
    }
  });

  it('ends an open stream with UNAUTHENTICATED when its certificate expires', async () => {
    const pki = await makePki();
    const backend = new FakeBackend();
    const recorder = new Recorder();
    // The agent certificate lives 24 h; on the server's clock it has ~1.5 s left.
    const skew = 24 * 60 * 60_000 - 1_500;
    const server = await startServer(pki, backend, recorder, { now: () => new Date(Date.now() + skew) });
    const client = distributionClient(server, clientCredentials(pki, pki.issue(aid('edge-1'))));
    try {
      const stream = openStream(client);
      stream.call.write(hello());
      await eventually(() => server.openStreams === 1, 'the stream to open');
      const end = await stream.ended;
      assert.equal(end.code, status.UNAUTHENTICATED);
      assert.deepEqual(
        recorder.unauthorized.map((u) => [u.reason, u.agentId]),
        [['expired-certificate', 'edge-1']],
      );
      await eventually(() => backend.callsOf('disconnected').length === 1, 'disconnected');
    } finally {
      client.close();
      await server.shutdown(1_000);
      await pki.cleanup();
    }
  });
});

describe('LatestWinsWriter', () => {
  it('keeps one message in flight and only the latest waiting', () => {
    const written: number[] = [];
    const callbacks: (() => void)[] = [];
    const writer = new LatestWinsWriter<number>((message, done) => {
      written.push(message);
      callbacks.push(done);
    });
    for (let i = 1; i <= 10; i += 1) writer.push(i);
    assert.deepEqual(written, [1]);
    callbacks.shift()?.();
    assert.deepEqual(written, [1, 10]);
    assert.equal(writer.superseded, 8);
    callbacks.shift()?.();
    writer.push(11);
    assert.deepEqual(written, [1, 10, 11]);
    assert.equal(writer.written, 3);
  });

  it('drops what waits when closed', () => {
    const written: number[] = [];
    let done: (() => void) | undefined;
    const writer = new LatestWinsWriter<number>((message, cb) => {
      written.push(message);
      done = cb;
    });
    writer.push(1);
    writer.push(2);
    writer.close();
    done?.();
    writer.push(3);
    assert.deepEqual(written, [1]);
  });
});
