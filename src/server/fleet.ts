import { randomUUID } from 'node:crypto';
import type { AgentId, CommitSha, Labels } from '../domain/types.js';
import type {
  ActiveVersion,
  AgentPatch,
  AgentRecord,
  AgentState,
  AgentStatus,
  AuditEntry,
  DeliveryWrite,
  DesiredVersion,
  FleetStore,
  LastRejection,
  Quarantine,
  StoredAck,
  StoredSend,
} from '../fleet/index.js';
import { notify } from '../lib/index.js';
import { notified, StoreError, isStoreUnavailable, type CoherentCache } from '../fleet/index.js';

export interface AckInput {
  readonly commit: CommitSha;
  readonly digest: string;
  readonly generation: number;
  readonly nonce?: string;
  readonly status: 'APPLIED' | 'REJECTED';
  readonly error: string;
}

export interface SendInput {
  readonly commit: CommitSha;
  readonly digest: string;
  readonly generation: number;
  readonly nonce: string;
}

export interface PublishedAgent {
  readonly id: AgentId;
  readonly labels: Labels;
  readonly wave?: string;
  readonly desired: DesiredVersion | null;
}

/**
 * Fleet state as the server reads it: synchronously (the transport seam and the metrics
 * collector are synchronous). Writers are the backend (what agents report) and the
 * reconciler's publish hook (inventory and desired versions).
 */
export interface LiveFleet extends CoherentCache {
  /**
   * The inventory of the served commit and each agent's desired version. Agents not listed are
   * forgotten, except quarantined ones: their quarantine outlives their inventory entry.
   */
  setDesired(agents: readonly PublishedAgent[]): void;
  /** A hello or a poll: what the agent runs (null: nothing yet). */
  recordActive(agentId: AgentId, active: Omit<ActiveVersion, 'at'> | null, at: Date): void;
  /** A delivery went to the agent (stream) or was handed to its poll. Repeats of one nonce are ignored. */
  recordSend(agentId: AgentId, send: SendInput, at: Date): void;
  /**
   * `recorded`: the ack answers the agent's current delivery; `stale` acks are logged but change nothing.
   * `activeCommit`: the commit an APPLIED ack makes active when it is not the ack's (generation's)
   * commit — an agent held back by the rollout runs an older commit's bundle. The ack itself is
   * stored as the agent sent it.
   */
  recordAck(agentId: AgentId, ack: AckInput, at: Date, outcome?: 'recorded' | 'stale', activeCommit?: CommitSha): void;
  recordSeen(agentId: AgentId, at: Date, certificate?: { readonly notAfter: Date; readonly serial?: string }): void;
  setConnected(agentId: AgentId, connected: boolean, at: Date): void;
  get(agentId: AgentId): AgentStatus | undefined;
  list(): readonly AgentStatus[];
}

export interface FleetCacheOptions {
  readonly now?: () => Date;
  /**
   * An agent with no open stream that has not been seen for this long is DISCONNECTED.
   * Should exceed the agents' poll interval. Default 2 minutes.
   */
  readonly disconnectedAfterMs?: number;
  /** A delivery sent and not acked for this long is STALE. Default 2 minutes; `setAckTimeout` changes it per commit. */
  readonly ackTimeoutMs?: number;
  /**
   * Where every change is written through (the source of truth across restarts). Without
   * one, the cache is all there is (tests, embedding).
   */
  readonly store?: FleetStore;
  /**
   * A write to the store failed (logged by the server). Must not throw. A write that failed
   * because the store is out of reach (STORE_UNAVAILABLE) is reported once and kept: it is
   * retried, and every later write waits behind it, until the store answers again.
   */
  readonly onStoreError?: (err: unknown, what: string) => void;
  /** The store answers again: `retried` writes that had waited for it reached it, in order. Must not throw. */
  readonly onStoreRecovered?: (retried: number) => void;
  /** Delay before retrying a write while the store is out of reach: first and longest. Default 100 ms and 5 s. */
  readonly retryBackoffMs?: { readonly min: number; readonly max: number };
  /**
   * `lastSeen` alone (a poll, a hello with nothing new) is written at most this often per
   * agent: the admin view stays exact (it reads the cache), the file does not fsync per poll.
   * Default 15 s.
   */
  readonly lastSeenWriteMs?: number;
  /**
   * Sends, acks and agent updates are written together once this long after the first of them
   * was queued (0: at the end of the event-loop turn). With SQLite every transaction is an
   * fsync that holds the event loop for milliseconds; during a connection storm the events of
   * one turn are few, so a window, not the turn, is what makes batches. `flush()` writes at once.
   * Default 20 ms.
   */
  readonly writeBatchWindowMs?: number;
}

