import type { AgentId } from '../domain/types.js';
import { notified, type CoherentCache, type CredentialStore, type CurrentCertificate } from '../fleet/index.js';
import type { AgentIdentity } from '../transport/index.js';
import type { CertificateRegistry, CertificateStanding } from './backend.js';
import { normalizeSerial } from './fleet.js';
import { notify } from '../lib/index.js';

type Store = Pick<
  CredentialStore,
  'revoke' | 'listRevocations' | 'setCurrentCertificate' | 'setCurrentCertificates' | 'listCurrentCertificates'
>;

export interface AgentCertificatesHooks {
  /** An agent with no recorded certificate (enrolled by an older meshcfg) connected: its certificate became current. */
  onAdopted?(event: { readonly agentId: AgentId; readonly serial: string }): void;
  /** Recording an adoption failed; it stays current in memory and is recorded again after a restart. */
  onStoreError?(err: unknown, what: string): void;
}

/** Adoptions are recorded together this long after the first of a batch. */
const ADOPTION_WINDOW_MS = 20;

export type RevokeOutcome =
  | { readonly kind: 'revoked'; readonly serial: string }
  | { readonly kind: 'already-revoked'; readonly serial: string }
  /** Nothing is known of the agent's certificates: it never enrolled or connected. */
  | { readonly kind: 'no-certificate' };

/**
 * Agent identities and their certificates: each agent has one *current* certificate (the one
 * its last enrollment or renewal issued) and only that one is accepted; an identity is revoked
 * when its current certificate is, which refuses every certificate ever issued to the agent
 * until an enrollment with a new one-time token makes a new certificate current.
 *
 * Persisted in the fleet store, answered from memory (the transport asks on every stream
 * message, synchronously). Loaded at start, reloaded when another replica changes credentials.
 */
export class AgentCertificates implements CertificateRegistry, CoherentCache {
  /**
   * Notified: revocations and current certificates are reloaded when another replica changed
   * credentials; agents whose standing changed are reported (their open streams are checked
   * again, so a revocation made anywhere ends the agent's streams everywhere).
   */
  readonly coherence = notified(['credentials'], async () => {
    const changed = await this.reload();
    if (changed.length > 0) for (const listener of [...this.listeners]) notify(() => listener(changed));
  });
  private readonly listeners = new Set<(agentIds: readonly AgentId[]) => void>();
  /** Adoptions of the current window, written together (a fleet reconnecting after an upgrade adopts thousands at once). */
  private adoptions: CurrentCertificate[] = [];
  private adopting: Promise<void> = Promise.resolve();

  private constructor(
    private readonly store: Store,
    /** agent → serial of its current certificate (normalized). */
    private readonly currents: Map<AgentId, string>,
    private readonly revoked: Set<string>,
    private readonly hooks: AgentCertificatesHooks,
    private readonly now: () => Date,
  ) {}

  static async load(
    store: Store,
    options: { readonly hooks?: AgentCertificatesHooks; readonly now?: () => Date } = {},
  ): Promise<AgentCertificates> {
    const revoked = new Set((await store.listRevocations()).map((r) => normalizeSerial(r.serial)));
    const currents = new Map((await store.listCurrentCertificates()).map((c) => [c.agentId, normalizeSerial(c.serial)] as const));
    return new AgentCertificates(store, currents, revoked, options.hooks ?? {}, options.now ?? (() => new Date()));
  }

