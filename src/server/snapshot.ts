import { randomBytes } from 'node:crypto';
import type { Compilation, CompiledAgent } from '../compile/index.js';
import type { AgentId, CommitSha, Digest } from '../domain/types.js';
import { notify } from '../lib/index.js';
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

/** One open watch: its listener and the version it was last handed (a change is what differs from it). */
interface Watch {
  readonly agentId: AgentId;
  readonly listener: Listener;
  last: Delivery | undefined;
  open: boolean;
}

/** Watches answered per event-loop turn during a fan-out, unless told otherwise. */
export const DEFAULT_FAN_OUT_CHUNK = 256;

export interface SnapshotCacheOptions {
  /** A listener threw. Listeners belong to the transport and must not throw; this reports it if one does. */
  readonly onListenerError?: (agentId: AgentId, err: unknown) => void;
  /**
   * How many watches `set` answers before it yields to the event loop (setImmediate) and goes
   * on with the next ones: acks, polls and new connections are served while a generation fans
   * out to 10,000 streams, instead of after it. Default 256.
   */
  readonly fanOutChunk?: number;
  /** A fan-out answered every watch it had to (not called for one a newer `set` cut short). */
  readonly onFanOutDone?: (event: { readonly generation: number; readonly watches: number; readonly chunks: number; readonly ms: number }) => void;
}

/**
 * The meeting point of the producer (reconciler) and delivery (transport) sides, as
 * go-control-plane's snapshot cache: `set` publishes a generation and answers every open
 * watch whose delivery changed; `desired` serves polls from the same snapshot, so a polling
 * and a streaming agent see the same delivery (and nonce).
 *
 * The fan-out runs in chunks (`fanOutChunk` watches per turn). `desired` answers the new
 * generation from the moment `set` returns; a watch opened meanwhile gets it at once; a newer
 * `set` during a fan-out takes over (the rest of the older one is never sent). A watch is
 * never handed the same version twice nor an older generation after a newer one.
 */
export class SnapshotCache {
  private snapshot: Snapshot | null = null;
  private readonly watches = new Map<AgentId, Set<Watch>>();
  private readonly options: Required<SnapshotCacheOptions>;
  /** Bumped by every `set`: a fan-out that sees another value was superseded and stops. */
  private fanOuts = 0;
  private fanOutDone: Promise<void> = Promise.resolve();

  constructor(options: SnapshotCacheOptions = {}) {
    this.options = {
      onListenerError: options.onListenerError ?? (() => {}),
      fanOutChunk: Math.max(1, options.fanOutChunk ?? DEFAULT_FAN_OUT_CHUNK),
      onFanOutDone: options.onFanOutDone ?? (() => {}),
    };
  }

  current(): Snapshot | null {
    return this.snapshot;
  }

  desired(agentId: AgentId): Delivery | null {
    return this.snapshot?.deliveries.get(agentId) ?? null;
  }

  /**
   * Publishes `snapshot`: the first chunk of watches is answered before this returns, the
   * rest in later turns (see `fanOutSettled`).
   */
  set(snapshot: Snapshot): void {
    this.snapshot = snapshot;
    const id = ++this.fanOuts;
    // The watches open now; one opened later is answered by `watch` itself.
    const pending: Watch[] = [];
    for (const set of this.watches.values()) for (const watch of set) pending.push(watch);
    const started = performance.now();
    let chunks = 0;
    let next = 0;
    const chunk = (): boolean => {
      chunks += 1;
      const end = Math.min(pending.length, next + this.options.fanOutChunk);
      for (; next < end; next += 1) {
        if (this.fanOuts !== id) return true;
        const watch = pending[next] as Watch;
        const delivery = snapshot.deliveries.get(watch.agentId);
        if (delivery !== undefined) this.offer(watch, delivery);
      }
      if (next < pending.length) return false;
      notify(() => this.options.onFanOutDone({ generation: snapshot.generation, watches: pending.length, chunks, ms: performance.now() - started }));
      return true;
    };
    if (chunk()) {
      this.fanOutDone = Promise.resolve();
      return;
    }
    this.fanOutDone = new Promise<void>((resolve) => {
      const step = (): void => {
        if (this.fanOuts !== id || chunk()) resolve();
        else setImmediate(step);
      };
      setImmediate(step);
    });
  }

  /** Resolves when the latest `set`'s fan-out has answered every watch (or was superseded). */
  fanOutSettled(): Promise<void> {
    return this.fanOutDone;
  }

  /** Calls `listener` now with the current delivery (if any) and on every change. */
  watch(agentId: AgentId, listener: Listener): () => void {
    let set = this.watches.get(agentId);
    if (set === undefined) {
      set = new Set();
      this.watches.set(agentId, set);
    }
    // A function may be registered twice by two streams: each watch is its own entry.
    const watch: Watch = { agentId, listener, last: undefined, open: true };
    set.add(watch);
    const current = this.desired(agentId);
    if (current !== null) this.offer(watch, current);
    return () => {
      if (!watch.open) return;
      watch.open = false;
      const watches = this.watches.get(agentId);
      watches?.delete(watch);
      if (watches?.size === 0) this.watches.delete(agentId);
    };
  }

  watchCount(agentId: AgentId): number {
    return this.watches.get(agentId)?.size ?? 0;
  }

  /** Hands `delivery` to the watch unless it is closed or already has that version. */
  private offer(watch: Watch, delivery: Delivery): void {
    if (!watch.open || sameVersion(watch.last, delivery)) return;
    watch.last = delivery;
    try {
      watch.listener(delivery);
    } catch (err) {
      this.options.onListenerError(watch.agentId, err);
    }
  }
}

/** Versions are opaque: the same generation and digest is the same delivery. */
function sameVersion(a: Delivery | undefined, b: Delivery): boolean {
  return a !== undefined && a.generation === b.generation && a.digest === b.digest && a.baseline === b.baseline;
}
