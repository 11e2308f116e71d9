import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { before, describe, it } from 'node:test';
import type { EnrollResponseMsg } from '../../src/transport/proto.js';
import { waitFor } from '../helpers/process.js';
import { forgeCsr, rsaKey } from '../pki/helpers.js';
import { type AgentCredentials, callAs, CONFIG_FILES, credentialsIn, Deployment, sha256File, useDeployment } from './harness.js';

const PERMISSION_DENIED = 7;
const UNAUTHORIZED = 'meshcfg_unauthorized_attempts_total';

async function renewAs(d: Deployment, agent: AgentCredentials): Promise<AgentCredentials> {
  const key = rsaKey();
  const result = await callAs<EnrollResponseMsg>(d, agent, 'Enrollment', 'Renew', { csr_pem: Buffer.from(forgeCsr(key)) });
  if (result.error !== null) throw result.error;
  return { keyPem: key.privateKeyPem, certPem: result.response.certificate_pem.toString() };
}

async function fetchCode(d: Deployment, agent: AgentCredentials): Promise<number> {
  const result = await callAs(d, agent, 'Distribution', 'Fetch', { if_none_match: '', agent_id: '', active: null });
  return result.error === null ? 0 : result.error.code;
}

async function renewCode(d: Deployment, agent: AgentCredentials): Promise<number> {
  const result = await callAs(d, agent, 'Enrollment', 'Renew', { csr_pem: Buffer.from(forgeCsr(rsaKey())) });
  return result.error === null ? 0 : result.error.code;
}

/**
 * Issue 7, item 1, against the real `meshcfg serve` process and real `meshcfg agent`
 * processes: revoking an agent revokes its identity, a renewal retires the certificate it
 * replaces, and enrolling with a new token brings a revoked agent back.
 */
describe('agent identity end to end', { timeout: 240_000 }, () => {
  const suite = useDeployment('meshcfg-e2e-identity-', CONFIG_FILES);
  let d: Deployment;
  let first: string;

  before(() => {
    ({ deployment: d, first } = suite);
  });

  it('refuses, after `meshcfg revoke`, every certificate of an agent renewed twice (e3 → r1 → r2), for Fetch and Renew, until it enrolls with a new token', async () => {
    assert.equal((await d.enroll('edge-2')).code, 0);
    const e3 = credentialsIn(d.agentDir('edge-2'));
    const r1 = await renewAs(d, e3);
    const r2 = await renewAs(d, r1);
    assert.equal(await fetchCode(d, r2), 0);
    const replaced = await d.metric(UNAUTHORIZED, 'reason="replaced-certificate"');
    assert.equal(await fetchCode(d, e3), PERMISSION_DENIED, 'a renewal retires the certificate it replaces');
    assert.equal(await renewCode(d, r1), PERMISSION_DENIED, 'a replaced certificate cannot renew');
    assert.equal(await d.metric(UNAUTHORIZED, 'reason="replaced-certificate"'), replaced + 2);

    const revoked = await d.operator('revoke', 'edge-2', '--reason', 'key leaked', '--actor', 'alice');
    assert.equal(revoked.code, 0, revoked.stderr);
    const before = await d.metric(UNAUTHORIZED, 'reason="revoked"');
    for (const cert of [e3, r1, r2]) assert.equal(await fetchCode(d, cert), PERMISSION_DENIED);
    assert.equal(await renewCode(d, e3), PERMISSION_DENIED, 'no fresh certificate for a revoked identity');
    assert.equal(await d.metric(UNAUTHORIZED, 'reason="revoked"'), before + 4, 'each refusal is counted as revoked');

    const again = await d.operator('revoke', 'edge-2');
    assert.equal(again.code, 2);
    assert.match(again.stderr, /ALREADY_REVOKED/);

    assert.equal((await d.enroll('edge-2')).code, 0, 'an enrollment with a new token lifts the revocation');
    const fresh = credentialsIn(d.agentDir('edge-2'));
    assert.equal(await fetchCode(d, fresh), 0);
    for (const cert of [e3, r1, r2]) assert.equal(await fetchCode(d, cert), PERMISSION_DENIED, 'older certificates stay refused');
  });

  it('ends the stream of a revoked agent process at once and keeps refusing it; a new enrollment brings it back', async () => {
    assert.equal((await d.enroll('edge-1')).code, 0);
    d.startAgent('edge-1');
    await d.waitSynced('edge-1', first);
    const before = await d.metric(UNAUTHORIZED, 'reason="revoked"');

    assert.equal((await d.operator('revoke', 'edge-1')).code, 0);
    await waitFor('edge-1 to be disconnected', async () => (await d.agentView('edge-1'))?.connected === false, 5_000);
    // The cut stream and at least one reconnect attempt of the running agent.
    await waitFor('the agent to be refused again', async () => (await d.metric(UNAUTHORIZED, 'reason="revoked"')) >= before + 2, 10_000);

    const bytes = sha256File(d.agentFile('edge-1'));
    const second = d.push({ 'config/agents/edge-1.yaml': 'telemetry: { accessLog: true }\n' }, 'while edge-1 is revoked');
    await waitFor('the commit to be accepted', async () => (await d.agentView('edge-1'))?.desired?.commit === second);
    await new Promise((r) => setTimeout(r, 1_000));
    assert.equal(sha256File(d.agentFile('edge-1')), bytes, 'a revoked agent gets no config');
    assert.match(d.agents.get('edge-1')?.stderr ?? '', /PERMISSION_DENIED/);

    await d.agents.get('edge-1')?.stop();
    assert.equal((await d.enroll('edge-1')).code, 0);
    d.startAgent('edge-1');
    await d.waitSynced('edge-1', second);
  });
});

