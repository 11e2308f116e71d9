import { parseCommitSha } from '../domain/agent-id.js';
import type { CommitSha } from '../domain/types.js';
import type { AckReport, ActiveReport, Delivery, EnrollmentResult } from './backend.js';
import type { AckMsg, ActiveMsg, BundleMsg, EnrollResponseMsg } from './proto.js';
import type { UnauthorizedRefusal } from './status.js';

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

/** A message mapped for the backend, or why the caller is refused (counted like every refusal). */
export type Mapped<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly refusal: UnauthorizedRefusal };

/**
 * The active report of a hello or fetch: `null` when the agent runs nothing yet (no `active`,
 * or one without a digest); refused when it names a commit that is not a full object id
 * (an empty one is the proto's "none": a file without the state that names its commit).
 */
export function activeReport(active: ActiveMsg | null | undefined): Mapped<ActiveReport | null> {
  if (active === null || active === undefined || active.digest === '') return { ok: true, value: null };
  if (active.commit === '') return { ok: true, value: { commit: '', digest: active.digest, generation: active.generation } };
  const commit = parseCommitSha(active.commit);
  if (commit === undefined) return malformedCommit('active');
  return { ok: true, value: { commit, digest: active.digest, generation: active.generation } };
}

/**
 * The ack as the backend takes it, `undefined` when its status is neither APPLIED nor REJECTED,
 * refused when its commit (the delivery's, echoed) is not a full object id.
 */
export function ackReport(ack: AckMsg): Mapped<AckReport> | undefined {
  if (ack.status !== 'APPLIED' && ack.status !== 'REJECTED') return undefined;
  const commit: CommitSha | undefined = parseCommitSha(ack.commit);
  if (commit === undefined) return malformedCommit('ack');
  return { ok: true, value: { commit, digest: ack.digest, generation: ack.generation, nonce: ack.nonce, status: ack.status, error: ack.error } };
}

function malformedCommit(what: 'active' | 'ack'): { readonly ok: false; readonly refusal: UnauthorizedRefusal } {
  // The echoed value is not repeated: it is the caller's, unbounded input.
  return { ok: false, refusal: { reason: 'malformed-commit', message: `the ${what} commit is not a full lowercase hex commit id` } };
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