interface Record_ {
  id: AgentId;
  /** Only inventory agents are listed; the others keep what they reported in case they come back. */
  inInventory: boolean;
  labels: Labels;
  wave: string;
  desired: DesiredVersion | null;
  active: ActiveVersion | null;
  rejected: { readonly digest: string; readonly error: string } | null;
  lastRejection: Rejection | null;
  /**
   * Commits served to this agent (the commit of the generation a send or ack came in) → the
   * lowest generation seen serving it: the order of the commits (see `isNewer`). Bounded.
   */
  served: Map<string, number>;
  lastSend: { readonly digest: string; readonly nonce: string; readonly at: Date } | null;
  /** The digest of the last recorded ack (either status): an ack answers its send. */
  lastAckDigest: string | null;
  certSerial: string | null;
  certExpiry: Date | null;
  lastSeen: Date | null;
  /** When lastSeen was last written to the store. */
  lastSeenWritten: number;
  connected: boolean;
  /** When the agent last came back in contact after being out of it (null: not since this process started). */
  contactSince: Date | null;
  quarantine: Quarantine | null;
}

/** An agent in contact that has left its desired bundle unanswered (see `FleetCache.silentAgents`). */
export interface SilentAgent {
  readonly id: AgentId;
  readonly desired: DesiredVersion;
  /** Since when it has been silent: the later of the send and its coming back in contact. */
  readonly since: Date;
}

/** An agent with no open stream not seen for this long is DISCONNECTED, unless told otherwise. */
export const DEFAULT_DISCONNECTED_AFTER_MS = 120_000;

/** How many of an agent's newest acks a restart reads to find its last rejection. */
const RESTORED_ACKS = 20;

/**
 * Sends, acks and agent updates queued in one batch window go to the store in one
 * `recordBatch` (one transaction, one fsync with SQLite); a window with more is cut into
 * batches of this many, so one transaction never holds the event loop for long.
 */
export const MAX_WRITE_BATCH = 500;

/** See `FleetCacheOptions.writeBatchWindowMs`. */
export const DEFAULT_WRITE_BATCH_WINDOW_MS = 20;

/** How many served commits each agent's record keeps the order of (the oldest are forgotten first). */
const SERVED_COMMITS_KEPT = 32;

/**
 * `commit`: the commit whose bundle was rejected; `served` and `generation`: the generation the
 * delivery came in and its commit (newer than `commit` when the rollout held the agent back).
 */
type Rejection = LastRejection & { readonly served: string; readonly generation: number };

/**
 * Remembers that `commit` was the commit of generation `generation`. The server accepts only
 * fast-forwards and every publish serves the newest accepted commit, so the commit of a
 * generation never goes back as generations grow: each commit is served during one run of
 * generations, and any generation seen serving a commit orders it against any other commit.
 * (Generations are per publish, not per commit: a commit is served under many.)
 */
function noteServed(record: Record_, commit: string, generation: number): void {
  const known = record.served.get(commit);
  if (known !== undefined && known <= generation) return;
  record.served.set(commit, generation);
  if (record.served.size <= SERVED_COMMITS_KEPT) return;
  let oldest: string | undefined;
  for (const [c, g] of record.served) if (oldest === undefined || g < (record.served.get(oldest) ?? Infinity)) oldest = c;
  if (oldest !== undefined) record.served.delete(oldest);
}

/**
 * Is `commit` newer (accepted later) than the rejected one? Only when the order is known: a
 * commit never seen served (an old one the rollout holds the agent on, say) counts as not newer.
 */
function isNewer(record: Record_, commit: string, rejection: Rejection): boolean {
  if (commit === rejection.commit) return false;
  const generation = record.served.get(commit);
  if (generation === undefined) return false;
  // The rejected bundle's commit is the generation's commit or older than it.
  if (commit === rejection.served || generation > rejection.generation) return true;
  const rejected = record.served.get(rejection.commit);
  return rejected !== undefined && generation > rejected;
}

/**
 * A rejection is kept until the agent applies the bundle it rejected, or a bundle of a commit
 * newer than the rejected one. Going back to its previous config (where the rollout sends a
 * rejecting agent), also under the generation of a newer commit that still holds it back
 * there, does not clear it. `commit`: the commit whose bundle the ack answers; null for the
 * repository's baseline (quarantine), which is no commit's bundle for the agent.
 */
function trackRejection(record: Record_, ack: Pick<AckInput, 'commit' | 'digest' | 'generation' | 'status' | 'error'>, commit: string | null, at: Date): void {
  noteServed(record, ack.commit, ack.generation);
  switch (ack.status) {
    case 'REJECTED':
      record.lastRejection = { commit: commit ?? ack.commit, digest: ack.digest, error: ack.error, at, served: ack.commit, generation: ack.generation };
      return;
    case 'APPLIED':
      if (record.lastRejection === null) return;
      if (ack.digest === record.lastRejection.digest || (commit !== null && isNewer(record, commit, record.lastRejection))) record.lastRejection = null;
      return;
    default: {
      const never: never = ack.status;
      throw new Error(`unexpected ack status ${String(never)}`);
    }
  }
}

