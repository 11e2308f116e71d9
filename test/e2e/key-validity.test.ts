import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeSshSigner, tempDir, writeAllowedSigners, type SshSigner } from '../helpers/git.js';
import { waitFor } from '../helpers/process.js';
import { CONFIG_FILES, Deployment } from './harness.js';

interface SourceView {
  accepted: string | null;
  refused: { commit: string; code: string } | null;
}

/** `YYYYMMDDHHMMSSZ`, the allowed-signers time format, in UTC. */
function sshTime(date: Date): string {
  return `${date.toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;
}

/**
 * Retired signing keys end to end: a real `meshcfg serve` process and a real agent. bob's key
 * retired at the start of 2020; he signs a commit dated 2019, which git verify-commit accepts.
 */
describe('retired signing keys end to end', { timeout: 240_000 }, () => {
  const tmp = tempDir('meshcfg-e2e-keys-');
  let d: Deployment;
  let first: string;
  let bob: SshSigner;
  let backdated: string;
  /** By now the server has seen `first`. */
  let firstSeenBy: number;

  const source = async (): Promise<SourceView> => (await d.admin<SourceView>('/api/v1/source')).body;
  const refusalOf = (commit: string) =>
    waitFor(`the refusal of ${commit.slice(0, 12)}`, async () => {
      const { refused } = await source();
      return refused?.commit === commit ? refused : undefined;
    });
  const allowSigners = (aliceOptions?: string): void => {
    writeAllowedSigners(d.allowedSigners, [
      { signer: d.signer, ...(aliceOptions === undefined ? {} : { options: aliceOptions }) },
      { signer: bob, options: 'valid-before="20200101Z"' },
    ]);
  };

  before(async () => {
    ({ deployment: d, first } = await Deployment.create(tmp.path, CONFIG_FILES));
    bob = makeSshSigner(tmp.path, 'bob@example.org');
    allowSigners();
    await d.startServer();
    assert.equal((await d.enroll('edge-2')).code, 0);
    d.startAgent('edge-2');
    await d.waitSynced('edge-2', first);
    firstSeenBy = Date.now();
  });

  after(async () => {
    await d?.stopAll();
    tmp.cleanup();
  });

  it('refuses the backdated commit of a retired key with UNTRUSTED_SIGNER by default, and the agent keeps the previous commit', async () => {
    const bytes = readFileSync(d.agentFile('edge-2'));
    backdated = d.push({ 'config/agents/edge-2.yaml': 'telemetry: { accessLog: false }\n' }, 'signed after retirement', bob, {
      date: '2019-06-01T12:00:00Z',
    });
    d.work.git('-c', `gpg.ssh.allowedSignersFile=${d.allowedSigners}`, 'verify-commit', backdated); // git itself accepts it
    assert.equal((await refusalOf(backdated)).code, 'UNTRUSTED_SIGNER');
    assert.equal((await source()).accepted, first);
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(readFileSync(d.agentFile('edge-2')), bytes);
    assert.equal((await d.agentView('edge-2'))?.active?.commit, first);
  });

  it('refuses it with NON_MONOTONIC_DATE under trust.keyValidity: commit-time (dated before its parent)', async () => {
    await d.stopServer();
    d.keyValidity = 'commit-time';
    await d.startServer();
    assert.equal((await refusalOf(backdated)).code, 'NON_MONOTONIC_DATE');
    assert.equal((await source()).accepted, first);
    await d.waitSynced('edge-2', first);
  });

  it('keeps serving a commit it accepted after the signer’s key retires, across a restart', async () => {
    await d.stopServer();
    d.keyValidity = null;
    // alice retires now: after the server first saw `first`, before this restart re-verifies it.
    // (The file has one-second resolution: a second after the sighting, and at least a second ago.)
    const retiredAt = new Date(firstSeenBy + 1_000);
    allowSigners(`valid-before="${sshTime(retiredAt)}"`);
    const wait = retiredAt.getTime() + 1_000 - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    await d.startServer();
    const view = await source();
    assert.equal(view.accepted, first);
    assert.equal((await refusalOf(backdated)).code, 'UNTRUSTED_SIGNER');
    await d.waitSynced('edge-2', first);
    // A new commit by the retired key is refused, however it is dated.
    const late = d.push({ 'config/agents/edge-2.yaml': 'telemetry: { metrics: false }\n' }, 'alice after retirement');
    assert.equal((await refusalOf(late)).code, 'UNTRUSTED_SIGNER');
  });
});