  /** Calls `listener` with the agents whose current certificate or revocation another replica changed. */
  onStandingChanged(listener: (agentIds: readonly AgentId[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Re-reads revocations and current certificates; returns the agents whose standing changed. Idempotent. */
  async reload(): Promise<AgentId[]> {
    const revoked = new Set((await this.store.listRevocations()).map((r) => normalizeSerial(r.serial)));
    const currents = new Map((await this.store.listCurrentCertificates()).map((c) => [c.agentId, normalizeSerial(c.serial)] as const));
    const changed = new Set<AgentId>();
    for (const [agentId, serial] of currents) {
      if (this.currents.get(agentId) !== serial || revoked.has(serial) !== this.revoked.has(serial)) changed.add(agentId);
      this.currents.set(agentId, serial);
    }
    for (const serial of revoked) this.revoked.add(serial);
    return [...changed];
  }

  /**
   * An agent enrolled before current certificates were recorded (and never seen since the
   * upgrade) has none: the first certificate it presents is adopted as its current one.
   */
  standing(identity: AgentIdentity): CertificateStanding {
    const serial = normalizeSerial(identity.serialNumber);
    if (this.revoked.has(serial)) return { kind: 'revoked' };
    const current = this.currents.get(identity.agentId);
    if (current === undefined) {
      this.adopt(identity.agentId, serial);
      return { kind: 'current' };
    }
    if (current === serial) return { kind: 'current' };
    // Every certificate of a revoked identity is refused as revoked, not merely as replaced.
    return this.revoked.has(current) ? { kind: 'revoked' } : { kind: 'replaced' };
  }

  /** The serial of the agent's current certificate, if one is known. */
  current(agentId: AgentId): string | undefined {
    return this.currents.get(agentId);
  }

  /** Whether the agent's identity is revoked (its current certificate is). */
  isRevoked(agentId: AgentId): boolean {
    const current = this.currents.get(agentId);
    return current !== undefined && this.revoked.has(current);
  }

  /**
   * Current in memory from the call on, so a second renewal racing with this one already finds
   * its certificate replaced; recorded before the promise resolves. When recording fails the
   * previous certificate is current again and the promise rejects: the new certificate must
   * not be handed out.
   */
  async issued(agentId: AgentId, serialNumber: string, kind: 'enroll' | 'renew', at: Date): Promise<void> {
    const serial = normalizeSerial(serialNumber);
    const previous = this.currents.get(agentId);
    this.currents.set(agentId, serial);
    try {
      // A queued adoption of this agent's previous certificate must not land after this.
      await this.flush();
      await this.store.setCurrentCertificate({ agentId, serial, kind, at });
    } catch (err) {
      if (this.currents.get(agentId) === serial) {
        if (previous === undefined) this.currents.delete(agentId);
        else this.currents.set(agentId, previous);
      }
      throw err;
    }
  }

  /**
   * Revokes the agent's identity: its current certificate — or, when none is recorded,
   * `lastKnownSerial` (the one it last connected with), which then becomes its current one —
   * is recorded as revoked with its audit entry (one transaction).
   */
  async revoke(agentId: AgentId, lastKnownSerial: string | null, actor: string, reason: string, at: Date): Promise<RevokeOutcome> {
    const recorded = this.currents.get(agentId);
    const serial = recorded ?? (lastKnownSerial === null ? undefined : normalizeSerial(lastKnownSerial));
    if (serial === undefined) return { kind: 'no-certificate' };
    if (this.revoked.has(serial)) return { kind: 'already-revoked', serial };
    await this.flush();
    if (recorded === undefined) {
      await this.store.setCurrentCertificate({ agentId, serial, kind: 'adopted', at });
      this.currents.set(agentId, serial);
    }
    await this.store.revoke(
      { serial, agentId, at, by: actor },
      { at, actor, action: 'agent.revoke', target: agentId, reason, details: { serial } },
    );
    this.revoked.add(serial);
    return { kind: 'revoked', serial };
  }

  /** Resolves once every adoption made so far is recorded (or its failure reported). */
  async flush(): Promise<void> {
    this.writeAdoptions();
    await this.adopting;
  }

  private adopt(agentId: AgentId, serial: string): void {
    this.currents.set(agentId, serial);
    // Observers must not fail a call from an agent.
    notify(() => this.hooks.onAdopted?.({ agentId, serial }));
    this.adoptions.push({ agentId, serial, kind: 'adopted', at: this.now() });
    // A short window, not the turn: a reconnecting fleet's hellos arrive a few per turn.
    if (this.adoptions.length === 1) setTimeout(() => this.writeAdoptions(), ADOPTION_WINDOW_MS);
  }

  /** One transaction for the window's adoptions, after the ones before it. */
  private writeAdoptions(): void {
    if (this.adoptions.length === 0) return;
    const batch = this.adoptions;
    this.adoptions = [];
    this.adopting = this.adopting.then(() =>
      this.store.setCurrentCertificates(batch).catch((err: unknown) => {
        notify(() => this.hooks.onStoreError?.(err, 'record adopted certificates'));
      }),
    );
  }
}
