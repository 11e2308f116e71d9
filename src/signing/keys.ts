import { createHash, createPrivateKey, createPublicKey, KeyObject } from 'node:crypto';

import { SigningError } from '../domain/errors.js';

/**
 * Bundle signing keys are ECDSA P-256: @sigstore/verify hashes message signatures with
 * SHA-256 before verifying, which Ed25519 cannot take, and P-256 is what every Sigstore
 * client supports. Signatures are DER (what node:crypto and @sigstore/verify use).
 */
const P256 = 'prime256v1';

/** A key as the pki layer stores it: a KeyObject, or PEM text. */
export type KeyInput = KeyObject | string;

export function toPrivateSigningKey(input: KeyInput): KeyObject {
  const key = load(input, 'private');
  assertP256(key);
  return key;
}

/** The public key to trust; a private key is accepted and reduced to its public half. */
export function toPublicSigningKey(input: KeyInput): KeyObject {
  const key = load(input, 'public');
  assertP256(key);
  return key;
}

/**
 * The Sigstore key hint (`verificationMaterial.publicKey.hint` and DSSE `keyid`): lowercase
 * hex SHA-256 of the DER SubjectPublicKeyInfo. Same key → same hint on every host.
 */
export function keyHint(publicKey: KeyObject): string {
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('hex');
}

function load(input: KeyInput, want: 'private' | 'public'): KeyObject {
  try {
    if (input instanceof KeyObject) {
      if (input.type === 'secret') throw new TypeError('a secret key is not a signing key');
      if (want === 'private' && input.type !== 'private') throw new TypeError('a private key is needed');
      return want === 'public' && input.type === 'private' ? createPublicKey(input) : input;
    }
    return want === 'private' ? createPrivateKey(input) : createPublicKey(input);
  } catch (cause) {
    throw new SigningError({ code: 'INVALID_SIGNING_KEY', message: `not a usable ${want} key`, cause });
  }
}

function assertP256(key: KeyObject): void {
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== P256) {
    throw new SigningError({ code: 'INVALID_SIGNING_KEY', message: 'bundle signing keys must be ECDSA P-256' });
  }
}
