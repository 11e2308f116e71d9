/**
 * OpenSSH signatures (`ssh-keygen -Y sign`, PROTOCOL.sshsig), verified with node:crypto.
 *
 *     byte[6] "SSHSIG"  uint32 version=1  string publickey  string namespace
 *     string reserved   string hash_algorithm  string signature
 *
 * and the key signs  "SSHSIG" ‖ string(namespace) ‖ string(reserved) ‖
 * string(hash_algorithm) ‖ string(H(message)).
 *
 * The armored text comes from a commit header, i.e. from whoever pushed: it is parsed
 * defensively (size cap, strict base64, bounds-checked reads, no trailing bytes) and every
 * failure is a TrustError with MALFORMED_SIGNATURE, or UNSUPPORTED_SIGNATURE for
 * well-formed signatures of a kind the gate refuses to verify (certificates, FIDO keys,
 * RSA with SHA-1).
 */
import { constants, createHash, verify as cryptoVerify } from 'node:crypto';
import { TrustError } from '../../domain/errors.js';
import { ECDSA_CURVES, isSupportedKeyType, parseSshPublicKey, peekKeyType, type SshPublicKey } from './ssh-key.js';
import { SshReader, concatBytes, leftPad, sshString } from './ssh-wire.js';

export type SshSignatureAlgorithm =
  | 'ssh-ed25519'
  | 'rsa-sha2-256'
  | 'rsa-sha2-512'
  | 'ecdsa-sha2-nistp256'
  | 'ecdsa-sha2-nistp384'
  | 'ecdsa-sha2-nistp521';

export interface SshSignature {
  /** The key the signature claims; a policy must still decide whether to trust it. */
  readonly publicKey: SshPublicKey;
  readonly namespace: string;
  readonly reserved: Uint8Array;
  readonly hashAlgorithm: 'sha256' | 'sha512';
  readonly algorithm: SshSignatureAlgorithm;
  /** In the encoding node:crypto verifies: raw (Ed25519), modulus-sized (RSA), r ‖ s (ECDSA). */
  readonly signature: Uint8Array;
}

export const SSH_SIGNATURE_BEGIN = '-----BEGIN SSH SIGNATURE-----';
const SSH_SIGNATURE_END = '-----END SSH SIGNATURE-----';
const MAGIC = new TextEncoder().encode('SSHSIG');
/** Far above any real signature (an RSA-16384 one armors to ~6 KiB); bounds the work on hostile input. */
const MAX_ARMORED_LENGTH = 64 * 1024;

function malformed(reason: string): never {
  throw new TrustError({ code: 'MALFORMED_SIGNATURE', message: `malformed SSH signature: ${reason}` });
}

function unsupported(reason: string): never {
  throw new TrustError({ code: 'UNSUPPORTED_SIGNATURE', message: `unsupported SSH signature: ${reason}` });
}

/** Parses an armored SSH signature. Does not check it: see verifySshSignature. */
export function parseSshSignature(armored: string): SshSignature {
  const reader = new SshReader(dearmor(armored), malformed);
  if (!Buffer.from(reader.raw(MAGIC.length, 'magic')).equals(MAGIC)) malformed('it does not start with SSHSIG');
  const version = reader.uint32('version');
  if (version !== 1) unsupported(`version ${version}`);
  const keyBlob = reader.string('public key');
  const namespace = reader.text('namespace');
  const reserved = reader.string('reserved field');
  const hashAlgorithm = reader.text('hash algorithm');
  if (hashAlgorithm !== 'sha256' && hashAlgorithm !== 'sha512') {
    malformed(`hash algorithm ${JSON.stringify(hashAlgorithm)} is neither sha256 nor sha512`);
  }
  const signatureField = reader.string('signature');
  reader.end('signature');

  const publicKey = readSignerKey(keyBlob);
  const { algorithm, signature } = readSignatureField(signatureField, publicKey);
  return { publicKey, namespace, reserved, hashAlgorithm, algorithm, signature };
}

/**
 * True when `sig` is a valid signature by `sig.publicKey` over `message` in `sig.namespace`.
 * Whether that key and namespace are acceptable is the caller's question.
 */
