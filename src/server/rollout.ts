import type { Compilation } from '../compile/index.js';
import { isAgentId } from '../domain/agent-id.js';
import type { AgentId, CommitSha, Digest } from '../domain/types.js';
import {
  notified,
  StoreError,
  type AuditEntry,
  type CoherentCache,
  type DeliveryStore,
  type RolloutStore,
  type StoredAck,
  type StoredRollout,
} from '../fleet/index.js';
import {
  RolloutController,
  rolloutCommitOf,
  type ActionResult,
  type AgentRolloutStatus,
  type AppliedHistory,
  type OperatorAction,
  type RolloutChanges,
  type RolloutDocumentV1,
  type RolloutEvent,
  type RolloutStatus,
} from '../rollout/index.js';
import type { Delivery } from '../transport/index.js';
import type { AlertSink } from './alerts.js';
import type { BackendHooks } from './backend.js';
import { agentsById, type DesiredBundle, type DesiredStatePolicy } from './snapshot.js';
import { notify } from '../lib/index.js';

export interface RolloutServiceHooks {
  /** Every controller event (logs). */
  onEvent?(event: RolloutEvent): void;
  /** A save, recompile or republish failed; logged by the server. */
  onError?(err: unknown, what: string): void;
}

export interface RolloutServiceOptions {
  readonly store: RolloutStore & Pick<DeliveryStore, 'digestsApplied' | 'listAcks'>;
  /** Agents whose applied history is loaded at start (the fleet's known agents). */
  readonly knownAgents: () => Iterable<AgentId>;
  /**
   * Verifies, reads and compiles an older commit (one the restored rollout names), through the
   * same source, trust gate and compiler as the reconciler.
   */
  readonly compile: (commit: CommitSha) => Promise<Compilation>;
  /** Signs and publishes the served compilation again, asking the policy afresh. */
  readonly republish: () => Promise<unknown>;
  readonly alerts?: AlertSink | null;
  readonly hooks?: RolloutServiceHooks;
  readonly now?: () => Date;
  /** How often `tick` runs once started. Default 1 s. */
  readonly tickMs?: number;
  /**
   * After a restart every agent starts disconnected; for this long a started wave with no
   * connected member does not complete, so agents can reconnect (agents back off up to 30 s).
   * Default 60 s.
   */
  readonly reconnectGraceMs?: number;
  /** At restore, how many of each agent's newest acks are looked at for ones the saved document missed. Default 20. */
  readonly replayAcks?: number;
  /**
   * Whether the agent is in contact with any replica (its stream here, or a recent `lastSeen`
   * another replica wrote). The leader counts such agents as connected when the store reports
   * them changed. Default: never (a single server learns connections from its own backend).
   */
  readonly present?: (agentId: AgentId) => boolean;
  /** Whether the agent's stream is on this replica (its acks reach the rollout through `backendHooks`). Default: never. */
  readonly local?: (agentId: AgentId) => boolean;
}

/**
 * The server side of the pure RolloutController: it feeds the controller (accepted commits,
 * connections, acks, time, operator actions), keeps the compilation of every commit an agent
 * may be told to run so the desired-state policy can answer with the right bytes, republishes
 * when the controller changes an agent's desired commit, persists the controller's document
 * on events (not per ack) and on shutdown, and raises the rollout-halted alert.
 *
 * A generation carries one commit; the delivery of an agent held back on an older commit
 * carries the older bundle under the new generation. Acks are therefore mapped back to a
 * commit by digest (`commitOfDigest`), never taken from the generation.
 */
