import assert from 'node:assert/strict';
import { afterEach, before, describe, it } from 'node:test';
import { type Client, status } from '@grpc/grpc-js';
import {
  type AgentCredentials,
  ackOf,
  clientCredentials,
  delivery,
  distributionClient,
  eventually,
  hello,
  openStream,
  useServerSuite,
} from './helpers.js';
import { aid } from '../helpers/ids.js';

describe('GrpcServer › Distribution.Stream', () => {
  const suite = useServerSuite();
  const { backend, recorder, clients } = suite;
  let edge1: AgentCredentials;
  let stranger: AgentCredentials;

  before(() => {
    edge1 = suite.pki.issue(aid('edge-1'));
    stranger = suite.pki.issue(aid('edge-9'));
  });

  afterEach(async () => {
    // (the suite closed this test's clients) The next test starts from a suite.server with no stream left over from this one.
    await eventually(() => suite.server.openStreams === 0, 'streams of the last test to close');
  });

  function connect(agent: AgentCredentials = edge1): Client {
    const client = distributionClient(suite.server, clientCredentials(suite.pki, agent));
    clients.push(client);
    return client;
  }

  describe('when an agent says hello', () => {
    it('reports what it runs, sends the current delivery, then each new one, and records acks', async () => {
      const first = delivery(aid('edge-1'));
      backend.current.set(aid('edge-1'), first);
      const stream = openStream(connect());
      const active = { commit: 'a'.repeat(40), digest: `sha256:${'0'.repeat(64)}`, generation: 3 };
      stream.call.write(hello('edge-1', active));

      const m1 = await stream.nth(1);
      assert.equal(m1.bundle?.nonce, first.nonce);
      assert.equal(m1.bundle?.digest, first.digest);
      assert.equal(m1.bundle?.generation, first.generation);
      assert.deepEqual(m1.bundle?.bytes, Buffer.from(first.bytes));
      assert.equal(m1.bundle?.signature, first.signature);
      assert.deepEqual(backend.callsOf('reportActive'), [{ method: 'reportActive', agentId: 'edge-1', active }]);
      assert.deepEqual(recorder.streams, [{ event: 'open', agentId: 'edge-1' }]);

      const second = delivery(aid('edge-1'));
      backend.push(aid('edge-1'), second);
      const m2 = await stream.nth(2);
      assert.equal(m2.bundle?.nonce, second.nonce);

      stream.call.write(ackOf(m2.bundle!, { status: 'REJECTED', error: 'reload failed: exit 1' }));
      await eventually(() => backend.callsOf('ack').length === 1, 'the ack');
      assert.deepEqual(backend.callsOf('ack')[0], {
        method: 'ack',
        agentId: 'edge-1',
        ack: { commit: second.commit, digest: second.digest, generation: second.generation, nonce: second.nonce, status: 'REJECTED', error: 'reload failed: exit 1' },
      });
      stream.call.end();
      assert.equal((await stream.ended).code, status.OK);
    });

    it('reports an agent that runs nothing yet as active null', async () => {
      const stream = openStream(connect());
      stream.call.write(hello());
      await eventually(() => backend.callsOf('reportActive').length === 1, 'reportActive');
      assert.equal(backend.callsOf('reportActive')[0]?.active, null);
      stream.call.cancel();
    });

    it('keeps the stream open when the backend calls an ack stale', async () => {
      backend.ackOutcome = { kind: 'stale' };
      const first = delivery(aid('edge-1'));
      backend.current.set(aid('edge-1'), first);
      const stream = openStream(connect());
      stream.call.write(hello('edge-1'));
      const m1 = await stream.nth(1);
      stream.call.write(ackOf(m1.bundle!, { status: 'APPLIED' }));
      await eventually(() => backend.callsOf('ack').length === 1, 'the ack');
      const next = delivery(aid('edge-1'));
      backend.push(aid('edge-1'), next);
      assert.equal((await stream.nth(2)).bundle?.nonce, next.nonce);
      stream.call.cancel();
    });
  });

  describe('when the stream ends', () => {
    it('unsubscribes and reports the agent disconnected, once', async () => {
      const stream = openStream(connect());
      stream.call.write(hello());
      await eventually(() => backend.watcherCount(aid('edge-1')) === 1, 'the watch');
      stream.call.cancel();
      await eventually(() => backend.callsOf('disconnected').length === 1, 'disconnected');
      assert.equal(backend.watcherCount(aid('edge-1')), 0);
      assert.deepEqual(recorder.streams, [
        { event: 'open', agentId: 'edge-1' },
        { event: 'close', agentId: 'edge-1' },
      ]);
    });

    it('reports disconnected only when the last of two streams of one agent closes', async () => {
      const a = openStream(connect());
      const b = openStream(connect());
      a.call.write(hello());
      b.call.write(hello());
      await eventually(() => backend.watcherCount(aid('edge-1')) === 2, 'both watches');
      a.call.cancel();
      await eventually(() => backend.watcherCount(aid('edge-1')) === 1, 'one watch left');
      assert.equal(backend.callsOf('disconnected').length, 0);
      b.call.cancel();
      await eventually(() => backend.callsOf('disconnected').length === 1, 'disconnected');
    });
  });

  describe('when the first message is not hello', () => {
    it('ends the stream with INVALID_ARGUMENT', async () => {
      const stream = openStream(connect());
      stream.call.write({ ack: { commit: 'c', digest: 'd', generation: 1, nonce: 'n', status: 'APPLIED', error: '', agent_id: '' } });
      const end = await stream.ended;
      assert.equal(end.code, status.INVALID_ARGUMENT);
      assert.equal(backend.callsOf('reportActive').length, 0);
    });
  });

  describe('when an ack has no APPLIED or REJECTED status', () => {
    it('ends the stream with INVALID_ARGUMENT and records nothing', async () => {
      backend.current.set(aid('edge-1'), delivery(aid('edge-1')));
      const stream = openStream(connect());
      stream.call.write(hello());
      const m1 = await stream.nth(1);
      stream.call.write(ackOf(m1.bundle!, { status: 'ACK_STATUS_UNSPECIFIED' }));
      assert.equal((await stream.ended).code, status.INVALID_ARGUMENT);
      assert.equal(backend.callsOf('ack').length, 0);
    });
  });

  describe('when a hello or an ack echoes a commit that is not a full lowercase hex id', () => {
    const DIGEST = `sha256:${'0'.repeat(64)}`;

    for (const [what, commit] of [
      ['an upper-case one', 'A'.repeat(40)],
      ['an abbreviated one', 'a'.repeat(7)],
      ['one too long', 'a'.repeat(41)],
    ] as const) {
      it(`refuses a hello naming ${what} with INVALID_ARGUMENT, counted as malformed-commit, and reports nothing`, async () => {
        const stream = openStream(connect());
        stream.call.write(hello('edge-1', { commit, digest: DIGEST, generation: 1 }));
        assert.equal((await stream.ended).code, status.INVALID_ARGUMENT);
        assert.deepEqual(
          recorder.unauthorized.map((u) => [u.reason, u.agentId]),
          [['malformed-commit', 'edge-1']],
        );
        assert.equal(backend.callsOf('reportActive').length, 0);
        assert.equal(backend.watcherCount(aid('edge-1')), 0);
      });
    }

    it('keeps accepting a hello whose active names no commit (a file without the agent state)', async () => {
      const stream = openStream(connect());
      stream.call.write(hello('edge-1', { commit: '', digest: DIGEST, generation: 0 }));
      await eventually(() => backend.callsOf('reportActive').length === 1, 'reportActive');
      assert.deepEqual(backend.callsOf('reportActive')[0]?.active, { commit: '', digest: DIGEST, generation: 0 });
      assert.deepEqual(recorder.unauthorized, []);
      stream.call.cancel();
    });

    it('refuses an ack with a malformed commit with INVALID_ARGUMENT, counted, and records nothing', async () => {
      backend.current.set(aid('edge-1'), delivery(aid('edge-1')));
      const stream = openStream(connect());
      stream.call.write(hello('edge-1'));
      const m1 = await stream.nth(1);
      stream.call.write(ackOf(m1.bundle!, { commit: '' }));
      assert.equal((await stream.ended).code, status.INVALID_ARGUMENT);
      assert.equal(backend.callsOf('ack').length, 0);
      assert.deepEqual(
        recorder.unauthorized.map((u) => [u.reason, u.agentId]),
        [['malformed-commit', 'edge-1']],
      );
    });
  });

  describe('when a message names another agent', () => {
    it('refuses a hello for another identity with PERMISSION_DENIED, counted and logged', async () => {
      const stream = openStream(connect());
      stream.call.write(hello('edge-2'));
      const end = await stream.ended;
      assert.equal(end.code, status.PERMISSION_DENIED);
      assert.match(end.details, /edge-2.*edge-1/);
      assert.deepEqual(
        recorder.unauthorized.map((u) => [u.reason, u.agentId]),
        [['identity-mismatch', 'edge-1']],
      );
      assert.equal(backend.callsOf('reportActive').length, 0);
      assert.equal(backend.watcherCount(aid('edge-1')), 0);
      assert.ok(recorder.logs.some((l) => l.level === 'warn' && (l.obj as { reason?: string }).reason === 'identity-mismatch'));
    });

    it('refuses an ack for another identity with PERMISSION_DENIED and does not record it', async () => {
      backend.current.set(aid('edge-1'), delivery(aid('edge-1')));
      const stream = openStream(connect());
      stream.call.write(hello('edge-1'));
      const m1 = await stream.nth(1);
      stream.call.write(ackOf(m1.bundle!, { agent_id: 'edge-2' }));
      assert.equal((await stream.ended).code, status.PERMISSION_DENIED);
      assert.equal(backend.callsOf('ack').length, 0);
      assert.deepEqual(
        recorder.unauthorized.map((u) => u.reason),
        ['identity-mismatch'],
      );
      await eventually(() => backend.callsOf('disconnected').length === 1, 'disconnected');
      assert.equal(backend.watcherCount(aid('edge-1')), 0);
    });
  });

  describe('when the certificate is valid but the backend does not know the agent', () => {
    it('refuses the stream with PERMISSION_DENIED before reading any message', async () => {
      const stream = openStream(connect(stranger));
      stream.call.write(hello());
      const end = await stream.ended;
      assert.equal(end.code, status.PERMISSION_DENIED);
      assert.deepEqual(recorder.unauthorized, [{ reason: 'unknown-agent', agentId: 'edge-9', message: 'edge-9 is not in the inventory' }]);
      assert.equal(backend.callsOf('reportActive').length, 0);
    });
  });

  describe('when the agent is revoked while its stream is open', () => {
    it('ends the stream with PERMISSION_DENIED at the next delivery instead of sending it', async () => {
      const stream = openStream(connect());
      stream.call.write(hello());
      await eventually(() => backend.watcherCount(aid('edge-1')) === 1, 'the watch');
      backend.revoked.add(aid('edge-1'));
      backend.push(aid('edge-1'), delivery(aid('edge-1')));
      const end = await stream.ended;
      assert.equal(end.code, status.PERMISSION_DENIED);
      assert.equal(stream.received.length, 0);
      assert.deepEqual(
        recorder.unauthorized.map((u) => u.reason),
        ['revoked'],
      );
    });
  });

  describe('when the backend throws', () => {
    it('ends that stream with INTERNAL and keeps serving', async () => {
      const original = backend.reportActive.bind(backend);
      backend.reportActive = () => {
        throw new Error('store is down');
      };
      try {
        const stream = openStream(connect());
        stream.call.write(hello());
        assert.equal((await stream.ended).code, status.INTERNAL);
      } finally {
        backend.reportActive = original;
      }
      const again = openStream(connect());
      again.call.write(hello());
      await eventually(() => backend.callsOf('reportActive').length === 1, 'the next stream');
      again.call.cancel();
    });
  });

  describe('when deliveries come faster than the agent reads', () => {
    it('keeps at most one pending delivery, the latest, and delivers it', async () => {
      const stream = openStream(connect());
      stream.call.write(hello());
      await eventually(() => backend.watcherCount(aid('edge-1')) === 1, 'the watch');
      // The agent stops reading: HTTP/2 flow control fills up with the first large bundle.
      stream.call.pause();
      const big = Buffer.alloc(1024 * 1024, 0x61);
      const pushed: string[] = [];
      for (let i = 0; i < 50; i += 1) {
        const d = delivery(aid('edge-1'), { bytes: big });
        pushed.push(d.nonce);
        backend.push(aid('edge-1'), d);
        await new Promise((resolve) => setImmediate(resolve));
      }
      // Reading again: what arrives is what the suite.server wrote, and it ends with the latest.
      stream.call.resume();
      await eventually(() => stream.received.at(-1)?.bundle?.nonce === pushed.at(-1), 'the latest delivery');
      await new Promise((resolve) => setTimeout(resolve, 100));
      const nonces = stream.received.map((m) => m.bundle?.nonce);
      assert.ok(nonces.length <= 5, `expected a handful of writes for 50 pushes, got ${nonces.length}`);
      assert.equal(nonces.at(-1), pushed.at(-1));
      assert.equal(new Set(nonces).size, nonces.length, 'no delivery is sent twice');
      stream.call.cancel();
    });

    it('coalesces a burst pushed in one tick into the first and the last', async () => {
      const stream = openStream(connect());
      stream.call.write(hello());
      await eventually(() => backend.watcherCount(aid('edge-1')) === 1, 'the watch');
      const pushed = Array.from({ length: 100 }, () => delivery(aid('edge-1')));
      for (const d of pushed) backend.push(aid('edge-1'), d);
      await eventually(() => stream.received.at(-1)?.bundle?.nonce === pushed.at(-1)?.nonce, 'the latest delivery');
      assert.deepEqual(
        stream.received.map((m) => m.bundle?.nonce),
        [pushed[0]?.nonce, pushed.at(-1)?.nonce],
      );
      stream.call.cancel();
    });
  });
});
