import type { Logger } from 'pino';
import type { AgentId } from '../domain/types.js';
import { errorMessage } from '../domain/errors.js';
import type { CoherentCache, FleetChangeEvent, FleetChangeFeed, FleetStore, GenerationStore, RefusalRecord, ServerStateStore } from '../fleet/index.js';
import { restoreGeneration } from '../signing/index.js';
import type { PollOptions } from '../source/index.js';
import { assertNever } from '../lib/index.js';
import type { ServerConfig } from './config.js';
import { AdvisoryLockLeadership, SoleLeadership, type Leadership, type LeadershipHooks } from './leadership.js';
import { isRefusalCode, type AcceptedCompiler, type GenerationRestorer, type Reconciler, type Refusal } from './reconcile.js';

/** The loops only the leader runs, as the server's parts offer them. */
export interface LeaderLoops {
  readonly source: { start(options: PollOptions): void; stop(): Promise<void> };
  /** The rollout's ticks and the saves and republishes its controller decides. */
  readonly rollout: { start(): void; lead(): Promise<void>; follow(): void };
  /** Judging heads and signing (its re-signing timer included). */
  readonly reconciler: { start(): void; stop(): Promise<void>; follow(): void; lead(highest: number): Promise<void> };
  readonly poll: PollOptions;
  /** The highest generation any replica signed (the store's). */
  readonly highestGeneration: () => Promise<number>;
  /** Serve the newest generation the previous leader stored, before signing anything new. */
  readonly catchUp: () => Promise<void>;
}

/**
 * Runs the leader's loops while `leadership` says this replica leads, and stops them the moment
 * it stops leading: the rollout (no tick, save or republish) and the reconciler (no judgement
 * or signature) synchronously, then polling. A replica that does not lead keeps serving, taking
 * acks, enrollments and admin calls. Returns the shutdown step (stops polling, then campaigning).
 */
export function runWhileLeading(leadership: Leadership, loops: LeaderLoops, logger: Logger): () => Promise<void> {
  let leading = false;
  let transition: Promise<void> = Promise.resolve();
  const become = (leader: boolean): void => {
    if (!leader) {
      // Synchronous: nothing ticks, signs or republishes after this line.
      loops.rollout.follow();
      loops.reconciler.follow();
    }
    transition = transition
      .then(async () => {
        if (leader === leading) return;
        leading = leader;
        if (leader) {
          logger.info({ event: 'leader-loops-started', replica: leadership.replica }, 'this replica leads: polling the repository and running the rollout');
          await loops.catchUp();
          const highest = await loops.highestGeneration();
          if (!leading) return; // deposed meanwhile
          await loops.reconciler.lead(highest);
          await loops.rollout.lead();
          if (!leading) return;
          loops.reconciler.start();
          loops.source.start(loops.poll);
        } else {
          logger.warn({ event: 'leader-loops-stopped', replica: leadership.replica }, 'this replica no longer leads: polling and rollout stopped');
          await loops.source.stop();
          await loops.reconciler.stop();
        }
      })
      .catch((err: unknown) => {
        logger.error({ event: 'leadership-transition-failed', err: errorMessage(err) }, 'switching the leader loops failed');
      });
  };
  const unsubscribe = leadership.subscribe(become);
  if (leadership.kind === 'sole') {
    // The only writer of its store leads from the start, exactly as a single server always did.
    leading = true;
    loops.reconciler.start();
    loops.rollout.start();
    loops.source.start(loops.poll);
  } else {
    become(false);
    if (leadership.isLeader()) become(true);
  }
  leadership.start();
  // Shutdown: polling stops here; the rollout (detached first, then saving its last document,
  // compare-and-set) and the re-signing timer stop in their own steps.
  return async () => {
    unsubscribe();
    await transition;
    await loops.source.stop();
    await leadership.stop();
  };
}

export interface ReplicaSyncOptions {
  readonly changes: FleetChangeFeed;
  readonly store: Pick<GenerationStore, 'latestGeneration'> & Pick<ServerStateStore, 'serverState'>;
  readonly leadership: Pick<Leadership, 'isLeader'>;
  readonly reconciler: Pick<Reconciler, 'adopt' | 'adoptRefusal'>;
  /** Compiles an accepted commit, fetching the repository when the commit is not there yet. */
  readonly compile: AcceptedCompiler;
  readonly restore: GenerationRestorer;
  /** The in-memory views to refresh (those whose coherence is `notified`). */
  readonly caches: readonly CoherentCache[];
  readonly logger: Logger;
  /** Changes arriving within this are handled as one (agent ids merged). Default 20 ms. */
  readonly coalesceMs?: number;
}

