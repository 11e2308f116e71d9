import assert from 'node:assert/strict';
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { describe, it } from 'node:test';

import { bundleToJSON, toDSSEBundle } from '@sigstore/bundle';
import { VerificationError } from '@sigstore/verify';

import { canonicalBytes, canonicalJson } from '../../src/lib/index.js';
import { sha256Digest } from '../../src/lib/index.js';
import { SigningError, type SigningErrorCode } from '../../src/domain/errors.js';
import type { Digest, JsonObject } from '../../src/domain/types.js';
import {
  BundleSigner,
  BundleVerifier,
  decodeDelivery,
  encodeDelivery,
  keyHint,
  verifySignedBundle,
  type SignedDelivery,
  type SigstoreBundleJson,
} from '../../src/signing/index.js';
import { preAuthEncoding } from '../../src/signing/signer.js';
import { STATEMENT_PAYLOAD_TYPE } from '../../src/signing/statement.js';
import { aid, cid } from '../helpers/ids.js';
import type { AgentId } from '../../src/domain/types.js';

const T0 = Date.parse('2025-06-01T12:00:00.000Z');
const HOUR = 60 * 60 * 1000;
const COMMIT = 'a'.repeat(40);
const COMMIT_2 = 'b'.repeat(40);

function p256(): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' });
}

const serverKey = p256();
const otherKey = p256();

function agentBytes(id: string, version = 1): Uint8Array {
  return canonicalBytes({ agent: id, version, routes: [] });
}

function fleet(n: number, version = 1): Array<{ agentId: AgentId; digest: Digest; bytes: Uint8Array }> {
  return Array.from({ length: n }, (_, i) => {
    const agentId = aid(`agent-${String(i).padStart(4, '0')}`);
    const bytes = agentBytes(agentId, version);
    return { agentId, digest: sha256Digest(bytes), bytes };
  });
}

function signer(options: { now?: number; key?: KeyObject; ttlMs?: number } = {}): BundleSigner {
  const at = options.now ?? T0;
  return new BundleSigner({ privateKey: options.key ?? serverKey.privateKey, now: () => at, ttlMs: options.ttlMs ?? HOUR });
}

function verifier(now = T0 + 1000, keys: KeyObject | KeyObject[] = serverKey.publicKey): BundleVerifier {
  return new BundleVerifier({ trustedKeys: keys, now: () => now });
}

function expectCode(fn: () => unknown, code: SigningErrorCode): void {
  refused(fn, code);
}

