import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import forge from 'node-forge';
import { PkiError, type PkiErrorCode } from '../../src/domain/errors.js';
import { type CaMaterial, createCa, EnrollmentCa, generateRsaKeyPair, randomSerialHex } from '../../src/pki/ca.js';
import { agentIdFromCertificate, certificateExpiry, parseSubjectAltName, serverNamesOfCertificate } from '../../src/pki/identity.js';
import { tempDir } from '../helpers/git.js';
import { type AgentKey, fixedClock, forgeCsr, hasOpenssl, opensslCsr, opensslEcCsr, rsaKey, timed } from './helpers.js';
import { aid } from '../helpers/ids.js';

const T0 = new Date('2030-01-01T00:00:00.000Z');
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const OID_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const OID_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';

function pkiCode(code: PkiErrorCode): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof PkiError, `expected a PkiError, got ${String(err)}`);
    assert.equal(err.code, code);
    return true;
  };
}

/** Seconds precision: X.509 UTCTime drops milliseconds. */
function seconds(d: Date | string): number {
  return Math.floor(new Date(d).getTime() / 1000);
}

describe('createCa', () => {
  let material: CaMaterial;
  before(async () => {
    material = await createCa({ trustDomain: 'example.org', now: () => T0 });
  });

  it('makes a self-signed RSA-2048 CA named after the trust domain', () => {
    const cert = new X509Certificate(material.certPem);
    assert.equal(cert.subject, 'CN=meshcfg enrollment CA example.org');
    assert.equal(cert.issuer, cert.subject);
    assert.equal(cert.ca, true);
    assert.ok(cert.verify(cert.publicKey));
    assert.equal(cert.publicKey.asymmetricKeyType, 'rsa');
    assert.equal(cert.publicKey.asymmetricKeyDetails?.modulusLength, 2048);
    assert.ok(createPublicKey(material.keyPem).equals(cert.publicKey));
  });

  it('limits the CA to signing certificates and CRLs, and end-entity certificates only', () => {
    const cert = forge.pki.certificateFromPem(material.certPem);
    assert.deepEqual(
      pick(cert.getExtension('basicConstraints'), ['cA', 'pathLenConstraint', 'critical']),
      { cA: true, pathLenConstraint: 0, critical: true },
    );
    assert.deepEqual(
      pick(cert.getExtension('keyUsage'), ['keyCertSign', 'cRLSign', 'digitalSignature', 'critical']),
      { keyCertSign: true, cRLSign: true, digitalSignature: false, critical: true },
    );
  });

  it('is valid from five minutes before now for about ten years', () => {
    const cert = new X509Certificate(material.certPem);
    assert.equal(seconds(cert.validFrom), seconds(new Date(T0.getTime() - 5 * MINUTE)));
    assert.equal(seconds(cert.validTo), seconds(new Date(T0.getTime() + 3650 * 24 * HOUR)));
  });

  it('refuses a trust domain that is not a SPIFFE trust domain with NAME_INVALID', async () => {
    for (const trustDomain of ['Example.org', 'example.org/agent', '', 'a b']) {
      await assert.rejects(createCa({ trustDomain }), pkiCode('NAME_INVALID'), trustDomain);
    }
  });
});

