import { createHash, createPublicKey, KeyObject, X509Certificate } from 'node:crypto';
import { PkiError } from '../domain/errors.js';

/** `sha256/<base64 of sha256 of the DER SubjectPublicKeyInfo>` (the HPKP pin format). */
export type Pin = `sha256/${string}`;

const PIN = /^sha256\/([A-Za-z0-9+/]{43}=)$/;

/**
 * The pin of a certificate's or key's public key. Accepts a parsed certificate, a key object,
 * DER certificate bytes (what a TLS peer certificate's `raw` holds), or PEM text of a
 * certificate, a public key or a private key (whose public half is pinned).
 *
 * Pins the SPKI rather than the certificate so the server certificate can be reissued (new
 * names, new expiry) under the same key without breaking agents that pinned it.
 */
export function spkiPin(certOrKey: X509Certificate | KeyObject | Buffer | string): Pin {
  const spki = publicKeyOf(certOrKey).export({ type: 'spki', format: 'der' });
  return `sha256/${createHash('sha256').update(spki).digest('base64')}`;
}

function publicKeyOf(input: X509Certificate | KeyObject | Buffer | string): KeyObject {
  try {
    if (input instanceof X509Certificate) return input.publicKey;
    if (input instanceof KeyObject) return input.type === 'public' ? input : createPublicKey(input);
    if (Buffer.isBuffer(input) || input.includes('-----BEGIN CERTIFICATE-----')) return new X509Certificate(input).publicKey;
    return createPublicKey(input);
  } catch (cause) {
    throw new PkiError({ code: 'CERTIFICATE_INVALID', message: 'neither a certificate nor a key', cause });
  }
}

/** Checks the text form of a pin (as an operator pastes it); throws PIN_INVALID. */
export function parsePin(text: string): Pin {
  const pin = text.trim();
  const base64 = PIN.exec(pin)?.[1];
  // Round-tripping rejects non-canonical base64 (stray bits in the last character).
  if (base64 === undefined || Buffer.from(base64, 'base64').toString('base64') !== base64) {
    throw new PkiError({ code: 'PIN_INVALID', message: `not a pin of the form sha256/<base64 of 32 bytes>: ${JSON.stringify(text.slice(0, 80))}` });
  }
  return pin as Pin;
}

/**
 * Whether a peer certificate (DER, as `tls` and grpc-js give it in `raw`) matches any pin.
 * Two pins allow a key rotation: the old and the new key both match during the switch.
 * Pins are public values, so a plain comparison is fine. An unparseable certificate matches nothing.
 */
export function matchesAnyPin(certRaw: Buffer, pins: readonly Pin[]): boolean {
  let pin: Pin;
  try {
    pin = spkiPin(certRaw);
  } catch {
    return false;
  }
  return pins.includes(pin);
}
