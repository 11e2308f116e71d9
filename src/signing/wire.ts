import { canonicalJson } from '../lib/index.js';
import { SigningError } from '../domain/errors.js';
import type { AgentId, Digest, JsonValue } from '../domain/types.js';
import { HASH_SIZE, MAX_AUDIT_PATH } from './merkle.js';
import { isAgentId, isDigest } from './statement.js';

/** `_type` of the per-agent delivery document that travels beside the bundle bytes. */
export const DELIVERY_TYPE = 'https://meshcfg.dev/delivery/v1';

/** Sigstore bundle v0.3, the only media type meshcfg writes or reads. */
export const SIGSTORE_BUNDLE_MEDIA_TYPE = 'application/vnd.dev.sigstore.bundle.v0.3+json';

/**
 * A delivery document is a shared bundle (~1 KiB) plus a log2(n) audit path (64 hex chars a
 * level): 16 KiB covers any fleet, and anything bigger is refused before JSON parsing.
 */
export const MAX_DELIVERY_BYTES = 16 * 1024;

/**
 * The JSON form of the Sigstore bundles meshcfg produces: a DSSE envelope, a public-key hint,
 * no transparency-log entries and no timestamps (the key is pinned; the statement's own
 * expiry bounds its life). This is the subset @sigstore/bundle's `bundleToJSON` writes for
 * such a bundle; readers refuse anything else.
 */
export interface SigstoreBundleJson {
  readonly mediaType: typeof SIGSTORE_BUNDLE_MEDIA_TYPE;
  readonly verificationMaterial: {
    readonly publicKey: { readonly hint: string };
    readonly tlogEntries?: readonly [];
    readonly timestampVerificationData?: { readonly rfc3161Timestamps?: readonly [] };
  };
  readonly dsseEnvelope: {
    /** base64 of the canonical statement JSON. */
    readonly payload: string;
    readonly payloadType: string;
    readonly signatures: readonly [{ readonly sig: string; readonly keyid: string }];
  };
}

/** Where an agent's leaf sits in the generation's tree, and the RFC 9162 audit path to the root. */
export interface InclusionProof {
  readonly leafIndex: number;
  /** Lowercase hex SHA-256 hashes, bottom-up. */
  readonly auditPath: readonly string[];
}

/**
 * Everything an agent receives beside the bundle bytes.
 *
 * `agent` and `digest` are unsigned labels: the agent checks them only to report a precise
 * refusal (NOT_FOR_THIS_AGENT, DIGEST_MISMATCH). What it accepts is decided by the inclusion
 * proof of a leaf it builds itself from its own certificate's id and the hash of the bytes.
 */
export interface SignedDelivery {
  readonly agent: AgentId;
  readonly digest: Digest;
  readonly bundle: SigstoreBundleJson;
  readonly proof: InclusionProof;
}

/**
 * Stable wire encoding of a delivery: RFC 8785 canonical JSON (UTF-8 text), for a gRPC
 * `string`/`bytes` field. Equal deliveries encode to equal bytes.
 */
export function encodeDelivery(delivery: SignedDelivery): string {
  // Same output as canonicalJson of the whole document (members in RFC 8785 order:
  // "_type" < "agent" < "bundle" < "digest" < "proof"; "auditPath" < "leafIndex"), but the
  // shared bundle is encoded once per generation instead of once per agent.
  return (
    `{"_type":${canonicalJson(DELIVERY_TYPE)},"agent":${canonicalJson(delivery.agent)},` +
    `"bundle":${encodedBundle(delivery.bundle)},"digest":${canonicalJson(delivery.digest)},` +
    `"proof":{"auditPath":[${delivery.proof.auditPath.map(hashJson).join(',')}],"leafIndex":${canonicalJson(delivery.proof.leafIndex)}}}`
  );
}

const HEX_HASH = /^[0-9a-f]{64}$/;

/** A hex hash needs no escaping; anything else takes the general path. */
function hashJson(hash: string): string {
  return HEX_HASH.test(hash) ? `"${hash}"` : canonicalJson(hash);
}

/** Canonical JSON of each (frozen, shared) bundle, computed once. */
const bundleEncodings = new WeakMap<SigstoreBundleJson, string>();

function encodedBundle(bundle: SigstoreBundleJson): string {
  let encoded = bundleEncodings.get(bundle);
  if (encoded === undefined) {
    encoded = canonicalJson(bundle as unknown as JsonValue);
    // Only frozen bundles can be cached: a mutable one could change under the cache.
    if (Object.isFrozen(bundle)) bundleEncodings.set(bundle, encoded);
  }
  return encoded;
}

/**
 * Parses a delivery document from the wire. The input is attacker-controlled: size-limited,
 * then checked field by field against the exact shape {@link encodeDelivery} writes.
 * Throws MALFORMED_BUNDLE.
 */
