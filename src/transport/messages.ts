import type { AckReport, ActiveReport, Delivery, EnrollmentResult } from './backend.js';
import type { AckMsg, ActiveMsg, BundleMsg, EnrollResponseMsg } from './proto.js';

/**
 * Mapping between proto messages (as proto-loader presents them) and the backend's types.
 * Everything here reads attacker-controlled input: proto-loader guarantees field types, not
 * meanings, so values are checked rather than trusted.
 */

export function bundleMessage(delivery: Delivery): BundleMsg {
  return {
    commit: delivery.commit,
    digest: delivery.digest,
    generation: delivery.generation,
    // A view, not a copy: bundles are up to a few MiB and shared by every agent of a commit.
    bytes: Buffer.from(delivery.bytes.buffer, delivery.bytes.byteOffset, delivery.bytes.byteLength),
    signature: delivery.signature,
    nonce: delivery.nonce,
    baseline: delivery.baseline,
  };
}

/** `null` when the agent runs nothing yet (no `active`, or one without a digest). */
export function activeReport(active: ActiveMsg | null | undefined): ActiveReport | null {
  if (active === null || active === undefined || active.digest === '') return null;
  return { commit: active.commit, digest: active.digest, generation: active.generation };
}

/** The ack as the backend takes it, or `undefined` when its status is neither APPLIED nor REJECTED. */
export function ackReport(ack: AckMsg): AckReport | undefined {
  if (ack.status !== 'APPLIED' && ack.status !== 'REJECTED') return undefined;
  return { commit: ack.commit, digest: ack.digest, generation: ack.generation, nonce: ack.nonce, status: ack.status, error: ack.error };
}

export function enrollResponse(result: EnrollmentResult): EnrollResponseMsg {
  return {
    certificate_pem: Buffer.from(result.certificatePem, 'utf8'),
    ca_pem: Buffer.from(result.caPem, 'utf8'),
    signing_key_pem: Buffer.from(result.signingKeyPem, 'utf8'),
    agent_id: result.agentId,
    expires_at: result.expiresAt.toISOString(),
  };
}
