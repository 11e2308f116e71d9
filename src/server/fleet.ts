import type { AgentId, CommitSha, Labels } from '../domain/types.js';

export type AgentState = 'SYNCED' | 'PENDING' | 'NACKED' | 'DISCONNECTED';
export const AGENT_STATES: readonly AgentState[] = ['SYNCED', 'PENDING', 'NACKED', 'DISCONNECTED'];

export interface DesiredVersion {
  readonly commit: CommitSha;
  readonly digest: string;
  readonly generation: number;
}

export interface ActiveVersion {
  readonly commit: string;
  readonly digest: string;
  readonly generation: number;
  readonly at: Date;
}

/** One agent as the admin API shows it. */
export interface AgentStatus {
  readonly id: AgentId;
  readonly labels: Labels;
  readonly state: AgentState;
  readonly desired: DesiredVersion | null;
  readonly active: ActiveVersion | null;
  readonly certExpiry: Date | null;
  readonly lastSeen: Date | null;
  readonly connected: boolean;
  /** The error of the last REJECTED ack for the desired digest, if it is NACKED. */
  readonly lastError: string | null;
}

/**
 * Fleet state behind the narrowest interface the server needs, so the SQLite store of a later
 * issue replaces the in-memory one without touching callers. Writers are the backend (what
 * agents report) and the reconciler's publish hook (inventory and desired versions).
 */
export interface FleetStore {
  /** The inventory of the served commit and each agent's desired version. Agents not listed are forgotten. */
  setDesired(agents: ReadonlyArray<{ readonly id: AgentId; readonly labels: Labels; readonly desired: DesiredVersion | null }>): void;
  /** A hello or a poll: what the agent runs (null: nothing yet). */
  recordActive(agentId: AgentId, active: Omit<ActiveVersion, 'at'> | null, at: Date): void;
  recordAck(agentId: AgentId, ack: { readonly commit: string; readonly digest: string; readonly generation: number; readonly status: 'APPLIED' | 'REJECTED'; readonly error: string }, at: Date): void;
  recordSeen(agentId: AgentId, at: Date, certExpiry?: Date): void;
  setConnected(agentId: AgentId, connected: boolean, at: Date): void;
  get(agentId: AgentId): AgentStatus | undefined;
  list(): readonly AgentStatus[];
}

export interface MemoryFleetOptions {
  readonly now?: () => Date;
  /**
   * An agent with no open stream that has not been seen for this long is DISCONNECTED.
   * Should exceed the agents' poll interval. Default 2 minutes.
   */
  readonly disconnectedAfterMs?: number;
}

interface Record_ {
  id: AgentId;
  /** Only inventory agents are listed; the others keep what they reported in case they come back. */
  inInventory: boolean;
  labels: Labels;
  desired: DesiredVersion | null;
  active: ActiveVersion | null;
  rejected: { readonly digest: string; readonly error: string } | null;
  certExpiry: Date | null;
  lastSeen: Date | null;
  connected: boolean;
}

/** In-memory FleetStore. State is derived on read, so it never goes stale between events. */
export class MemoryFleetStore implements FleetStore {
  private readonly agents = new Map<AgentId, Record_>();
  private readonly options: Required<MemoryFleetOptions>;

  constructor(options: MemoryFleetOptions = {}) {
    this.options = {
      now: options.now ?? (() => new Date()),
      disconnectedAfterMs: options.disconnectedAfterMs ?? 120_000,
    };
  }

  setDesired(agents: ReadonlyArray<{ readonly id: AgentId; readonly labels: Labels; readonly desired: DesiredVersion | null }>): void {
    for (const record of this.agents.values()) record.inInventory = false;
    for (const { id, labels, desired } of agents) {
      const record = this.record(id);
      record.inInventory = true;
      record.labels = labels;
      record.desired = desired;
    }
    // Forget agents that left the inventory and have no open stream (bounds memory).
    for (const [id, record] of this.agents) if (!record.inInventory && !record.connected) this.agents.delete(id);
  }

  recordActive(agentId: AgentId, active: Omit<ActiveVersion, 'at'> | null, at: Date): void {
    const record = this.record(agentId);
    record.lastSeen = at;
    if (active === null) {
      record.active = null;
    } else if (record.active?.digest !== active.digest || record.active.generation !== active.generation || record.active.commit !== active.commit) {
      record.active = { commit: active.commit, digest: active.digest, generation: active.generation, at };
    }
  }

  recordAck(
    agentId: AgentId,
    ack: { readonly commit: string; readonly digest: string; readonly generation: number; readonly status: 'APPLIED' | 'REJECTED'; readonly error: string },
    at: Date,
  ): void {
    const record = this.record(agentId);
    record.lastSeen = at;
    switch (ack.status) {
      case 'APPLIED':
        record.active = { commit: ack.commit, digest: ack.digest, generation: ack.generation, at };
        record.rejected = null;
        return;
      case 'REJECTED':
        record.rejected = { digest: ack.digest, error: ack.error };
        return;
      default: {
        const never: never = ack.status;
        throw new Error(`unexpected ack status ${String(never)}`);
      }
    }
  }

  recordSeen(agentId: AgentId, at: Date, certExpiry?: Date): void {
    const record = this.record(agentId);
    record.lastSeen = at;
    if (certExpiry !== undefined) record.certExpiry = certExpiry;
  }

  setConnected(agentId: AgentId, connected: boolean, at: Date): void {
    const record = this.record(agentId);
    record.connected = connected;
    record.lastSeen = at;
  }

  get(agentId: AgentId): AgentStatus | undefined {
    const record = this.agents.get(agentId);
    return record === undefined || !record.inInventory ? undefined : this.view(record, this.options.now().getTime());
  }

  list(): readonly AgentStatus[] {
    const now = this.options.now().getTime();
    return [...this.agents.values()]
      .filter((r) => r.inInventory)
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).map((r) => this.view(r, now));
  }

  /** Callers only record agents the transport authorized (in the inventory), so this stays bounded. */
  private record(id: AgentId): Record_ {
    let record = this.agents.get(id);
    if (record === undefined) {
      record = { id, inInventory: false, labels: {}, desired: null, active: null, rejected: null, certExpiry: null, lastSeen: null, connected: false };
      this.agents.set(id, record);
    }
    return record;
  }

  private view(record: Record_, now: number): AgentStatus {
    const state = stateOf(record, now, this.options.disconnectedAfterMs);
    return Object.freeze({
      id: record.id,
      labels: record.labels,
      state,
      desired: record.desired,
      active: record.active,
      certExpiry: record.certExpiry,
      lastSeen: record.lastSeen,
      connected: record.connected,
      lastError: state === 'NACKED' ? (record.rejected?.error ?? null) : null,
    });
  }
}

/**
 * DISCONNECTED wins (what it runs is unknown), then SYNCED when the active digest is the
 * desired one, NACKED when the agent rejected the desired digest, else PENDING.
 */
function stateOf(record: Record_, now: number, disconnectedAfterMs: number): AgentState {
  const recentlySeen = record.lastSeen !== null && now - record.lastSeen.getTime() <= disconnectedAfterMs;
  if (!record.connected && !recentlySeen) return 'DISCONNECTED';
  if (record.desired !== null && record.active?.digest === record.desired.digest) return 'SYNCED';
  if (record.desired !== null && record.rejected?.digest === record.desired.digest) return 'NACKED';
  return 'PENDING';
}
