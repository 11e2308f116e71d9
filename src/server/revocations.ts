import type { AgentId } from '../domain/types.js';
import type { FleetStore as PersistentFleetStore } from '../fleet/index.js';
import type { AgentIdentity } from '../transport/backend.js';
import type { RevocationList } from './backend.js';
import { normalizeSerial } from './fleet.js';

/**
 * Revoked certificate serials: persisted in the fleet store, answered from memory (the
 * transport asks on every stream message, synchronously). Loaded once at start; this
 * process is the only writer.
 */
export class Revocations implements RevocationList {
  private constructor(
    private readonly store: Pick<PersistentFleetStore, 'revoke'>,
    private readonly serials: Set<string>,
  ) {}

  static async load(store: Pick<PersistentFleetStore, 'revoke' | 'listRevocations'>): Promise<Revocations> {
    const serials = new Set((await store.listRevocations()).map((r) => normalizeSerial(r.serial)));
    return new Revocations(store, serials);
  }

  isRevoked(identity: AgentIdentity): boolean {
    return this.serials.has(normalizeSerial(identity.serialNumber));
  }

  has(serial: string): boolean {
    return this.serials.has(normalizeSerial(serial));
  }

  /** Records the revocation with its audit entry (one transaction). False when it already was revoked. */
  async revoke(serial: string, agentId: AgentId, actor: string, reason: string, at: Date): Promise<boolean> {
    const normalized = normalizeSerial(serial);
    const revoked = await this.store.revoke(
      { serial: normalized, agentId, at, by: actor },
      { at, actor, action: 'agent.revoke', target: agentId, reason, details: { serial: normalized } },
    );
    this.serials.add(normalized);
    return revoked;
  }
}