describe('EnrollmentCa', () => {
  const tmp = tempDir('meshcfg-pki-');
  const clock = fixedClock(T0);
  let material: CaMaterial;
  let ca: EnrollmentCa;
  let caCert: X509Certificate;
  let agentKey: AgentKey;

  before(async () => {
    material = await createCa({ trustDomain: 'example.org', now: clock.now });
    ca = new EnrollmentCa(material, { now: clock.now });
    caCert = new X509Certificate(material.certPem);
    agentKey = rsaKey();
  });
  after(() => tmp.cleanup());

  describe('when loaded', () => {
    it('reads the trust domain from the CA certificate', () => {
      assert.equal(ca.trustDomain, 'example.org');
    });

    it('refuses a key that does not belong to the certificate with CERTIFICATE_INVALID', async () => {
      const other = await generateRsaKeyPair();
      assert.throws(() => new EnrollmentCa({ certPem: material.certPem, keyPem: other.privateKeyPem }), pkiCode('CERTIFICATE_INVALID'));
    });

    it('refuses a certificate that is not a CA with CERTIFICATE_INVALID', async () => {
      const server = await generateRsaKeyPair();
      const leaf = ca.issueServerCertificate({ serverNames: ['localhost'], publicKeyPem: server.publicKeyPem });
      assert.throws(() => new EnrollmentCa({ certPem: leaf.certPem, keyPem: server.privateKeyPem }), pkiCode('CERTIFICATE_INVALID'));
    });
  });

  describe("with signer 'node' (the default: node:crypto signs forge's TBSCertificate)", () => {
    it('issues the certificate the forge signer issues: same profile, a valid signature by the CA', () => {
      const native = new EnrollmentCa(material, { now: clock.now });
      const pureJs = new EnrollmentCa(material, { now: clock.now, signer: 'forge' });
      const csrPem = forgeCsr(agentKey);
      const fromForge = pureJs.issueAgentCertificate({ csrPem, agentId: aid('edge-1') });
      const fromNode = native.issueAgentCertificate({ csrPem, agentId: aid('edge-1') });
      const [a, b] = [new X509Certificate(fromForge.certPem), new X509Certificate(fromNode.certPem)];
      assert.ok(b.verify(caCert.publicKey));
      assert.ok(b.checkIssued(caCert));
      for (const field of ['subject', 'issuer', 'subjectAltName', 'validFrom', 'validTo', 'ca', 'keyUsage'] as const) {
        assert.deepEqual(b[field], a[field], field);
      }
      assert.ok(b.publicKey.equals(a.publicKey));
      assert.notEqual(fromNode.serialNumber, fromForge.serialNumber);
      // Everything but the serial (and so the signature) is the same DER.
      const tbs = (pem: string, serial: string): string => {
        const cert = forge.pki.certificateFromPem(pem);
        assert.equal(cert.serialNumber, serial);
        cert.serialNumber = '01';
        const getTbs = (forge.pki as unknown as { getTBSCertificate(c: forge.pki.Certificate): forge.asn1.Asn1 }).getTBSCertificate;
        return forge.asn1.toDer(getTbs(cert)).toHex();
      };
      assert.equal(tbs(fromNode.certPem, fromNode.serialNumber), tbs(fromForge.certPem, fromForge.serialNumber));
      assert.equal(forge.pki.certificateFromPem(fromNode.certPem).siginfo.algorithmOid, forge.pki.oids['sha256WithRSAEncryption']);
    });
  });

  describe('issueAgentCertificate', () => {
    describe('given a valid CSR that asks for another identity', () => {
      let cert: X509Certificate;
      before(() => {
        const csrPem = forgeCsr(agentKey, {
          commonName: 'edge-admin',
          uris: ['spiffe://example.org/agent/edge-admin', 'spiffe://other.org/agent/x'],
          dnsNames: ['meshcfg.example.org'],
        });
        cert = new X509Certificate(ca.issueAgentCertificate({ csrPem, agentId: aid('edge-1') }).certPem);
      });

      it('sets exactly one SAN, the SPIFFE URI of the enrolled agent', () => {
        assert.equal(cert.subjectAltName, 'URI:spiffe://example.org/agent/edge-1');
        assert.equal(agentIdFromCertificate(cert, 'example.org'), 'edge-1');
      });

      it('sets CN to the agent id and nothing else in the subject', () => {
        assert.equal(cert.subject, 'CN=edge-1');
      });

      it('certifies the key of the CSR', () => {
        assert.ok(cert.publicKey.equals(createPublicKey(agentKey.publicKeyPem)));
      });

      it('is a client-authentication leaf certificate', () => {
        assert.equal(cert.ca, false);
        assert.deepEqual(cert.keyUsage, [OID_CLIENT_AUTH]);
      });

      it('verifies against the CA key and names the CA as issuer', () => {
        assert.ok(cert.verify(caCert.publicKey));
        assert.ok(cert.checkIssued(caCert));
        assert.equal(cert.issuer, caCert.subject);
      });

      it('does not verify against another CA', async () => {
        const other = new X509Certificate((await createCa({ trustDomain: 'example.org' })).certPem);
        assert.equal(cert.verify(other.publicKey), false);
      });
    });

    it('is valid from now - 5 minutes to now + 24h by default', () => {
      const issued = ca.issueAgentCertificate({ csrPem: forgeCsr(agentKey), agentId: aid('edge-1') });
      const cert = new X509Certificate(issued.certPem);
      assert.equal(seconds(cert.validFrom), seconds(new Date(T0.getTime() - 5 * MINUTE)));
      assert.equal(seconds(cert.validTo), seconds(new Date(T0.getTime() + 24 * HOUR)));
      assert.equal(seconds(certificateExpiry(issued.certPem)), seconds(issued.notAfter));
    });

    it('honours a shorter ttl and caps a longer one at the configured lifetime', () => {
      const short = ca.issueAgentCertificate({ csrPem: forgeCsr(agentKey), agentId: aid('edge-1'), ttlMs: HOUR });
      assert.equal(seconds(short.notAfter), seconds(new Date(T0.getTime() + HOUR)));
      const long = ca.issueAgentCertificate({ csrPem: forgeCsr(agentKey), agentId: aid('edge-1'), ttlMs: 30 * 24 * HOUR });
      assert.equal(seconds(long.notAfter), seconds(new Date(T0.getTime() + 24 * HOUR)));
    });

    it('gives every certificate a different serial, as the certificate shows it', () => {
      const serials = new Set<string>();
      for (let i = 0; i < 5; i++) {
        const issued = ca.issueAgentCertificate({ csrPem: forgeCsr(agentKey), agentId: aid('edge-1') });
        assert.equal(BigInt(`0x${new X509Certificate(issued.certPem).serialNumber}`), BigInt(`0x${issued.serialNumber}`));
        serials.add(issued.serialNumber);
      }
      assert.equal(serials.size, 5);
    });

    it('ignores the identity an openssl-made CSR asks for', { skip: !hasOpenssl && 'openssl not installed' }, () => {
      const csrPem = opensslCsr(tmp.path, agentKey, '/CN=edge-admin/O=meshcfg', 'URI:spiffe://example.org/agent/edge-admin,DNS:evil.example');
      const cert = new X509Certificate(ca.issueAgentCertificate({ csrPem, agentId: aid('edge-2') }).certPem);
      assert.equal(cert.subjectAltName, 'URI:spiffe://example.org/agent/edge-2');
      assert.equal(cert.subject, 'CN=edge-2');
    });

    describe('refuses', () => {
      it('a CSR whose signature was tampered with, with CSR_INVALID', () => {
        const der = csrDer(forgeCsr(agentKey));
        der[der.length - 1] = (der[der.length - 1] ?? 0) ^ 0x01;
        assert.throws(() => ca.issueAgentCertificate({ csrPem: toPem(der), agentId: aid('edge-1') }), pkiCode('CSR_INVALID'));
      });

      it('a CSR whose subject was changed after signing, with CSR_INVALID', () => {
        const der = csrDer(forgeCsr(agentKey, { commonName: 'edge-aaaa' }));
        const at = der.indexOf('edge-aaaa');
        assert.ok(at > 0);
        der.write('edge-bbbb', at, 'latin1');
        assert.throws(() => ca.issueAgentCertificate({ csrPem: toPem(der), agentId: aid('edge-1') }), pkiCode('CSR_INVALID'));
      });

      it('a CSR with the public key of someone else, with CSR_INVALID', () => {
        const victim = rsaKey();
        // Swap the victim's SubjectPublicKeyInfo in, keep the attacker's signature.
        const spkiDer = (pem: string) => createPublicKey(pem).export({ type: 'spki', format: 'der' });
        const der = csrDer(forgeCsr(agentKey));
        const at = der.indexOf(spkiDer(agentKey.publicKeyPem));
        assert.ok(at > 0);
        spkiDer(victim.publicKeyPem).copy(der, at);
        const csrPem = toPem(der);
        assert.throws(() => ca.issueAgentCertificate({ csrPem, agentId: aid('edge-1') }), pkiCode('CSR_INVALID'));
      });

      it('an EC CSR with KEY_UNSUPPORTED, not a crash', { skip: !hasOpenssl && 'openssl not installed' }, () => {
        assert.throws(() => ca.issueAgentCertificate({ csrPem: opensslEcCsr(tmp.path), agentId: aid('edge-1') }), pkiCode('KEY_UNSUPPORTED'));
      });

      it('an RSA-1024 CSR with KEY_UNSUPPORTED', () => {
        assert.throws(() => ca.issueAgentCertificate({ csrPem: forgeCsr(rsaKey(1024)), agentId: aid('edge-1') }), pkiCode('KEY_UNSUPPORTED'));
      });

      const notCsrs: Array<[string, () => string]> = [
        ['empty text', () => ''],
        ['random text', () => 'hello'],
        ['a certificate', () => material.certPem],
        ['two CSRs', () => forgeCsr(agentKey) + forgeCsr(agentKey)],
        ['a truncated CSR', () => toPem(csrDer(forgeCsr(agentKey)).subarray(0, 200))],
        ['an oversized blob', () => `-----BEGIN CERTIFICATE REQUEST-----\n${'A'.repeat(20_000)}\n-----END CERTIFICATE REQUEST-----\n`],
      ];
      for (const [name, csrPem] of notCsrs) {
        it(`${name} with CSR_INVALID`, () => {
          assert.throws(() => ca.issueAgentCertificate({ csrPem: csrPem(), agentId: aid('edge-1') }), pkiCode('CSR_INVALID'));
        });
      }

      for (const agentId of ['', 'Edge-1', 'edge_1', '../admin', 'edge-1/x', 'a'.repeat(64)]) {
        it(`agent id ${JSON.stringify(agentId)} with NAME_INVALID`, () => {
          assert.throws(() => ca.issueAgentCertificate({ csrPem: forgeCsr(agentKey), agentId: aid(agentId) }), pkiCode('NAME_INVALID'));
        });
      }

      it('to issue once the CA has expired, with CERTIFICATE_INVALID', () => {
        const late = new EnrollmentCa(material, { now: () => new Date(T0.getTime() + 3651 * 24 * HOUR) });
        assert.throws(() => late.issueAgentCertificate({ csrPem: forgeCsr(agentKey), agentId: aid('edge-1') }), pkiCode('CERTIFICATE_INVALID'));
      });
    });
  });

  describe('issueServerCertificate', () => {
    it('makes IP SANs of names that parse as IP addresses and DNS SANs of the rest', async () => {
      const key = await generateRsaKeyPair();
      const issued = ca.issueServerCertificate({ serverNames: ['localhost', '127.0.0.1', '::1', 'Mesh.Example.org'], publicKeyPem: key.publicKeyPem });
      const cert = new X509Certificate(issued.certPem);
      assert.equal(cert.subjectAltName, 'DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, DNS:mesh.example.org');
      assert.deepEqual(cert.keyUsage, [OID_SERVER_AUTH]);
      assert.equal(cert.ca, false);
      assert.ok(cert.checkIssued(caCert) && cert.verify(caCert.publicKey));
      assert.ok(cert.checkHost('localhost') !== undefined && cert.checkIP('127.0.0.1') !== undefined);
      assert.deepEqual(serverNamesOfCertificate(cert), [
        { kind: 'dns', name: 'localhost' },
        { kind: 'ip', address: '127.0.0.1' },
        { kind: 'ip', address: '0:0:0:0:0:0:0:1' },
        { kind: 'dns', name: 'mesh.example.org' },
      ]);
    });

    it('refuses an EC key with KEY_UNSUPPORTED', () => {
      const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      const publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
      assert.throws(() => ca.issueServerCertificate({ serverNames: ['localhost'], publicKeyPem }), pkiCode('KEY_UNSUPPORTED'));
    });

    for (const serverNames of [[], ['bad name'], ['-leading.example'], ['http://localhost']]) {
      it(`refuses server names ${JSON.stringify(serverNames)} with NAME_INVALID`, () => {
        assert.throws(() => ca.issueServerCertificate({ serverNames, publicKeyPem: agentKey.publicKeyPem }), pkiCode('NAME_INVALID'));
      });
    }
  });

  describe('cost', () => {
    it('reports CA creation and certificate issuance times', async (t) => {
      const created = await timed(() => createCa({ trustDomain: 'example.org' }));
      const csrPem = forgeCsr(agentKey);
      const n = 20;
      const issued = await timed(() => {
        for (let i = 0; i < n; i++) ca.issueAgentCertificate({ csrPem, agentId: aid('edge-1') });
      });
      t.diagnostic(`createCa (RSA-2048 keygen + self-sign): ${created.ms.toFixed(1)} ms`);
      t.diagnostic(`issueAgentCertificate (CSR verify + sign), mean of ${n}: ${(issued.ms / n).toFixed(1)} ms`);
    });
  });
});

