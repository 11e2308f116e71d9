import assert from 'node:assert/strict';
import { GitSource } from '../../../src/source/git-source.js';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SourceError, TrustError, type TrustErrorCode } from '../../../src/domain/errors.js';
import {
  SshSignatureVerifier,
  TrustGate,
  loadAllowedSigners,
  skipVerification,
  type CommitReader,
  type TrustGateOptions,
} from '../../../src/source/trust/index.js';
import { GitRepo, makeSshSigner, tempDir, writeAllowedSigners, type SshSigner } from '../../helpers/git.js';
import {
  MemoryCommitReader,
  catCommit,
  signatureHeaderOf,
  sshSign,
  unsignedCommitText,
  withSignatureHeader,
  writeCommitObject,
} from './fixtures.js';
import { cid } from '../../helpers/ids.js';

type SignerEntry = Parameters<typeof writeAllowedSigners>[1][number];

async function rejectsWith(promise: Promise<unknown>, code: TrustErrorCode): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof TrustError, `expected a TrustError, got ${String(err)}`);
    assert.equal(err.code, code);
    return true;
  });
}

const FAKE_PGP = '-----BEGIN PGP SIGNATURE-----\n\niQEzBAABCAAdFiEEfakefakefakefakefake=\n=abcd\n-----END PGP SIGNATURE-----\n';
const FAKE_X509 = '-----BEGIN SIGNED MESSAGE-----\nMIAGCSqGSIb3DQEHAqCAMIACAQExDTALBglghkgBZQMEAgEwgAYJKoZIhvcNAQcBAAA=\n-----END SIGNED MESSAGE-----\n';

/** Flips one bit in the last byte of the signature blob (inside the cryptographic signature). */
function flipLastSignatureByte(armored: string): string {
  const lines = armored.trim().split('\n');
  const blob = Buffer.from(lines.slice(1, -1).join(''), 'base64');
  blob[blob.length - 1] = blob[blob.length - 1]! ^ 0x01;
  const body = blob.toString('base64').match(/.{1,70}/g) ?? [];
  return [lines[0], ...body, lines[lines.length - 1]].join('\n') + '\n';
}

