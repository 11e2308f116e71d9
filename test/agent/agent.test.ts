import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ServerDuplexStream } from '@grpc/grpc-js';
import { runAgent } from '../../src/agent/agent.js';
import type { ApplyResult } from '../../src/agent/apply.js';
import { Backoff } from '../../src/agent/backoff.js';
import { loadAgentIdentity } from '../../src/agent/dir.js';
import { enroll } from '../../src/agent/enroll.js';
import type { AgentLogger } from '../../src/agent/logger.js';
import { renewalDelay, renewCertificate } from '../../src/agent/renew.js';
import { readState } from '../../src/agent/state.js';
import { sha256Digest } from '../../src/lib/index.js';
import { AgentError } from '../../src/domain/errors.js';
import type { DataDir } from '../../src/pki/data-dir.js';
import { CLOCK_SKEW_MS, createCa, EnrollmentCa, generateRsaKeyPair } from '../../src/pki/ca.js';
import { spkiPin } from '../../src/pki/pin.js';
import { DistributionRpc, parseServerAddress, pinnedCredentials } from '../../src/transport/client.js';
import type { AckMsg, AgentMessageMsg, BundleMsg, FetchRequestMsg, HelloMsg, ServerMessageMsg } from '../../src/transport/proto.js';
import { BIN } from '../helpers/cli.js';
import { forgeCsr, rsaKey } from '../pki/helpers.js';
import { COMMIT_1, COMMIT_2, enrollWithToken, fleetSigner, startTestServer, tempDir, type TestServer, type TestServerHandlers } from './helpers.js';
import { aid } from '../helpers/ids.js';

/** A logger that keeps entries, to assert what an operator would read. */
function recordingLogger(): AgentLogger & { entries: { level: string; fields: object; message: string }[] } {
  const entries: { level: string; fields: object; message: string }[] = [];
  const at = (level: string) => (fields: object, message: string) => void entries.push({ level, fields, message });
  return { entries, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

function waitFor<T>(predicate: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const tick = (): void => {
      const value = predicate();
      if (value !== undefined) return resolve(value);
      if (Date.now() - started > timeoutMs) return reject(new Error('timed out waiting'));
      setTimeout(tick, 20);
    };
    tick();
  });
}