describe('randomSerialHex', () => {
  it('is a positive, DER-minimal INTEGER of up to 128 random bits, different each time', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const hex = randomSerialHex();
      assert.match(hex, /^(?:[0-9a-f]{2})+$/);
      const first = parseInt(hex.slice(0, 2), 16);
      const second = parseInt(hex.slice(2, 4), 16);
      // Positive: top bit clear. Minimal: a leading zero byte only where the next byte needs it.
      assert.ok(first < 0x80, hex);
      if (first === 0) assert.ok(second >= 0x80, hex);
      assert.ok(hex.length <= 34, hex);
      seen.add(hex);
    }
    assert.equal(seen.size, 2000);
  });
});

describe('agentIdFromCertificate', () => {
  const key = forge.pki.privateKeyFromPem(rsaKey().privateKeyPem);
  /** A certificate with exactly these SANs; who signed it is irrelevant to identity parsing. */
  function certWith(altNames: Array<{ type: number; value: string }>): string {
    const cert = forge.pki.createCertificate();
    cert.publicKey = forge.pki.setRsaPublicKey(key.n, key.e);
    cert.serialNumber = '01';
    cert.validity.notBefore = T0;
    cert.validity.notAfter = new Date(T0.getTime() + HOUR);
    cert.setSubject([{ name: 'commonName', value: 'edge-1' }]);
    cert.setIssuer([{ name: 'commonName', value: 'anyone' }]);
    if (altNames.length > 0) cert.setExtensions([{ name: 'subjectAltName', altNames }]);
    cert.sign(key, forge.md.sha256.create());
    return forge.pki.certificateToPem(cert);
  }
  const uri = (value: string) => ({ type: 6, value });

  it('reads the id from the one SPIFFE URI SAN, from PEM, DER or a parsed certificate', () => {
    const pem = certWith([uri('spiffe://example.org/agent/edge-1'), { type: 2, value: 'edge-1.example.org' }]);
    const x509 = new X509Certificate(pem);
    for (const input of [pem, x509, x509.raw]) assert.equal(agentIdFromCertificate(input, 'example.org'), 'edge-1');
  });

  const refusals: Array<[string, Array<{ type: number; value: string }>, PkiErrorCode]> = [
    ['no SAN at all', [], 'IDENTITY_MISSING'],
    ['only a DNS SAN', [{ type: 2, value: 'edge-1' }], 'IDENTITY_MISSING'],
    ['two URI SANs', [uri('spiffe://example.org/agent/edge-1'), uri('spiffe://example.org/agent/edge-2')], 'IDENTITY_AMBIGUOUS'],
    ['a foreign URI next to ours', [uri('spiffe://example.org/agent/edge-1'), uri('https://example.org')], 'IDENTITY_AMBIGUOUS'],
    ['another trust domain', [uri('spiffe://other.org/agent/edge-1')], 'IDENTITY_FOREIGN'],
    ['a trust domain that only starts like ours', [uri('spiffe://example.org.evil/agent/edge-1')], 'IDENTITY_FOREIGN'],
    ['a path below the agent', [uri('spiffe://example.org/agent/edge-1/x')], 'IDENTITY_FOREIGN'],
    ['an empty agent id', [uri('spiffe://example.org/agent/')], 'IDENTITY_FOREIGN'],
    ['a non-agent workload', [uri('spiffe://example.org/server/edge-1')], 'IDENTITY_FOREIGN'],
    ['a non-SPIFFE URI', [uri('https://example.org/agent/edge-1')], 'IDENTITY_FOREIGN'],
    ['a URI smuggling a second SAN through a comma', [uri('spiffe://other.org/x, URI:spiffe://example.org/agent/edge-1')], 'IDENTITY_FOREIGN'],
  ];
  for (const [name, altNames, code] of refusals) {
    it(`refuses ${name} with ${code}`, () => {
      assert.throws(() => agentIdFromCertificate(certWith(altNames), 'example.org'), pkiCode(code));
    });
  }

  it('refuses bytes that are not a certificate with CERTIFICATE_INVALID', () => {
    assert.throws(() => agentIdFromCertificate(Buffer.from('nope'), 'example.org'), pkiCode('CERTIFICATE_INVALID'));
  });
});