export class RolloutService implements CoherentCache {
  /**
   * Notified: the document is saved compare-and-set on its revision, and reloaded when another
   * replica saved a newer one (`rollout`); the leader also counts acks other replicas recorded
   * (`agents`). With a store only this process writes, nothing notifies and this is the only writer.
   */
  readonly coherence = notified(['rollout', 'agents'], async (event) => {
    switch (event.kind) {
      case 'rollout':
        if (this.revision === null || event.revision > this.revision) await this.reload();
        return;
      case 'agents':
        await this.refreshAgents(event.ids === 'all' ? [...this.history.keys()] : event.ids);
        return;
      case 'resync':
        await this.reload();
        await this.refreshAgents([...this.history.keys()]);
        return;
      default:
        return;
    }
  });
  private readonly options: Required<Omit<RolloutServiceOptions, 'alerts' | 'hooks' | 'reconnectGraceMs' | 'replayAcks' | 'present' | 'local'>> & {
    readonly present: (agentId: AgentId) => boolean;
    readonly local: (agentId: AgentId) => boolean;
    readonly alerts: AlertSink | null;
    readonly hooks: RolloutServiceHooks;
  };
  private controller: RolloutController;
  /** The stored revision the controller's document continues (saves are compare-and-set on it). */
  private revision: number | null;
  /** False while another replica leads: no tick, no save and no republish here; the document is reloaded on changes. */
  private leading = true;
  private readonly history: Map<AgentId, Set<string>>;
  private readonly applied: AppliedHistory = { appliedDigests: (id) => (this.history.get(id) ?? EMPTY) as ReadonlySet<Digest> };
  /** Per agent, the newest stored ack id fed to the controller from the store (acks recorded by other replicas). */
  private readonly ackCursor = new Map<AgentId, number>();
  private readonly compilations = new Map<CommitSha, Compilation>();
  private readonly lastActive = new Map<AgentId, string>();
  private queuedRepublish: Promise<unknown> | null = null;
  private saving: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  /** Set by `detach`: the server is shutting down, and streams closing are not agents leaving. */
  private detached = false;

  private constructor(options: RolloutServiceOptions, history: Map<AgentId, Set<string>>, stored: StoredRollout | null) {
    const document = stored?.document ?? null;
    this.revision = stored?.revision ?? null;
    this.options = {
      now: () => new Date(),
      tickMs: 1_000,
      present: () => false,
      local: () => false,
      ...options,
      alerts: options.alerts ?? null,
      hooks: options.hooks ?? {},
    };
    this.history = history;
    this.controller =
      document === null ? new RolloutController({ history: this.applied }) : RolloutController.fromJSON(document, { history: this.applied });
  }

  /**
   * Restores the controller from the store and recompiles the commits its document names, so a
   * restart resumes exactly. Throws RolloutError INVALID_STATE for an unreadable document.
   */
  static async load(options: RolloutServiceOptions): Promise<RolloutService> {
    const stored = await options.store.loadRollout();
    // The fleet lists an agent only once a publish puts it in the inventory, which is after
    // this: the agents the saved document names are known too.
    const agents = new Set(options.knownAgents());
    for (const id of documentAgents(stored?.document)) agents.add(id);
    const history = new Map<AgentId, Set<string>>();
    for (const id of agents) history.set(id, new Set(await options.store.digestsApplied(id)));
    const service = new RolloutService(options, history, stored);
    // Nobody is connected to a fresh process: agents count again when they hello (with what they run).
    service.controller.restoreDisconnected(service.options.now(), options.reconnectGraceMs ?? DEFAULT_RECONNECT_GRACE_MS);
    for (const commit of referencedCommits(service.controller.toJSON())) {
      try {
        service.compilations.set(commit, await options.compile(commit));
      } catch (err) {
        // Agents told to run this commit get no delivery (they keep what they run) rather than a wrong one.
        service.emitError(err, `recompile ${commit}`);
      }
    }
    if (stored !== null) await service.replayAcks(agents, stored.at, options.replayAcks ?? DEFAULT_REPLAY_ACKS);
    return service;
  }

  /**
   * A restart loses no ack: the document is saved on events, not per ack, so acks the store
   * recorded since the document's save are fed to the controller again, oldest first, mapped
   * to a commit by digest as live acks are. Acks at the save's very millisecond are replayed
   * too (an ack already in the document changes nothing). Nothing is republished here: the
   * reconciler's restore publishes what the controller then wants.
   */
  private async replayAcks(agents: Iterable<AgentId>, since: Date, limit: number): Promise<void> {
    const acks: StoredAck[] = [];
    for (const id of agents) {
      for (const ack of await this.options.store.listAcks(id, { limit })) if (ack.at.getTime() >= since.getTime()) acks.push(ack);
    }
    acks.sort((a, b) => a.at.getTime() - b.at.getTime() || a.id - b.id);
    let replayed = 0;
    for (const ack of acks) {
      const commit = this.commitOfDigest(ack.agentId, ack.digest);
      if (commit === null) continue;
      if (ack.status === 'APPLIED') this.rememberApplied(ack.agentId, ack.digest);
      const changes = this.controller.onAck(ack.agentId, commit, ack.status, ack.at);
      for (const event of changes.events) this.emit(() => this.options.hooks.onEvent?.(event));
      replayed += 1;
    }
    if (replayed > 0) await this.save();
  }

