import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { SshReader, concatBytes, sshMpint, sshString, type WireFail } from './ssh-wire.js';

/** The SSH public key types the trust gate verifies. Ed25519 is the recommended one. */
export type SshKeyType =
  | 'ssh-ed25519'
  | 'ssh-rsa'
  | 'ecdsa-sha2-nistp256'
  | 'ecdsa-sha2-nistp384'
  | 'ecdsa-sha2-nistp521';

/** A parsed SSH public key, ready for node:crypto. */
export interface SshPublicKey {
  readonly type: SshKeyType;
  /**
   * The canonical wire encoding (minimal mpints). Two keys are the same key exactly when
   * their blobs are equal, whatever encoding they arrived in.
   */
  readonly blob: Uint8Array;
  /** `SHA256:<base64 without padding>` of the canonical blob, as `ssh-keygen -l` prints it. */
  readonly fingerprint: string;
  readonly keyObject: KeyObject;
  /** Modulus size for RSA, curve size for ECDSA, 256 for Ed25519. */
  readonly bits: number;
}

export interface EcdsaCurve {
  /** The curve name inside the key blob. */
  readonly sshName: 'nistp256' | 'nistp384' | 'nistp521';
  readonly jwkName: 'P-256' | 'P-384' | 'P-521';
  /** Bytes of one coordinate (and of r and s in a signature). */
  readonly size: number;
  /** RFC 5656 §6.2.1: the hash is fixed by the curve. */
  readonly hash: 'sha256' | 'sha384' | 'sha512';
  readonly bits: number;
}

export const ECDSA_CURVES: Readonly<Record<Extract<SshKeyType, `ecdsa-${string}`>, EcdsaCurve>> = {
  'ecdsa-sha2-nistp256': { sshName: 'nistp256', jwkName: 'P-256', size: 32, hash: 'sha256', bits: 256 },
  'ecdsa-sha2-nistp384': { sshName: 'nistp384', jwkName: 'P-384', size: 48, hash: 'sha384', bits: 384 },
  'ecdsa-sha2-nistp521': { sshName: 'nistp521', jwkName: 'P-521', size: 66, hash: 'sha512', bits: 521 },
};

const SUPPORTED_KEY_TYPES: ReadonlySet<string> = new Set<SshKeyType>([
  'ssh-ed25519',
  'ssh-rsa',
  ...(Object.keys(ECDSA_CURVES) as SshKeyType[]),
]);

/**
 * Key types OpenSSH knows but the gate does not verify (DSA, FIDO security keys,
 * certificates). Recognising them lets callers say "unsupported" instead of "garbage".
 */
const KNOWN_UNSUPPORTED_KEY_TYPE =
  /^(ssh-dss|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com|[a-z0-9-]+-cert-v01@openssh\.com|sk-[a-z0-9-]+-cert-v01@openssh\.com)$/;

/** OpenSSH's bounds for RSA moduli (SSH_RSA_MINIMUM_MODULUS_SIZE, SSHBUF_MAX_BIGNUM). */
const RSA_MIN_BITS = 1024;
const RSA_MAX_BITS = 16384;

export function isSupportedKeyType(name: string): name is SshKeyType {
  return SUPPORTED_KEY_TYPES.has(name);
}

export function isKnownUnsupportedKeyType(name: string): boolean {
  return KNOWN_UNSUPPORTED_KEY_TYPE.test(name);
}

/** The key type name a blob starts with, without parsing the rest. */
export function peekKeyType(blob: Uint8Array, fail: WireFail): string {
  return new SshReader(blob, fail).text('key type');
}

/**
 * Parses a public key blob of a supported type. The blob may be hostile: malformed
 * encodings, trailing bytes, points off the curve and absurd sizes all go to `fail`.
 */
export function parseSshPublicKey(blob: Uint8Array, fail: WireFail): SshPublicKey {
  const reader = new SshReader(blob, fail);
  const type = reader.text('key type');
  if (!isSupportedKeyType(type)) return fail(`unsupported key type ${JSON.stringify(type)}`);
  const key = readKeyBody(type, reader, fail);
  reader.end('public key');
  return key;
}