function later(a: Date | null, b: Date | null): Date | null {
  if (a === null) return b;
  if (b === null) return a;
  return a.getTime() >= b.getTime() ? a : b;
}

/** Serials as the CA writes them: lower-case hex without leading zero bytes. node:crypto prints upper case. */
export function normalizeSerial(serial: string): string {
  return serial.toLowerCase().replace(/^(?:00)+(?=[0-9a-f])/, '');
}

/**
 * Fleet state in memory, written through to the persistent FleetStore (src/fleet) when one is
 * given. Reads are synchronous and derive each agent's state at read time (so STALE and
 * DISCONNECTED appear without an event).
 *
 * Writes go to the store in call order, so it sees events in the order they happened. Sends,
 * acks and agent updates (the per-agent traffic: thousands per rollout) are queued and written
 * at the end of a short window (20 ms) as one `recordBatch` — one transaction for every ack that
 * arrived in that window, instead of one fsync each. Other writes (publishing desired versions,
 * quarantine and approve with their audit entry) first hand the queue over, then follow it on
 * the same chain. `flush()` resolves once everything queued before it is durable: callers that
 * read the store back (the drift check's `wasIssued`) or must not lose a write (shutdown) wait
 * for it.
 *
 * While the store is out of reach (PostgreSQL down: STORE_UNAVAILABLE) the write or batch that
 * failed is retried with backoff and the ones queued after it wait, so acks, sends and agent
 * updates reach the store in order once it is back, and none is dropped (a write whose commit
 * reached the store but whose answer was lost is written twice: acks and sends are evidence, a
 * duplicate row is harmless). Meanwhile `quarantine` and `approve` are refused with
 * STORE_UNAVAILABLE (and change nothing), rather than queued behind an outage: the operator
 * retries. Only a shutdown that gives up on the store (`flush({ timeoutMs })`) drops the
 * writes still waiting, and reports each.
 */
export class FleetCache implements LiveFleet {
  /**
   * Notified: agents another replica changed (what they run, their acks, quarantine,
   * certificate, last seen) are re-read from the store. With a store only this process writes,
   * nothing notifies and this is the only writer.
   */
  readonly coherence = notified(['agents'], async (event) => {
    if (event.kind === 'agents') await this.refresh(event.ids);
    else if (event.kind === 'resync') await this.refresh('all');
  });
  private readonly quarantineListeners = new Set<(ids: readonly AgentId[]) => void>();
  private readonly agents = new Map<AgentId, Record_>();
  private readonly options: Required<Omit<FleetCacheOptions, 'store' | 'ackTimeoutMs'>> & { readonly store: FleetStore | null };
  private ackTimeoutMs: number;
  private chain: Promise<unknown> = Promise.resolve();
  /** False from a write failing with STORE_UNAVAILABLE until a write succeeds again. */
  private storeAvailable = true;
  /** Writes queued and not yet done (waiting behind an outage included). */
  private queued = 0;
  /** Writes that failed with STORE_UNAVAILABLE and were kept, since the store last answered. */
  private delayed = 0;
  /** Set by a `flush` that timed out: writes still waiting are dropped (and reported), not retried. */
  private givenUp = false;
  private wakeRetry: (() => void) | null = null;
  /** Sends, acks and agent updates of the current window not yet handed to the chain, in call order. */
  private pending: Array<{ readonly what: string; readonly write: DeliveryWrite }> = [];
  private batchScheduled = false;

  constructor(options: FleetCacheOptions = {}) {
    this.options = {
      now: options.now ?? (() => new Date()),
      disconnectedAfterMs: options.disconnectedAfterMs ?? DEFAULT_DISCONNECTED_AFTER_MS,
      store: options.store ?? null,
      onStoreError: options.onStoreError ?? (() => {}),
      onStoreRecovered: options.onStoreRecovered ?? (() => {}),
      retryBackoffMs: options.retryBackoffMs ?? { min: 100, max: 5_000 },
      lastSeenWriteMs: options.lastSeenWriteMs ?? 15_000,
      writeBatchWindowMs: options.writeBatchWindowMs ?? DEFAULT_WRITE_BATCH_WINDOW_MS,
    };
    this.ackTimeoutMs = options.ackTimeoutMs ?? 120_000;
  }

