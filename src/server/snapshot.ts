import { randomBytes } from 'node:crypto';
import type { Compilation, CompiledAgent } from '../compile/index.js';
import type { AgentId, CommitSha, Digest } from '../domain/types.js';
import { encodeDelivery, type SignedGeneration } from '../signing/index.js';
import type { Delivery } from '../transport/index.js';

/** What one agent should run in a generation, before signing. */
export interface DesiredBundle {
  readonly agentId: AgentId;
  readonly digest: Digest;
  readonly bytes: Uint8Array;
  /** True when this is the repository's baseline (quarantine), not the agent's own bundle. */
  readonly baseline: boolean;
  /**
   * The commit whose compilation holds these bytes, when not the generation's (an agent the
   * rollout holds back runs an older commit's bundle). Stored with the signed generation, so
   * another replica finds the same bytes.
   */
  readonly commit?: CommitSha;
}

/**
 * Decides what each agent should have. The seam where the rollout controller (waves,
 * windows, quarantine) plugs in: the reconciler asks it for every inventory agent before
 * signing, and publishes exactly what it answers. `null` leaves the agent without a delivery.
 */
export interface DesiredStatePolicy {
  /**
   * Called once per publish, before `desiredFor` is asked for each agent: a stateful policy
   * (the rollout) learns of a newly accepted commit here, so its answers already cover it.
   */
  prepare?(compilation: Compilation): void;
  desiredFor(agentId: AgentId, compilation: Compilation): DesiredBundle | null;
}

/** Per compilation, agents by id (compilations are immutable, so the index never goes stale). */
const agentIndex = new WeakMap<Compilation, ReadonlyMap<AgentId, CompiledAgent>>();

export function agentsById(compilation: Compilation): ReadonlyMap<AgentId, CompiledAgent> {
  let index = agentIndex.get(compilation);
  if (index === undefined) {
    index = new Map(compilation.agents.map((a) => [a.id, a]));
    agentIndex.set(compilation, index);
  }
  return index;
}

/** This policy: every agent gets its bundle of the latest accepted commit, at once. */
export const latestCommitPolicy: DesiredStatePolicy = Object.freeze({
  desiredFor(agentId: AgentId, compilation: Compilation): DesiredBundle | null {
    const agent = agentsById(compilation).get(agentId);
    return agent === undefined ? null : { agentId, digest: agent.bundle.digest, bytes: agent.bundle.bytes, baseline: false };
  },
});

/** One published generation: a frozen map from agent to its delivery. */
export interface Snapshot {
  readonly generation: number;
  readonly commit: CommitSha;
  /** Of the signed statement; `null` when the generation has no agents (nothing signed). */
  readonly expiresAt: Date | null;
  readonly deliveries: ReadonlyMap<AgentId, Delivery>;
}

/**
 * Builds the deliveries of a generation from its signature. Every delivery gets a fresh
 * random nonce: an ack names the send it answers, and one for an older send is stale.
 */
export function buildSnapshot(input: {
  readonly generation: number;
  readonly commit: CommitSha;
  readonly desired: readonly DesiredBundle[];
  readonly signed: SignedGeneration | null;
}): Snapshot {
  const deliveries = new Map<AgentId, Delivery>();
  for (const want of input.desired) {
    const signedDelivery = input.signed?.forAgent(want.agentId);
    if (signedDelivery === undefined) throw new Error(`agent ${want.agentId} is not in signed generation ${input.generation}`);
    deliveries.set(
      want.agentId,
      Object.freeze({
        commit: input.commit,
        digest: want.digest,
        generation: input.generation,
        bytes: want.bytes,
        signature: encodeDelivery(signedDelivery),
        nonce: randomBytes(12).toString('base64url'),
        baseline: want.baseline,
      }),
    );
  }
  return Object.freeze({
    generation: input.generation,
    commit: input.commit,
    expiresAt: input.signed === null ? null : new Date(input.signed.statement.expiresAt),
    deliveries,
  });
}

type Listener = (delivery: Delivery) => void;

export interface SnapshotCacheOptions {
  /** A listener threw. Listeners belong to the transport and must not throw; this reports it if one does. */
  readonly onListenerError?: (agentId: AgentId, err: unknown) => void;
}

/**
 * The meeting point of the producer (reconciler) and delivery (transport) sides, as
 * go-control-plane's snapshot cache: `set` publishes a generation and answers every open
 * watch whose delivery changed; `desired` serves polls from the same snapshot, so a polling
 * and a streaming agent see the same delivery (and nonce).
 */
export class SnapshotCache {
  private snapshot: Snapshot | null = null;
  private readonly watches = new Map<AgentId, Set<Listener>>();
  private readonly options: Required<SnapshotCacheOptions>;

  constructor(options: SnapshotCacheOptions = {}) {
    this.options = { onListenerError: options.onListenerError ?? (() => {}) };
  }

  current(): Snapshot | null {
    return this.snapshot;
  }

  desired(agentId: AgentId): Delivery | null {
    return this.snapshot?.deliveries.get(agentId) ?? null;
  }

  set(snapshot: Snapshot): void {
    const previous = this.snapshot;
    this.snapshot = snapshot;
    for (const [agentId, listeners] of this.watches) {
      const next = snapshot.deliveries.get(agentId);
      if (next === undefined || sameVersion(previous?.deliveries.get(agentId), next)) continue;
      for (const listener of [...listeners]) this.notify(agentId, listener, next);
    }
  }

  /** Calls `listener` now with the current delivery (if any) and on every change. */
  watch(agentId: AgentId, listener: Listener): () => void {
    let listeners = this.watches.get(agentId);
    if (listeners === undefined) {
      listeners = new Set();
      this.watches.set(agentId, listeners);
    }
    // A function may be registered twice by two streams; wrap so each watch is its own entry.
    const entry: Listener = (d) => listener(d);
    listeners.add(entry);
    const current = this.desired(agentId);
    if (current !== null) this.notify(agentId, entry, current);
    let open = true;
    return () => {
      if (!open) return;
      open = false;
      const set = this.watches.get(agentId);
      set?.delete(entry);
      if (set?.size === 0) this.watches.delete(agentId);
    };
  }

  watchCount(agentId: AgentId): number {
    return this.watches.get(agentId)?.size ?? 0;
  }

  private notify(agentId: AgentId, listener: Listener, delivery: Delivery): void {
    try {
      listener(delivery);
    } catch (err) {
      this.options.onListenerError(agentId, err);
    }
  }
}

/** Versions are opaque: the same generation and digest is the same delivery. */
function sameVersion(a: Delivery | undefined, b: Delivery): boolean {
  return a !== undefined && a.generation === b.generation && a.digest === b.digest && a.baseline === b.baseline;
}