describe('TrustGate', () => {
  const tmp = tempDir();
  let repo: GitRepo;
  let reader: CommitReader;
  let alice: SshSigner;
  let bob: SshSigner;
  let carol: SshSigner;
  let mallory: SshSigner;
  let gate: TrustGate;
  const signed: Record<SshSigner['keyType'], string> = { ed25519: '', rsa: '', ecdsa: '' };
  let unsigned: string;
  let byMallory: string;
  let allowedPath: string;
  let fileCount = 0;

  function allowedSignersFile(entries: readonly SignerEntry[]): string {
    return writeAllowedSigners(join(tmp.path, `allowed-signers-${fileCount++}`), entries);
  }

  async function gateFor(entries: readonly SignerEntry[], options: Partial<TrustGateOptions> = {}): Promise<TrustGate> {
    const allowedSigners = await loadAllowedSigners(allowedSignersFile(entries));
    return new TrustGate({ reader, verifiers: [new SshSignatureVerifier({ allowedSigners })], ...options });
  }

  /** A forged commit: the unsigned head's content with `armored` put in its gpgsig header. */
  function forgeSigned(armored: string): string {
    return writeCommitObject(repo, withSignatureHeader(catCommit(repo, unsigned).toString('utf8'), armored));
  }

  before(async () => {
    alice = makeSshSigner(tmp.path, 'alice@example.org', 'ed25519');
    bob = makeSshSigner(tmp.path, 'bob@example.org', 'rsa');
    carol = makeSshSigner(tmp.path, 'carol@example.org', 'ecdsa');
    mallory = makeSshSigner(tmp.path, 'mallory@example.org', 'ed25519');
    repo = GitRepo.init(join(tmp.path, 'repo'));
    for (const signer of [alice, bob, carol]) {
      repo.write({ [`config/base/${signer.keyType}.yaml`]: `by: ${signer.principal}\n` });
      signed[signer.keyType] = repo.commit(`signed by ${signer.principal}`, signer);
    }
    unsigned = repo.commit('not signed');
    byMallory = repo.commit('signed by mallory', mallory);
    reader = await GitSource.open({ repository: repo.dir });
    allowedPath = allowedSignersFile([{ signer: alice }, { signer: bob }, { signer: carol }]);
    gate = new TrustGate({
      reader,
      verifiers: [new SshSignatureVerifier({ allowedSigners: await loadAllowedSigners(allowedPath) })],
    });
  });

  after(() => tmp.cleanup());

  describe('when the head is signed by an allowed key', () => {
    for (const keyType of ['ed25519', 'rsa', 'ecdsa'] as const) {
      it(`accepts the ${keyType} signature and names its signer`, async () => {
        const commit = await gate.verify(cid(signed[keyType]));
        const signer = { ed25519: alice, rsa: bob, ecdsa: carol }[keyType];
        assert.equal(commit.sha, signed[keyType]);
        assert.equal(commit.trust.kind, 'verified');
        assert.ok(commit.trust.kind === 'verified');
        assert.equal(commit.trust.format, 'ssh');
        assert.equal(commit.trust.signer, signer.principal);
        assert.match(commit.trust.keyFingerprint, /^SHA256:[A-Za-z0-9+/]{43}$/);
      });
    }

    it('returns the tree, parents, message and committer time git reports', async () => {
      const sha = signed.rsa;
      const commit = await gate.verify(cid(sha));
      assert.equal(commit.tree, repo.git('rev-parse', `${sha}^{tree}`));
      assert.deepEqual(commit.parents, [signed.ed25519]);
      assert.equal(commit.message, 'signed by bob@example.org\n');
      assert.equal(commit.committedAt.getTime() / 1000, Number(repo.git('show', '-s', '--format=%ct', sha)));
    });

    it('returns a frozen commit', async () => {
      const commit = await gate.verify(cid(signed.ed25519));
      assert.ok(Object.isFrozen(commit));
      assert.ok(Object.isFrozen(commit.parents));
      assert.ok(Object.isFrozen(commit.trust));
    });
  });

  describe('when the head is not signed', () => {
    it('refuses with UNSIGNED', () => rejectsWith(gate.verify(cid(unsigned)), 'UNSIGNED'));
  });

  describe('when the head is signed by an unknown key', () => {
    it('refuses with UNTRUSTED_SIGNER', () => rejectsWith(gate.verify(cid(byMallory)), 'UNTRUSTED_SIGNER'));
  });

  describe('when the commit or its signature was tampered with', () => {
    it('refuses a commit whose content changed after signing with BAD_SIGNATURE', async () => {
      const original = catCommit(repo, signed.ed25519).toString('utf8');
      const tampered = writeCommitObject(repo, original.replace('signed by alice', 'signed by alice, honest'));
      await rejectsWith(gate.verify(cid(tampered)), 'BAD_SIGNATURE');
    });

    it('refuses a signature copied from another commit with BAD_SIGNATURE', async () => {
      const stolen = signatureHeaderOf(catCommit(repo, signed.ed25519).toString('utf8'));
      await rejectsWith(gate.verify(cid(forgeSigned(stolen))), 'BAD_SIGNATURE');
    });

    it('refuses altered signature bytes with BAD_SIGNATURE', async () => {
      const genuine = signatureHeaderOf(catCommit(repo, signed.ed25519).toString('utf8'));
      const altered = writeCommitObject(
        repo,
        withSignatureHeader(
          catCommit(repo, signed.ed25519).toString('utf8').replace(/gpgsig [\s\S]*?-----END SSH SIGNATURE-----\n/, ''),
          flipLastSignatureByte(genuine),
        ),
      );
      await rejectsWith(gate.verify(cid(altered)), 'BAD_SIGNATURE');
    });
  });

  describe('when the signature was made for another namespace', () => {
    it('refuses with NAMESPACE_MISMATCH', async () => {
      const payload = catCommit(repo, unsigned);
      await rejectsWith(gate.verify(cid(forgeSigned(sshSign(alice, 'file', payload)))), 'NAMESPACE_MISMATCH');
    });
  });

  describe('when the allowed signers restrict the key to namespaces', () => {
    it('refuses with NAMESPACE_MISMATCH when "git" is not among them', async () => {
      const restricted = await gateFor([{ signer: alice, options: 'namespaces="file"' }]);
      await rejectsWith(restricted.verify(cid(signed.ed25519)), 'NAMESPACE_MISMATCH');
    });

    it('accepts when a namespace pattern matches "git"', async () => {
      const permitted = await gateFor([{ signer: alice, options: 'namespaces="file,g?t"' }]);
      const commit = await permitted.verify(cid(signed.ed25519));
      assert.equal(commit.trust.kind, 'verified');
    });
  });

  describe('when the key is outside its validity window', () => {
    it('refuses with UNTRUSTED_SIGNER once valid-before has passed', async () => {
      const expired = await gateFor([{ signer: alice, options: 'valid-before="20200101Z"' }]);
      await rejectsWith(expired.verify(cid(signed.ed25519)), 'UNTRUSTED_SIGNER');
    });

    it('refuses with UNTRUSTED_SIGNER before valid-after', async () => {
      const notYet = await gateFor([{ signer: alice, options: 'valid-after="29990101Z"' }]);
      await rejectsWith(notYet.verify(cid(signed.ed25519)), 'UNTRUSTED_SIGNER');
    });

    it('judges the window at the committer time by default, as git does', async () => {
      const window = [{ signer: alice, options: 'valid-after="20000101Z",valid-before="20990101Z"' }];
      const later = () => new Date('2100-01-01T00:00:00Z');
      const byCommitTime = await gateFor(window, { clock: later });
      assert.equal((await byCommitTime.verify(cid(signed.ed25519))).trust.kind, 'verified');
      const byNow = await gateFor(window, { clock: later, keyValidityAt: 'now' });
      await rejectsWith(byNow.verify(cid(signed.ed25519)), 'UNTRUSTED_SIGNER');
    });
  });

  describe('when the signature is not an SSH signature', () => {
    it('refuses an OpenPGP signature with UNSUPPORTED_SIGNATURE', () =>
      rejectsWith(gate.verify(cid(forgeSigned(FAKE_PGP))), 'UNSUPPORTED_SIGNATURE'));

    it('refuses an X.509 (gpgsm, gitsign) signature with UNSUPPORTED_SIGNATURE', () =>
      rejectsWith(gate.verify(cid(forgeSigned(FAKE_X509))), 'UNSUPPORTED_SIGNATURE'));

    it('refuses a header that holds no recognisable signature with MALFORMED_SIGNATURE', () =>
      rejectsWith(gate.verify(cid(forgeSigned('trust me\n'))), 'MALFORMED_SIGNATURE'));

    it('refuses SSH armor around garbage with MALFORMED_SIGNATURE', () =>
      rejectsWith(
        gate.verify(cid(forgeSigned('-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n'))),
        'MALFORMED_SIGNATURE',
      ));
  });

  describe('when no verifier is configured for the kind of signature', () => {
    it('refuses with UNSUPPORTED_SIGNATURE', async () => {
      const noVerifiers = new TrustGate({ reader, verifiers: [] });
      await rejectsWith(noVerifiers.verify(cid(signed.ed25519)), 'UNSUPPORTED_SIGNATURE');
    });
  });

  describe('compared with git verify-commit on the same allowed signers', () => {
    const gitAccepts = (sha: string, path: string): boolean => {
      try {
        repo.git('-c', `gpg.ssh.allowedSignersFile=${path}`, 'verify-commit', sha);
        return true;
      } catch {
        return false;
      }
    };

    it('reaches the same verdict for every case', async () => {
      const cases: Array<{ name: string; sha: string; entries: readonly SignerEntry[] }> = [
        { name: 'ed25519', sha: signed.ed25519, entries: [{ signer: alice }] },
        { name: 'rsa', sha: signed.rsa, entries: [{ signer: bob }] },
        { name: 'ecdsa', sha: signed.ecdsa, entries: [{ signer: carol }] },
        { name: 'unknown key', sha: byMallory, entries: [{ signer: alice }] },
        { name: 'namespaces="file"', sha: signed.ed25519, entries: [{ signer: alice, options: 'namespaces="file"' }] },
        { name: 'expired', sha: signed.ed25519, entries: [{ signer: alice, options: 'valid-before="20200101Z"' }] },
        { name: 'unsigned', sha: unsigned, entries: [{ signer: alice }] },
      ];
      for (const { name, sha, entries } of cases) {
        const path = allowedSignersFile(entries);
        const candidate = await gateFor(entries);
        const ours = await candidate.verify(cid(sha)).then(
          () => true,
          () => false,
        );
        assert.equal(ours, gitAccepts(sha, path), `verdict differs from git for ${name}`);
      }
    });
  });

  describe('when a retired key signs a backdated commit', () => {
    // alice's key retired at the start of 2020; the commit claims mid-2019, like its parent.
    const retired = (): SignerEntry[] => [{ signer: alice, options: 'valid-before="20200101Z"' }];
    let old: GitRepo;
    let backdated: string;

    before(() => {
      old = GitRepo.init(join(tmp.path, 'retired'));
      old.write({ 'a.yaml': 'a: 1\n' }).commit('from when the key was valid', alice, [], { date: '2019-06-01T12:00:00Z' });
      backdated = old.write({ 'a.yaml': 'a: 2\n' }).commit('signed after retirement', alice, [], { date: '2019-06-02T12:00:00Z' });
    });

    async function retiredGate(options: Partial<TrustGateOptions>): Promise<TrustGate> {
      const allowedSigners = await loadAllowedSigners(allowedSignersFile(retired()));
      return new TrustGate({ reader: await GitSource.open({ repository: old.dir }), verifiers: [new SshSignatureVerifier({ allowedSigners })], ...options });
    }

    it('is accepted when validity is judged at commit time, as git verify-commit does', async () => {
      const byCommitTime = await retiredGate({ keyValidityAt: 'commit-time' });
      assert.equal((await byCommitTime.verify(cid(backdated))).trust.kind, 'verified');
      assert.doesNotThrow(() => old.git('-c', `gpg.ssh.allowedSignersFile=${allowedSignersFile(retired())}`, 'verify-commit', backdated));
    });

    it('refuses with UNTRUSTED_SIGNER when validity is judged now', async () => {
      const byNow = await retiredGate({ keyValidityAt: 'now' });
      await rejectsWith(byNow.verify(cid(backdated)), 'UNTRUSTED_SIGNER');
    });

    it('judges validity at seenAt when the caller first saw the commit earlier', async () => {
      const byNow = await retiredGate({ keyValidityAt: 'now' });
      const commit = await byNow.verify(cid(backdated), { seenAt: new Date('2019-12-31T00:00:00Z') });
      assert.equal(commit.trust.kind, 'verified');
    });
  });

  describe('when the committer date goes backwards', () => {
    let dated: GitRepo;
    let parent: string;

    before(() => {
      dated = GitRepo.init(join(tmp.path, 'dated'));
      parent = dated.write({ 'a.yaml': 'a: 1\n' }).commit('parent', alice, [], { date: '2024-03-01T12:00:00Z' });
    });

    async function datedGate(): Promise<TrustGate> {
      return new TrustGate({
        reader: await GitSource.open({ repository: dated.dir }),
        verifiers: [new SshSignatureVerifier({ allowedSigners: await loadAllowedSigners(allowedPath) })],
        keyValidityAt: 'commit-time',
      });
    }

    it('refuses a commit dated before its parent with NON_MONOTONIC_DATE', async () => {
      dated.git('checkout', '-q', '-B', 'backwards', parent);
      const backwards = dated.write({ 'a.yaml': 'a: 2\n' }).commit('backdated', alice, [], { date: '2024-02-29T12:00:00Z' });
      await rejectsWith((await datedGate()).verify(cid(backwards), { lastAccepted: cid(parent) }), 'NON_MONOTONIC_DATE');
    });

    it('accepts a commit dated in the same second as its parent', async () => {
      dated.git('checkout', '-q', '-B', 'same-second', parent);
      const same = dated.write({ 'a.yaml': 'a: 3\n' }).commit('same second', alice, [], { date: '2024-03-01T12:00:00Z' });
      assert.equal((await (await datedGate()).verify(cid(same), { lastAccepted: cid(parent) })).sha, same);
    });

    it('refuses a head dated before the last accepted commit, even when its own parent is older still', async () => {
      // A backdated commit laundered through a backdated, unsigned parent: each date is monotonic but the head's.
      dated.git('checkout', '-q', '-B', 'laundered', parent);
      dated.write({ 'a.yaml': 'a: 4\n' }).commit('unsigned, backdated', undefined, [], { date: '2019-06-01T12:00:00Z' });
      const head = dated.write({ 'a.yaml': 'a: 5\n' }).commit('signed, backdated', alice, [], { date: '2019-06-02T12:00:00Z' });
      const gate = await datedGate();
      await rejectsWith(gate.verify(cid(head), { lastAccepted: cid(parent) }), 'NON_MONOTONIC_DATE');
      // Without an anchor (nothing accepted yet) only the parents are compared, and they pass.
      assert.equal((await gate.verify(cid(head))).sha, head);
    });

    it('refuses a merge dated before any one of its parents with NON_MONOTONIC_DATE', async () => {
      dated.git('checkout', '-q', '-B', 'side', parent);
      dated.write({ 'b.yaml': 'b: 1\n' }).commit('side, later', alice, [], { date: '2024-03-05T12:00:00Z' });
      dated.git('checkout', '-q', '-B', 'trunk', parent);
      dated.write({ 'c.yaml': 'c: 1\n' }).commit('trunk, earlier', alice, [], { date: '2024-03-02T12:00:00Z' });
      dated.gitWith({ GIT_COMMITTER_DATE: '2024-03-03T12:00:00Z', GIT_AUTHOR_DATE: '2024-03-03T12:00:00Z' },
        '-c', 'gpg.format=ssh', '-c', `user.signingkey=${alice.privateKeyPath}`, 'merge', '-q', '-S', '--no-ff', '-m', 'merge', 'side');
      const merge = dated.head();
      assert.equal(dated.git('rev-list', '--parents', '-n', '1', merge).split(' ').length, 3);
      await rejectsWith((await datedGate()).verify(cid(merge), { lastAccepted: cid(parent) }), 'NON_MONOTONIC_DATE');
    });
  });

  describe('the fast-forward rule', () => {
    let ff: GitRepo;
    let ffGate: TrustGate;
    let first: string;
    let second: string;
    let third: string;

    before(async () => {
      ff = GitRepo.init(join(tmp.path, 'ff'));
      first = ff.write({ 'a.yaml': 'a: 1\n' }).commit('first', alice);
      second = ff.write({ 'a.yaml': 'a: 2\n' }).commit('second', alice);
      third = ff.write({ 'a.yaml': 'a: 3\n' }).commit('third', alice);
      ffGate = new TrustGate({
        reader: await GitSource.open({ repository: ff.dir }),
        verifiers: [new SshSignatureVerifier({ allowedSigners: await loadAllowedSigners(allowedPath) })],
      });
    });

    it('accepts a head that descends from the last accepted commit', async () => {
      assert.equal((await ffGate.verify(cid(third), { lastAccepted: cid(first) })).sha, third);
    });

    it('accepts the last accepted commit itself', async () => {
      assert.equal((await ffGate.verify(cid(second), { lastAccepted: cid(second) })).sha, second);
    });

    it('refuses a rewound branch (an older head) with NOT_FAST_FORWARD', () =>
      rejectsWith(ffGate.verify(cid(first), { lastAccepted: cid(third) }), 'NOT_FAST_FORWARD'));

    it('refuses a rewritten branch (reset and new commit) with NOT_FAST_FORWARD', async () => {
      ff.git('checkout', '-q', '-b', 'rewritten', first);
      const rewritten = ff.write({ 'a.yaml': 'a: other\n' }).commit('rewritten history', alice);
      await rejectsWith(ffGate.verify(cid(rewritten), { lastAccepted: cid(third) }), 'NOT_FAST_FORWARD');
    });

    it('refuses an amended head with NOT_FAST_FORWARD', async () => {
      ff.git('checkout', '-q', '-b', 'amended', third);
      const amended = ff.commit('third, amended', alice, ['--amend']);
      assert.notEqual(amended, third);
      await rejectsWith(ffGate.verify(cid(amended), { lastAccepted: cid(third) }), 'NOT_FAST_FORWARD');
    });

    it('refuses when the last accepted commit is not in the history at all', () =>
      rejectsWith(ffGate.verify(cid(third), { lastAccepted: cid(signed.ed25519) }), 'NOT_FAST_FORWARD'));

    it('checks the signature before walking the history', async () => {
      const memory = new MemoryCommitReader();
      const base = memory.add(unsignedCommitText('base\n'));
      const head = memory.add(unsignedCommitText('head\n', [base]), [base]);
      const memoryGate = new TrustGate({ reader: memory, verifiers: [] });
      await rejectsWith(memoryGate.verify(cid(head), { lastAccepted: cid(base) }), 'UNSIGNED');
      assert.deepEqual(memory.calls, [`read ${head}`]);
    });
  });

  describe('when the reader returns bytes that are not the requested object', () => {
    it('refuses with MALFORMED_COMMIT', async () => {
      const memory = new MemoryCommitReader();
      const honest = memory.add(catCommit(repo, signed.ed25519));
      const other = memory.add(catCommit(repo, signed.rsa));
      memory.objects.set(honest, memory.objects.get(other)!);
      const lied = new TrustGate({
        reader: memory,
        verifiers: [new SshSignatureVerifier({ allowedSigners: await loadAllowedSigners(allowedPath) })],
      });
      await rejectsWith(lied.verify(cid(honest)), 'MALFORMED_COMMIT');
    });
  });

  describe('when the commit cannot be read', () => {
    it('passes the reader’s SourceError through for a missing commit', async () => {
      await assert.rejects(gate.verify(cid('0'.repeat(40))), (err: unknown) => {
        assert.ok(err instanceof SourceError);
        assert.equal(err.code, 'REVISION_NOT_FOUND');
        return true;
      });
    });

    it('passes the reader’s SourceError through for an object that is not a commit', async () => {
      await assert.rejects(gate.verify(cid(repo.git('rev-parse', `${signed.ed25519}^{tree}`))), (err: unknown) => {
        assert.ok(err instanceof SourceError);
        assert.equal(err.code, 'REVISION_NOT_FOUND');
        return true;
      });
    });
  });
});

describe('skipVerification', () => {
  it('makes an unsigned commit compilable, marked unchecked with the reason', async () => {
    const memory = new MemoryCommitReader();
    const sha = memory.add(unsignedCommitText('unsigned\n'));
    const commit = await skipVerification(memory, cid(sha), 'no --allowed-signers given');
    assert.deepEqual(commit.trust, { kind: 'unchecked', reason: 'no --allowed-signers given' });
    assert.equal(commit.message, 'unsigned\n');
  });

  it('still refuses bytes that are not the requested object with MALFORMED_COMMIT', async () => {
    const memory = new MemoryCommitReader();
    const sha = memory.add(unsignedCommitText('one\n'));
    memory.objects.set(sha, Buffer.from(unsignedCommitText('two\n')));
    await rejectsWith(skipVerification(memory, cid(sha), 'test'), 'MALFORMED_COMMIT');
  });
});