  /**
   * A cache filled from the store: every agent with its last send and last ack (for STALE and
   * NACKED). Loaded agents are not listed until a publish puts them in the inventory.
   */
  static async load(store: FleetStore, options: Omit<FleetCacheOptions, 'store'> = {}): Promise<FleetCache> {
    const cache = new FleetCache({ ...options, store });
    for (const agent of await store.listAgents()) {
      const [send, acks] = await Promise.all([store.lastSend(agent.id), store.listAcks(agent.id, { limit: RESTORED_ACKS })]);
      cache.restore(agent, send, acks);
    }
    return cache;
  }

  /**
   * Re-reads agents from the store after another replica wrote them: what they run, their last
   * send and acks, quarantine and certificate; `lastSeen` never goes back. What this process
   * decided (inventory, labels, desired version, open streams) stays. Idempotent.
   */
  async refresh(ids: readonly AgentId[] | 'all'): Promise<void> {
    const store = this.options.store;
    if (store === null) return;
    // This process's own writes first: the store must not be read older than this cache.
    this.cutBatch();
    await this.chain;
    const agents = ids === 'all' ? await store.listAgents() : await Promise.all(ids.map((id) => store.getAgent(id)));
    const flipped: AgentId[] = [];
    for (const agent of agents) {
      if (agent === undefined) continue;
      const local = this.agents.get(agent.id);
      const wasQuarantined = local?.quarantine != null;
      if (local?.connected === true) {
        // Its stream is here: what it runs, its sends and acks are this process's own writes.
        // Another replica can only have quarantined or approved it.
        local.quarantine = agent.quarantine;
        if (wasQuarantined !== (local.quarantine !== null)) flipped.push(agent.id);
        continue;
      }
      const [send, acks] = await Promise.all([store.lastSend(agent.id), store.listAcks(agent.id, { limit: RESTORED_ACKS })]);
      const lastSeen = later(local?.lastSeen ?? null, agent.lastSeen);
      const desired = local?.desired ?? agent.desired;
      const keptSend = local?.lastSend != null && (send === null || local.lastSend.at.getTime() > send.at.getTime()) ? local.lastSend : undefined;
      this.restore({ ...agent, lastSeen, desired }, send, acks);
      const record = this.record(agent.id);
      if (keptSend !== undefined) record.lastSend = keptSend;
      if (local !== undefined) record.desired = local.desired ?? record.desired;
      if (wasQuarantined !== (record.quarantine !== null)) flipped.push(agent.id);
    }
    if (flipped.length > 0) for (const listener of [...this.quarantineListeners]) notify(() => listener(flipped));
  }

  /**
   * Presence for other replicas sharing the store: `lastSeen` of every agent with an open stream
   * here, written in one batch. Called periodically (well within the disconnected timeout), so
   * the leader counts agents connected to any replica as connected.
   */
  touchConnected(at: Date): void {
    const updates: Array<{ id: AgentId; patch: AgentPatch }> = [];
    for (const record of this.agents.values()) {
      if (!record.connected) continue;
      record.lastSeen = at;
      record.lastSeenWritten = at.getTime();
      updates.push({ id: record.id, patch: { lastSeen: at } });
    }
    if (updates.length > 0) this.write('record presence', (store) => store.updateAgents(updates));
  }

  /**
   * Calls `listener` with the agents whose quarantine another replica set or lifted (seen by
   * `refresh`): the leader republishes, so an approval made anywhere releases the agent.
   */
  onQuarantineChanged(listener: (ids: readonly AgentId[]) => void): () => void {
    this.quarantineListeners.add(listener);
    return () => this.quarantineListeners.delete(listener);
  }