  /** The commit whose bundle for this agent has this digest (held-back agents run an older commit than the generation's), or null. */
  commitOf(agentId: AgentId, digest: string): CommitSha | null {
    return this.commitOfDigest(agentId, digest);
  }

  /** The desired-state policy: each agent's bundle from the compilation of the commit the controller gives it. */
  readonly policy: DesiredStatePolicy = {
    prepare: (compilation) => this.prepare(compilation),
    desiredFor: (agentId, compilation) => this.desiredFor(agentId, compilation),
  };

  /** Observers for the backend: connections and acks. */
  readonly backendHooks: BackendHooks = {
    onConnection: ({ agentId, connected }) => {
      if (this.detached) return;
      const now = this.options.now();
      if (connected) {
        const digest = this.lastActive.get(agentId);
        this.apply(this.controller.onConnect(agentId, now, digest === undefined ? null : this.commitOfDigest(agentId, digest)));
      } else {
        this.apply(this.controller.onDisconnect(agentId, now));
      }
    },
    onActive: ({ agentId, active }) => {
      if (active === null) this.lastActive.delete(agentId);
      else this.lastActive.set(agentId, active.digest);
    },
    onAck: ({ agentId, ack, outcome, delivery }) => {
      if (this.detached || outcome.kind !== 'recorded' || delivery == null || delivery.baseline) return;
      // An ack naming another digest than the one delivered answers nothing the rollout sent
      // (drift detection quarantines the agent): it must not count as having applied it.
      if (ack.digest !== delivery.digest) return;
      const commit = this.commitOfDelivery(agentId, delivery);
      if (commit === null) return;
      if (ack.status === 'APPLIED') this.rememberApplied(agentId, delivery.digest);
      this.apply(this.controller.onAck(agentId, commit, ack.status, this.options.now()));
    },
  };

  status(): RolloutStatus {
    return this.controller.status(this.options.now());
  }

  /** The agent as the controller sees it (wave, desired bundle, delivery state). */
  agentStatus(agentId: AgentId): AgentRolloutStatus {
    return this.controller.agentStatus(agentId, this.options.now());
  }

  /** The commit the controller gives the agent (for fleet state), or null. */
  desiredCommit(agentId: AgentId): CommitSha | null {
    return this.controller.desired(agentId)?.commit ?? null;
  }

  /** An operator action; when done, it is audited (same transaction as the saved document) before this resolves. */
  async act(action: OperatorAction): Promise<ActionResult> {
    // A follower acts on the leader's latest document; a save that lost the compare-and-set
    // to another replica's is taken again on the document that won.
    for (let attempt = 1; ; attempt += 1) {
      if (!this.leading || attempt > 1) await this.reload();
      const now = this.options.now();
      const result = this.controller.act(action, now);
      if (result.kind === 'refused') return result;
      const commit = this.controller.status(now).commit ?? '';
      const audit = {
        at: now,
        actor: action.actor,
        action: `rollout.${action.kind}`,
        target: commit,
        reason: action.reason ?? '',
        details: null,
      };
      this.apply(result, { skipSave: true });
      try {
        await this.save(audit);
        return result;
      } catch (err) {
        if (!(err instanceof StoreError && err.code === 'CONFLICT') || attempt >= MAX_ACT_ATTEMPTS) throw err;
      }
    }
  }