/** Asserts `fn` throws a SigningError with `code` and returns it, for checks on its cause. */
function refused(fn: () => unknown, code: SigningErrorCode): SigningError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof SigningError, `expected a SigningError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code);
  return caught;
}

/** A delivery whose DSSE envelope carries `payload`, signed with `key` under `hint`. */
function resigned(delivery: SignedDelivery, payload: Buffer, key: KeyObject, hint: string): SignedDelivery {
  const signature = sign('sha256', preAuthEncoding(STATEMENT_PAYLOAD_TYPE, payload), key);
  const bundle = bundleToJSON(toDSSEBundle({ artifact: payload, artifactType: STATEMENT_PAYLOAD_TYPE, signature, keyHint: hint }));
  return { ...delivery, bundle: bundle as unknown as SigstoreBundleJson };
}

function payloadOf(delivery: SignedDelivery): JsonObject {
  return JSON.parse(Buffer.from(delivery.bundle.dsseEnvelope.payload, 'base64').toString('utf8')) as JsonObject;
}

/** Deep, mutable copy of a delivery's wire form, for tampering. */
function wireCopy(delivery: SignedDelivery): { [key: string]: any } {
  return JSON.parse(encodeDelivery(delivery)) as { [key: string]: any };
}

describe('signed bundles', () => {
  describe('round trip', () => {
    for (const n of [1, 2, 3, 7, 1000]) {
      it(`verifies every agent of a fleet of ${n} from one signature`, () => {
        const agents = fleet(n);
        const signed = signer().signGeneration({ generation: 5, commit: cid(COMMIT), agents });
        assert.equal(signed.size, n);
        assert.equal(signed.statement.treeSize, n);
        const check = verifier();
        for (const { agentId, digest, bytes } of agents) {
          const delivery = signed.forAgent(aid(agentId));
          assert.ok(delivery);
          assert.equal(delivery.bundle, signed.bundle, 'every agent shares the one signed bundle');
          const verified = check.verify({ delivery: encodeDelivery(delivery), bytes, agentId: aid(agentId), current: null });
          assert.deepEqual(verified, {
            agent: agentId,
            commit: cid(COMMIT),
            digest,
            generation: 5,
            issuedAt: '2025-06-01T12:00:00.000Z',
            expiresAt: '2025-06-01T13:00:00.000Z',
          });
        }
      });
    }

    it('accepts a delivery given as bytes and as a decoded object', () => {
      const [a] = fleet(3);
      const signed = signer().signGeneration({ generation: 1, commit: cid(COMMIT), agents: fleet(3) });
      const delivery = signed.forAgent(aid(a!.agentId))!;
      const check = verifier();
      check.verify({ delivery: Buffer.from(encodeDelivery(delivery)), bytes: a!.bytes, agentId: aid(a!.agentId), current: null });
      check.verify({ delivery, bytes: a!.bytes, agentId: aid(a!.agentId), current: null });
    });

    it('verifies with the one-shot function and a PEM key', () => {
      const [a] = fleet(1);
      const signed = new BundleSigner({
        privateKey: serverKey.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
        now: () => T0,
      }).signGeneration({ generation: 1, commit: cid(COMMIT), agents: [a!] });
      const verified = verifySignedBundle({
        trustedKeys: serverKey.publicKey.export({ type: 'spki', format: 'pem' }) as string,
        now: () => T0,
        delivery: encodeDelivery(signed.forAgent(aid(a!.agentId))!),
        bytes: a!.bytes,
        agentId: aid(a!.agentId),
        current: null,
      });
      assert.equal(verified.digest, a!.digest);
    });

    it('trusts either of two pinned keys during a rotation', () => {
      const [a] = fleet(1);
      const check = verifier(T0, [serverKey.publicKey, otherKey.publicKey]);
      for (const key of [serverKey.privateKey, otherKey.privateKey]) {
        const signed = signer({ key }).signGeneration({ generation: 1, commit: cid(COMMIT), agents: [a!] });
        check.verify({ delivery: signed.forAgent(aid(a!.agentId))!, bytes: a!.bytes, agentId: aid(a!.agentId), current: null });
      }
    });

    it('signs a quarantined agent\'s baseline like any other digest', () => {
      const agents = fleet(4);
      const baseline = canonicalBytes({ baseline: true });
      const assigned = agents.map((a, i) => (i === 2 ? { agentId: a.agentId, digest: sha256Digest(baseline) } : a));
      const signed = signer().signGeneration({ generation: 9, commit: cid(COMMIT), agents: assigned });
      const q = agents[2]!;
      const verified = verifier().verify({ delivery: signed.forAgent(aid(q.agentId))!, bytes: baseline, agentId: aid(q.agentId), current: null });
      assert.equal(verified.digest, sha256Digest(baseline));
      // The agent's regular bundle is not what this generation assigns it.
      expectCode(() => verifier().verify({ delivery: { ...signed.forAgent(aid(q.agentId))!, digest: q.digest }, bytes: q.bytes, agentId: aid(q.agentId), current: null }), 'PROOF_INVALID');
    });
  });

  describe('SignedGeneration', () => {
    const signed = signer().signGeneration({ generation: 1, commit: cid(COMMIT), agents: fleet(3) });

    it('is immutable', () => {
      const delivery = signed.forAgent(aid('agent-0001'))!;
      assert.ok(Object.isFrozen(signed));
      assert.ok(Object.isFrozen(signed.statement));
      assert.ok(Object.isFrozen(signed.bundle.dsseEnvelope.signatures[0]));
      assert.ok(Object.isFrozen(delivery));
      assert.ok(Object.isFrozen(delivery.proof.auditPath));
    });

    it('has no delivery for an agent outside the generation', () => {
      assert.equal(signed.forAgent(aid('agent-9999')), undefined);
      assert.equal(signed.has(aid('agent-9999')), false);
    });

    it('encodes deliveries stably', () => {
      const wire = encodeDelivery(signed.forAgent(aid('agent-0002'))!);
      assert.equal(encodeDelivery(decodeDelivery(wire)), wire);
      assert.equal(encodeDelivery(signed.forAgent(aid('agent-0002'))!), wire);
    });

    it('names the key by the SHA-256 of its SPKI', () => {
      assert.equal(signed.bundle.verificationMaterial.publicKey.hint, keyHint(serverKey.publicKey));
      assert.equal(signed.bundle.dsseEnvelope.signatures[0].keyid, keyHint(serverKey.publicKey));
    });
  });

  describe('BundleSigner', () => {
    const [a, b] = fleet(2);
    const cases: Array<[string, () => unknown]> = [
      ['an empty fleet', () => signer().signGeneration({ generation: 1, commit: cid(COMMIT), agents: [] })],
      ['an agent assigned twice', () => signer().signGeneration({ generation: 1, commit: cid(COMMIT), agents: [a!, { ...b!, agentId: aid(a!.agentId) }] })],
      ['a malformed digest', () => signer().signGeneration({ generation: 1, commit: cid(COMMIT), agents: [{ agentId: aid('x'), digest: 'sha256:XYZ' }] })],
      ['a malformed commit', () => signer().signGeneration({ generation: 1, commit: cid('HEAD'), agents: [a!] })],
      ['a negative generation', () => signer().signGeneration({ generation: -1, commit: cid(COMMIT), agents: [a!] })],
      [
        'a generation that does not grow',
        () => {
          const s = signer();
          s.signGeneration({ generation: 4, commit: cid(COMMIT), agents: [a!] });
          s.signGeneration({ generation: 4, commit: cid(COMMIT_2), agents: [a!] });
        },
      ],
      ['a generation at or below lastGeneration', () => new BundleSigner({ privateKey: serverKey.privateKey, lastGeneration: 7 }).signGeneration({ generation: 7, commit: cid(COMMIT), agents: [a!] })],
    ];
    for (const [name, fn] of cases) {
      it(`refuses ${name} with INVALID_GENERATION`, () => expectCode(fn, 'INVALID_GENERATION'));
    }

    const keyCases: Array<[string, () => unknown]> = [
      ['an Ed25519 key', () => new BundleSigner({ privateKey: generateKeyPairSync('ed25519').privateKey })],
      ['an RSA key', () => new BundleSigner({ privateKey: generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey })],
      ['a P-384 key', () => new BundleSigner({ privateKey: generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey })],
      ['a public key', () => new BundleSigner({ privateKey: serverKey.publicKey })],
      ['garbage PEM', () => new BundleSigner({ privateKey: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n' })],
      ['an Ed25519 trusted key', () => new BundleVerifier({ trustedKeys: generateKeyPairSync('ed25519').publicKey })],
      ['no trusted key', () => new BundleVerifier({ trustedKeys: [] })],
    ];
    for (const [name, fn] of keyCases) {
      it(`refuses ${name} with INVALID_SIGNING_KEY`, () => expectCode(fn, 'INVALID_SIGNING_KEY'));
    }
  });

  describe('BundleVerifier refuses', () => {
    const agents = fleet(7);
    const A = agents[1]!;
    const B = agents[4]!;
    const gen1 = signer().signGeneration({ generation: 1, commit: cid(COMMIT), agents });
    const deliveryA = gen1.forAgent(aid(A.agentId))!;
    const deliveryB = gen1.forAgent(aid(B.agentId))!;
    const asA = (delivery: SignedDelivery | string, bytes = A.bytes) =>
      verifier().verify({ delivery, bytes, agentId: aid(A.agentId), current: null });

    it('nothing when nothing is tampered with (control)', () => {
      asA(deliveryA);
    });

    describe('tampered bytes', () => {
      it('with DIGEST_MISMATCH', () => {
        const bytes = Buffer.from(A.bytes);
        bytes.writeUInt8(bytes.readUInt8(2) ^ 1, 2);
        expectCode(() => asA(deliveryA, bytes), 'DIGEST_MISMATCH');
      });

      it('with PROOF_INVALID when the delivered digest is changed to match', () => {
        const bytes = agentBytes(A.agentId, 2);
        expectCode(() => asA({ ...deliveryA, digest: sha256Digest(bytes) }, bytes), 'PROOF_INVALID');
      });
    });

    describe('a tampered statement', () => {
      for (const [field, value] of [
        ['generation', 99],
        ['expiresAt', '2030-01-01T00:00:00.000Z'],
        ['rootHash', 'f'.repeat(64)],
      ] as const) {
        it(`(${field} changed, signature kept) with SIGNATURE_INVALID from @sigstore/verify's SIGNATURE_ERROR`, () => {
          const wire = wireCopy(deliveryA);
          const statement = { ...payloadOf(deliveryA), [field]: value } as never;
          wire.bundle.dsseEnvelope.payload = Buffer.from(canonicalBytes(statement)).toString('base64');
          const err = refused(() => asA(JSON.stringify(wire)), 'SIGNATURE_INVALID');
          assert.ok(err.cause instanceof VerificationError);
          assert.equal(err.cause.code, 'SIGNATURE_ERROR');
        });
      }

      it('(payload type changed) with MALFORMED_BUNDLE', () => {
        const wire = wireCopy(deliveryA);
        wire.bundle.dsseEnvelope.payloadType = 'application/vnd.in-toto+json';
        expectCode(() => asA(JSON.stringify(wire)), 'MALFORMED_BUNDLE');
      });
    });

    describe('a signature by another key', () => {
      const payload = Buffer.from(deliveryA.bundle.dsseEnvelope.payload, 'base64');

      it('claiming the trusted key\'s hint, with SIGNATURE_INVALID', () => {
        const forged = resigned(deliveryA, payload, otherKey.privateKey, keyHint(serverKey.publicKey));
        const err = refused(() => asA(forged), 'SIGNATURE_INVALID');
        assert.ok(err.cause instanceof VerificationError);
        assert.equal(err.cause.code, 'SIGNATURE_ERROR');
      });

      it('under its own hint, with UNKNOWN_KEY', () => {
        const forged = resigned(deliveryA, payload, otherKey.privateKey, keyHint(otherKey.publicKey));
        const err = refused(() => asA(forged), 'UNKNOWN_KEY');
        assert.ok(err.cause instanceof VerificationError);
        assert.equal(err.cause.code, 'PUBLIC_KEY_ERROR');
      });
    });

    describe('a delivery for another agent', () => {
      it('(B\'s delivery and bytes sent to A) with NOT_FOR_THIS_AGENT', () => {
        expectCode(() => asA(deliveryB, B.bytes), 'NOT_FOR_THIS_AGENT');
      });

      it('(B\'s delivery relabelled for A, B\'s bytes) with PROOF_INVALID', () => {
        expectCode(() => asA({ ...deliveryB, agent: aid(A.agentId) }, B.bytes), 'PROOF_INVALID');
      });

      it('(B\'s proof with A\'s label, digest and bytes) with PROOF_INVALID', () => {
        expectCode(() => asA({ ...deliveryB, agent: aid(A.agentId), digest: A.digest }, A.bytes), 'PROOF_INVALID');
      });
    });

    describe('mix-and-match across generations', () => {
      // Generation 2 assigns A the same bytes, so only the generation tells the leaves apart.
      const gen2 = signer({ now: T0 + 1000 }).signGeneration({ generation: 2, commit: cid(COMMIT_2), agents });
      const deliveryA2 = gen2.forAgent(aid(A.agentId))!;

      it('(generation 1 proof under the generation 2 statement) with PROOF_INVALID', () => {
        expectCode(() => asA({ ...deliveryA2, proof: deliveryA.proof }), 'PROOF_INVALID');
      });

      it('(generation 2 proof under the generation 1 statement) with PROOF_INVALID', () => {
        expectCode(() => asA({ ...deliveryA, proof: deliveryA2.proof }), 'PROOF_INVALID');
      });

      it('(a proof with another leaf index) with PROOF_INVALID', () => {
        expectCode(() => asA({ ...deliveryA, proof: { ...deliveryA.proof, leafIndex: 2 } }), 'PROOF_INVALID');
      });
    });

    describe('an older generation', () => {
      const gen3 = signer().signGeneration({ generation: 3, commit: cid(COMMIT_2), agents: fleet(7, 3) });
      const A3 = fleet(7, 3)[1]!;

      it('replayed to an agent on generation 3, with GENERATION_ROLLBACK', () => {
        const current = { generation: 3, digest: A3.digest };
        expectCode(() => verifier().verify({ delivery: deliveryA, bytes: A.bytes, agentId: aid(A.agentId), current }), 'GENERATION_ROLLBACK');
      });

      it('but accepts the generation it runs, re-sent with the same digest', () => {
        const current = { generation: 3, digest: A3.digest };
        const verified = verifier().verify({ delivery: gen3.forAgent(aid(A.agentId))!, bytes: A3.bytes, agentId: aid(A.agentId), current });
        assert.equal(verified.generation, 3);
      });

      it('and refuses the same generation with another digest, with GENERATION_ROLLBACK', () => {
        // Only a second signing of one generation can produce this (a server bug or a stolen key).
        const current = { generation: 1, digest: sha256Digest(agentBytes(A.agentId, 42)) };
        expectCode(() => verifier().verify({ delivery: deliveryA, bytes: A.bytes, agentId: aid(A.agentId), current }), 'GENERATION_ROLLBACK');
      });

      it('and accepts a newer generation', () => {
        const current = { generation: 1, digest: A.digest };
        verifier().verify({ delivery: gen3.forAgent(aid(A.agentId))!, bytes: A3.bytes, agentId: aid(A.agentId), current });
      });
    });

    describe('by time', () => {
      const at = (now: number) => () => verifier(now).verify({ delivery: deliveryA, bytes: A.bytes, agentId: aid(A.agentId), current: null });

      it('an expired statement with EXPIRED', () => expectCode(at(T0 + HOUR), 'EXPIRED'));
      it('but not one a millisecond before expiry', () => void at(T0 + HOUR - 1)());
      it('a statement issued beyond the clock skew with ISSUED_IN_FUTURE', () => expectCode(at(T0 - 5 * 60 * 1000 - 1), 'ISSUED_IN_FUTURE'));
      it('but not one within the clock skew', () => void at(T0 - 5 * 60 * 1000)());
    });

    describe('a malformed delivery with MALFORMED_BUNDLE', () => {
      const mutate = (fn: (wire: { [key: string]: any }) => void): string => {
        const wire = wireCopy(deliveryA);
        fn(wire);
        return JSON.stringify(wire);
      };
      const cases: Array<[string, string]> = [
        ['not JSON', '{"bundle":'],
        ['a JSON array', '[]'],
        ['JSON null', 'null'],
        ['larger than the limit', encodeDelivery(deliveryA) + ' '.repeat(20_000)],
        ['another _type', mutate((w) => (w._type = 'https://example.com/x'))],
        ['an unknown field', mutate((w) => (w.extra = 1))],
        ['no bundle', mutate((w) => delete w.bundle)],
        ['a bundle of another media type', mutate((w) => (w.bundle.mediaType = 'application/vnd.dev.sigstore.bundle+json;version=0.2'))],
        ['a message-signature bundle', mutate((w) => { w.bundle.messageSignature = { signature: 'AAAA' }; delete w.bundle.dsseEnvelope; })],
        ['a certificate instead of a key hint', mutate((w) => (w.bundle.verificationMaterial = { certificate: { rawBytes: 'AAAA' } }))],
        ['two signatures', mutate((w) => w.bundle.dsseEnvelope.signatures.push(w.bundle.dsseEnvelope.signatures[0]))],
        ['no signature', mutate((w) => (w.bundle.dsseEnvelope.signatures = []))],
        ['a payload that is not base64', mutate((w) => (w.bundle.dsseEnvelope.payload = '!!!!'))],
        ['a signature that is not base64', mutate((w) => (w.bundle.dsseEnvelope.signatures[0].sig = 5))],
        ['transparency-log entries', mutate((w) => (w.bundle.verificationMaterial.tlogEntries = [{}]))],
        ['a malformed digest label', mutate((w) => (w.digest = 'md5:00'))],
        ['an audit path with a non-hash', mutate((w) => w.proof.auditPath.push('zz'))],
        ['a negative leaf index', mutate((w) => (w.proof.leafIndex = -1))],
        ['a fractional leaf index', mutate((w) => (w.proof.leafIndex = 0.5))],
      ];
      for (const [name, wire] of cases) {
        it(name, () => expectCode(() => asA(wire), 'MALFORMED_BUNDLE'));
      }
    });

    describe('a validly signed statement that is malformed, with STATEMENT_MALFORMED', () => {
      const statement = payloadOf(deliveryA);
      const hint = keyHint(serverKey.publicKey);
      const cases: Array<[string, Buffer]> = [
        ['not JSON', Buffer.from('not json')],
        ['not canonical JSON', Buffer.from(JSON.stringify(statement, null, 2))],
        ['missing a field', Buffer.from(canonicalBytes(Object.fromEntries(Object.entries(statement).filter(([k]) => k !== 'treeSize')) as never))],
        ['with an unknown field', Buffer.from(canonicalBytes({ ...statement, agent: A.agentId } as never))],
        ['of another _type', Buffer.from(canonicalBytes({ ...statement, _type: 'https://in-toto.io/Statement/v1' } as never))],
        ['expiring before it is issued', Buffer.from(canonicalBytes({ ...statement, expiresAt: '2025-06-01T11:00:00.000Z' } as never))],
        ['with a time not in toISOString form', Buffer.from(canonicalBytes({ ...statement, expiresAt: '2025-06-01T13:00:00Z' } as never))],
        ['with a fractional generation', Buffer.from(canonicalBytes({ ...statement, generation: 1.5 } as never))],
      ];
      for (const [name, payload] of cases) {
        it(name, () => expectCode(() => asA(resigned(deliveryA, payload, serverKey.privateKey, hint)), 'STATEMENT_MALFORMED'));
      }
    });
  });
});

describe('encodeDelivery', () => {
  it('writes exactly the RFC 8785 canonical JSON of the delivery document', () => {
    const signed = signer().signGeneration({ generation: 1, commit: cid(COMMIT), agents: fleet(5) });
    const delivery = signed.forAgent(aid('agent-0003'))!;
    const expected = canonicalJson({
      _type: 'https://meshcfg.dev/delivery/v1',
      agent: delivery.agent,
      bundle: JSON.parse(JSON.stringify(delivery.bundle)) as JsonObject,
      digest: delivery.digest,
      proof: { leafIndex: delivery.proof.leafIndex, auditPath: [...delivery.proof.auditPath] },
    });
    assert.equal(encodeDelivery(delivery), expected);
    assert.equal(encodeDelivery(decodeDelivery(expected)), expected, 'an unfrozen, decoded bundle encodes the same');
  });
});