export function verifySshSignature(sig: SshSignature, message: Uint8Array): boolean {
  const digest = createHash(sig.hashAlgorithm).update(message).digest();
  const signedData = concatBytes([
    MAGIC,
    sshString(sig.namespace),
    sshString(sig.reserved),
    sshString(sig.hashAlgorithm),
    sshString(digest),
  ]);
  const key = sig.publicKey.keyObject;
  try {
    switch (sig.algorithm) {
      case 'ssh-ed25519':
        return cryptoVerify(null, signedData, key, sig.signature);
      case 'rsa-sha2-256':
      case 'rsa-sha2-512':
        return cryptoVerify(
          sig.algorithm === 'rsa-sha2-256' ? 'sha256' : 'sha512',
          signedData,
          { key, padding: constants.RSA_PKCS1_PADDING },
          sig.signature,
        );
      case 'ecdsa-sha2-nistp256':
      case 'ecdsa-sha2-nistp384':
      case 'ecdsa-sha2-nistp521':
        return cryptoVerify(ECDSA_CURVES[sig.algorithm].hash, signedData, { key, dsaEncoding: 'ieee-p1363' }, sig.signature);
    }
  } catch {
    // OpenSSL rejects some forged inputs by throwing rather than returning false.
    return false;
  }
}

function dearmor(armored: string): Uint8Array {
  if (armored.length > MAX_ARMORED_LENGTH) malformed(`armor is larger than ${MAX_ARMORED_LENGTH} bytes`);
  const lines = armored.replace(/\n+$/, '').split('\n');
  if (lines[0] !== SSH_SIGNATURE_BEGIN) malformed(`first line is not ${SSH_SIGNATURE_BEGIN}`);
  if (lines.length < 3 || lines[lines.length - 1] !== SSH_SIGNATURE_END) {
    malformed(`last line is not ${SSH_SIGNATURE_END}`);
  }
  const body = lines.slice(1, -1).join('');
  if (body.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(body)) malformed('body is not valid base64');
  return Buffer.from(body, 'base64');
}

function readSignerKey(blob: Uint8Array): SshPublicKey {
  const type = peekKeyType(blob, malformed);
  if (!isSupportedKeyType(type)) unsupported(`key type ${JSON.stringify(type)}`);
  return parseSshPublicKey(blob, (reason) => malformed(`public key: ${reason}`));
}

/** The inner `string algorithm ‖ string blob`, checked against the key and normalised for node:crypto. */
function readSignatureField(
  field: Uint8Array,
  key: SshPublicKey,
): { algorithm: SshSignatureAlgorithm; signature: Uint8Array } {
  const reader = new SshReader(field, malformed);
  const algorithm = reader.text('signature algorithm');
  const blob = reader.string('signature blob');
  reader.end('signature field');
  const mismatch: () => never = () => malformed(`signature algorithm ${JSON.stringify(algorithm)} does not fit a ${key.type} key`);

  switch (key.type) {
    case 'ssh-ed25519':
      if (algorithm !== 'ssh-ed25519') mismatch();
      if (blob.length !== 64) malformed(`Ed25519 signature has ${blob.length} bytes, expected 64`);
      return { algorithm: 'ssh-ed25519', signature: blob };
    case 'ssh-rsa':
      // OpenSSH refuses SHA-1 in sshsig too; accepting it would let a SHA-1 collision forge a commit.
      if (algorithm === 'ssh-rsa') unsupported('RSA signatures with SHA-1 (ssh-rsa) are not accepted');
      if (algorithm !== 'rsa-sha2-256' && algorithm !== 'rsa-sha2-512') mismatch();
      return { algorithm, signature: rsaSignature(blob, key) };
    case 'ecdsa-sha2-nistp256':
    case 'ecdsa-sha2-nistp384':
    case 'ecdsa-sha2-nistp521':
      if (algorithm !== key.type) mismatch();
      return { algorithm: key.type, signature: ecdsaSignature(blob, ECDSA_CURVES[key.type].size) };
  }
}

/** OpenSSH may drop leading zero bytes of an RSA signature; OpenSSL wants exactly the modulus size. */
function rsaSignature(blob: Uint8Array, key: SshPublicKey): Uint8Array {
  const modulusBytes = Math.ceil(key.bits / 8);
  return leftPad(blob, modulusBytes) ?? malformed(`RSA signature is longer than the ${key.bits}-bit modulus`);
}

/** SSH encodes ECDSA as `mpint r ‖ mpint s`; node verifies IEEE P1363 (fixed-size r ‖ s). */
function ecdsaSignature(blob: Uint8Array, size: number): Uint8Array {
  const reader = new SshReader(blob, malformed);
  const r = reader.unsignedMpint('ECDSA r');
  const s = reader.unsignedMpint('ECDSA s');
  reader.end('ECDSA signature');
  const pr = leftPad(r, size) ?? malformed('ECDSA r is larger than the curve');
  const ps = leftPad(s, size) ?? malformed('ECDSA s is larger than the curve');
  return concatBytes([pr, ps]);
}