  /**
   * Another replica leads: no tick, save or republish here from this call on (the leader's
   * document is the one that counts; `reload` follows it). Operator actions still work (`act`).
   */
  follow(): void {
    this.leading = false;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** This replica now leads: it continues from the stored document (the previous leader's), then ticks. */
  async lead(): Promise<void> {
    await this.settled();
    await this.reload();
    this.leading = true;
    this.start();
    // What the previous leader decided last may not be published yet.
    void this.republish();
  }

  /**
   * The `notified` refresh for the rollout document: when the stored revision is newer than the
   * one held (the previous leader's, or an operator's action taken through another replica),
   * continues from it and feeds the acks recorded since its save. Cheap when nothing changed;
   * the leader republishes what the new document decides.
   */
  async reload(): Promise<void> {
    const stored = await this.options.store.loadRollout();
    if (stored === null || (this.revision !== null && stored.revision <= this.revision)) return;
    this.controller = RolloutController.fromJSON(stored.document, { history: this.applied });
    this.revision = stored.revision;
    for (const commit of referencedCommits(this.controller.toJSON())) {
      if (this.compilations.has(commit)) continue;
      try {
        this.compilations.set(commit, await this.options.compile(commit));
      } catch (err) {
        this.emitError(err, `recompile ${commit}`);
      }
    }
    this.prune();
    await this.replayAcks(documentAgents(stored.document), stored.at, DEFAULT_REPLAY_ACKS);
    if (this.leading) void this.republish();
  }

  /**
   * The `notified` refresh for agents: acks another replica recorded for these
   * agents count for the rollout's gates as if this replica had received them. An agent that
   * acked is connected somewhere. Own acks come back too and change nothing the second time.
   */
  async refreshAgents(ids: readonly AgentId[]): Promise<void> {
    // A follower feeds them too, so its status reads like the leader's between two saves of the
    // leader's document (which it then reloads); it saves, republishes and alerts nothing.
    if (this.detached) return;
    for (const agentId of ids) {
      if (this.options.local(agentId)) continue;
      const now = this.options.now();
      const disconnected = this.controller.agentStatus(agentId, now).state === 'DISCONNECTED';
      if (disconnected && this.options.present(agentId)) this.apply(this.controller.onConnect(agentId, now));
      const cursor = this.ackCursor.get(agentId);
      const acks = await this.options.store.listAcks(agentId, { limit: cursor === undefined ? 1 : DEFAULT_REPLAY_ACKS });
      const fresh = acks.filter((ack) => cursor === undefined || ack.id > cursor).reverse();
      for (const ack of fresh) {
        this.ackCursor.set(agentId, ack.id);
        const commit = this.commitOfDigest(agentId, ack.digest);
        if (commit === null) continue;
        if (ack.status === 'APPLIED') this.rememberApplied(agentId, ack.digest);
        const now = this.options.now();
        if (this.controller.agentStatus(agentId, now).state === 'DISCONNECTED') this.apply(this.controller.onConnect(agentId, now));
        this.apply(this.controller.onAck(agentId, commit, ack.status, now));
      }
    }
  }

  /** Moves time-based transitions on (bakes, windows). The timer calls it; tests may too. */
  async tick(): Promise<void> {
    if (this.detached) return;
    this.apply(this.controller.tick(this.options.now()));
    await this.settled();
  }

  /** Waits for queued saves and republishes. */
  async settled(): Promise<void> {
    await this.queuedRepublish?.catch(() => {});
    await this.saving;
  }

  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => void this.tick(), this.options.tickMs);
    this.timer.unref();
  }

  /**
   * Stops taking input from the backend and the timer. Call first on shutdown: gRPC closing
   * every stream must not complete waves (a wave with no connected agent completes), so a
   * restart resumes where the rollout was.
   */
  detach(): void {
    this.detached = true;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Stops the timer and saves the document (the last acks are in it). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.settled();
    // A follower's document is the leader's: it has nothing of its own to save.
    if (this.leading) await this.save();
  }

  private prepare(compilation: Compilation): void {
    const commit = compilation.commit.sha;
    this.compilations.set(commit, compilation);
    // The same commit again (restore, refresh, fleet republish): nothing new to roll out.
    if (this.controller.status(this.options.now()).commit === commit) return;
    // A newly accepted commit: the publish under way asks `desiredFor` next, so no republish.
    const changes = this.controller.onCommit(rolloutCommitOf(compilation), this.options.now());
    this.prune();
    this.apply({ changed: [], events: changes.events });
  }

  private desiredFor(agentId: AgentId, _served: Compilation): DesiredBundle | null {
    const want = this.controller.desired(agentId);
    if (want === null) return null;
    const agent = this.compilation(want.commit)?.get(agentId);
    if (agent === undefined || agent.bundle.digest !== want.digest) return null;
    return { agentId, digest: agent.bundle.digest, bytes: agent.bundle.bytes, baseline: false, commit: want.commit };
  }

  private rememberApplied(agentId: AgentId, digest: string): void {
    let digests = this.history.get(agentId);
    if (digests === undefined) this.history.set(agentId, (digests = new Set()));
    digests.add(digest);
  }

  private compilation(commit: CommitSha): ReturnType<typeof agentsById> | undefined {
    const compilation = this.compilations.get(commit);
    return compilation === undefined ? undefined : agentsById(compilation);
  }

  /** Which commit a delivery's bundle belongs to: the controller's desired one when it matches, else any kept commit with that digest. */
  private commitOfDelivery(agentId: AgentId, delivery: Delivery): CommitSha | null {
    return this.commitOfDigest(agentId, delivery.digest);
  }

