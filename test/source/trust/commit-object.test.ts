import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TrustError } from '../../../src/domain/errors.js';
import {
  commitObjectId,
  parseCommitFields,
  signatureKind,
  splitCommitSignature,
  type SignatureKind,
} from '../../../src/source/trust/index.js';
import { GitRepo, makeSshSigner, tempDir, type SshSigner } from '../../helpers/git.js';
import {
  catCommit,
  commitTree,
  signatureHeaderOf,
  sshSign,
  unsignedCommitText,
  withSignatureHeader,
  writeCommitObject,
} from './fixtures.js';

const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString('utf8');

describe('commit objects', () => {
  const tmp = tempDir();
  let repo: GitRepo;
  let alice: SshSigner;
  let tree: string;
  let signed: string;
  let unsignedTwin: string;
  let root: string;

  before(() => {
    alice = makeSshSigner(tmp.path, 'alice@example.org', 'ed25519');
    repo = GitRepo.init(join(tmp.path, 'repo'));
    root = repo.write({ 'meshcfg.yaml': 'trustDomain: example.org\n' }).commit('root');
    tree = repo.git('rev-parse', `${root}^{tree}`);
    // Same tree, parent, identities, dates and message: only the signature differs.
    signed = commitTree(repo, tree, 'change config\n\nwith a body line\n', [root], alice);
    unsignedTwin = commitTree(repo, tree, 'change config\n\nwith a body line\n', [root]);
  });

  after(() => tmp.cleanup());

  describe('splitCommitSignature', () => {
    describe('for a commit signed by git', () => {
      it('yields exactly the bytes git signed: the commit without its gpgsig header', () => {
        const { payload } = splitCommitSignature(catCommit(repo, signed));
        assert.notEqual(signed, unsignedTwin);
        assert.ok(Buffer.from(payload).equals(catCommit(repo, unsignedTwin)));
      });

      it('yields a signature ssh-keygen accepts over that payload', () => {
        const { payload, signature } = splitCommitSignature(catCommit(repo, signed));
        const sigFile = join(tmp.path, 'commit.sig');
        writeFileSync(sigFile, signature!.armored);
        // Throws on a non-zero exit, i.e. on a signature ssh-keygen rejects.
        execFileSync('ssh-keygen', ['-Y', 'check-novalidate', '-n', 'git', '-s', sigFile], { input: payload, stdio: ['pipe', 'ignore', 'ignore'] });
      });

      it('yields the gpgsig header value as an SSH signature', () => {
        const { signature } = splitCommitSignature(catCommit(repo, signed));
        assert.deepEqual(signature, {
          kind: 'ssh',
          header: 'gpgsig',
          armored: signatureHeaderOf(catCommit(repo, signed).toString('utf8')),
        });
      });
    });

    describe('for an unsigned commit', () => {
      it('yields the whole object as payload and no signature', () => {
        const raw = catCommit(repo, unsignedTwin);
        const { payload, signature } = splitCommitSignature(raw);
        assert.ok(Buffer.from(payload).equals(raw));
        assert.equal(signature, undefined);
      });
    });

    it('keeps a message line that starts with "gpgsig" in the payload', () => {
      const raw = Buffer.from(unsignedCommitText('subject\n\ngpgsig -----BEGIN SSH SIGNATURE-----\n'));
      const { payload, signature } = splitCommitSignature(raw);
      assert.equal(signature, undefined);
      assert.ok(Buffer.from(payload).equals(raw));
    });

    it('keeps other multi-line headers, such as mergetag, in the payload', () => {
      const unsigned = unsignedCommitText('merge\n').replace('\n\n', '\nmergetag object 1234\n type commit\n tag v1\n\n');
      const armored = sshSign(alice, 'git', unsigned);
      const { payload, signature } = splitCommitSignature(Buffer.from(withSignatureHeader(unsigned, armored)));
      assert.equal(text(payload), unsigned);
      assert.equal(signature?.armored, armored);
    });

    describe('when a commit carries both gpgsig and gpgsig-sha256', () => {
      const unsigned = unsignedCommitText('dual\n');
      const both = (): Buffer =>
        Buffer.from(
          withSignatureHeader(withSignatureHeader(unsigned, sshSign(alice, 'git', 'sha1 view')), sshSign(alice, 'git', 'sha256 view'), 'gpgsig-sha256'),
        );

      it('in a SHA-1 repository takes gpgsig and drops both from the payload', () => {
        const { payload, signature } = splitCommitSignature(both(), 'sha1');
        assert.equal(text(payload), unsigned);
        assert.equal(signature?.header, 'gpgsig');
        assert.equal(signature?.armored, signatureHeaderOf(both().toString('utf8'), 'gpgsig'));
      });

      it('in a SHA-256 repository takes gpgsig-sha256 and drops both from the payload', () => {
        const { payload, signature } = splitCommitSignature(both(), 'sha256');
        assert.equal(text(payload), unsigned);
        assert.equal(signature?.header, 'gpgsig-sha256');
        assert.equal(signature?.armored, signatureHeaderOf(both().toString('utf8'), 'gpgsig-sha256'));
      });

      it('treats a SHA-1 commit signed only with gpgsig-sha256 as unsigned', () => {
        const onlySha256 = withSignatureHeader(unsigned, sshSign(alice, 'git', unsigned), 'gpgsig-sha256');
        const { payload, signature } = splitCommitSignature(Buffer.from(onlySha256), 'sha1');
        assert.equal(signature, undefined);
        assert.equal(text(payload), unsigned);
      });
    });
  });

  describe('signatureKind', () => {
    const cases: Array<[armor: string, kind: SignatureKind]> = [
      ['-----BEGIN SSH SIGNATURE-----\n', 'ssh'],
      ['-----BEGIN PGP SIGNATURE-----\n', 'openpgp'],
      ['-----BEGIN PGP MESSAGE-----\n', 'openpgp'],
      ['-----BEGIN SIGNED MESSAGE-----\n', 'x509'],
      ['-----BEGIN CERTIFICATE-----\n', 'unknown'],
      ['', 'unknown'],
    ];
    for (const [armor, kind] of cases) {
      it(`recognises ${JSON.stringify(armor.trim())} as ${kind}`, () => assert.equal(signatureKind(armor), kind));
    }
  });

  describe('parseCommitFields', () => {
    it('reads tree, parents, committer time and message as git reports them', () => {
      const side = commitTree(repo, tree, 'side\n', [root]);
      const merge = commitTree(repo, tree, 'merge side\n', [signed, side]);
      const fields = parseCommitFields(catCommit(repo, merge));
      assert.equal(fields.tree, tree);
      assert.deepEqual(fields.parents, [signed, side]);
      assert.equal(fields.committedAt.getTime() / 1000, Number(repo.git('show', '-s', '--format=%ct', merge)));
      assert.equal(fields.message, 'merge side\n');
    });

    const malformed: Array<[name: string, commit: () => string]> = [
      ['no tree line', () => unsignedCommitText('x\n').replace(/^tree .*\n/, '')],
      ['a tree id that is not hex', () => unsignedCommitText('x\n', [], 'z'.repeat(40))],
      ['a parent id that is not hex', () => unsignedCommitText('x\n', ['abc'])],
      ['no committer', () => unsignedCommitText('x\n').replace(/committer .*\n/, '')],
      ['two committers', () => unsignedCommitText('x\n').replace(/(committer .*\n)/, '$1$1')],
      ['a committer without timestamp', () => unsignedCommitText('x\n').replace(/committer .*\n/, 'committer A <a@b>\n')],
    ];
    for (const [name, commit] of malformed) {
      it(`refuses a commit with ${name} with MALFORMED_COMMIT`, () => {
        assert.throws(
          () => parseCommitFields(Buffer.from(commit())),
          (err: unknown) => err instanceof TrustError && err.code === 'MALFORMED_COMMIT',
        );
      });
    }
  });

  describe('commitObjectId', () => {
    it('computes the id git gives the object, signed or not', () => {
      for (const sha of [signed, unsignedTwin, root]) assert.equal(commitObjectId(catCommit(repo, sha)), sha);
    });

    it('matches git hash-object for a hand-written object', () => {
      const content = unsignedCommitText('hand written\n');
      assert.equal(commitObjectId(Buffer.from(content)), writeCommitObject(repo, content));
    });
  });
});
