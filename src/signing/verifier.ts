import type { KeyObject } from 'node:crypto';

import { bundleFromJSON, type Bundle } from '@sigstore/bundle';
import { toSignedEntity, toTrustMaterial, VerificationError, Verifier } from '@sigstore/verify';

import { sha256Digest } from '../lib/index.js';
import { SigningError, type SigningErrorCode } from '../domain/errors.js';
import type { AgentId, CommitSha, Digest } from '../domain/types.js';
import { keyHint, toPublicSigningKey, type KeyInput } from './keys.js';
import { verifyInclusion } from './merkle.js';
import { leafBytes, parseStatement, STATEMENT_PAYLOAD_TYPE, type GenerationStatement } from './statement.js';
import { decodeDelivery, type SignedDelivery } from './wire.js';

export interface BundleVerifierOptions {
  /**
   * The server's bundle signing public key(s), pinned at enrollment. Two during a key
   * rotation; each is found by its hint (SHA-256 of the SPKI).
   */
  readonly trustedKeys: KeyInput | readonly KeyInput[];
  /** How far in the future `issuedAt` may be before the statement is refused. Default 5 min. */
  readonly clockSkewMs?: number;
  /** Clock in epoch milliseconds. Default `Date.now`. */
  readonly now?: () => number;
}

/** What the agent runs now (from its state file): the floor a delivery must not go below. */
export interface RunningConfig {
  readonly generation: number;
  readonly digest: Digest;
}

export interface VerifyDeliveryInput {
  /** The delivery document, decoded or as it came off the wire. */
  readonly delivery: SignedDelivery | string | Uint8Array;
  /** The bundle bytes that will be written to disk if this returns. */
  readonly bytes: Uint8Array;
  /** This agent's id, from its own verified certificate; never from the message. */
  readonly agentId: AgentId;
  /** What the agent runs; null on first start (no floor yet). */
  readonly current: RunningConfig | null;
}

/** A delivery the agent may apply: every field was checked against the signed statement. */
export interface VerifiedDelivery {
  readonly agent: AgentId;
  readonly commit: CommitSha;
  readonly digest: Digest;
  readonly generation: number;
  readonly issuedAt: string;
  readonly expiresAt: string;
}

export const DEFAULT_CLOCK_SKEW_MS = 5 * 60 * 1000;

/**
 * Agent-side check of a signed delivery, in an order that never interprets unauthenticated
 * content: (1) the Sigstore bundle is verified with @sigstore/verify against the pinned key
 * (offline: an empty trust root, no log or timestamp thresholds); (2) only then is the
 * statement parsed; (3) the agent builds its own leaf from its certificate's id, the hash of
 * the received bytes and the statement's commit and generation, and checks the inclusion
 * proof against the signed root; (4) generation, issue time and expiry are checked.
 *
 * Generation rule: a delivery must have a higher generation than the running config, or the
 * same generation with the same digest (a re-send of what runs is accepted idempotently, e.g.
 * after a reconnect). The same generation with another digest cannot come from an honest
 * server — each generation holds one leaf per agent — and is refused as GENERATION_ROLLBACK.
 *
 * Every refusal is a {@link SigningError}; the caller keeps its running config.
 */
export class BundleVerifier {
  private readonly verifier: Verifier;
  private readonly clockSkewMs: number;
  private readonly now: () => number;

  constructor(options: BundleVerifierOptions) {
    const inputs: readonly KeyInput[] = Array.isArray(options.trustedKeys)
      ? options.trustedKeys
      : [options.trustedKeys as KeyInput];
    if (inputs.length === 0) throw new SigningError({ code: 'INVALID_SIGNING_KEY', message: 'no trusted key' });
    const keys = new Map<string, KeyObject>();
    for (const input of inputs) {
      const key = toPublicSigningKey(input);
      keys.set(keyHint(key), key);
    }
    const trust = toTrustMaterial(
      // Key-based bundles need no CA, log or timestamp authority: the pinned key is the root.
      { mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1', tlogs: [], ctlogs: [], certificateAuthorities: [], timestampAuthorities: [] },
      (hint: string) => {
        const publicKey = keys.get(hint);
        if (publicKey === undefined) {
          throw new VerificationError({ code: 'PUBLIC_KEY_ERROR', message: 'bundle names a key that is not trusted' });
        }
        return { publicKey, validFor: () => true };
      },
    );
    this.verifier = new Verifier(trust, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 });
    this.clockSkewMs = options.clockSkewMs ?? DEFAULT_CLOCK_SKEW_MS;
    this.now = options.now ?? Date.now;
    if (!Number.isSafeInteger(this.clockSkewMs) || this.clockSkewMs < 0) {
      throw new RangeError('clockSkewMs must be a non-negative integer');
    }
  }