/**
 * A replica's side of the change feed: bursts of changes are coalesced (agent ids merged, one
 * refresh per kind), each `notified` cache refreshes from the store, and a follower serves the
 * newest generation the leader stored, and reports the refusal it recorded, when the server
 * state changed. Refreshes run one batch at a time, so a slow store delays them but never
 * reorders them.
 */
export class ReplicaSync {
  private readonly coalesceMs: number;
  private pending: { kinds: Set<FleetChangeEvent['kind']>; agents: Set<AgentId> | 'all'; revision: number } | null = null;
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  private unsubscribe: (() => void) | null = null;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryMs = 0;

  constructor(private readonly options: ReplicaSyncOptions) {
    this.coalesceMs = options.coalesceMs ?? 20;
  }

  start(): void {
    this.unsubscribe ??= this.options.changes.subscribe((event) => this.note(event));
  }

  private readonly stops: Array<() => void> = [];

  /** Runs `step` when the sync stops (timers that belong to it). */
  onStop(step: () => void): void {
    this.stops.push(step);
  }

  async stop(): Promise<void> {
    for (const step of this.stops.splice(0)) step();
    this.unsubscribe?.();
    this.unsubscribe = null;
    clearTimeout(this.retryTimer);
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.chain;
  }

  /** Serves the newest stored generation and reports the stored refusal when this replica does not lead (a no-op when it does). */
  catchUp(): Promise<void> {
    const run = this.chain.then(() => this.adoptLatest());
    this.chain = run.catch(() => {});
    return run;
  }

  /** Waits for the refreshes queued so far (tests). */
  async settled(): Promise<void> {
    while (this.timer !== undefined) await new Promise((resolve) => setTimeout(resolve, this.coalesceMs));
    await this.chain;
  }

  private note(event: FleetChangeEvent): void {
    const pending = (this.pending ??= { kinds: new Set(), agents: new Set(), revision: 0 });
    pending.kinds.add(event.kind);
    if (event.kind === 'agents') {
      if (event.ids === 'all') pending.agents = 'all';
      else if (pending.agents !== 'all') for (const id of event.ids) pending.agents.add(id);
    }
    if (event.kind === 'rollout') pending.revision = Math.max(pending.revision, event.revision);
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      const batch = this.pending;
      this.pending = null;
      if (batch !== null) this.chain = this.chain.then(() => this.apply(batch)).catch(() => {});
    }, this.coalesceMs);
  }

  private async apply(batch: NonNullable<ReplicaSync['pending']>): Promise<void> {
    const events: FleetChangeEvent[] = batch.kinds.has('resync')
      ? [{ kind: 'resync' }]
      : [...batch.kinds].map((kind): FleetChangeEvent => {
          switch (kind) {
            case 'agents':
              return { kind, ids: batch.agents === 'all' ? 'all' : [...batch.agents] };
            case 'rollout':
              return { kind, revision: batch.revision };
            default:
              return { kind } as FleetChangeEvent;
          }
        });
    if (batch.kinds.has('server-state') || batch.kinds.has('resync')) await this.adoptLatest();
    for (const cache of this.options.caches) {
      const coherence = cache.coherence;
      if (coherence.kind !== 'notified') continue;
      for (const event of events) {
        if (!coherence.follows.includes(event.kind)) continue;
        try {
          await coherence.refresh(event);
        } catch (err) {
          this.options.logger.warn({ event: 'cache-refresh-failed', change: event.kind, err: errorMessage(err) }, 'refreshing a cache from the store failed');
        }
      }
    }
  }

  private async adoptLatest(): Promise<void> {
    if (this.options.leadership.isLeader()) return;
    let failed = false;
    try {
      const record = await this.options.store.latestGeneration();
      const result = record === null ? null : await this.options.reconciler.adopt(record, this.options.compile, this.options.restore);
      if (record !== null && result?.kind === 'failed') {
        failed = true;
        this.options.logger.error(
          { event: 'generation-not-served', generation: record.generation, commit: record.commit, err: errorMessage(result.error) },
          'cannot serve the generation the leader signed; still serving the previous one',
        );
      }
      // After the generation: a refusal of the commit just adopted is stale and ignored.
      const { lastRefusal } = await this.options.store.serverState();
      await this.options.reconciler.adoptRefusal(lastRefusal === null ? null : this.refusalOf(lastRefusal));
    } catch (err) {
      failed = true;
      this.options.logger.warn({ event: 'generation-load-failed', err: errorMessage(err) }, 'could not load the newest signed generation');
    }
    // The leader may sign nothing more for a while: a follower that could not serve its newest
    // generation (a fetch that failed, the store away) tries again by itself, backing off.
    this.retryMs = failed ? Math.min(MAX_ADOPT_RETRY_MS, this.retryMs === 0 ? FIRST_ADOPT_RETRY_MS : this.retryMs * 2) : 0;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    if (failed && this.unsubscribe !== null) {
      this.retryTimer = setTimeout(() => void this.catchUp(), this.retryMs);
      this.retryTimer.unref();
    }
  }

  /** The stored refusal as the reconciler's; one with a code this meshcfg does not know (a newer replica's) stands as no refusal. */
  private refusalOf(record: RefusalRecord): Refusal | null {
    const { code } = record;
    if (isRefusalCode(code)) return { ...record, code };
    const message = `the leader refused ${record.commit} with a code unknown here (${code})`;
    this.options.logger.warn({ event: 'refusal-not-adopted', commit: record.commit, code }, message);
    return null;
  }
}

