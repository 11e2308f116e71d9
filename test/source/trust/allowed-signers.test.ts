import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TrustError } from '../../../src/domain/errors.js';
import {
  authorizeKey,
  loadAllowedSigners,
  parseAllowedSigners,
  type AllowedSigners,
  type SshPublicKey,
} from '../../../src/source/trust/index.js';
import { makeSshSigner, tempDir } from '../../helpers/git.js';

const SOURCE = 'test-allowed-signers';

/**
 * A refusal must say which line is wrong. The `<source>:<line>:` prefix is that contract
 * (the same form as ssh-keygen's messages); the wording after it is free.
 */
function assertRefusedAtLine(text: string, line: number): void {
  assert.throws(
    () => parseAllowedSigners(text, SOURCE),
    (err: unknown) => {
      assert.ok(err instanceof TrustError);
      assert.equal(err.code, 'MALFORMED_ALLOWED_SIGNERS');
      assert.ok(err.message.startsWith(`${SOURCE}:${line}:`), `does not name line ${line}: ${err.message}`);
      return true;
    },
  );
}

function only(list: AllowedSigners): AllowedSigners['signers'][number] {
  assert.equal(list.signers.length, 1);
  return list.signers[0]!;
}

describe('allowed signers', () => {
  const tmp = tempDir();
  /** `keytype base64` of real keys, by name. */
  const keys: Record<string, string> = {};
  const pubFiles: Record<string, string> = {};

  function generate(name: string, type: string, bits?: number): void {
    const path = join(tmp.path, name);
    execFileSync('ssh-keygen', ['-q', '-t', type, ...(bits ? ['-b', String(bits)] : []), '-N', '', '-C', name, '-f', path]);
    pubFiles[name] = `${path}.pub`;
    keys[name] = readFileSync(`${path}.pub`, 'utf8').split(' ').slice(0, 2).join(' ');
  }

  before(() => {
    const alice = makeSshSigner(tmp.path, 'alice', 'ed25519');
    keys.alice = alice.publicKey.split(' ').slice(0, 2).join(' ');
    pubFiles.alice = `${alice.privateKeyPath}.pub`;
    generate('other-ed25519', 'ed25519');
    generate('rsa-2048', 'rsa', 2048);
    generate('rsa-1024', 'rsa', 1024);
    generate('ecdsa-256', 'ecdsa', 256);
    generate('ecdsa-384', 'ecdsa', 384);
    generate('ecdsa-521', 'ecdsa', 521);
  });

  after(() => tmp.cleanup());

  const key = (name: string): string => keys[name]!;

  describe('parseAllowedSigners', () => {
    describe('for a well-formed file', () => {
      it('reads the principals, key and comment of a line', () => {
        const signer = only(parseAllowedSigners(`alice@example.org ${key('alice')} laptop key\n`, SOURCE));
        assert.deepEqual(signer.principals, ['alice@example.org']);
        assert.equal(signer.key.type, 'ssh-ed25519');
        assert.equal(signer.comment, 'laptop key');
        assert.equal(signer.line, 1);
        assert.equal(signer.namespaces, undefined);
        assert.equal(signer.certAuthority, false);
      });

      for (const name of ['alice', 'rsa-2048', 'ecdsa-256', 'ecdsa-384', 'ecdsa-521']) {
        it(`computes the fingerprint ssh-keygen -l prints (${name})`, () => {
          const expected = execFileSync('ssh-keygen', ['-l', '-f', pubFiles[name]!], { encoding: 'utf8' }).split(' ')[1];
          assert.equal(only(parseAllowedSigners(`x ${key(name)}`, SOURCE)).key.fingerprint, expected);
        });
      }

      it('skips comments, blank lines and indentation, and accepts CRLF line ends', () => {
        const text = `# the team\r\n\r\n   \t\n  alice@example.org ${key('alice')}\r\n# bob ${key('rsa-2048')}\n`;
        const signer = only(parseAllowedSigners(text, SOURCE));
        assert.deepEqual(signer.principals, ['alice@example.org']);
        assert.equal(signer.line, 4);
      });

      it('reads a quoted principals field, which may hold spaces', () => {
        const signer = only(parseAllowedSigners(`"Alice Smith <alice@example.org>" ${key('alice')}`, SOURCE));
        assert.deepEqual(signer.principals, ['Alice Smith <alice@example.org>']);
      });

      it('keeps comma-separated principals and wildcards as patterns', () => {
        const signer = only(parseAllowedSigners(`alice@example.org,*@ops.example.org,bot-?? ${key('alice')}`, SOURCE));
        assert.deepEqual(signer.principals, ['alice@example.org', '*@ops.example.org', 'bot-??']);
      });

      it('reads namespaces, valid-after and valid-before, option names in any case', () => {
        const text = `alice NameSpaces="git,file",Valid-After="20240101Z",valid-before="20250630120000Z" ${key('alice')}`;
        const signer = only(parseAllowedSigners(text, SOURCE));
        assert.deepEqual(signer.namespaces, ['git', 'file']);
        assert.equal(signer.validAfter?.toISOString(), '2024-01-01T00:00:00.000Z');
        assert.equal(signer.validBefore?.toISOString(), '2025-06-30T12:00:00.000Z');
      });

      it('reads times without Z in local time, as ssh-keygen does', () => {
        const signer = only(parseAllowedSigners(`alice valid-after="202401020304" ${key('alice')}`, SOURCE));
        assert.equal(signer.validAfter?.getTime(), new Date(2024, 0, 2, 3, 4, 0).getTime());
      });

      it('keeps an escaped quote inside an option value', () => {
        const signer = only(parseAllowedSigners(`alice namespaces="a\\"b,git" ${key('alice')}`, SOURCE));
        assert.deepEqual(signer.namespaces, ['a"b', 'git']);
      });

      it('keeps cert-authority lines, marked as such', () => {
        const signer = only(parseAllowedSigners(`*@example.org cert-authority ${key('alice')}`, SOURCE));
        assert.equal(signer.certAuthority, true);
      });

      it('reads every line of a larger file, in order', () => {
        const text = [
          `alice ${key('alice')}`,
          `rsa ${key('rsa-2048')}`,
          `p256 ${key('ecdsa-256')}`,
          `p384 ${key('ecdsa-384')}`,
          `p521 ${key('ecdsa-521')}`,
        ].join('\n');
        const list = parseAllowedSigners(text, SOURCE);
        assert.deepEqual(
          list.signers.map((s) => [s.line, s.key.type]),
          [
            [1, 'ssh-ed25519'],
            [2, 'ssh-rsa'],
            [3, 'ecdsa-sha2-nistp256'],
            [4, 'ecdsa-sha2-nistp384'],
            [5, 'ecdsa-sha2-nistp521'],
          ],
        );
      });
    });

    describe('for a malformed line', () => {
      const truncatedEd25519 = (): string =>
        `ssh-ed25519 ${Buffer.from(key('alice').split(' ')[1]!, 'base64').subarray(0, 40).toString('base64')}`;
      const cases: Array<{ name: string; line: () => string }> = [
        { name: 'principals without a key', line: () => 'bob@example.org' },
        { name: 'options without a key', line: () => 'bob@example.org namespaces="git"' },
        { name: 'an unknown option', line: () => `bob frobnicate ${key('alice')}` },
        { name: 'an unquoted option value', line: () => `bob namespaces=git ${key('alice')}` },
        { name: 'an option value without end quote', line: () => `bob namespaces="git ${key('alice')}` },
        { name: 'an option given twice', line: () => `bob namespaces="git",namespaces="file" ${key('alice')}` },
        { name: 'options ending with a comma', line: () => `bob namespaces="git", ${key('alice')}` },
        { name: 'cert-authority with a value', line: () => `bob cert-authority="yes" ${key('alice')}` },
        { name: 'unterminated quoted principals', line: () => `"bob smith ${key('alice')}` },
        { name: 'text glued to quoted principals', line: () => `"bob"x ${key('alice')}` },
        { name: 'an empty principal', line: () => `alice,,bob ${key('alice')}` },
        { name: 'a key that is not base64', line: () => 'bob ssh-ed25519 not*base64' },
        { name: 'a truncated key', line: truncatedEd25519 },
        { name: 'a key type field that disagrees with the key', line: () => `bob ssh-rsa ${key('alice').split(' ')[1]}` },
        { name: 'an unknown key type', line: () => 'bob ssh-foo AAAAB3NzaC1mb28=' },
        { name: 'a DSA key', line: () => 'bob ssh-dss AAAAB3NzaC1kc3M=' },
        { name: 'a FIDO security key', line: () => 'bob sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29t' },
        { name: 'an RSA key under 2048 bits', line: () => `bob ${key('rsa-1024')}` },
        { name: 'an impossible date', line: () => `bob valid-after="20230231" ${key('alice')}` },
        { name: 'a date of the wrong length', line: () => `bob valid-after="2023011" ${key('alice')}` },
        {
          name: 'valid-before not after valid-after',
          line: () => `bob valid-after="20240101Z",valid-before="20230101Z" ${key('alice')}`,
        },
      ];

      for (const { name, line } of cases) {
        it(`refuses ${name} with MALFORMED_ALLOWED_SIGNERS naming the line`, () => {
          assertRefusedAtLine(`# team\nalice ${key('alice')}\n${line()}\n`, 3);
        });
      }
    });

    it('refuses a file that lists no signer with MALFORMED_ALLOWED_SIGNERS', () => {
      assert.throws(
        () => parseAllowedSigners('# nobody yet\n\n', SOURCE),
        (err: unknown) => err instanceof TrustError && err.code === 'MALFORMED_ALLOWED_SIGNERS',
      );
    });
  });

  describe('loadAllowedSigners', () => {
    it('reads the file at a path and names it as the source', async () => {
      const path = join(tmp.path, 'allowed_signers');
      execFileSync('sh', ['-c', `printf '%s\\n' "alice ${key('alice')}" > "${path}"`]);
      const list = await loadAllowedSigners(path);
      assert.equal(list.source, path);
      assert.equal(list.signers.length, 1);
    });

    it('refuses an unreadable file with MALFORMED_ALLOWED_SIGNERS', async () => {
      await assert.rejects(
        loadAllowedSigners(join(tmp.path, 'does-not-exist')),
        (err: unknown) => err instanceof TrustError && err.code === 'MALFORMED_ALLOWED_SIGNERS',
      );
    });
  });

  describe('authorizeKey', () => {
    const now = new Date('2026-01-01T00:00:00Z');
    const parse = (text: string): AllowedSigners => parseAllowedSigners(text, SOURCE);
    const aliceKey = (): SshPublicKey => parse(`alice ${key('alice')}`).signers[0]!.key;

    it('allows a listed key in an allowed namespace within its window', () => {
      const decision = authorizeKey(parse(`alice namespaces="git" ${key('alice')}`), aliceKey(), 'git', now);
      assert.equal(decision.kind, 'allowed');
    });

    it('finds nothing for a key that is not listed', () => {
      const decision = authorizeKey(parse(`other ${key('other-ed25519')}`), aliceKey(), 'git', now);
      assert.equal(decision.kind, 'unknown-key');
    });

    it('says namespace-excluded when only namespaces= keeps the key out', () => {
      const decision = authorizeKey(parse(`alice namespaces="file" ${key('alice')}`), aliceKey(), 'git', now);
      assert.deepEqual(decision, { kind: 'namespace-excluded', lines: [1] });
    });

    it('lets a negated namespace pattern exclude "git"', () => {
      const decision = authorizeKey(parse(`alice namespaces="!git,*" ${key('alice')}`), aliceKey(), 'git', now);
      assert.equal(decision.kind, 'namespace-excluded');
    });

    it('prefers outside-validity over namespace-excluded as the reason', () => {
      const text = `alice namespaces="file" ${key('alice')}\nalice valid-before="20200101Z" ${key('alice')}`;
      assert.deepEqual(authorizeKey(parse(text), aliceKey(), 'git', now), { kind: 'outside-validity', lines: [2] });
    });

    it('takes the first line that passes, in file order', () => {
      const text = [
        `old valid-before="20200101Z" ${key('alice')}`,
        `alice@example.org ${key('alice')}`,
        `alice@corp.example.org ${key('alice')}`,
      ].join('\n');
      const decision = authorizeKey(parse(text), aliceKey(), 'git', now);
      assert.ok(decision.kind === 'allowed');
      assert.deepEqual(decision.signer.principals, ['alice@example.org']);
    });

    it('never lets a cert-authority line vouch for a plain key', () => {
      const decision = authorizeKey(parse(`*@example.org cert-authority ${key('alice')}`), aliceKey(), 'git', now);
      assert.equal(decision.kind, 'unknown-key');
    });
  });
});
