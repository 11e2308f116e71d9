import assert from 'node:assert/strict';
import type { ServiceError } from '@grpc/grpc-js';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { openDataDir } from '../../src/pki/index.js';
import { meshcfg } from '../helpers/cli.js';
import { waitFor } from '../helpers/process.js';
import { forgeCsr, rsaKey } from '../pki/helpers.js';
import { callAs, CONFIG_FILES, credentialsIn, Deployment, sha256File, useDeployment } from './harness.js';
import { aid } from '../helpers/ids.js';

/**
 * Distribution end to end on loopback: a signed repository over smart HTTP, the real
 * `meshcfg serve` process, real `meshcfg enroll` and `meshcfg agent` processes, real mTLS.
 */
describe('distribution end to end', { timeout: 240_000 }, () => {
  const suite = useDeployment('meshcfg-e2e-', CONFIG_FILES);
  let d: Deployment;
  let first: string;

  before(() => {
    ({ deployment: d, first } = suite);
  });

  it('delivers the accepted commit to an enrolled agent, which acks exactly it', async () => {
    const enrolled = await d.enroll('edge-1');
    assert.equal(enrolled.code, 0, enrolled.stderr);
    assert.equal(statSync(join(d.agentDir('edge-1'), 'agent.key')).mode & 0o777, 0o600);
    d.startAgent('edge-1');
    const view = await d.waitSynced('edge-1', first);
    assert.equal(view.connected, true);
    assert.equal(view.active?.digest, view.desired?.digest);
    assert.ok(view.certExpiry);
    const source = (await d.admin<{ accepted: string; refused: unknown }>('/api/v1/source')).body;
    assert.equal(source.accepted, first);
  });

  it('brings a new signed commit to the agent', async () => {
    const started = Date.now();
    const second = d.push({ 'config/agents/edge-1.yaml': 'telemetry: { accessLog: true }\n' }, 'edge-1 access log');
    const view = await d.waitSynced('edge-1', second);
    const doc = JSON.parse(readFileSync(d.agentFile('edge-1'), 'utf8')) as { telemetry?: { accessLog?: boolean } };
    assert.equal(doc.telemetry?.accessLog, true);
    assert.ok((view.desired?.generation ?? 0) >= 2);
    process.stderr.write(`# commit → SYNCED on loopback: ${Date.now() - started} ms (includes 200 ms poll interval)\n`);
  });

  it('never delivers a refused commit, and says why', async () => {
    const before = (await d.agentView('edge-1'))!;
    const bytes = readFileSync(d.agentFile('edge-1'));
    const unsigned = d.push({ 'config/agents/edge-1.yaml': 'mtls: { mode: DISABLE }\n' }, 'unsigned and unsafe', null);
    const refused = await waitFor('the refusal', async () => {
      const { body } = await d.admin<{ refused: { commit: string; code: string } | null }>('/api/v1/source');
      return body.refused?.commit === unsigned ? body.refused : undefined;
    });
    assert.equal(refused.code, 'UNSIGNED');
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(readFileSync(d.agentFile('edge-1')), bytes);
    assert.equal((await d.agentView('edge-1'))?.desired?.digest, before.desired?.digest);

    // A signed commit on top of the refused one is accepted again (the anchor is the last accepted commit).
    const fixed = d.push({ 'config/agents/edge-1.yaml': 'telemetry: { accessLog: false }\n' }, 'signed fix');
    await d.waitSynced('edge-1', fixed);
  });

  describe('enrollment refusals', () => {
    it('refuses a server whose key does not match the pin, writing nothing', async () => {
      const dir = join(suite.root, 'wrong-pin');
      const run = await d.enroll('edge-2', { pin: `sha256/${Buffer.alloc(32, 7).toString('base64')}`, dir });
      assert.notEqual(run.code, 0);
      assert.match(run.stderr, /pin/i);
      assert.equal(existsSync(dir), false);
    });

    it('refuses bad, expired and reused tokens, counting each', async () => {
      const before = {
        bad: await d.metric('meshcfg_unauthorized_attempts_total', 'reason="bad-token"'),
        expired: await d.metric('meshcfg_unauthorized_attempts_total', 'reason="expired-token"'),
        reused: await d.metric('meshcfg_unauthorized_attempts_total', 'reason="reused-token"'),
      };
      const bad = await d.enroll('edge-2', { token: 'mcet_not-a-real-token', dir: join(suite.root, 'bad-token') });
      assert.notEqual(bad.code, 0);
      assert.equal(existsSync(join(suite.root, 'bad-token')), false);

      const short = await d.token('edge-2', '1s');
      await new Promise((r) => setTimeout(r, 1_500));
      const expired = await d.enroll('edge-2', { token: short, dir: join(suite.root, 'expired-token') });
      assert.notEqual(expired.code, 0);

      const once = await d.token('edge-2');
      assert.equal((await d.enroll('edge-2', { token: once })).code, 0);
      const reused = await d.enroll('edge-2', { token: once, dir: join(suite.root, 'reused-token') });
      assert.notEqual(reused.code, 0);

      assert.equal(await d.metric('meshcfg_unauthorized_attempts_total', 'reason="bad-token"'), before.bad + 1);
      assert.equal(await d.metric('meshcfg_unauthorized_attempts_total', 'reason="expired-token"'), before.expired + 1);
      assert.equal(await d.metric('meshcfg_unauthorized_attempts_total', 'reason="reused-token"'), before.reused + 1);
    });

    it('refuses tokens for agents that are not in the inventory', async () => {
      const res = await d.admin('/api/v1/tokens', { method: 'POST', body: JSON.stringify({ agentId: 'nobody' }) });
      assert.equal(res.status, 400);
    });
  });

  describe('unauthorized config load attempts', () => {
    async function fetchAs(keyPem: string, certPem: string, agentId: string): Promise<ServiceError | null> {
      return (await callAs(d, { keyPem, certPem }, 'Distribution', 'Fetch', { if_none_match: '', agent_id: agentId })).error;
    }

    it('refuses a certificate from another CA at the handshake, counting it', async () => {
      const foreign = await openDataDir({ dataDir: join(suite.root, 'foreign'), trustDomain: 'example.org', serverNames: ['localhost'] });
      const key = rsaKey();
      const cert = foreign.ca.issueAgentCertificate({ csrPem: forgeCsr(key), agentId: aid('edge-1') });
      const before = await d.metric('meshcfg_tls_handshakes_total', 'result="failed"');
      const err = await fetchAs(key.privateKeyPem, cert.certPem, 'edge-1');
      assert.ok(err, 'the call must fail');
      assert.ok((await d.metric('meshcfg_tls_handshakes_total', 'result="failed"')) > before);
    });

    it('refuses a fetch or an ack naming another agent, counting each', async () => {
      const dir = d.agentDir('edge-1');
      const before = await d.metric('meshcfg_unauthorized_attempts_total', 'reason="identity-mismatch"');
      const { keyPem, certPem } = credentialsIn(dir);
      const err = await fetchAs(keyPem, certPem, 'edge-2');
      assert.equal(err?.code, 7 /* PERMISSION_DENIED */);
      const view = (await d.agentView('edge-1'))!;
      const ack = {
        commit: view.desired?.commit, digest: view.desired?.digest, generation: view.desired?.generation,
        nonce: 'x', status: 'APPLIED', error: '', agent_id: 'edge-2',
      };
      const ackErr = (await callAs(d, credentialsIn(dir), 'Distribution', 'Report', ack)).error;
      assert.equal(ackErr?.code, 7 /* PERMISSION_DENIED */);
      assert.equal(await d.metric('meshcfg_unauthorized_attempts_total', 'reason="identity-mismatch"'), before + 2);
      assert.equal((await d.agentView('edge-2'))?.active, null, 'the forged ack recorded nothing for edge-2');
    });
  });

  it('rolls the file back when the reload command fails, reports REJECTED, and the rollout keeps it on its previous config', async () => {
    const marker = join(suite.root, 'edge-2-reload-fails');
    d.startAgent('edge-2', ['--exec', `test ! -e ${marker}`]);
    const head = d.work.head();
    await d.waitSynced('edge-2', head);
    const good = readFileSync(d.agentFile('edge-2'));
    writeFileSync(marker, '');
    const next = d.push({ 'config/agents/edge-2.yaml': 'telemetry: { metrics: true }\n' }, 'edge-2 metrics');
    // A rejection halts the rollout (maxNackRatio defaults to 0), and the agent that rejected
    // is sent its last completed config again.
    await waitFor('the rollout to halt', async () => {
      const { body } = await d.admin<{ commit: string; state: string }>('/api/v1/rollout');
      return body.commit === next && body.state === 'halted';
    });
    const view = await waitFor('edge-2 to be held on its previous commit', async () => {
      const v = await d.agentView('edge-2');
      return v?.desired?.commit === head ? v : undefined;
    });
    assert.equal(view.desired?.commit, head);
    assert.deepEqual(readFileSync(d.agentFile('edge-2')), good);
  });

  it('keeps agents on their config across a server restart, and they reconnect', async () => {
    const generation = (await d.agentView('edge-1'))?.desired?.generation ?? 0;
    assert.equal(await d.stopServer(), 0, 'serve exits 0 on SIGTERM');
    const bytes = readFileSync(d.agentFile('edge-1'));
    await d.startServer();
    await waitFor('edge-1 to reconnect', async () => (await d.agentView('edge-1'))?.connected === true);
    assert.deepEqual(readFileSync(d.agentFile('edge-1')), bytes);
    const next = d.push({ 'config/agents/edge-1.yaml': 'telemetry: { accessLog: true, metrics: true }\n' }, 'after restart');
    const view = await d.waitSynced('edge-1', next);
    assert.ok((view.desired?.generation ?? 0) > generation, 'generations keep growing across restarts');
  });

  it('serves polling agents, answering not-modified while nothing changed', async () => {
    assert.equal((await d.enroll('edge-3')).code, 0);
    const agent = d.startAgent('edge-3', ['--poll', '200ms'], { MESHCFG_LOG_LEVEL: 'debug' });
    const head = d.work.head();
    await d.waitSynced('edge-3', head);
    const mtime = statSync(d.agentFile('edge-3')).mtimeMs;
    const state = readFileSync(join(d.agentDir('edge-3'), 'state.json'), 'utf8');
    await new Promise((r) => setTimeout(r, 1_000));
    assert.equal(statSync(d.agentFile('edge-3')).mtimeMs, mtime);
    assert.equal(readFileSync(join(d.agentDir('edge-3'), 'state.json'), 'utf8'), state);
    assert.ok((agent.stderr.match(/"msg":"not modified"/g)?.length ?? 0) >= 2, 'the server answered not-modified polls');
    assert.equal(sha256File(d.agentFile('edge-3')), (await d.agentView('edge-3'))?.desired?.digest);
  });

  it('creates enrollment tokens from the CLI only with the admin token', async () => {
    const run = await meshcfg('token', 'create', 'edge-4', '--admin', d.adminUrl, '--admin-token-file', join(suite.root, 'allowed_signers'));
    assert.equal(run.code, 2);
    assert.match(run.stderr, /401|unauthori[sz]ed/i);
  });
});