describe('parseSubjectAltName', () => {
  const cases: Array<[string, Array<{ type: string; value: string }>]> = [
    ['', []],
    ['URI:spiffe://a/agent/b', [{ type: 'URI', value: 'spiffe://a/agent/b' }]],
    ['DNS:a, IP Address:127.0.0.1', [{ type: 'DNS', value: 'a' }, { type: 'IP Address', value: '127.0.0.1' }]],
    ['URI:"spiffe://x\\u002c URI:spiffe://y", DNS:z', [{ type: 'URI', value: 'spiffe://x, URI:spiffe://y' }, { type: 'DNS', value: 'z' }]],
  ];
  for (const [text, want] of cases) {
    it(`parses ${JSON.stringify(text)}`, () => assert.deepEqual(parseSubjectAltName(text), want));
  }

  for (const text of ['URI', 'URI:"unterminated', 'URI:"a"x']) {
    it(`refuses ${JSON.stringify(text)} with CERTIFICATE_INVALID`, () => {
      assert.throws(() => parseSubjectAltName(text), pkiCode('CERTIFICATE_INVALID'));
    });
  }
});

function pick(value: unknown, keys: string[]): Record<string, unknown> {
  assert.ok(typeof value === 'object' && value !== null);
  const record = value as Record<string, unknown>;
  return Object.fromEntries(keys.map((k) => [k, record[k] ?? false]));
}

function csrDer(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
}

function toPem(der: Buffer): string {
  const body = der.toString('base64').replace(/.{1,64}/g, '$&\n');
  return `-----BEGIN CERTIFICATE REQUEST-----\n${body}-----END CERTIFICATE REQUEST-----\n`;
}
