import type { Compilation } from '../compile/index.js';
import type { AgentId, CommitSha, Digest } from '../domain/types.js';
import type { FleetStore as PersistentFleetStore } from '../fleet/index.js';
import {
  RolloutController,
  rolloutCommitOf,
  type ActionResult,
  type AppliedHistory,
  type OperatorAction,
  type RolloutChanges,
  type RolloutDocumentV1,
  type RolloutEvent,
  type RolloutStatus,
} from '../rollout/index.js';
import type { Delivery } from '../transport/backend.js';
import type { AlertSink } from './alerts.js';
import type { BackendHooks } from './backend.js';
import { agentsById, type DesiredBundle, type DesiredStatePolicy } from './snapshot.js';

export interface RolloutServiceHooks {
  /** Every controller event (logs). */
  onEvent?(event: RolloutEvent): void;
  /** A save, recompile or republish failed; logged by the server. */
  onError?(err: unknown, what: string): void;
}

export interface RolloutServiceOptions {
  readonly store: Pick<PersistentFleetStore, 'loadRollout' | 'saveRollout' | 'digestsApplied'>;
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
export class RolloutService {
  private readonly options: Required<Omit<RolloutServiceOptions, 'alerts' | 'hooks'>> & {
    readonly alerts: AlertSink | null;
    readonly hooks: RolloutServiceHooks;
  };
  private readonly controller: RolloutController;
  private readonly history: Map<AgentId, Set<string>>;
  private readonly compilations = new Map<CommitSha, Compilation>();
  private readonly lastActive = new Map<AgentId, string>();
  private queuedRepublish: Promise<unknown> | null = null;
  private saving: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  /** Set by `detach`: the server is shutting down, and streams closing are not agents leaving. */
  private detached = false;

  private constructor(options: RolloutServiceOptions, history: Map<AgentId, Set<string>>, document: unknown) {
    this.options = {
      now: () => new Date(),
      tickMs: 1_000,
      ...options,
      alerts: options.alerts ?? null,
      hooks: options.hooks ?? {},
    };
    this.history = history;
    const applied: AppliedHistory = { appliedDigests: (id) => (this.history.get(id) ?? EMPTY) as ReadonlySet<Digest> };
    this.controller = document === null ? new RolloutController({ history: applied }) : RolloutController.fromJSON(document, { history: applied });
  }

  /**
   * Restores the controller from the store and recompiles the commits its document names, so a
   * restart resumes exactly. Throws RolloutError INVALID_STATE for an unreadable document.
   */
  static async load(options: RolloutServiceOptions): Promise<RolloutService> {
    const history = new Map<AgentId, Set<string>>();
    for (const id of options.knownAgents()) history.set(id, new Set(await options.store.digestsApplied(id)));
    const stored = await options.store.loadRollout();
    const service = new RolloutService(options, history, stored?.document ?? null);
    for (const commit of referencedCommits(service.controller.toJSON())) {
      try {
        service.compilations.set(commit, await options.compile(commit));
      } catch (err) {
        // Agents told to run this commit get no delivery (they keep what they run) rather than a wrong one.
        service.emitError(err, `recompile ${commit}`);
      }
    }
    return service;
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
      const commit = this.commitOfDelivery(agentId, delivery);
      if (commit === null) return;
      if (ack.status === 'APPLIED') {
        let digests = this.history.get(agentId);
        if (digests === undefined) this.history.set(agentId, (digests = new Set()));
        digests.add(delivery.digest);
      }
      this.apply(this.controller.onAck(agentId, commit, ack.status, this.options.now()));
    },
  };

  status(): RolloutStatus {
    return this.controller.status(this.options.now());
  }

  /** The commit the controller gives the agent (for fleet state), or null. */
  desiredCommit(agentId: AgentId): CommitSha | null {
    return this.controller.desired(agentId)?.commit ?? null;
  }

  /** An operator action; when done, it is audited (same transaction as the saved document) before this resolves. */
  async act(action: OperatorAction): Promise<ActionResult> {
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
    await this.save(audit);
    return result;
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
    await this.save();
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
    return { agentId, digest: agent.bundle.digest, bytes: agent.bundle.bytes, baseline: false };
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
      if (event.kind === 'rollout-halted') {
        this.options.alerts?.post({
          kind: 'rollout-halted',
          commit: event.commit,
          wave: event.wave,
          rejected: event.rejected,
          connected: event.connected,
          message: `rollout of ${event.commit} halted in wave ${event.wave}: ${event.rejected} of ${event.connected} connected agents rejected it (maxNackRatio ${event.maxNackRatio})`,
          at: event.at,
        });
      }
    }
    if (changes.events.length > 0 && options.skipSave !== true) void this.save();
    if (changes.changed.length > 0) void this.republish();
  }

  /** Saves are serialized in order; each writes the controller's document as it is then. */
  private save(audit?: Parameters<PersistentFleetStore['appendAudit']>[0]): Promise<void> {
    const run = this.saving.then(async () => {
      const document = this.controller.toJSON();
      const commit = document.rollout?.commit;
      if (commit === undefined) return;
      await this.options.store.saveRollout({ commit, document, at: this.options.now() }, audit === undefined ? {} : { audit });
    });
    this.saving = run.catch((err: unknown) => this.emitError(err, 'save the rollout'));
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
    try {
      call();
    } catch {
      // Observers must not break the rollout.
    }
  }
}

const EMPTY: ReadonlySet<string> = new Set();

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