describe('the agent runtime against a real gRPC server', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let dataDir: DataDir;
  let agentDir: string;
  /** Swapped per test: the distribution server (client certificates required) calls these. */
  let handlers: TestServerHandlers = {};
  let mtls: TestServer;

  before(async () => {
    tmp = await tempDir('meshcfg-agent-run-');
    const enrollServer = await startTestServer({ dataDirPath: join(tmp.path, 'server'), requireClientCert: false, handlers: { enroll: enrollWithToken('t') } });
    dataDir = enrollServer.dataDir;
    agentDir = join(tmp.path, 'agent');
    await enroll({ server: enrollServer.address, pins: [dataDir.serverPin], token: 't', dir: agentDir });
    await enrollServer.close();
    mtls = await startTestServer({
      dataDirPath: join(tmp.path, 'server'),
      dataDir,
      requireClientCert: true,
      handlers: {
        stream: (call) => handlers.stream?.(call),
        fetch: (request) => handlers.fetch?.(request) ?? { not_modified: true },
        report: (ack) => handlers.report?.(ack),
        renew: (request, dd, peer) => handlers.renew?.(request, dd, peer) ?? { code: 12, details: 'no' },
      },
    });
  });
  after(async () => {
    await mtls.close();
    await tmp.remove();
  });

  describe('pinned channel credentials', () => {
    it('connect with the CA and the right pin, and refuse with PIN_MISMATCH under a wrong pin', async () => {
      const identity = await loadAgentIdentity(agentDir);
      const server = parseServerAddress(mtls.address);
      const good = new DistributionRpc(server, pinnedCredentials({ trust: { kind: 'ca', caPem: identity.caPem }, keyPem: identity.keyPem, certPem: identity.certPem, pins: [dataDir.serverPin] }));
      try {
        assert.deepEqual(await good.fetch({ if_none_match: '', active: null, agent_id: 'edge-1' }), { not_modified: true, result: 'not_modified' });
      } finally {
        good.close();
      }
      let told = 0;
      const wrongPin = spkiPin((await generateRsaKeyPair()).publicKeyPem);
      const bad = new DistributionRpc(
        server,
        pinnedCredentials({ trust: { kind: 'ca', caPem: identity.caPem }, keyPem: identity.keyPem, certPem: identity.certPem, pins: [wrongPin], onPinMismatch: () => void (told += 1) }),
        { timeoutMs: 3_000 },
      );
      try {
        await assert.rejects(bad.fetch({ if_none_match: '', active: null, agent_id: 'edge-1' }), (err: unknown) => err instanceof AgentError && err.code === 'PIN_MISMATCH');
        assert.ok(told >= 1);
      } finally {
        bad.close();
      }
    });
  });

  describe('streaming', () => {
    it('says hello with what runs, applies a signed bundle, acks APPLIED with the nonce, and stops gracefully', async () => {
      const out = join(tmp.path, 'stream', 'envoy.json');
      await mkdir(join(tmp.path, 'stream'), { recursive: true });
      const fleet = fleetSigner(dataDir.signingKey);
      const bundle = fleet.sign(1, COMMIT_1, { 'edge-1': 1, 'edge-2': 1 })['edge-1'] as BundleMsg;
      const hellos: HelloMsg[] = [];
      const acks: AckMsg[] = [];
      handlers = {
        stream: (call: ServerDuplexStream<AgentMessageMsg, ServerMessageMsg>) => {
          call.on('data', (message: AgentMessageMsg) => {
            if (message.hello) {
              hellos.push(message.hello);
              call.write({ bundle });
            }
            if (message.ack) acks.push(message.ack);
          });
          call.on('end', () => call.end());
        },
      };
      const stop = new AbortController();
      const results: ApplyResult[] = [];
      const running = runAgent({ dir: agentDir, server: mtls.address, out, signal: stop.signal, onApplied: (r) => results.push(r) });
      const ack = await waitFor(() => acks[0]);
      assert.deepEqual(hellos[0], { active: null, agent_version: 'meshcfg-agent/0.1.0', agent_id: 'edge-1' });
      assert.deepEqual(ack, { commit: COMMIT_1, digest: bundle.digest, generation: 1, nonce: bundle.nonce, status: 'APPLIED', error: '', agent_id: 'edge-1' });
      assert.deepEqual(await readFile(out), bundle.bytes);
      assert.equal((await readState(join(agentDir, 'state.json')))?.generation, 1);
      assert.equal(results[0]?.kind, 'applied');
      stop.abort();
      await running;

      // A hand edit shows up in the next hello as a digest the server never issued.
      await writeFile(out, '{"edited":true}');
      hellos.length = 0;
      handlers = { stream: (call) => call.on('data', (m: AgentMessageMsg) => void (m.hello && hellos.push(m.hello))) };
      const stop2 = new AbortController();
      const second = runAgent({ dir: agentDir, server: mtls.address, out, signal: stop2.signal });
      const hello = await waitFor(() => hellos[0]);
      assert.deepEqual(hello.active, { commit: COMMIT_1, digest: sha256Digest(Buffer.from('{"edited":true}')), generation: 1 });
      stop2.abort();
      await second;
    });

    it('answers a refused delivery with REJECTED and its code, and keeps the file', async () => {
      const out = join(tmp.path, 'stream', 'envoy.json');
      const before = await readFile(out);
      const fleet = fleetSigner(dataDir.signingKey);
      const forOther = fleet.sign(5, COMMIT_2, { 'edge-1': 5, 'edge-2': 5 })['edge-2'] as BundleMsg;
      const acks: AckMsg[] = [];
      handlers = {
        stream: (call) => {
          call.on('data', (m: AgentMessageMsg) => {
            if (m.hello) call.write({ bundle: forOther });
            if (m.ack) acks.push(m.ack);
          });
        },
      };
      const stop = new AbortController();
      const running = runAgent({ dir: agentDir, server: mtls.address, out, signal: stop.signal });
      const ack = await waitFor(() => acks[0]);
      assert.equal(ack.status, 'REJECTED');
      assert.match(ack.error, /^NOT_FOR_THIS_AGENT:/);
      assert.equal(ack.agent_id, 'edge-1');
      assert.deepEqual(await readFile(out), before);
      stop.abort();
      await running;
    });

    it('logs UNAUTHENTICATED clearly and keeps retrying with backoff', async () => {
      let attempts = 0;
      handlers = {
        stream: (call) => {
          attempts += 1;
          call.emit('error', { code: 16, details: 'certificate revoked' });
        },
      };
      const logger = recordingLogger();
      const stop = new AbortController();
      const running = runAgent({ dir: agentDir, server: mtls.address, out: join(tmp.path, 'stream', 'envoy.json'), signal: stop.signal, logger, backoff: { initialMs: 20, maxMs: 50 } });
      await waitFor(() => (attempts >= 3 ? true : undefined));
      stop.abort();
      await running;
      const refusal = logger.entries.find((e) => e.level === 'error' && /UNAUTHENTICATED/.test(e.message));
      assert.ok(refusal, 'an error log names UNAUTHENTICATED');
      assert.equal((refusal.fields as { code: string }).code, 'UNAUTHENTICATED');
      assert.ok(!JSON.stringify(logger.entries).includes('PRIVATE KEY'), 'keys are never logged');
    });
  });

  describe('meshcfg agent (the built binary)', () => {
    it('streams, applies, and exits 0 on SIGTERM with JSON logs on stderr', async () => {
      const out = join(tmp.path, 'bin', 'envoy.json');
      await mkdir(join(tmp.path, 'bin'), { recursive: true });
      const bundle = fleetSigner(dataDir.signingKey).sign(6, COMMIT_2, { 'edge-1': 6 })['edge-1'] as BundleMsg;
      const acks: AckMsg[] = [];
      handlers = {
        stream: (call) => {
          call.on('data', (m: AgentMessageMsg) => {
            if (m.hello) call.write({ bundle });
            if (m.ack) acks.push(m.ack);
          });
          call.on('end', () => call.end());
        },
      };
      const child = spawn(process.execPath, [BIN, 'agent', '--dir', agentDir, '--out', out, '--server', mtls.address, '--exec', 'test -s "$MESHCFG_FILE"'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => void (stderr += chunk));
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      const ack = await waitFor(() => acks[0]);
      assert.equal(ack.status, 'APPLIED', ack.error);
      child.kill('SIGTERM');
      assert.equal(await exited, 0, stderr);
      const lines = stderr.split('\n').filter((line) => line.startsWith('{'));
      assert.ok(lines.some((line) => (JSON.parse(line) as { msg?: string }).msg === 'bundle applied'));
      assert.ok(lines.some((line) => (JSON.parse(line) as { msg?: string }).msg === 'agent stopped'));
      assert.ok(!stderr.includes('PRIVATE KEY'));
      assert.deepEqual(await readFile(out), bundle.bytes);
    });
  });

  describe('polling', () => {
    it('fetches with if_none_match = its digest, applies a bundle, reports the ack, then sees not-modified', async () => {
      const out = join(tmp.path, 'poll', 'envoy.json');
      await mkdir(join(tmp.path, 'poll'), { recursive: true });
      const fleet = fleetSigner(dataDir.signingKey);
      const bundle = fleet.sign(7, COMMIT_2, { 'edge-1': 7 })['edge-1'] as BundleMsg;
      const fetches: FetchRequestMsg[] = [];
      const reports: AckMsg[] = [];
      handlers = {
        fetch: (request) => {
          fetches.push(request);
          return request.if_none_match === bundle.digest ? { not_modified: true } : { bundle };
        },
        report: (ack) => void reports.push(ack),
      };
      const stop = new AbortController();
      const running = runAgent({ dir: agentDir, server: mtls.address, out, signal: stop.signal, mode: { kind: 'poll', intervalMs: 50 } });
      await waitFor(() => (fetches.some((f) => f.if_none_match === bundle.digest) ? true : undefined));
      stop.abort();
      await running;
      assert.equal(reports.length, 1);
      assert.deepEqual(reports[0], { commit: COMMIT_2, digest: bundle.digest, generation: 7, nonce: bundle.nonce, status: 'APPLIED', error: '', agent_id: 'edge-1' });
      assert.deepEqual(await readFile(out), bundle.bytes);
      assert.equal(fetches[0]?.agent_id, 'edge-1');
    });
  });

  describe('certificate renewal', () => {
    it('renews at two thirds of the lifetime counted from issuance (the CA backdates notBefore by the clock-skew allowance)', () => {
      const issued = new Date('2025-06-01T00:00:00Z');
      const notBefore = new Date(issued.getTime() - CLOCK_SKEW_MS);
      const notAfter = new Date('2025-06-02T00:00:00Z');
      assert.equal(renewalDelay({ notBefore, notAfter }, issued), 16 * 60 * 60 * 1000);
      assert.equal(renewalDelay({ notBefore, notAfter }, new Date('2025-06-01T20:00:00Z')), 0);
    });

    it('waits 40 s with a 1-minute certificate fresh from the CA, instead of renewing again at once', async () => {
      const now = new Date('2025-06-01T00:00:00Z');
      const ca = new EnrollmentCa(await createCa({ trustDomain: 'example.org', now: () => now }), { now: () => now });
      const cert = ca.issueAgentCertificate({ csrPem: forgeCsr(rsaKey()), agentId: aid('edge-1'), ttlMs: 60_000 });
      assert.equal(renewalDelay(cert, now), 40_000);
    });

    it('gets a certificate for a new key over mTLS and replaces the pair atomically', async () => {
      const dir = join(tmp.path, 'agent');
      const identity = await loadAgentIdentity(dir);
      let askedBy: string | undefined;
      handlers = {
        renew: (request, dd, peer) => {
          askedBy = peer;
          return enrollWithToken('x', peer ?? 'nobody')({ token: 'x', csr_pem: request.csr_pem }, dd);
        },
      };
      const renewed = await renewCertificate(identity, { server: parseServerAddress(mtls.address) });
      assert.equal(askedBy, 'edge-1', 'the server saw the current client certificate');
      assert.equal(renewed.agentId, 'edge-1');
      assert.notEqual(renewed.certPem, identity.certPem);
      assert.notEqual(renewed.keyPem, identity.keyPem);
      assert.equal((await stat(join(dir, 'agent.key'))).mode & 0o777, 0o600);
      assert.ok(!(await readdir(dir)).some((name) => name.endsWith('.next') || name.endsWith('.tmp')));
    });
  });
});

describe('Backoff', () => {
  it('draws each delay uniformly below a ceiling that doubles up to the cap, and resets', () => {
    const top = new Backoff({ initialMs: 100, maxMs: 1_000, random: () => 0.999999 });
    const ceilings = Array.from({ length: 6 }, () => top.next() + 1);
    assert.deepEqual(ceilings, [100, 200, 400, 800, 1_000, 1_000]);
    top.reset();
    assert.equal(top.next() + 1, 100);
    assert.equal(new Backoff({ random: () => 0 }).next(), 0);
  });
});