/**
 * Issue 7, item 13: a real `meshcfg agent` holding a 1-minute certificate (the smallest
 * `enrollment.certificateTtl`) renews it through the real server at two thirds of its
 * lifetime, moves its stream onto the new certificate and keeps receiving config; the
 * certificate it replaced is refused from then on.
 */
describe('certificate renewal end to end', { timeout: 180_000 }, () => {
  const suite = useDeployment('meshcfg-e2e-renewal-', CONFIG_FILES, (deployment) => deployment.extraConfig.push('enrollment: { certificateTtl: 1m }'));
  let d: Deployment;
  let first: string;

  before(() => {
    ({ deployment: d, first } = suite);
  });

  it('renews a 1-minute certificate, keeps streaming on the new one, and the old one is refused', async () => {
    assert.equal((await d.enroll('edge-1')).code, 0);
    const dir = d.agentDir('edge-1');
    const old = credentialsIn(dir);
    const oldCert = new X509Certificate(old.certPem);
    assert.ok(Date.parse(oldCert.validTo) - Date.now() <= 61_000, `a 1-minute certificate, valid to ${oldCert.validTo}`);
    const agent = d.startAgent('edge-1');
    await d.waitSynced('edge-1', first);

    const renewed = await waitFor('the agent to renew its certificate', async () => {
      const now = credentialsIn(dir);
      return now.certPem === old.certPem ? undefined : now;
    }, 60_000);
    assert.notEqual(new X509Certificate(renewed.certPem).serialNumber, oldCert.serialNumber);
    assert.equal(await d.metric(UNAUTHORIZED, 'reason="replaced-certificate"'), 0, 'the agent moved onto the new certificate without being refused');

    assert.equal(await fetchCode(d, old), PERMISSION_DENIED, 'the replaced certificate cannot fetch');
    assert.equal(await renewCode(d, old), PERMISSION_DENIED, 'nor renew');
    assert.equal(await d.metric(UNAUTHORIZED, 'reason="replaced-certificate"'), 2);

    const second = d.push({ 'config/agents/edge-1.yaml': 'telemetry: { accessLog: true }\n' }, 'after the renewal');
    const view = await d.waitSynced('edge-1', second);
    assert.equal(view.connected, true);
    assert.match(agent.stderr, /certificate renewed/);
    assert.equal(new X509Certificate(credentialsIn(dir).certPem).serialNumber, new X509Certificate(renewed.certPem).serialNumber, 'streaming on the renewed certificate');
  });
});