export function decodeDelivery(wire: string | Uint8Array): SignedDelivery {
  const size = typeof wire === 'string' ? Buffer.byteLength(wire, 'utf8') : wire.byteLength;
  if (size > MAX_DELIVERY_BYTES) throw malformed(`delivery of ${size} bytes exceeds ${MAX_DELIVERY_BYTES}`);
  let value: unknown;
  try {
    value = JSON.parse(typeof wire === 'string' ? wire : Buffer.from(wire).toString('utf8'));
  } catch (cause) {
    throw malformed('delivery is not JSON', cause);
  }
  const doc = object(value, 'delivery', ['_type', 'agent', 'bundle', 'digest', 'proof']);
  if (doc._type !== DELIVERY_TYPE) throw malformed('delivery _type is not meshcfg delivery v1');
  if (!isAgentId(doc.agent)) throw malformed('delivery agent is not an agent id');
  if (!isDigest(doc.digest)) throw malformed('delivery digest is not sha256:<hex>');
  return Object.freeze({
    agent: doc.agent,
    digest: doc.digest,
    bundle: parseSigstoreBundleJson(doc.bundle),
    proof: parseProof(doc.proof),
  });
}

/** Checks a (parsed) Sigstore bundle JSON against the subset meshcfg writes. Throws MALFORMED_BUNDLE. */
export function parseSigstoreBundleJson(value: unknown): SigstoreBundleJson {
  const bundle = object(value, 'bundle', ['dsseEnvelope', 'mediaType', 'verificationMaterial']);
  if (bundle.mediaType !== SIGSTORE_BUNDLE_MEDIA_TYPE) throw malformed('bundle is not a Sigstore v0.3 bundle');

  const material = object(bundle.verificationMaterial, 'verificationMaterial', [
    'publicKey',
    '?timestampVerificationData',
    '?tlogEntries',
  ]);
  const publicKey = object(material.publicKey, 'publicKey', ['hint']);
  if (typeof publicKey.hint !== 'string' || publicKey.hint.length === 0 || publicKey.hint.length > 256) {
    throw malformed('bundle key hint is not a string');
  }
  if (material.tlogEntries !== undefined && !emptyArray(material.tlogEntries)) {
    throw malformed('bundle carries transparency-log entries meshcfg does not use');
  }
  if (material.timestampVerificationData !== undefined) {
    const tsv = object(material.timestampVerificationData, 'timestampVerificationData', ['?rfc3161Timestamps']);
    if (tsv.rfc3161Timestamps !== undefined && !emptyArray(tsv.rfc3161Timestamps)) {
      throw malformed('bundle carries timestamps meshcfg does not use');
    }
  }

  const envelope = object(bundle.dsseEnvelope, 'dsseEnvelope', ['payload', 'payloadType', 'signatures']);
  if (!isBase64(envelope.payload) || envelope.payload.length === 0) throw malformed('DSSE payload is not base64');
  if (typeof envelope.payloadType !== 'string') throw malformed('DSSE payloadType is not a string');
  // @sigstore/verify checks only the first signature: accept exactly one so none goes unchecked.
  if (!Array.isArray(envelope.signatures) || envelope.signatures.length !== 1) {
    throw malformed('DSSE envelope must carry exactly one signature');
  }
  const signature = object(envelope.signatures[0], 'signature', ['keyid', 'sig']);
  if (!isBase64(signature.sig) || signature.sig.length === 0) throw malformed('DSSE signature is not base64');
  if (typeof signature.keyid !== 'string') throw malformed('DSSE keyid is not a string');

  return value as SigstoreBundleJson;
}

function parseProof(value: unknown): InclusionProof {
  const proof = object(value, 'proof', ['auditPath', 'leafIndex']);
  const { leafIndex, auditPath } = proof;
  if (typeof leafIndex !== 'number' || !Number.isSafeInteger(leafIndex) || leafIndex < 0) {
    throw malformed('proof leafIndex is not a non-negative integer');
  }
  if (!Array.isArray(auditPath) || auditPath.length > MAX_AUDIT_PATH) throw malformed('proof auditPath is not a short list');
  const hex = new RegExp(`^[0-9a-f]{${HASH_SIZE * 2}}$`);
  for (const hash of auditPath as unknown[]) {
    if (typeof hash !== 'string' || !hex.test(hash)) throw malformed('proof auditPath holds a non-hash');
  }
  return Object.freeze({ leafIndex, auditPath: Object.freeze([...(auditPath as string[])]) });
}

/**
 * Narrows to a plain object whose keys are exactly `keys` (a leading `?` marks an optional
 * key). Unknown keys are refused: a field this version does not understand must not be
 * silently ignored by a security check.
 */
function object(value: unknown, what: string, keys: readonly string[]): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw malformed(`${what} is not an object`);
  const record = value as Record<string, unknown>;
  const allowed = new Set(keys.map((k) => k.replace(/^\?/, '')));
  for (const key of Object.keys(record)) {
    if (!allowed.has(key)) throw malformed(`${what} has an unknown field`);
  }
  for (const key of keys) {
    if (!key.startsWith('?') && !Object.hasOwn(record, key)) throw malformed(`${what} lacks a required field`);
  }
  return record;
}

function emptyArray(value: unknown): boolean {
  return Array.isArray(value) && value.length === 0;
}

/** Standard padded base64 in its one canonical form. */
function isBase64(value: unknown): value is string {
  return (
    typeof value === 'string' &&
    value.length % 4 === 0 &&
    /^[A-Za-z0-9+/]*={0,2}$/.test(value) &&
    Buffer.from(value, 'base64').toString('base64') === value
  );
}

function malformed(message: string, cause?: unknown): SigningError {
  return new SigningError({ code: 'MALFORMED_BUNDLE', message, cause });
}