export function sameKey(a: SshPublicKey, b: SshPublicKey): boolean {
  return Buffer.from(a.blob).equals(b.blob);
}

function readKeyBody(type: SshKeyType, reader: SshReader, fail: WireFail): SshPublicKey {
  switch (type) {
    case 'ssh-ed25519':
      return readEd25519(reader, fail);
    case 'ssh-rsa':
      return readRsa(reader, fail);
    case 'ecdsa-sha2-nistp256':
    case 'ecdsa-sha2-nistp384':
    case 'ecdsa-sha2-nistp521':
      return readEcdsa(type, reader, fail);
  }
}

function readEd25519(reader: SshReader, fail: WireFail): SshPublicKey {
  const point = reader.string('Ed25519 public key');
  if (point.length !== 32) fail(`Ed25519 public key has ${point.length} bytes, expected 32`);
  const blob = concatBytes([sshString('ssh-ed25519'), sshString(point)]);
  const keyObject = importJwk({ kty: 'OKP', crv: 'Ed25519', x: b64url(point) }, fail);
  return finish('ssh-ed25519', blob, keyObject, 256);
}

function readRsa(reader: SshReader, fail: WireFail): SshPublicKey {
  const e = reader.unsignedMpint('RSA exponent');
  const n = reader.unsignedMpint('RSA modulus');
  const bits = bitLength(n);
  if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) {
    fail(`RSA modulus of ${bits} bits is outside ${RSA_MIN_BITS}..${RSA_MAX_BITS}`);
  }
  if (e.length === 0 || e.length > 8) fail('RSA exponent is out of range');
  const blob = concatBytes([sshString('ssh-rsa'), sshMpint(e), sshMpint(n)]);
  const keyObject = importJwk({ kty: 'RSA', n: b64url(n), e: b64url(e) }, fail);
  return finish('ssh-rsa', blob, keyObject, bits);
}

function readEcdsa(type: keyof typeof ECDSA_CURVES, reader: SshReader, fail: WireFail): SshPublicKey {
  const curve = ECDSA_CURVES[type];
  const curveName = reader.text('ECDSA curve name');
  if (curveName !== curve.sshName) fail(`key type ${type} names curve ${JSON.stringify(curveName)}`);
  const point = reader.string('ECDSA public point');
  // OpenSSH always writes the uncompressed form: 0x04 ‖ X ‖ Y.
  if (point.length !== 1 + 2 * curve.size || point[0] !== 0x04) fail('ECDSA point is not an uncompressed point of its curve');
  const x = point.subarray(1, 1 + curve.size);
  const y = point.subarray(1 + curve.size);
  const blob = concatBytes([sshString(type), sshString(curve.sshName), sshString(point)]);
  // The JWK import checks that the point lies on the curve.
  const keyObject = importJwk({ kty: 'EC', crv: curve.jwkName, x: b64url(x), y: b64url(y) }, fail);
  return finish(type, blob, keyObject, curve.bits);
}

function finish(type: SshKeyType, blob: Uint8Array, keyObject: KeyObject, bits: number): SshPublicKey {
  return { type, blob, keyObject, bits, fingerprint: sshFingerprint(blob) };
}

/** `SHA256:<base64 without padding>` of a key blob, the form `ssh-keygen -l` prints. */
export function sshFingerprint(blob: Uint8Array): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

function importJwk(jwk: Record<string, string>, fail: WireFail): KeyObject {
  try {
    return createPublicKey({ key: jwk, format: 'jwk' });
  } catch (err) {
    return fail(`key material is invalid (${err instanceof Error ? err.message : String(err)})`);
  }
}

function b64url(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64url');
}

function bitLength(magnitude: Uint8Array): number {
  if (magnitude.length === 0) return 0;
  return (magnitude.length - 1) * 8 + (32 - Math.clz32(magnitude[0]!));
}
