import type { AgentId, CommitSha } from '../domain/types.js';
import type { EnrollmentCa, EnrollmentTokens } from '../pki/index.js';
import type {
  AckOutcome,
  AckReport,
  ActiveReport,
  AgentIdentity,
  Authorization,
  Delivery,
  DistributionBackend,
  EnrollmentResult,
} from '../transport/index.js';
import type { LiveFleet } from './fleet.js';
import type { SnapshotCache } from './snapshot.js';
import { notify } from '../lib/index.js';
import { TransportError } from '../domain/errors.js';
import { isStoreUnavailable } from '../fleet/index.js';

/**
 * Enrollment and renewal need the fleet store (the token, the current certificate): when it is
 * out of reach the transport answers UNAVAILABLE (retryable), not INTERNAL.
 */
async function unavailableAsTransport<T>(step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    if (isStoreUnavailable(err)) throw new TransportError({ code: 'BACKEND_UNAVAILABLE', message: 'the fleet state store is out of reach', cause: err });
    throw err;
  }
}

/** Which agents exist: the inventory of the served commit. */
export interface Inventory {
  has(agentId: AgentId): boolean;
}

/**
 * Where a certificate the CA issued stands: only an agent's current certificate is accepted
 * (`replaced`: a later enrollment or renewal issued another), and none of a revoked identity.
 */
export type CertificateStanding = { readonly kind: 'current' } | { readonly kind: 'revoked' } | { readonly kind: 'replaced' };

/**
 * Which certificate each agent identity may use now (`meshcfg revoke` revokes the identity).
 * `standing` is asked on every stream message: answer from memory.
 */
export interface CertificateRegistry {
  standing(identity: AgentIdentity): CertificateStanding;
  /**
   * Makes a certificate just issued its agent's current one (after an enrollment, this also
   * lifts a revocation of the identity). Rejects when that cannot be recorded: the certificate
   * must then not be handed out.
   */
  issued(agentId: AgentId, serialNumber: string, kind: 'enroll' | 'renew', at: Date): Promise<void>;
}

/** Accepts every certificate the CA issued (tests of other concerns). */
export const ANY_CERTIFICATE: CertificateRegistry = Object.freeze({ standing: () => ({ kind: 'current' }) as const, issued: () => Promise.resolve() });

/** Observers (metrics, logs). Refusals of callers are reported by the transport (TransportHooks.onUnauthorized), not here. */
export interface BackendHooks {
  /** `delivery`: the agent's current delivery when the ack arrived (what a recorded ack answers). */
  onAck?(event: { readonly agentId: AgentId; readonly ack: AckReport; readonly outcome: AckOutcome; readonly delivery?: Delivery | null }): void;
  /** A hello or a poll said what the agent runs (null: nothing yet). Drift detection observes this. */
  onActive?(event: { readonly agentId: AgentId; readonly active: ActiveReport | null }): void;
  onCertificateIssued?(event: { readonly agentId: AgentId; readonly kind: 'enroll' | 'renew'; readonly notAfter: Date; readonly serialNumber: string }): void;
  onConnection?(event: { readonly agentId: AgentId; readonly connected: boolean }): void;
}

export interface ServerBackendOptions {
  readonly snapshots: SnapshotCache;
  readonly fleet: LiveFleet;
  readonly inventory: Inventory;
  readonly tokens: Pick<EnrollmentTokens, 'consume'>;
  readonly ca: Pick<EnrollmentCa, 'issueAgentCertificate' | 'certificatePem'>;
  /** SPKI PEM of the bundle signing key; agents pin it at enrollment. */
  readonly signingPublicKeyPem: string;
  /** Lifetime of issued agent certificates. Default: the CA's. */
  readonly certificateTtlMs?: number;
  /** Default: ANY_CERTIFICATE. */
  readonly certificates?: CertificateRegistry;
  readonly hooks?: BackendHooks;
  readonly now?: () => Date;
  /**
   * The commit whose bundle for this agent has this digest (null: unknown). A generation names
   * one commit, but an agent held back by the rollout runs an older commit's bundle under it:
   * the fleet's ACTIVE commit comes from here, so it names the same commit as DESIRED when synced.
   */
  readonly commitOfDigest?: (agentId: AgentId, digest: string) => CommitSha | null;
  /**
   * Judges what an agent reports (drift detection) before it is sent anything: a promise
   * holds the agent's first delivery (stream or poll) until it settles; `undefined` when the
   * verdict needs no I/O. Default: nothing is judged.
   */
  readonly driftCheck?: (agentId: AgentId, active: ActiveReport | null) => Promise<void> | undefined;
}

