import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TrustError, type TrustErrorCode } from '../../../src/domain/errors.js';
import { parseSshSignature, verifySshSignature } from '../../../src/source/trust/index.js';
import { tempDir, type SshSigner } from '../../helpers/git.js';
import { sshSign } from './fixtures.js';

// A minimal, independent SSH wire codec, to build the forgeries below.

function str(value: Buffer | string): Buffer {
  const bytes = Buffer.from(value);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

function readStrings(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let offset = 0; offset < buf.length; ) {
    const length = buf.readUInt32BE(offset);
    out.push(buf.subarray(offset + 4, offset + 4 + length));
    offset += 4 + length;
  }
  return out;
}

interface RawSshsig {
  magic: Buffer;
  version: number;
  publicKey: Buffer;
  namespace: Buffer;
  reserved: Buffer;
  hashAlgorithm: Buffer;
  /** string(algorithm) ‖ string(blob) */
  signature: Buffer;
  trailing?: Buffer;
}

function decode(armored: string): RawSshsig {
  const blob = Buffer.from(armored.trim().split('\n').slice(1, -1).join(''), 'base64');
  const [publicKey, namespace, reserved, hashAlgorithm, signature] = readStrings(blob.subarray(10)) as [
    Buffer, Buffer, Buffer, Buffer, Buffer,
  ];
  return { magic: blob.subarray(0, 6), version: blob.readUInt32BE(6), publicKey, namespace, reserved, hashAlgorithm, signature };
}

function encodeBlob(raw: RawSshsig): Buffer {
  const version = Buffer.alloc(4);
  version.writeUInt32BE(raw.version);
  return Buffer.concat([
    raw.magic,
    version,
    ...[raw.publicKey, raw.namespace, raw.reserved, raw.hashAlgorithm, raw.signature].map(str),
    raw.trailing ?? Buffer.alloc(0),
  ]);
}

function armor(blob: Buffer): string {
  const body = blob.toString('base64').match(/.{1,70}/g) ?? [];
  return ['-----BEGIN SSH SIGNATURE-----', ...body, '-----END SSH SIGNATURE-----', ''].join('\n');
}

const encode = (raw: RawSshsig): string => armor(encodeBlob(raw));

function signatureParts(raw: RawSshsig): { algorithm: string; blob: Buffer } {
  const [algorithm, blob] = readStrings(raw.signature) as [Buffer, Buffer];
  return { algorithm: algorithm.toString(), blob };
}

function withSignature(raw: RawSshsig, algorithm: string, blob: Buffer): RawSshsig {
  return { ...raw, signature: Buffer.concat([str(algorithm), str(blob)]) };
}

function assertRefused(armored: string, code: TrustErrorCode): void {
  assert.throws(
    () => parseSshSignature(armored),
    (err: unknown) => {
      assert.ok(err instanceof TrustError, String(err));
      assert.equal(err.code, code);
      return true;
    },
  );
}

const MESSAGE = Buffer.from('tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n\nhello meshcfg\n');