  private commitOfDigest(agentId: AgentId, digest: string): CommitSha | null {
    const want = this.controller.desired(agentId);
    if (want !== null && want.digest === digest) return want.commit;
    const rolloutCommit = this.controller.status(this.options.now()).commit;
    if (rolloutCommit !== null && this.compilation(rolloutCommit)?.get(agentId)?.bundle.digest === digest) return rolloutCommit;
    for (const [commit] of this.compilations) {
      if (this.compilation(commit)?.get(agentId)?.bundle.digest === digest) return commit;
    }
    return null;
  }

  /** Forgets compilations no agent can be told to run any more. */
  private prune(): void {
    const keep = referencedCommits(this.controller.toJSON());
    for (const commit of [...this.compilations.keys()]) if (!keep.has(commit)) this.compilations.delete(commit);
  }

  private apply(changes: RolloutChanges, options: { readonly skipSave?: boolean } = {}): void {
    for (const event of changes.events) {
      this.emit(() => this.options.hooks.onEvent?.(event));
      if (event.kind === 'rollout-halted' && this.leading) {
        this.options.alerts?.post({
          kind: 'rollout-halted',
          commit: event.commit,
          wave: event.wave,
          rejected: event.rejected,
          connected: event.connected,
          message:
            `rollout of ${event.commit} halted in wave ${event.wave}: ` +
            `${event.rejected} of ${event.connected} connected agents rejected it (maxNackRatio ${event.maxNackRatio})`,
          at: event.at,
        });
      }
    }
    // A follower decides nothing for the fleet: the leader saves and republishes.
    if (!this.leading) return;
    if (changes.events.length > 0 && options.skipSave !== true) void this.save();
    if (changes.changed.length > 0) void this.republish();
  }

  /** Saves are serialized in order; each writes the controller's document as it is then. */
  private save(audit?: AuditEntry): Promise<void> {
    const run = this.saving.then(async () => {
      const document = this.controller.toJSON();
      const commit = document.rollout?.commit;
      if (commit === undefined) return;
      // Compare-and-set on the revision this document continues: a replica never overwrites a
      // document it has not read (CONFLICT: reload and continue from the one that won).
      const options = { ifRevision: this.revision, ...(audit === undefined ? {} : { audit }) };
      this.revision = await this.options.store.saveRollout({ commit, document, at: this.options.now() }, options);
    });
    this.saving = run.catch((err: unknown) => {
      if (err instanceof StoreError && err.code === 'CONFLICT' && audit === undefined) return this.reload();
      this.emitError(err, 'save the rollout');
    });
    return run;
  }

  /** Coalesces bursts (a wave starting, many acks) into one new generation. */
  private republish(): Promise<unknown> {
    this.queuedRepublish ??= Promise.resolve().then(() => {
      this.queuedRepublish = null;
      return this.options.republish();
    });
    return this.queuedRepublish.catch((err: unknown) => this.emitError(err, 'publish the rollout'));
  }

  private emitError(err: unknown, what: string): void {
    this.emit(() => this.options.hooks.onError?.(err, what));
  }

  private emit(call: () => void): void {
    // Observers must not break the rollout.
    notify(call);
  }
}

const EMPTY: ReadonlySet<string> = new Set();
const DEFAULT_RECONNECT_GRACE_MS = 60_000;
const DEFAULT_REPLAY_ACKS = 20;
/** An operator action is tried at most this often when other replicas keep saving the document in between. */
const MAX_ACT_ATTEMPTS = 3;

/** The agent ids a stored document names (its shape is checked later, by the controller). */
function documentAgents(document: unknown): AgentId[] {
  if (typeof document !== 'object' || document === null) return [];
  const agents = (document as { agents?: unknown }).agents;
  if (!Array.isArray(agents)) return [];
  return agents.flatMap((a: unknown) =>
    typeof a === 'object' && a !== null && isAgentId((a as { id?: unknown }).id) ? [(a as { id: AgentId }).id] : [],
  );
}

/** Every commit the document may tell an agent to run: the rollout's, its previous, and each agent's base. */
function referencedCommits(document: RolloutDocumentV1): Set<CommitSha> {
  const commits = new Set<CommitSha>();
  if (document.rollout !== null) {
    commits.add(document.rollout.commit);
    if (document.rollout.previous !== null) commits.add(document.rollout.previous);
  }
  for (const agent of document.agents) if (agent.base !== null) commits.add(agent.base.commit);
  return commits;
}
