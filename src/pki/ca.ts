import { createPrivateKey, createPublicKey, generateKeyPair, type KeyObject, randomBytes, sign as nodeSign } from 'node:crypto';
import { promisify } from 'node:util';
import forge from 'node-forge';
import { PkiError } from '../domain/errors.js';
import type { AgentId } from '../domain/types.js';
import { agentSpiffeId, assertTrustDomain, parseServerNames } from './identity.js';
import { isObject, Sealed } from '../lib/index.js';

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;

/** Every certificate starts this far in the past, so a peer whose clock lags still accepts it. */
export const CLOCK_SKEW_MS = 5 * MINUTE_MS;
export const DEFAULT_CA_VALIDITY_MS = 3650 * DAY_MS;
export const DEFAULT_AGENT_CERT_TTL_MS = 24 * HOUR_MS;
export const DEFAULT_SERVER_CERT_TTL_MS = 365 * DAY_MS;

const CA_COMMON_NAME_PREFIX = 'meshcfg enrollment CA ';

/**
 * RSA sizes the CA accepts in a CSR. forge reads and signs RSA only (docs/architecture.md); the upper
 * bound keeps an attacker's CSR from costing seconds of CPU to verify.
 */
const MIN_RSA_BITS = 2048;
const MAX_RSA_BITS = 4096;
/** A CSR for a 4096-bit key is ~1.7 KB of PEM; anything far larger is not a CSR we issue for. */
const MAX_CSR_PEM_CHARS = 16 * 1024;

/** The CA's key and self-signed certificate, PEM. The key is PKCS#8. */
export interface CaMaterial {
  readonly certPem: string;
  readonly keyPem: string;
}

export interface CreateCaOptions {
  readonly trustDomain: string;
  readonly now?: () => Date;
  readonly validityMs?: number;
  /**
   * An existing RSA key (PKCS#8 or PKCS#1 PEM) to certify instead of a new one: a restart
   * that finds the CA key but not its certificate (a crash between the two writes) recovers.
   */
  readonly keyPem?: string;
}

export interface RsaKeyPair {
  /** PKCS#8 PEM. */
  readonly privateKeyPem: string;
  /** SubjectPublicKeyInfo PEM. */
  readonly publicKeyPem: string;
}

const generateKeyPairAsync = promisify(generateKeyPair);

/**
 * An RSA-2048 key pair from node:crypto (native, off the event loop). RSA because every key
 * forge has to hold — the CA's, and every public key it certifies — must be RSA.
 */
