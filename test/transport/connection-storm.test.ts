import assert from 'node:assert/strict';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import type { ConnectFailure, GrpcServer } from '../../src/transport/index.js';
import { aid } from '../helpers/ids.js';
import {
  type AgentCredentials,
  clientCredentials,
  distributionClient,
  eventually,
  FakeBackend,
  hello,
  makePki,
  openStream,
  type Pki,
  Recorder,
  startServer,
} from './helpers.js';

/** A recorder that also keeps the connect failures by reason. */
class StormRecorder extends Recorder {
  readonly failures: ConnectFailure[] = [];
  constructor() {
    super();
    Object.assign(this.hooks, { onConnectFailed: (reason: ConnectFailure) => this.failures.push(reason) });
  }
}

/**
 * An mTLS handshake as an agent's, without gRPC on top; resolves with how it ended. Secure once
 * the server speaks HTTP/2 on it (its SETTINGS frame): the server's side of the handshake is done too.
 */
function handshake(server: GrpcServer, pki: Pki, agent: AgentCredentials, over?: net.Socket): Promise<'secure' | 'failed'> {
  return new Promise((resolve) => {
    const socket = tls.connect({
      ...(over === undefined ? { host: '127.0.0.1', port: server.port } : { socket: over }),
      ca: pki.caPem,
      key: agent.keyPem,
      cert: agent.certPem,
      ALPNProtocols: ['h2'],
      checkServerIdentity: () => undefined,
    });
    socket.once('data', () => {
      resolve('secure');
      socket.destroy();
    });
    socket.once('error', () => resolve('failed'));
    socket.once('close', () => resolve('failed'));
  });
}

/** Keeps the event loop busy, as a long synchronous task in the server would. */
function holdEventLoop(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // spin
  }
}

/** A TCP connection that never starts TLS: it holds a handshake slot until the handshake timeout. */
function idleConnection(server: GrpcServer): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(server.port, '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
  });
}

describe('GrpcServer under a connection storm', () => {
  let pki: Pki;
  let agent: AgentCredentials;
  before(async () => {
    pki = await makePki();
    agent = pki.issue(aid('edge-1'));
  });
  after(() => pki.cleanup());

  describe('when more agents connect at once than there are handshake slots', () => {
    it('starts each handshake timeout when its handshake starts: connections that waited behind a busy server are not timed out for it', async () => {
      const recorder = new StormRecorder();
      const server = await startServer(pki, new FakeBackend(), recorder, { handshakeTimeoutMs: 500, maxConcurrentHandshakes: 4 });
      try {
        // Twenty agents connect at once and the server is busy before it reads their hellos (a
        // synchronous fan-out, a burst of fsyncs) for longer than the handshake timeout.
        const sockets = await Promise.all(Array.from({ length: 20 }, () => idleConnection(server)));
        await eventually(() => server.handshakes.inProgress + server.handshakes.queued === 20, 'all twenty accepted');
        holdEventLoop(700);
        const results = await Promise.all(sockets.map((socket) => handshake(server, pki, agent, socket)));
        // The four handshakes started at accept ran out of time during the stall; the sixteen
        // that waited for a slot started after it, with their whole timeout before them.
        assert.deepEqual(recorder.failures, Array<ConnectFailure>(4).fill('handshake-timeout'));
        assert.equal(results.filter((r) => r === 'secure').length, 16);
      } finally {
        await server.shutdown(1_000);
      }
    });

    it('opens every stream (hello answered) of fifty connections through one slot', async () => {
      const recorder = new StormRecorder();
      const backend = new FakeBackend();
      const server = await startServer(pki, backend, recorder, { maxConcurrentHandshakes: 1 });
      const clients = [];
      try {
        for (let i = 0; i < 50; i += 1) {
          const client = distributionClient(server, clientCredentials(pki, agent));
          clients.push(client);
          openStream(client).call.write(hello(agent.agentId));
        }
        await eventually(() => backend.watcherCount(agent.agentId) === 50, 'every stream subscribed', 20_000);
        assert.deepEqual(recorder.failures, []);
      } finally {
        for (const c of clients) c.close();
        await server.shutdown(1_000);
      }
    });
  });

  describe('when the handshake slots are held by peers that never speak TLS', () => {
    it('closes a connection that waited longer than the queue timeout, counted as queue-timeout, after the holder timed out', async () => {
      const recorder = new StormRecorder();
      const server = await startServer(pki, new FakeBackend(), recorder, {
        handshakeTimeoutMs: 500,
        maxConcurrentHandshakes: 1,
        handshakeQueueTimeoutMs: 100,
      });
      try {
        const idle = await idleConnection(server);
        const waiting = handshake(server, pki, agent);
        assert.equal(await waiting, 'failed');
        await eventually(() => recorder.failures.length === 2, 'both failures counted');
        assert.deepEqual(recorder.failures, ['handshake-timeout', 'queue-timeout']);
        idle.destroy();
        assert.equal(await handshake(server, pki, agent), 'secure', 'the next agent is served');
      } finally {
        await server.shutdown(1_000);
      }
    });

    it('closes a new connection at once when the queue is full, counted as overloaded', async () => {
      const recorder = new StormRecorder();
      const server = await startServer(pki, new FakeBackend(), recorder, { handshakeTimeoutMs: 5_000, maxConcurrentHandshakes: 1, maxQueuedHandshakes: 0 });
      try {
        const idle = await idleConnection(server);
        await eventually(() => server.handshakes.inProgress === 1, 'the idle connection holds the slot');
        const started = performance.now();
        assert.equal(await handshake(server, pki, agent), 'failed');
        assert.ok(performance.now() - started < 4_000, 'refused without waiting for the slot');
        assert.deepEqual(recorder.failures, ['overloaded']);
        assert.deepEqual(
          recorder.handshakes.map((h) => h.result),
          ['failed'],
        );
        idle.destroy();
      } finally {
        await server.shutdown(1_000);
      }
    });
  });

  describe('when a stream says no hello', () => {
    it('ends it and counts a hello-timeout', async () => {
      const recorder = new StormRecorder();
      const server = await startServer(pki, new FakeBackend(), recorder, { helloTimeoutMs: 200 });
      const client = distributionClient(server, clientCredentials(pki, agent));
      try {
        const stream = openStream(client);
        await eventually(() => recorder.failures.includes('hello-timeout'), 'hello-timeout counted');
        stream.call.cancel();
      } finally {
        client.close();
        await server.shutdown(1_000);
      }
    });
  });
});
