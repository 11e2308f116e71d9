import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PkiError, type PkiErrorCode } from '../../src/domain/errors.js';
import { createCa, EnrollmentCa, generateRsaKeyPair, type RsaKeyPair } from '../../src/pki/ca.js';
import { matchesAnyPin, parsePin, spkiPin } from '../../src/pki/pin.js';
import { tempDir } from '../helpers/git.js';
import { hasOpenssl } from './helpers.js';

function pkiCode(code: PkiErrorCode): (err: unknown) => boolean {
  return (err: unknown) => err instanceof PkiError && err.code === code;
}

describe('spkiPin', () => {
  const tmp = tempDir('meshcfg-pin-');
  let key: RsaKeyPair;
  let certPem: string;

  before(async () => {
    const ca = new EnrollmentCa(await createCa({ trustDomain: 'example.org' }));
    key = await generateRsaKeyPair();
    certPem = ca.issueServerCertificate({ serverNames: ['localhost'], publicKeyPem: key.publicKeyPem }).certPem;
  });
  after(() => tmp.cleanup());

  it('has the form sha256/<base64 of 32 bytes>', () => {
    const pin = spkiPin(certPem);
    assert.match(pin, /^sha256\/[A-Za-z0-9+/]{43}=$/);
    assert.equal(parsePin(pin), pin);
  });

  it('is the same for the certificate in every form and for its public and private key', () => {
    const pin = spkiPin(certPem);
    const x509 = new X509Certificate(certPem);
    for (const input of [x509, x509.raw, key.publicKeyPem, key.privateKeyPem, createPublicKey(key.publicKeyPem), createPrivateKey(key.privateKeyPem)]) {
      assert.equal(spkiPin(input), pin);
    }
  });

  it('differs between keys', async () => {
    assert.notEqual(spkiPin((await generateRsaKeyPair()).publicKeyPem), spkiPin(key.publicKeyPem));
  });

  it('works for EC keys too (it hashes the SPKI, not the EC point)', () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    assert.match(spkiPin(publicKey), /^sha256\//);
  });

  it('equals what the openssl pipeline computes', { skip: !hasOpenssl && 'openssl not installed' }, () => {
    const path = join(tmp.path, 'server.crt');
    writeFileSync(path, certPem);
    const digest = execFileSync(
      'sh',
      ['-c', 'openssl x509 -pubkey -noout -in "$1" | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64', 'sh', path],
      { encoding: 'utf8' },
    ).trim();
    assert.equal(spkiPin(certPem), `sha256/${digest}`);
  });

  it('refuses input that is neither a certificate nor a key with CERTIFICATE_INVALID', () => {
    assert.throws(() => spkiPin('hello'), pkiCode('CERTIFICATE_INVALID'));
    assert.throws(() => spkiPin(Buffer.from('hello')), pkiCode('CERTIFICATE_INVALID'));
  });

  describe('matchesAnyPin', () => {
    it('matches when any pin is the certificate key pin', async () => {
      const raw = new X509Certificate(certPem).raw;
      const other = spkiPin((await generateRsaKeyPair()).publicKeyPem);
      assert.equal(matchesAnyPin(raw, [spkiPin(certPem)]), true);
      assert.equal(matchesAnyPin(raw, [other, spkiPin(certPem)]), true);
      assert.equal(matchesAnyPin(raw, [other]), false);
      assert.equal(matchesAnyPin(raw, []), false);
    });

    it('matches nothing for bytes that are not a certificate', () => {
      assert.equal(matchesAnyPin(Buffer.from('garbage'), [spkiPin(certPem)]), false);
    });
  });
});

describe('parsePin', () => {
  const good = `sha256/${Buffer.alloc(32, 7).toString('base64')}`;

  it('accepts a pin and trims surrounding whitespace', () => {
    assert.equal(parsePin(` ${good}\n`), good);
  });

  const bad: Array<[string, string]> = [
    ['empty', ''],
    ['no algorithm', good.slice('sha256/'.length)],
    ['another algorithm', good.replace('sha256/', 'sha1/')],
    ['base64url alphabet', `sha256/${Buffer.alloc(32, 0xfb).toString('base64url')}=`],
    ['31 bytes', `sha256/${Buffer.alloc(31, 7).toString('base64')}`],
    ['33 bytes', `sha256/${Buffer.alloc(33, 7).toString('base64')}`],
    ['non-canonical last character', `${good.slice(0, -2)}B=`],
    ['hex digest', `sha256/${'ab'.repeat(32)}`],
  ];
  for (const [name, text] of bad) {
    it(`refuses ${name} with PIN_INVALID`, () => {
      assert.throws(() => parsePin(text), pkiCode('PIN_INVALID'));
    });
  }
});
