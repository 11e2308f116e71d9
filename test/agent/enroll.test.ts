import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadAgentIdentity } from '../../src/agent/dir.js';
import { enroll } from '../../src/agent/enroll.js';
import { AgentError } from '../../src/domain/errors.js';
import { generateRsaKeyPair } from '../../src/pki/ca.js';
import { spkiPin } from '../../src/pki/pin.js';
import { meshcfg } from '../helpers/cli.js';
import { enrollWithToken, startTestServer, tempDir, type TestServer } from './helpers.js';

/**
 * `meshcfg enroll` against a real grpc-js server whose certificate comes from `openDataDir`,
 * through the built binary (`npm run build` first; `npm test` does).
 */
describe('meshcfg enroll', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let server: TestServer;
  let enrollCalls = 0;
  let otherPin: string;
  const goodToken = 'mcet_good-token';

  before(async () => {
    tmp = await tempDir('meshcfg-enroll-');
    const handle = enrollWithToken(goodToken);
    server = await startTestServer({
      dataDirPath: join(tmp.path, 'server'),
      requireClientCert: false,
      handlers: {
        enroll: (request, dataDir) => {
          enrollCalls += 1;
          return handle(request, dataDir);
        },
      },
    });
    otherPin = spkiPin((await generateRsaKeyPair()).publicKeyPem);
  });
  after(async () => {
    await server.close();
    await tmp.remove();
  });

  describe('with the right pin and a good token', () => {
    it('writes key (0600), certificate, CA, signing key and agent.json, and the directory loads', async () => {
      const dir = join(tmp.path, 'agents', 'edge-1');
      const run = await meshcfg('enroll', '--server', server.address, '--pin', server.dataDir.serverPin, '--token', goodToken, '--dir', dir);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /^enrolled edge-1 in /);
      assert.ok(!run.stderr.includes(goodToken), 'the token is never logged');

      assert.deepEqual((await readdir(dir)).sort(), ['agent.crt', 'agent.json', 'agent.key', 'ca.crt', 'signing-key.pem']);
      assert.equal((await stat(join(dir, 'agent.key'))).mode & 0o777, 0o600);
      assert.equal((await stat(dir)).mode & 0o777, 0o700);
      assert.equal(await readFile(join(dir, 'ca.crt'), 'utf8'), server.dataDir.ca.certificatePem);
      assert.equal(await readFile(join(dir, 'signing-key.pem'), 'utf8'), server.dataDir.signingPublicKeyPem);
      assert.deepEqual(JSON.parse(await readFile(join(dir, 'agent.json'), 'utf8')), {
        agentId: 'edge-1',
        trustDomain: 'example.org',
        server: server.address,
        pins: [server.dataDir.serverPin],
      });
      const cert = new X509Certificate(await readFile(join(dir, 'agent.crt')));
      assert.equal(cert.subjectAltName, 'URI:spiffe://example.org/agent/edge-1');

      const identity = await loadAgentIdentity(dir);
      assert.equal(identity.agentId, 'edge-1');
      // No staging directory is left beside it.
      assert.deepEqual(await readdir(join(tmp.path, 'agents')), ['edge-1']);
    });

    it('accepts a match on the second of two pins (server key rotation)', async () => {
      const dir = join(tmp.path, 'rotation');
      const run = await meshcfg('enroll', '--server', server.address, '--pin', otherPin, '--pin', server.dataDir.serverPin, '--token', goodToken, '--dir', dir);
      assert.equal(run.code, 0, run.stderr);
      assert.equal((await loadAgentIdentity(dir)).agentId, 'edge-1');
    });

    it('re-enrolls into an existing directory and keeps its state.json', async () => {
      const dir = join(tmp.path, 'agents', 'edge-1');
      await writeFile(join(dir, 'state.json'), '{"kept":true}');
      const before = await readFile(join(dir, 'agent.crt'), 'utf8');
      const result = await enroll({ server: server.address, pins: [server.dataDir.serverPin], token: goodToken, dir });
      assert.equal(result.agentId, 'edge-1');
      assert.notEqual(await readFile(join(dir, 'agent.crt'), 'utf8'), before);
      assert.equal(await readFile(join(dir, 'state.json'), 'utf8'), '{"kept":true}');
    });
  });

  describe('refusals write nothing', () => {
    it('exits 2 with PIN_MISMATCH when the server key matches no pin, before sending the token', async () => {
      const dir = join(tmp.path, 'wrong-pin');
      const callsBefore = enrollCalls;
      const run = await meshcfg('enroll', '--server', server.address, '--pin', otherPin, '--token', goodToken, '--dir', dir);
      assert.equal(run.code, 2);
      assert.match(run.stderr, /meshcfg enroll: PIN_MISMATCH: /);
      assert.equal(enrollCalls, callsBefore, 'the token never left the agent');
      await assert.rejects(stat(dir), { code: 'ENOENT' });
    });

    it('exits 2 with UNAUTHENTICATED and a clear message when the token is refused', async () => {
      const dir = join(tmp.path, 'bad-token');
      const run = await meshcfg('enroll', '--server', server.address, '--pin', server.dataDir.serverPin, '--token', 'mcet_wrong', '--dir', dir);
      assert.equal(run.code, 2);
      assert.match(run.stderr, /meshcfg enroll: UNAUTHENTICATED: the server refused the enrollment token/);
      await assert.rejects(stat(dir), { code: 'ENOENT' });
    });

    it('refuses with UNREACHABLE when nothing listens', async () => {
      const port = await new Promise<number>((resolve) => {
        const probe = createServer();
        probe.listen(0, '127.0.0.1', () => {
          const { port: p } = probe.address() as { port: number };
          probe.close(() => resolve(p));
        });
      });
      const dir = join(tmp.path, 'unreachable');
      await assert.rejects(
        enroll({ server: `127.0.0.1:${port}`, pins: [server.dataDir.serverPin], token: goodToken, dir, timeoutMs: 2_000 }),
        (err: unknown) => err instanceof AgentError && err.code === 'UNREACHABLE',
      );
      await assert.rejects(stat(dir), { code: 'ENOENT' });
    });

    it('refuses with TLS_FAILED when the certificate does not name the host, even with the right pin', async () => {
      const named = await startTestServer({
        dataDirPath: join(tmp.path, 'server-named'),
        serverNames: ['mesh.example.org'],
        requireClientCert: false,
        handlers: { enroll: enrollWithToken(goodToken) },
      });
      try {
        const dir = join(tmp.path, 'wrong-name');
        await assert.rejects(
          enroll({ server: named.address, pins: [named.dataDir.serverPin], token: goodToken, dir, timeoutMs: 2_000 }),
          (err: unknown) => err instanceof AgentError && err.code === 'TLS_FAILED',
        );
        await assert.rejects(stat(dir), { code: 'ENOENT' });
      } finally {
        await named.close();
      }
    });

    it('exits 2 on a malformed pin or a missing pin', async () => {
      const bad = await meshcfg('enroll', '--server', server.address, '--pin', 'sha256/nope', '--token', goodToken, '--dir', join(tmp.path, 'x'));
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /PIN_INVALID/);
      const none = await meshcfg('enroll', '--server', server.address, '--token', goodToken, '--dir', join(tmp.path, 'x'));
      assert.equal(none.code, 2);
      await assert.rejects(stat(join(tmp.path, 'x')), { code: 'ENOENT' });
    });
  });
});