  /**
   * Waits until every queued write reached the store. Never rejects (failures went to
   * onStoreError). With `timeoutMs` (shutdown), gives up after it: writes still waiting for an
   * unreachable store are dropped, each reported to onStoreError.
   */
  async flush(options: { readonly timeoutMs?: number } = {}): Promise<void> {
    this.cutBatch();
    if (options.timeoutMs === undefined) {
      await this.chain;
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), options.timeoutMs);
    });
    const outcome = await Promise.race([this.chain.then(() => 'done' as const), timedOut]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      this.givenUp = true;
      this.wakeRetry?.();
      await this.chain;
    }
  }

  /** Is the store answering? False from a write failing with STORE_UNAVAILABLE until one succeeds. */
  get storeReachable(): boolean {
    return this.storeAvailable;
  }

  /** Writes queued for the store and not yet done (those waiting for it to come back included). */
  get pendingWrites(): number {
    return this.queued + this.pending.length;
  }

  setAckTimeout(ms: number): void {
    this.ackTimeoutMs = ms;
  }

  setDesired(agents: readonly PublishedAgent[]): void {
    for (const record of this.agents.values()) record.inInventory = false;
    const updates: Array<{ id: AgentId; patch: AgentPatch }> = [];
    for (const { id, labels, wave, desired } of agents) {
      const record = this.record(id);
      record.inInventory = true;
      record.labels = labels;
      record.wave = wave ?? '';
      record.desired = desired;
      const version = desired === null ? null : { commit: desired.commit, digest: desired.digest, generation: desired.generation };
      updates.push({ id, patch: { desired: version, state: this.baseState(record) } });
    }
    // Forget agents that left the inventory and have no open stream (bounds memory; the store
    // keeps their sends, acks and audit entries). A quarantine belongs to the agent's identity,
    // not to an inventory entry: a quarantined agent is kept (here and in the store) so that
    // leaving and re-entering the inventory, with or without a restart, cannot lift it — only
    // `approve` does. Bounded by the number of quarantined agents.
    const gone: AgentId[] = [];
    for (const [id, record] of this.agents) {
      if (!record.inInventory && !record.connected && record.quarantine === null) {
        this.agents.delete(id);
        gone.push(id);
      }
    }
    this.write('publish desired versions', async (store) => {
      await store.updateAgents(updates);
      if (gone.length > 0) await store.removeAgents(gone);
    });
  }

  recordActive(agentId: AgentId, active: Omit<ActiveVersion, 'at'> | null, at: Date): void {
    const record = this.record(agentId);
    this.contact(record, at);
    record.lastSeen = at;
    const before = record.active;
    if (active === null) {
      record.active = null;
    } else if (before?.digest !== active.digest || before.generation !== active.generation || before.commit !== active.commit) {
      record.active = { commit: active.commit, digest: active.digest, generation: active.generation, at };
    }
    if (record.active === before) {
      this.writeSeen(record);
      return;
    }
    record.lastSeenWritten = at.getTime();
    this.writeAgent(record, { active: record.active, lastSeen: at }, 'record what an agent runs');
  }

  recordSend(agentId: AgentId, send: SendInput, at: Date): void {
    const record = this.record(agentId);
    if (record.lastSend?.nonce === send.nonce) return;
    record.lastSend = { digest: send.digest, nonce: send.nonce, at };
    noteServed(record, send.commit, send.generation);
    const { commit, digest, generation, nonce } = send;
    this.enqueue('record a send', { kind: 'send', send: { agentId, commit, digest, generation, nonce, at }, agent: { state: this.baseState(record) } });
  }

  recordAck(agentId: AgentId, ack: AckInput, at: Date, outcome: 'recorded' | 'stale' = 'recorded', activeCommit?: CommitSha): void {
    const record = this.record(agentId);
    this.contact(record, at);
    record.lastSeen = at;
    record.lastSeenWritten = at.getTime();
    if (outcome === 'recorded') {
      record.lastAckDigest = ack.digest;
      switch (ack.status) {
        case 'APPLIED':
          record.active = { commit: activeCommit ?? ack.commit, digest: ack.digest, generation: ack.generation, at };
          record.rejected = null;
          break;
        case 'REJECTED':
          record.rejected = { digest: ack.digest, error: ack.error };
          break;
        default: {
          const never: never = ack.status;
          throw new Error(`unexpected ack status ${String(never)}`);
        }
      }
    }
    if (outcome === 'recorded') {
      const baseline = record.desired?.baseline === true && record.desired.digest === ack.digest;
      trackRejection(record, ack, baseline ? null : (activeCommit ?? ack.commit), at);
    }
    // The ack and the agent update it causes go to the store in one call (one transaction).
    const patch: AgentPatch =
      outcome === 'recorded' && ack.status === 'APPLIED'
        ? { active: record.active, lastSeen: at, state: this.baseState(record) }
        : { lastSeen: at, state: this.baseState(record) };
    this.enqueue('record an ack', {
      kind: 'ack',
      ack: { agentId, commit: ack.commit, digest: ack.digest, generation: ack.generation, nonce: ack.nonce ?? '', status: ack.status, error: ack.error, at },
      agent: patch,
    });
  }

  recordSeen(agentId: AgentId, at: Date, certificate?: { readonly notAfter: Date; readonly serial?: string }): void {
    const record = this.record(agentId);
    this.contact(record, at);
    record.lastSeen = at;
    if (certificate === undefined) {
      this.writeSeen(record);
      return;
    }
    const serial = certificate.serial === undefined ? record.certSerial : normalizeSerial(certificate.serial);
    if (record.certExpiry?.getTime() === certificate.notAfter.getTime() && serial === record.certSerial) {
      this.writeSeen(record);
      return;
    }
    record.certExpiry = certificate.notAfter;
    record.certSerial = serial;
    record.lastSeenWritten = at.getTime();
    this.writeAgent(record, { certExpiry: record.certExpiry, certSerial: record.certSerial, lastSeen: at }, 'record a certificate');
  }

  setConnected(agentId: AgentId, connected: boolean, at: Date): void {
    const record = this.record(agentId);
    // A stream opening is written at once: other replicas learn from it that the agent is in contact.
    if (connected && !record.connected) record.lastSeenWritten = 0;
    if (connected) this.contact(record, at);
    record.connected = connected;
    record.lastSeen = at;
    this.writeSeen(record);
  }

  /**
   * Marks the agent quarantined (with its audit entry, in one store transaction). Resolves
   * when durable. Returns false when it already was (nothing written).
   */
  async quarantine(agentId: AgentId, quarantine: Quarantine, audit: AuditEntry): Promise<boolean> {
    const record = this.record(agentId);
    if (record.quarantine !== null) return false;
    record.quarantine = quarantine;
    try {
      await this.writeAgentNow(record, { quarantine, state: 'QUARANTINED' }, audit);
    } catch (err) {
      record.quarantine = null; // not recorded: not done
      throw err;
    }
    return true;
  }

  /** Lifts a quarantine (with its audit entry). Returns false when the agent was not quarantined. */
  async approve(agentId: AgentId, audit: AuditEntry): Promise<boolean> {
    const record = this.agents.get(agentId);
    if (record?.quarantine == null) return false;
    const quarantine = record.quarantine;
    record.quarantine = null;
    try {
      await this.writeAgentNow(record, { quarantine: null, state: this.baseState(record) }, audit);
    } catch (err) {
      record.quarantine = quarantine; // not recorded: not done
      throw err;
    }
    return true;
  }

  /**
   * Inventory agents in contact (an open stream, or seen within the disconnected timeout), not
   * quarantined, whose desired bundle (not the baseline) was sent and has had no answer — no
   * ack of either status — for at least `afterMs`, counted from the send or from the agent
   * coming back in contact, whichever is later (an agent that was away is not silent). A
   * rejection is an answer: NACKED agents are not listed. O(agents).
   */
  silentAgents(afterMs: number): SilentAgent[] {
    const now = this.options.now().getTime();
    const silent: SilentAgent[] = [];
    for (const record of this.agents.values()) {
      const { desired, lastSend: send } = record;
      if (!record.inInventory || record.quarantine !== null || desired === null || desired.baseline === true || send === null) continue;
      if (this.stateOf(record, now) === 'DISCONNECTED') continue;
      if (send.digest !== desired.digest || record.active?.digest === desired.digest || record.lastAckDigest === send.digest) continue;
      const since = record.contactSince !== null && record.contactSince.getTime() > send.at.getTime() ? record.contactSince : send.at;
      if (now - since.getTime() >= afterMs) silent.push({ id: record.id, desired, since });
    }
    return silent;
  }

  isQuarantined(agentId: AgentId): boolean {
    return this.agents.get(agentId)?.quarantine != null;
  }

  get(agentId: AgentId): AgentStatus | undefined {
    const record = this.agents.get(agentId);
    return record === undefined || !record.inInventory ? undefined : this.view(record, this.options.now().getTime());
  }

  list(): readonly AgentStatus[] {
    const now = this.options.now().getTime();
    return [...this.agents.values()]
      .filter((r) => r.inInventory)
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .map((r) => this.view(r, now));
  }

  /** `acks`: the agent's newest acks, newest first (its last rejection is found among them). */
  private restore(agent: AgentRecord, send: StoredSend | null, acks: readonly StoredAck[]): void {
    const ack = acks[0];
    const record = this.record(agent.id);
    record.desired = agent.desired;
    record.active = agent.active;
    record.certSerial = agent.certSerial;
    record.certExpiry = agent.certExpiry;
    record.lastSeen = agent.lastSeen;
    record.lastSeenWritten = agent.lastSeen?.getTime() ?? 0;
    record.quarantine = agent.quarantine;
    record.lastSend = send === null ? null : { digest: send.digest, nonce: send.nonce, at: send.at };
    if (send !== null) noteServed(record, send.commit, send.generation);
    if (ack !== undefined) {
      record.lastAckDigest = ack.digest;
      if (ack.status === 'REJECTED') record.rejected = { digest: ack.digest, error: ack.error };
    }
    // Stored acks are as the agents sent them (the generation's commit): the commit of the
    // bundle is the stored desired or active one with that digest when there is one (what the
    // live ack was mapped to), else the generation's. Oldest replayed first. An ack for an
    // older generation than one already answered was stale when it arrived: it changed nothing then.
    const commitOf = new Map<string, string>();
    if (agent.desired !== null) commitOf.set(agent.desired.digest, agent.desired.commit);
    if (agent.active !== null) commitOf.set(agent.active.digest, agent.active.commit);
    let answered = -Infinity;
    for (const stored of [...acks].reverse()) {
      if (stored.generation < answered) continue;
      answered = stored.generation;
      const baseline = agent.quarantine !== null && agent.desired?.digest === stored.digest;
      trackRejection(record, stored, baseline ? null : (commitOf.get(stored.digest) ?? stored.commit), stored.at);
    }
  }

  /** Callers only record agents the transport authorized (in the inventory), so this stays bounded. */
  private record(id: AgentId): Record_ {
    let record = this.agents.get(id);
    if (record === undefined) {
      record = {
        id,
        inInventory: false,
        labels: {},
        wave: '',
        desired: null,
        active: null,
        rejected: null,
        lastRejection: null,
        served: new Map(),
        lastSend: null,
        lastAckDigest: null,
        certSerial: null,
        certExpiry: null,
        lastSeen: null,
        lastSeenWritten: 0,
        connected: false,
        contactSince: null,
        quarantine: null,
      };
      this.agents.set(id, record);
    }
    return record;
  }

  private view(record: Record_, now: number): AgentStatus {
    const state = this.stateOf(record, now);
    return Object.freeze({
      id: record.id,
      labels: record.labels,
      wave: record.wave,
      state,
      desired: record.desired,
      active: record.active,
      certSerial: record.certSerial,
      certExpiry: record.certExpiry,
      lastSeen: record.lastSeen,
      connected: record.connected,
      lastError: state === 'NACKED' ? (record.rejected?.error ?? null) : null,
      quarantine: record.quarantine,
      lastRejection:
        record.lastRejection === null
          ? null
          : { commit: record.lastRejection.commit, digest: record.lastRejection.digest, error: record.lastRejection.error, at: record.lastRejection.at },
    });
  }

  /**
   * QUARANTINED wins (it needs a human whatever else is true), then DISCONNECTED (what it runs
   * is unknown), SYNCED when the active digest is the desired one, NACKED when the agent
   * rejected the desired digest, STALE when the desired digest was sent and not acked within
   * the ack timeout, else PENDING.
   */
  private stateOf(record: Record_, now: number): AgentState {
    if (record.quarantine !== null) return 'QUARANTINED';
    const recentlySeen = record.lastSeen !== null && now - record.lastSeen.getTime() <= this.options.disconnectedAfterMs;
    if (!record.connected && !recentlySeen) return 'DISCONNECTED';
    return this.syncState(record, now);
  }

  private syncState(record: Record_, now: number): AgentState {
    const desired = record.desired;
    if (desired !== null && record.active?.digest === desired.digest) return 'SYNCED';
    if (desired !== null && record.rejected?.digest === desired.digest) return 'NACKED';
    const send = record.lastSend;
    const unanswered = desired !== null && send !== null && send.digest === desired.digest && record.lastAckDigest !== send.digest;
    if (unanswered && now - send.at.getTime() > this.ackTimeoutMs) {
      return 'STALE';
    }
    return 'PENDING';
  }

  /** The state written with a change: as of now, with connection-dependent states left to the reader. */
  private baseState(record: Record_): AgentState {
    return record.quarantine !== null ? 'QUARANTINED' : this.stateOf(record, this.options.now().getTime());
  }

  /** Call before lastSeen moves to `at`: dates the agent's coming back when it was out of contact. */
  private contact(record: Record_, at: Date): void {
    if (record.connected) return;
    if (record.lastSeen === null || at.getTime() - record.lastSeen.getTime() > this.options.disconnectedAfterMs) record.contactSince = at;
  }

  private writeSeen(record: Record_): void {
    const at = record.lastSeen;
    if (at === null || at.getTime() - record.lastSeenWritten < this.options.lastSeenWriteMs) return;
    record.lastSeenWritten = at.getTime();
    this.writeAgent(record, { lastSeen: at, state: this.baseState(record) }, 'record last seen');
  }

  private writeAgent(record: Record_, patch: AgentPatch, what: string): void {
    this.enqueue(what, { kind: 'agent', id: record.id, patch: { ...patch, state: patch.state ?? this.baseState(record) } });
  }

  /** An operator's write: in order with the others, but refused (not queued) while the store is out of reach. */
  private writeAgentNow(record: Record_, patch: AgentPatch, audit: AuditEntry): Promise<void> {
    const store = this.options.store;
    if (store === null) return Promise.resolve();
    if (!this.storeAvailable) {
      return Promise.reject(
        new StoreError({
          code: 'STORE_UNAVAILABLE',
          message: `the fleet store is out of reach (${this.queued} writes waiting for it); nothing was changed, try again`,
        }),
      );
    }
    this.cutBatch();
    const id = record.id;
    const run = this.chain.then(() => store.updateAgent(id, patch, audit));
    this.chain = run.catch(() => {});
    return run.then(() => undefined);
  }

  /** A write that is not batched: it follows whatever this turn queued before it. */
  private write(what: string, step: (store: FleetStore) => Promise<unknown>): void {
    const store = this.options.store;
    if (store === null) return;
    this.cutBatch();
    this.chainWrite([what], () => step(store));
  }

  /** Queues one write or a batch (`whats`: one per write in it) on the chain, retried through an outage by `persist`. */
  private chainWrite(whats: readonly string[], step: () => Promise<unknown>): void {
    this.queued += whats.length;
    this.chain = this.chain
      .then(() => this.persist(whats, step))
      .finally(() => {
        this.queued -= whats.length;
      });
  }

  /**
   * Runs one write; while it fails with STORE_UNAVAILABLE, waits and runs it again (the chain
   * holds every later write behind it, so order is kept). Never rejects: other failures, and
   * writes dropped by a shutdown that gave up, go to onStoreError.
   */
  private async persist(whats: readonly string[], step: () => Promise<unknown>): Promise<void> {
    const what = [...new Set(whats)].join(', ');
    for (let attempt = 0; ; attempt += 1) {
      if (this.givenUp && !this.storeAvailable) {
        const dropped = new StoreError({ code: 'STORE_UNAVAILABLE', message: 'dropped at shutdown: the fleet store was out of reach' });
        for (const one of whats) notify(() => this.options.onStoreError(dropped, one));
        return;
      }
      try {
        await step();
        if (!this.storeAvailable) {
          const retried = this.delayed;
          this.storeAvailable = true;
          this.delayed = 0;
          notify(() => this.options.onStoreRecovered(retried));
        }
        return;
      } catch (err) {
        if (!isStoreUnavailable(err)) {
          this.storeFailed(err, what);
          return;
        }
        if (attempt === 0) {
          this.delayed += whats.length;
          // Reported once per outage (the writes behind this one have not run yet).
          if (this.storeAvailable) notify(() => this.options.onStoreError(err, `${what} (kept: retried, with every later write, until the store is back)`));
        }
        this.storeAvailable = false;
        await this.pause(Math.min(this.options.retryBackoffMs.max, this.options.retryBackoffMs.min * 2 ** attempt));
      }
    }
  }

  private enqueue(what: string, write: DeliveryWrite): void {
    if (this.options.store === null) return;
    this.pending.push({ what, write });
    if (this.pending.length >= MAX_WRITE_BATCH) this.cutBatch();
    else if (!this.batchScheduled) {
      this.batchScheduled = true;
      const cut = (): void => {
        this.batchScheduled = false;
        this.cutBatch();
      };
      // At least after this turn's I/O callbacks: every ack read from the sockets in this turn joins the batch.
      if (this.options.writeBatchWindowMs <= 0) setImmediate(cut);
      else setTimeout(cut, this.options.writeBatchWindowMs);
    }
  }

  /** Hands the queued writes to the chain as one batch. */
  private cutBatch(): void {
    const store = this.options.store;
    if (store === null || this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    // One id for every attempt: a retry after an answer lost on the way back writes nothing twice.
    const id = randomUUID();
    this.chainWrite(
      batch.map((q) => q.what),
      () => this.writeBatch(store, batch, id),
    );
  }

  /**
   * One transaction for the batch. STORE_UNAVAILABLE is thrown to `persist`, which retries the
   * whole batch once the store is back. An invalid entry refuses the whole of it
   * (INVALID_RECORD): then each entry is written on its own, so only the bad one is lost (and
   * reported, as before batching). Any other failure (the store closed, the disk full) loses
   * the batch and is reported once per kind of write in it.
   */
  private async writeBatch(store: FleetStore, batch: ReadonlyArray<{ readonly what: string; readonly write: DeliveryWrite }>, id: string): Promise<void> {
    try {
      await store.recordBatch(
        batch.map((q) => q.write),
        { id },
      );
      return;
    } catch (err) {
      if (isStoreUnavailable(err)) throw err;
      if (!(err instanceof StoreError && err.code === 'INVALID_RECORD') || batch.length === 1) {
        for (const what of new Set(batch.map((q) => q.what))) this.storeFailed(err, what);
        return;
      }
    }
    for (const [index, { what, write }] of batch.entries()) {
      try {
        await store.recordBatch([write], { id: `${id}/${index}` });
      } catch (err) {
        // An outage in the middle: the whole batch is retried (entries written already are not written again).
        if (isStoreUnavailable(err)) throw err;
        this.storeFailed(err, what);
      }
    }
  }

  private pause(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wakeRetry = done;
    }).finally(() => {
      this.wakeRetry = null;
    });
  }

  private storeFailed(err: unknown, what: string): void {
    // Observers must not break the write chain.
    notify(() => this.options.onStoreError(err, what));
  }
}