export async function generateRsaKeyPair(): Promise<RsaKeyPair> {
  const { privateKey, publicKey } = await generateKeyPairAsync('rsa', { modulusLength: 2048 });
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

/**
 * Creates the self-signed enrollment CA for a trust domain: `CN=meshcfg enrollment CA <td>`,
 * a CA that may sign only end-entity certificates (pathLen 0), ~10 years.
 */
export async function createCa(options: CreateCaOptions): Promise<CaMaterial> {
  assertTrustDomain(options.trustDomain);
  const now = (options.now ?? (() => new Date()))();
  const validityMs = options.validityMs ?? DEFAULT_CA_VALIDITY_MS;
  const keyPem = options.keyPem ?? (await generateRsaKeyPair()).privateKeyPem;
  let key: forge.pki.rsa.PrivateKey;
  try {
    key = forge.pki.privateKeyFromPem(keyPem);
  } catch (cause) {
    throw new PkiError({ code: 'KEY_UNSUPPORTED', message: 'the CA key is not an RSA private key', cause });
  }

  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.setRsaPublicKey(key.n, key.e);
  cert.serialNumber = randomSerialHex();
  cert.validity.notBefore = new Date(now.getTime() - CLOCK_SKEW_MS);
  cert.validity.notAfter = new Date(now.getTime() + validityMs);
  const name = [{ name: 'commonName', value: `${CA_COMMON_NAME_PREFIX}${options.trustDomain}` }];
  cert.setSubject(name);
  cert.setIssuer(name);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(key, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem };
}

export interface EnrollmentCaOptions {
  readonly now?: () => Date;
  /** Lifetime of agent certificates unless a request asks for less. Default 24h. */
  readonly agentCertTtlMs?: number;
  /** Lifetime of server certificates. Default 365 days. */
  readonly serverCertTtlMs?: number;
  /**
   * What computes the signature over the TBSCertificate forge builds: `node` (the default:
   * node:crypto/OpenSSL, ~1.6 ms per RSA-2048 signature) or `forge` (pure JS, ~20–30 ms; the
   * same sha256WithRSAEncryption and byte-for-byte the same certificate profile, which
   * test/pki/ca.test.ts checks). `npm run bench:enroll` measures both.
   */
  readonly signer?: 'forge' | 'node';
}

export interface IssuedCertificate {
  readonly certPem: string;
  /** Hex, as it appears in the certificate. */
  readonly serialNumber: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export interface AgentCertificateRequest {
  /** The agent's CSR. Attacker-controlled: only its public key and self-signature are used. */
  readonly csrPem: string;
  /** The identity the enrollment decision (a consumed token, or a verified client cert) gave. */
  readonly agentId: AgentId;
  /** Shorter than the CA's default if given; never longer. */
  readonly ttlMs?: number;
}

export interface ServerCertificateRequest {
  /** `tls.serverNames`: each becomes an IP SAN if it parses as an IP address, else a DNS SAN. */
  readonly serverNames: readonly string[];
  /** SPKI PEM of an RSA key (forge cannot hold EC public keys). */
  readonly publicKeyPem: string;
}

/**
 * The enrollment CA: issues the server certificate and agent certificates. Identity in an
 * agent certificate comes only from `agentId` — never from the CSR's subject or extensions.
 */
export class EnrollmentCa {
  readonly trustDomain: string;
  readonly certificatePem: string;
  private readonly cert: forge.pki.Certificate;
  /** Sealed: `util.inspect` or JSON (a logger dumping the CA) never shows it. */
  private readonly sealedKey: Sealed<forge.pki.rsa.PrivateKey>;
  /** The same CA key for node:crypto, when `signer` is `node`. */
  private readonly nativeKey: Sealed<KeyObject> | undefined;
  private readonly options: Required<EnrollmentCaOptions>;

  constructor(material: CaMaterial, options: EnrollmentCaOptions = {}) {
    this.options = {
      now: options.now ?? (() => new Date()),
      agentCertTtlMs: options.agentCertTtlMs ?? DEFAULT_AGENT_CERT_TTL_MS,
      serverCertTtlMs: options.serverCertTtlMs ?? DEFAULT_SERVER_CERT_TTL_MS,
      signer: options.signer ?? 'node',
    };
    try {
      this.cert = forge.pki.certificateFromPem(material.certPem);
      this.sealedKey = new Sealed(forge.pki.privateKeyFromPem(material.keyPem));
    } catch (cause) {
      throw new PkiError({ code: 'CERTIFICATE_INVALID', message: 'the CA certificate or key does not parse as RSA PEM', cause });
    }
    const publicKey = this.cert.publicKey;
    if (!isRsaPublicKey(publicKey) || !publicKey.n.equals(this.sealedKey.open().n) || !publicKey.e.equals(this.sealedKey.open().e)) {
      throw new PkiError({ code: 'CERTIFICATE_INVALID', message: 'the CA key does not belong to the CA certificate' });
    }
    const constraints: unknown = this.cert.getExtension('basicConstraints');
    if (!isObject(constraints) || constraints['cA'] !== true) {
      throw new PkiError({ code: 'CERTIFICATE_INVALID', message: 'the CA certificate is not a CA (basicConstraints cA is not set)' });
    }
    const commonName: unknown = this.cert.subject.getField('CN');
    const cn = isObject(commonName) ? commonName['value'] : undefined;
    if (typeof cn !== 'string' || !cn.startsWith(CA_COMMON_NAME_PREFIX)) {
      throw new PkiError({ code: 'CERTIFICATE_INVALID', message: `the CA certificate is not a meshcfg enrollment CA (CN=${String(cn)})` });
    }
    this.trustDomain = cn.slice(CA_COMMON_NAME_PREFIX.length);
    assertTrustDomain(this.trustDomain);
    this.certificatePem = forge.pki.certificateToPem(this.cert);
    this.nativeKey = this.options.signer === 'node' ? new Sealed(createPrivateKey(material.keyPem)) : undefined;
  }

  get notAfter(): Date {
    return this.cert.validity.notAfter;
  }

  issueServerCertificate(request: ServerCertificateRequest): IssuedCertificate {
    const names = parseServerNames(request.serverNames);
    const publicKey = rsaPublicKeyFromPem(request.publicKeyPem);
    return this.issue({
      publicKey,
      commonName: 'meshcfg server',
      ttlMs: this.options.serverCertTtlMs,
      extensions: [
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
        { name: 'extKeyUsage', serverAuth: true },
        {
          name: 'subjectAltName',
          altNames: names.map((n) => (n.kind === 'ip' ? { type: 7, ip: n.address } : { type: 2, value: n.name })),
        },
      ],
    });
  }

  /**
   * Verifies the CSR's self-signature (proof that the requester holds the key) and certifies
   * its public key as `spiffe://<trustDomain>/agent/<agentId>`, CN=<agentId>, clientAuth.
   * Throws CSR_INVALID, KEY_UNSUPPORTED or NAME_INVALID.
   */
  issueAgentCertificate(request: AgentCertificateRequest): IssuedCertificate {
    const uri = agentSpiffeId(this.trustDomain, request.agentId);
    const publicKey = publicKeyOfCsr(request.csrPem);
    const ttlMs = Math.min(request.ttlMs ?? this.options.agentCertTtlMs, this.options.agentCertTtlMs);
    return this.issue({
      publicKey,
      commonName: request.agentId,
      ttlMs,
      extensions: [
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
        { name: 'extKeyUsage', clientAuth: true },
        { name: 'subjectAltName', altNames: [{ type: 6, value: uri }] },
      ],
    });
  }

  private issue(spec: {
    publicKey: forge.pki.rsa.PublicKey;
    commonName: string;
    ttlMs: number;
    extensions: readonly object[];
  }): IssuedCertificate {
    if (!(spec.ttlMs > 0)) throw new PkiError({ code: 'CERTIFICATE_INVALID', message: `certificate lifetime must be positive, got ${spec.ttlMs} ms` });
    const now = this.options.now().getTime();
    const caNotAfter = this.cert.validity.notAfter.getTime();
    if (now >= caNotAfter) throw new PkiError({ code: 'CERTIFICATE_INVALID', message: 'the enrollment CA has expired' });

    const cert = forge.pki.createCertificate();
    cert.publicKey = spec.publicKey;
    cert.serialNumber = randomSerialHex();
    cert.validity.notBefore = new Date(now - CLOCK_SKEW_MS);
    // A certificate outliving its issuer would fail path validation anyway; say so in the cert.
    cert.validity.notAfter = new Date(Math.min(now + spec.ttlMs, caNotAfter));
    cert.setSubject([{ name: 'commonName', value: spec.commonName }]);
    cert.setIssuer(this.cert.subject.attributes);
    cert.setExtensions([
      { name: 'basicConstraints', cA: false, critical: true },
      ...spec.extensions,
      { name: 'subjectKeyIdentifier' },
      { name: 'authorityKeyIdentifier', keyIdentifier: this.cert.generateSubjectKeyIdentifier().getBytes() },
    ]);
    if (this.nativeKey === undefined) cert.sign(this.sealedKey.open(), forge.md.sha256.create());
    else signNatively(cert, this.nativeKey.open());
    return {
      certPem: forge.pki.certificateToPem(cert),
      serialNumber: cert.serialNumber,
      notBefore: cert.validity.notBefore,
      notAfter: cert.validity.notAfter,
    };
  }
}

/**
 * What forge's `cert.sign(key, sha256)` does, with the RSA operation done by OpenSSL: the same
 * algorithm identifiers, the same TBSCertificate DER, a PKCS#1 v1.5 signature over its SHA-256.
 */
function signNatively(cert: forge.pki.Certificate, key: KeyObject): void {
  const algorithmOid = forge.pki.oids['sha256WithRSAEncryption'] as string;
  cert.md = forge.md.sha256.create();
  cert.signatureOid = algorithmOid;
  cert.siginfo.algorithmOid = algorithmOid;
  // Present in node-forge (x509.js) but missing from its typings.
  const getTbs = (forge.pki as unknown as { getTBSCertificate(c: forge.pki.Certificate): forge.asn1.Asn1 }).getTBSCertificate;
  cert.tbsCertificate = getTbs(cert);
  const tbs = Buffer.from(forge.asn1.toDer(cert.tbsCertificate).getBytes(), 'binary');
  cert.signature = nodeSign('sha256', tbs, key).toString('binary');
}

/**
 * A positive serial of 128 random bits, DER-minimal: leading zero bytes dropped, one zero
 * byte added when the top bit is set (forge writes the hex as the INTEGER's bytes verbatim,
 * so a set top bit would make the serial negative).
 */
export function randomSerialHex(): string {
  let hex = randomBytes(16).toString('hex').replace(/^(?:00)+/, '');
  if (hex === '') hex = '01';
  if (parseInt(hex.slice(0, 2), 16) >= 0x80) hex = `00${hex}`;
  return hex;
}

/**
 * Parses an attacker-supplied CSR defensively and returns its verified public key.
 *
 * The key type is checked with node:crypto before forge sees the CSR: forge throws on any
 * non-RSA key with a message-only error, and the caller needs KEY_UNSUPPORTED (a client
 * speaking the wrong key type) told apart from CSR_INVALID (garbage or a forged signature).
 */
function publicKeyOfCsr(csrPem: string): forge.pki.rsa.PublicKey {
  if (csrPem.length > MAX_CSR_PEM_CHARS) {
    throw new PkiError({ code: 'CSR_INVALID', message: `the CSR is larger than ${MAX_CSR_PEM_CHARS} characters` });
  }
  let asn1: forge.asn1.Asn1;
  try {
    const blocks = forge.pem.decode(csrPem);
    const [block] = blocks;
    if (blocks.length !== 1 || block === undefined || !['CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST'].includes(block.type)) {
      throw new Error('expected exactly one PEM block of type CERTIFICATE REQUEST');
    }
    asn1 = forge.asn1.fromDer(block.body);
  } catch (cause) {
    throw new PkiError({ code: 'CSR_INVALID', message: 'the CSR is not a PEM-encoded PKCS#10 request', cause });
  }

  // CertificationRequest ::= SEQUENCE { certificationRequestInfo SEQUENCE { version, subject, subjectPKInfo, attributes }, ... }
  const info = childAt(asn1, 0);
  const spki = info === undefined ? undefined : childAt(info, 2);
  if (spki === undefined) throw new PkiError({ code: 'CSR_INVALID', message: 'the CSR has no subjectPublicKeyInfo' });
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(forge.asn1.toDer(spki).getBytes(), 'binary'), format: 'der', type: 'spki' });
  } catch (cause) {
    throw new PkiError({ code: 'CSR_INVALID', message: "the CSR's public key does not parse", cause });
  }
  assertSupportedRsa(key, 'the CSR');

  let csr: forge.pki.CertificateSigningRequest;
  let verified: boolean;
  try {
    csr = forge.pki.certificationRequestFromAsn1(asn1);
    verified = csr.verify();
  } catch (cause) {
    throw new PkiError({ code: 'CSR_INVALID', message: 'the CSR does not parse or uses an unsupported signature algorithm', cause });
  }
  if (!verified) throw new PkiError({ code: 'CSR_INVALID', message: "the CSR's self-signature does not verify" });
  const publicKey = csr.publicKey;
  if (publicKey === null || !isRsaPublicKey(publicKey)) {
    throw new PkiError({ code: 'KEY_UNSUPPORTED', message: 'the CSR does not carry an RSA public key' });
  }
  return publicKey;
}