/**
 * The server side of the transport seam: decides who may load config, serves deliveries
 * from the snapshot cache and records what agents report into the fleet store.
 *
 * Identity is always the `AgentIdentity` the transport took from the verified client
 * certificate; nothing here reads an agent id out of a message.
 */
export class ServerBackend implements DistributionBackend {
  private readonly options: Required<Omit<ServerBackendOptions, 'certificateTtlMs'>> & { readonly certificateTtlMs: number | undefined };
  /** Open watches (streams) per agent: an agent is connected while it has one. */
  private readonly streams = new Map<AgentId, number>();

  constructor(options: ServerBackendOptions) {
    this.options = {
      snapshots: options.snapshots,
      fleet: options.fleet,
      inventory: options.inventory,
      tokens: options.tokens,
      ca: options.ca,
      signingPublicKeyPem: options.signingPublicKeyPem,
      certificateTtlMs: options.certificateTtlMs,
      certificates: options.certificates ?? ANY_CERTIFICATE,
      hooks: options.hooks ?? {},
      now: options.now ?? (() => new Date()),
      commitOfDigest: options.commitOfDigest ?? (() => null),
      driftCheck: options.driftCheck ?? (() => undefined),
    };
  }

  authorize(identity: AgentIdentity): Authorization {
    const { agentId } = identity;
    if (!this.options.inventory.has(agentId)) {
      return { ok: false, reason: 'unknown-agent', message: `agent ${agentId} is not in the inventory of the served commit` };
    }
    const standing = this.options.certificates.standing(identity);
    switch (standing.kind) {
      case 'current':
        break;
      case 'revoked': {
        const message = `agent ${agentId} is revoked (certificate ${identity.serialNumber}); it must enroll again with a new token`;
        return { ok: false, reason: 'revoked', message };
      }
      case 'replaced':
        return { ok: false, reason: 'replaced-certificate', message: `certificate ${identity.serialNumber} of ${agentId} was replaced by a later one` };
      default: {
        const never: never = standing;
        throw new Error(`unexpected certificate standing ${JSON.stringify(never)}`);
      }
    }
    // TLS checked validity at the handshake; a long-lived stream can outlive the certificate.
    if (identity.notAfter.getTime() <= this.options.now().getTime()) {
      return { ok: false, reason: 'expired-certificate', message: `certificate of ${agentId} expired at ${identity.notAfter.toISOString()}` };
    }
    return { ok: true };
  }

  watch(agentId: AgentId, listener: (delivery: Delivery) => void): () => void {
    const count = (this.streams.get(agentId) ?? 0) + 1;
    this.streams.set(agentId, count);
    if (count === 1) this.connection(agentId, true);
    // Each delivery handed to a stream is a send: recorded before the agent can answer it.
    const unwatch = this.options.snapshots.watch(agentId, (delivery) => {
      this.recordSend(agentId, delivery);
      listener(delivery);
    });
    let open = true;
    return () => {
      if (!open) return;
      open = false;
      unwatch();
      const left = (this.streams.get(agentId) ?? 1) - 1;
      if (left > 0) {
        this.streams.set(agentId, left);
      } else {
        this.streams.delete(agentId);
        this.connection(agentId, false);
      }
    };
  }

  /**
   * For a poll. The delivery is recorded as sent (once per nonce) even when the transport
   * answers not-modified: the agent already runs that digest, so no ack is missing.
   */
  desired(agentId: AgentId): Delivery | null {
    const delivery = this.options.snapshots.desired(agentId);
    if (delivery !== null) this.recordSend(agentId, delivery);
    return delivery;
  }