describe('SSH signatures (sshsig)', () => {
  const tmp = tempDir();
  const signers: Record<string, SshSigner> = {};
  const signatures: Record<string, string> = {};

  function keyPair(name: string, type: 'ed25519' | 'rsa' | 'ecdsa', bits?: number): SshSigner {
    const privateKeyPath = join(tmp.path, name);
    execFileSync('ssh-keygen', ['-q', '-t', type, ...(bits ? ['-b', String(bits)] : []), '-N', '', '-C', name, '-f', privateKeyPath]);
    const publicKey = readFileSync(`${privateKeyPath}.pub`, 'utf8').trim();
    return { principal: name, privateKeyPath, publicKey, keyType: type };
  }

  before(() => {
    signers.ed25519 = keyPair('ed25519', 'ed25519');
    signers.other = keyPair('other', 'ed25519');
    signers.rsa = keyPair('rsa', 'rsa', 2048);
    signers['ecdsa-256'] = keyPair('ecdsa-256', 'ecdsa', 256);
    signers['ecdsa-384'] = keyPair('ecdsa-384', 'ecdsa', 384);
    signers['ecdsa-521'] = keyPair('ecdsa-521', 'ecdsa', 521);
    for (const [name, signer] of Object.entries(signers)) signatures[name] = sshSign(signer, 'git', MESSAGE);
  });

  after(() => tmp.cleanup());

  const signature = (name: string): string => signatures[name]!;
  const publicKeyBlob = (name: string): Buffer => Buffer.from(signers[name]!.publicKey.split(' ')[1]!, 'base64');

  describe('for signatures made by ssh-keygen -Y sign', () => {
    const expected: Array<[name: string, algorithm: string]> = [
      ['ed25519', 'ssh-ed25519'],
      ['rsa', 'rsa-sha2-512'],
      ['ecdsa-256', 'ecdsa-sha2-nistp256'],
      ['ecdsa-384', 'ecdsa-sha2-nistp384'],
      ['ecdsa-521', 'ecdsa-sha2-nistp521'],
    ];
    for (const [name, algorithm] of expected) {
      it(`verifies a ${name} signature and reports its fields`, () => {
        const sig = parseSshSignature(signature(name));
        assert.equal(sig.algorithm, algorithm);
        assert.equal(sig.namespace, 'git');
        assert.equal(sig.hashAlgorithm, 'sha512');
        assert.ok(Buffer.from(sig.publicKey.blob).equals(publicKeyBlob(name)));
        assert.equal(verifySshSignature(sig, MESSAGE), true);
      });
    }

    it('verifies a signature made with hashalg=sha256', () => {
      const sig = parseSshSignature(sshSign(signers.ed25519!, 'git', MESSAGE, 'sha256'));
      assert.equal(sig.hashAlgorithm, 'sha256');
      assert.equal(verifySshSignature(sig, MESSAGE), true);
    });

    it('verifies an rsa-sha2-256 signature', () => {
      const sig = parseSshSignature(execFileSync('ssh-keygen', ['-Y', 'sign', '-f', signers.rsa!.privateKeyPath, '-n', 'git', '-O', 'hashalg=sha256'], { input: MESSAGE, encoding: 'utf8', stdio: ['pipe', 'pipe', 'ignore'] }));
      assert.equal(verifySshSignature(sig, MESSAGE), true);
    });

    it('does not verify over a different message', () => {
      for (const name of ['ed25519', 'rsa', 'ecdsa-256']) {
        assert.equal(verifySshSignature(parseSshSignature(signature(name)), Buffer.from('something else')), false);
      }
    });

    it('does not verify once the namespace field is rewritten', () => {
      const forged = { ...decode(sshSign(signers.ed25519!, 'file', MESSAGE)), namespace: Buffer.from('git') };
      assert.equal(verifySshSignature(parseSshSignature(encode(forged)), MESSAGE), false);
    });

    it('does not verify when the embedded key is swapped for another', () => {
      const forged = { ...decode(signature('ed25519')), publicKey: publicKeyBlob('other') };
      assert.equal(verifySshSignature(parseSshSignature(encode(forged)), MESSAGE), false);
    });

    it('does not verify when ECDSA r and s are swapped', () => {
      const raw = decode(signature('ecdsa-256'));
      const { algorithm, blob } = signatureParts(raw);
      const [r, s] = readStrings(blob) as [Buffer, Buffer];
      const swapped = withSignature(raw, algorithm, Buffer.concat([str(s), str(r)]));
      assert.equal(verifySshSignature(parseSshSignature(encode(swapped)), MESSAGE), false);
    });
  });

  describe('for malformed or unsupported input', () => {
    const fidoKey = (): Buffer => Buffer.concat([str('sk-ssh-ed25519@openssh.com'), str(Buffer.alloc(32, 1)), str('ssh:')]);
    const certKey = (): Buffer => Buffer.concat([str('ssh-ed25519-cert-v01@openssh.com'), str(Buffer.alloc(32))]);
    const cases: Array<{ name: string; armored: () => string; code: TrustErrorCode }> = [
      { name: 'text without armor', armored: () => 'hello', code: 'MALFORMED_SIGNATURE' },
      {
        name: 'armor without its END line',
        armored: () => signature('ed25519').replace('-----END SSH SIGNATURE-----', ''),
        code: 'MALFORMED_SIGNATURE',
      },
      {
        name: 'a body that is not base64',
        armored: () => '-----BEGIN SSH SIGNATURE-----\nU1NI*0lH\n-----END SSH SIGNATURE-----\n',
        code: 'MALFORMED_SIGNATURE',
      },
      {
        name: 'a body cut short',
        armored: () => armor(encodeBlob(decode(signature('ed25519'))).subarray(0, 100)),
        code: 'MALFORMED_SIGNATURE',
      },
      {
        name: 'a wrong magic',
        armored: () => encode({ ...decode(signature('ed25519')), magic: Buffer.from('SSHSIH') }),
        code: 'MALFORMED_SIGNATURE',
      },
      {
        name: 'version 2',
        armored: () => encode({ ...decode(signature('ed25519')), version: 2 }),
        code: 'UNSUPPORTED_SIGNATURE',
      },
      {
        name: 'a length field larger than the data',
        armored: () => armor(Buffer.concat([Buffer.from('SSHSIG'), Buffer.from([0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 1, 2, 3])])),
        code: 'MALFORMED_SIGNATURE',
      },
      {
        name: 'trailing bytes after the signature',
        armored: () => encode({ ...decode(signature('ed25519')), trailing: Buffer.from([0]) }),
        code: 'MALFORMED_SIGNATURE',
      },
      {
        name: 'hash algorithm md5',
        armored: () => encode({ ...decode(signature('ed25519')), hashAlgorithm: Buffer.from('md5') }),
        code: 'MALFORMED_SIGNATURE',
      },
      {
        name: 'more than 64 KiB of armor',
        armored: () => `-----BEGIN SSH SIGNATURE-----\n${'A'.repeat(70 * 1000)}\n-----END SSH SIGNATURE-----\n`,
        code: 'MALFORMED_SIGNATURE',
      },
      {
        name: 'a FIDO security key',
        armored: () => encode({ ...decode(signature('ed25519')), publicKey: fidoKey() }),
        code: 'UNSUPPORTED_SIGNATURE',
      },
      {
        name: 'an SSH certificate',
        armored: () => encode({ ...decode(signature('ed25519')), publicKey: certKey() }),
        code: 'UNSUPPORTED_SIGNATURE',
      },
      {
        name: 'RSA with SHA-1 (ssh-rsa)',
        armored: () => {
          const raw = decode(signature('rsa'));
          return encode(withSignature(raw, 'ssh-rsa', signatureParts(raw).blob));
        },
        code: 'UNSUPPORTED_SIGNATURE',
      },
      {
        name: 'a signature algorithm that does not fit the key',
        armored: () => {
          const raw = decode(signature('ed25519'));
          return encode(withSignature(raw, 'rsa-sha2-512', signatureParts(raw).blob));
        },
        code: 'MALFORMED_SIGNATURE',
      },
      {
        name: 'an Ed25519 signature of the wrong length',
        armored: () => {
          const raw = decode(signature('ed25519'));
          return encode(withSignature(raw, 'ssh-ed25519', signatureParts(raw).blob.subarray(0, 63)));
        },
        code: 'MALFORMED_SIGNATURE',
      },
      {
        name: 'an RSA signature longer than the modulus',
        armored: () => {
          const raw = decode(signature('rsa'));
          return encode(withSignature(raw, 'rsa-sha2-512', Buffer.concat([Buffer.from([1]), signatureParts(raw).blob])));
        },
        code: 'MALFORMED_SIGNATURE',
      },
      {
        name: 'an ECDSA r larger than the curve',
        armored: () => {
          const raw = decode(signature('ecdsa-256'));
          const [, s] = readStrings(signatureParts(raw).blob) as [Buffer, Buffer];
          return encode(withSignature(raw, 'ecdsa-sha2-nistp256', Buffer.concat([str(Buffer.alloc(40, 0x11)), str(s)])));
        },
        code: 'MALFORMED_SIGNATURE',
      },
      {
        name: 'a negative ECDSA s',
        armored: () => {
          const raw = decode(signature('ecdsa-256'));
          const [r] = readStrings(signatureParts(raw).blob) as [Buffer];
          return encode(withSignature(raw, 'ecdsa-sha2-nistp256', Buffer.concat([str(r), str(Buffer.alloc(32, 0x90))])));
        },
        code: 'MALFORMED_SIGNATURE',
      },
      {
        name: 'an ECDSA point that is not on the curve',
        armored: () => {
          const raw = decode(signature('ecdsa-256'));
          const [type, curve, point] = readStrings(raw.publicKey) as [Buffer, Buffer, Buffer];
          const offCurve = Buffer.from(point);
          offCurve[offCurve.length - 1] = offCurve[offCurve.length - 1]! ^ 0x01;
          return encode({ ...raw, publicKey: Buffer.concat([str(type), str(curve), str(offCurve)]) });
        },
        code: 'MALFORMED_SIGNATURE',
      },
      {
        name: 'a public key with trailing bytes',
        armored: () => {
          const raw = decode(signature('ed25519'));
          return encode({ ...raw, publicKey: Buffer.concat([raw.publicKey, Buffer.from([0])]) });
        },
        code: 'MALFORMED_SIGNATURE',
      },
    ];

    for (const { name, armored, code } of cases) {
      it(`refuses ${name} with ${code}`, () => assertRefused(armored(), code));
    }
  });
});