function rsaPublicKeyFromPem(pem: string): forge.pki.rsa.PublicKey {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (cause) {
    throw new PkiError({ code: 'CERTIFICATE_INVALID', message: 'the public key does not parse', cause });
  }
  assertSupportedRsa(key, 'the server key');
  return forge.pki.publicKeyFromPem(key.export({ type: 'spki', format: 'pem' }).toString());
}

function assertSupportedRsa(key: KeyObject, what: string): void {
  const bits = key.asymmetricKeyDetails?.modulusLength;
  if (key.asymmetricKeyType !== 'rsa' || bits === undefined || bits < MIN_RSA_BITS || bits > MAX_RSA_BITS) {
    throw new PkiError({
      code: 'KEY_UNSUPPORTED',
      message: `${what} has a ${key.asymmetricKeyType ?? 'unknown'}${bits === undefined ? '' : `-${bits}`} key; the enrollment CA certifies RSA keys of ${MIN_RSA_BITS}–${MAX_RSA_BITS} bits only`,
    });
  }
}

function childAt(node: forge.asn1.Asn1, index: number): forge.asn1.Asn1 | undefined {
  if (!Array.isArray(node.value)) return undefined;
  const child: unknown = node.value[index];
  return isObject(child) && 'tagClass' in child ? (child as unknown as forge.asn1.Asn1) : undefined;
}

function isRsaPublicKey(key: forge.pki.PublicKey): key is forge.pki.rsa.PublicKey {
  return 'n' in key && 'e' in key;
}