  /** Returns the drift verdict to wait for before anything is sent to the agent (undefined: none pending). */
  reportActive(identity: AgentIdentity, active: ActiveReport | null): Promise<void> | undefined {
    const now = this.options.now();
    this.options.fleet.recordSeen(identity.agentId, now, { notAfter: identity.notAfter, serial: identity.serialNumber });
    // An agent that runs nothing yet says so with an empty digest (proto defaults).
    const running = active === null || active.digest === '' ? null : active;
    const commit = running === null ? null : this.commitOf(identity.agentId, running.digest);
    this.options.fleet.recordActive(identity.agentId, running === null || commit === null ? running : { ...running, commit }, now);
    this.emit(() => this.options.hooks.onActive?.({ agentId: identity.agentId, active: running }));
    return this.options.driftCheck(identity.agentId, running);
  }

  /** Every ack is recorded (stale ones as evidence); only one answering the current delivery changes the agent. */
  ack(identity: AgentIdentity, ack: AckReport): AckOutcome {
    const now = this.options.now();
    const current = this.options.snapshots.desired(identity.agentId);
    const outcome: AckOutcome = current !== null && ack.nonce === current.nonce ? { kind: 'recorded' } : { kind: 'stale' };
    this.options.fleet.recordSeen(identity.agentId, now, { notAfter: identity.notAfter, serial: identity.serialNumber });
    this.options.fleet.recordAck(identity.agentId, ack, now, outcome.kind, this.commitOf(identity.agentId, ack.digest) ?? undefined);
    this.emit(() => this.options.hooks.onAck?.({ agentId: identity.agentId, ack, outcome, delivery: current }));
    return outcome;
  }

  disconnected(agentId: AgentId): void {
    // Connection state follows the watches (unsubscribe); this only dates the last contact.
    this.options.fleet.recordSeen(agentId, this.options.now());
  }

  /**
   * Spends the token first, then certifies the CSR: a request with a bad CSR burns its token
   * (tokens are cheap; letting a token be probed repeatedly is not).
   */
  async enroll(token: string, csrPem: string): Promise<EnrollmentResult> {
    return unavailableAsTransport(async () => {
      const agentId = await this.options.tokens.consume(token, this.options.now());
      return this.issue(agentId, csrPem, 'enroll');
    });
  }

  /**
   * Call only for an identity `authorize` accepted (in the same turn: the new certificate
   * replaces the caller's at once, so a second renewal with it is refused as replaced).
   */
  async renew(identity: AgentIdentity, csrPem: string): Promise<EnrollmentResult> {
    return unavailableAsTransport(() => this.issue(identity.agentId, csrPem, 'renew'));
  }

  /** Agents with at least one open stream. */
  connectedCount(): number {
    return this.streams.size;
  }

  /** The certificate becomes the agent's current one before it is handed out. */
  private async issue(agentId: AgentId, csrPem: string, kind: 'enroll' | 'renew'): Promise<EnrollmentResult> {
    const ttl = this.options.certificateTtlMs;
    const issued = this.options.ca.issueAgentCertificate({ csrPem, agentId, ...(ttl === undefined ? {} : { ttlMs: ttl }) });
    await this.options.certificates.issued(agentId, issued.serialNumber, kind, this.options.now());
    this.options.fleet.recordSeen(agentId, this.options.now(), { notAfter: issued.notAfter, serial: issued.serialNumber });
    this.emit(() => this.options.hooks.onCertificateIssued?.({ agentId, kind, notAfter: issued.notAfter, serialNumber: issued.serialNumber }));
    return {
      agentId,
      certificatePem: issued.certPem,
      caPem: this.options.ca.certificatePem,
      signingKeyPem: this.options.signingPublicKeyPem,
      expiresAt: issued.notAfter,
    };
  }

  private commitOf(agentId: AgentId, digest: string): CommitSha | null {
    try {
      return this.options.commitOfDigest(agentId, digest);
    } catch {
      return null;
    }
  }

  private recordSend(agentId: AgentId, delivery: Delivery): void {
    const { commit, digest, generation, nonce } = delivery;
    this.options.fleet.recordSend(agentId, { commit, digest, generation, nonce }, this.options.now());
  }

  private connection(agentId: AgentId, connected: boolean): void {
    this.options.fleet.setConnected(agentId, connected, this.options.now());
    this.emit(() => this.options.hooks.onConnection?.({ agentId, connected }));
  }

  private emit(call: () => void): void {
    // Observers must not fail a call from an agent.
    notify(call);
  }
}