  verify(input: VerifyDeliveryInput): VerifiedDelivery {
    const delivery =
      typeof input.delivery === 'string' || input.delivery instanceof Uint8Array
        ? decodeDelivery(input.delivery)
        : input.delivery;

    // (1) Authenticate before reading the payload.
    const statement = this.authenticate(delivery);

    // (3) Bind the bytes and this agent to the signed root.
    if (delivery.agent !== input.agentId) fail('NOT_FOR_THIS_AGENT', 'the delivery is addressed to another agent');
    const digest = sha256Digest(input.bytes);
    if (digest !== delivery.digest) fail('DIGEST_MISMATCH', 'the bundle bytes do not hash to the delivered digest');
    const leaf = leafBytes({ agent: input.agentId, commit: statement.commit, digest, generation: statement.generation });
    const included = verifyInclusion({
      leaf,
      index: delivery.proof.leafIndex,
      treeSize: statement.treeSize,
      path: delivery.proof.auditPath.map((hash) => Buffer.from(hash, 'hex')),
      root: Buffer.from(statement.rootHash, 'hex'),
    });
    if (!included) fail('PROOF_INVALID', 'the signed statement does not include this agent with these bytes');

    // (4) Freshness.
    const { current } = input;
    if (current !== null) {
      if (statement.generation < current.generation) {
        fail('GENERATION_ROLLBACK', `generation ${statement.generation} is older than running ${current.generation}`);
      }
      if (statement.generation === current.generation && digest !== current.digest) {
        fail('GENERATION_ROLLBACK', `generation ${statement.generation} already runs with another digest`);
      }
    }
    const now = this.now();
    if (Date.parse(statement.issuedAt) > now + this.clockSkewMs) {
      fail('ISSUED_IN_FUTURE', `statement issued at ${statement.issuedAt}, beyond the allowed clock skew`);
    }
    if (now >= Date.parse(statement.expiresAt)) fail('EXPIRED', `statement expired at ${statement.expiresAt}`);

    return Object.freeze({
      agent: input.agentId,
      commit: statement.commit,
      digest,
      generation: statement.generation,
      issuedAt: statement.issuedAt,
      expiresAt: statement.expiresAt,
    });
  }

  private authenticate(delivery: SignedDelivery): GenerationStatement {
    // The payload type is covered by the signature but not checked by @sigstore/verify.
    if (delivery.bundle.dsseEnvelope.payloadType !== STATEMENT_PAYLOAD_TYPE) {
      fail('MALFORMED_BUNDLE', 'the DSSE payload is not a meshcfg statement');
    }
    let bundle: Bundle;
    try {
      bundle = bundleFromJSON(delivery.bundle);
    } catch (cause) {
      fail('MALFORMED_BUNDLE', 'not a valid Sigstore bundle', cause);
    }
    if (bundle.content.$case !== 'dsseEnvelope' || bundle.verificationMaterial.content.$case !== 'publicKey') {
      fail('MALFORMED_BUNDLE', 'not a key-signed DSSE bundle');
    }
    try {
      this.verifier.verify(toSignedEntity(bundle));
    } catch (cause) {
      if (cause instanceof VerificationError && cause.code === 'PUBLIC_KEY_ERROR') {
        fail('UNKNOWN_KEY', 'the bundle is signed with a key this agent does not trust', cause);
      }
      // SIGNATURE_ERROR, and fail closed on anything else the verifier raises.
      fail('SIGNATURE_INVALID', 'the bundle signature does not verify', cause);
    }
    // (2) Authentic: now the statement may be parsed.
    return parseStatement(bundle.content.dsseEnvelope.payload);
  }
}

/** One-shot form of {@link BundleVerifier}; agents that verify repeatedly should keep an instance. */
export function verifySignedBundle(input: VerifyDeliveryInput & BundleVerifierOptions): VerifiedDelivery {
  return new BundleVerifier(input).verify(input);
}

function fail(code: SigningErrorCode, message: string, cause?: unknown): never {
  throw new SigningError({ code, message, cause });
}