const FIRST_ADOPT_RETRY_MS = 1_000;
const MAX_ADOPT_RETRY_MS = 30_000;

/** How often a replica writes `lastSeen` of its connected agents (well within the 2-minute disconnected timeout). */
const PRESENCE_MS = 30_000;

/**
 * The change-feed side of a replica, started when the store has a feed (shared PostgreSQL);
 * null for a store only this process writes. A follower serves the stored generation at once.
 */
export function startReplicaSync(
  parts: {
    readonly store: FleetStore;
    readonly leadership: Pick<Leadership, 'isLeader'>;
    readonly reconciler: Pick<Reconciler, 'adopt' | 'adoptRefusal'>;
    readonly compile: AcceptedCompiler;
    readonly signer: { readonly signingPublicKeyPem: string };
    readonly logger: Logger;
    /** Open streams of agents whose certificate standing another replica changed are checked again. */
    readonly streams: { recheckStreams(agentId: AgentId): void };
    /** The leader publishes again when another replica quarantined or approved an agent. */
    readonly republish: () => Promise<unknown>;
  },
  caches: {
    readonly fleet: CoherentCache & { onQuarantineChanged(listener: (ids: readonly AgentId[]) => void): unknown; touchConnected(at: Date): void };
    readonly certificates: CoherentCache & { onStandingChanged(listener: (ids: readonly AgentId[]) => void): unknown };
    readonly rollout: CoherentCache;
  },
): ReplicaSync | null {
  const changes = parts.store.changes;
  if (changes === null) return null;
  const { signingPublicKeyPem } = parts.signer;
  caches.certificates.onStandingChanged((ids) => ids.forEach((id) => parts.streams.recheckStreams(id)));
  const presence = setInterval(() => caches.fleet.touchConnected(new Date()), PRESENCE_MS);
  presence.unref();
  caches.fleet.onQuarantineChanged(() => {
    if (parts.leadership.isLeader()) void parts.republish();
  });
  const sync = new ReplicaSync({
    ...parts,
    changes,
    caches: [caches.fleet, caches.certificates, caches.rollout],
    restore: (input) => restoreGeneration(input, signingPublicKeyPem),
  });
  sync.start();
  // A safety net beside the feed: the newest generation is looked at every 30 s anyway.
  const safetyNet = setInterval(() => void sync.catchUp(), PRESENCE_MS);
  safetyNet.unref();
  sync.onStop(() => (clearInterval(presence), clearInterval(safetyNet)));
  void sync.catchUp();
  return sync;
}

/**
 * The election a configuration asks for: replicas sharing PostgreSQL contend for the advisory
 * lock in that database; a store only this process writes (SQLite) makes it the sole leader.
 */
export function chooseLeadership(config: Pick<ServerConfig, 'state'>, logger: Logger): Leadership {
  switch (config.state.kind) {
    case 'postgres':
      return new AdvisoryLockLeadership({ connectionString: config.state.url, hooks: leadershipLogHooks(logger) });
    case 'sqlite':
      return new SoleLeadership();
    default:
      return assertNever(config.state);
  }
}

/** Log lines for the election (never the connection string: it may hold a password). */
export function leadershipLogHooks(logger: Logger): LeadershipHooks {
  return {
    onElected: ({ replica }) => logger.info({ event: 'leader-elected', replica }, 'this replica took the leader lock'),
    onDeposed: ({ replica, reason, error }) =>
      logger.warn(
        { event: 'leader-deposed', replica, reason, ...(error === undefined ? {} : { err: errorMessage(error) }) },
        `this replica stopped leading (${reason})`,
      ),
    onCandidateError: ({ replica, error }) =>
      logger.warn({ event: 'leader-campaign-failed', replica, err: errorMessage(error) }, 'could not try the leader lock; retrying'),
  };
}
