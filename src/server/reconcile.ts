import { inventoryShrink, type Compilation } from '../compile/index.js';
import type { VerifiedCommit, VerifiedTree } from '../domain/commit.js';
import { CompileError, errorMessage, SigningError, SourceError, TRUST_ERROR_CODES, TrustError } from '../domain/errors.js';
import type { AgentId, CommitSha, Digest, Violation } from '../domain/types.js';
import type { GenerationRecord } from '../fleet/index.js';
import type { GenerationInput, SignedGeneration, StoredGenerationInput } from '../signing/index.js';
import type { FetchEvent } from '../source/index.js';
import type { VerifyOptions } from '../source/trust/index.js';
import { Conditions, reasonOf, type Condition } from './conditions.js';
import { agentsById, buildSnapshot, latestCommitPolicy, type DesiredBundle, type DesiredStatePolicy, type Snapshot } from './snapshot.js';
import type { PersistedState, StateStore } from './state.js';
import { notify } from '../lib/index.js';

// ---- What the reconciler needs, as role interfaces (implemented by GitSource, TrustGate, Compiler, BundleSigner, SnapshotCache) ----

export interface CommitVerifier {
  verify(sha: CommitSha, options: VerifyOptions): Promise<VerifiedCommit>;
}
export interface TreeReader {
  readTree(commit: VerifiedCommit): Promise<VerifiedTree>;
}
export interface CommitCompiler {
  compile(tree: VerifiedTree): Compilation;
}
export interface GenerationSigner {
  signGeneration(input: GenerationInput): SignedGeneration;
}
export interface SnapshotSink {
  set(snapshot: Snapshot): void;
}
/** The shared record of the last refused commit (null: none stands). */
export interface RefusalSink {
  saveRefusal(refusal: Refusal | null): Promise<void>;
}

/** Where the leader keeps each signed generation for the other replicas (the fleet store). */
export interface GenerationSink {
  saveGeneration(record: GenerationRecord): Promise<void>;
}
/** Rebuilds a generation signed by another replica (checked against this server's signing key). */
export type GenerationRestorer = (input: StoredGenerationInput) => SignedGeneration;
/** Verifies (as an accepted commit: no fast-forward rule), reads and compiles a commit the leader accepted, fetching it when missing. */
export type AcceptedCompiler = (commit: CommitSha) => Promise<Compilation>;

/** Why a commit was refused: a trust verdict, or something about its content. All stall until a new commit. */
export const REFUSAL_CODES = [
  ...TRUST_ERROR_CODES,
  'INVALID_REPOSITORY',
  'FILE_TOO_LARGE',
  'TREE_TOO_LARGE',
  'POLICY_VIOLATIONS',
  'TRUST_DOMAIN_MISMATCH',
] as const;

export type RefusalCode = (typeof REFUSAL_CODES)[number];

export function isRefusalCode(code: string): code is RefusalCode {
  return (REFUSAL_CODES as readonly string[]).includes(code);
}

export interface Refusal {
  readonly commit: CommitSha;
  readonly code: RefusalCode;
  readonly message: string;
  readonly at: Date;
  /** For POLICY_VIOLATIONS: every violation (the message summarises the first few). */
  readonly violations: readonly Violation[];
}

/** Why a generation was signed and published. */
export type PublishReason =
  /** A new commit was accepted. */
  | 'commit'
  /** The accepted commit of a previous run was re-verified and republished on start. */
  | 'restore'
  /** Same content, new generation: the previous statement reached half its lifetime. */
  | 'refresh'
  /** Same commit, new generation: the policy's answer changed for some agents (quarantine, approval). */
  | 'fleet'
  /** A follower serves the generation the leading replica signed and stored (same bytes). */
  | 'follow';

export interface PublishedEvent {
  readonly reason: PublishReason;
  readonly snapshot: Snapshot;
  readonly compilation: Compilation;
}

export type ReconcileResult =
  | { readonly kind: 'accepted'; readonly commit: CommitSha; readonly generation: number }
  | { readonly kind: 'unchanged'; readonly commit: CommitSha }
  | { readonly kind: 'refused'; readonly refusal: Refusal }
  /** A newer head was queued behind this one; it was skipped. */
  | { readonly kind: 'superseded'; readonly commit: CommitSha }
  /** Could not be judged now (repository unreadable, state not writable); retried on the next fetch. */
  | { readonly kind: 'failed'; readonly commit: CommitSha; readonly error: unknown };

/** Observers: logs, metrics, alerts, fleet state. Must not throw (a throw is swallowed). */
export interface ReconcileHooks {
  onPublished?(event: PublishedEvent): void;
  onRefused?(refusal: Refusal): void;
  onFailed?(event: { readonly commit: CommitSha; readonly error: unknown }): void;
}

export interface ReconcilerOptions {
  readonly verifier: CommitVerifier;
  readonly trees: TreeReader;
  readonly compiler: CommitCompiler;
  readonly signer: GenerationSigner;
  readonly snapshots: SnapshotSink;
  readonly store: StateStore;
  /** What the store held at start (load it before constructing the signer, to pass `lastGeneration`). */
  readonly initialState: PersistedState;
  /** The server's trust domain; a commit whose meshcfg.yaml names another is refused. */
  readonly trustDomain: string;
  /** Must match the signer's ttl: a generation is re-signed at half of it. */
  readonly bundleTtlMs: number;
  readonly policy?: DesiredStatePolicy;
  /** Replicas sharing a store: each signed generation is saved here before it is published. */
  readonly generations?: GenerationSink | null;
  /**
   * Where the leader records each refusal, and its end when a newer commit is accepted, so
   * every replica can report it (followers judge nothing; see `adoptRefusal`). Awaited within
   * the judgement; it reports its own failures and must not throw.
   */
  readonly refusals?: RefusalSink | null;
  readonly hooks?: ReconcileHooks;
  readonly now?: () => Date;
  /** How often `start()`'s timer checks whether a refresh is due. Default ttl/48, within 1 s – 60 s. */
  readonly refreshCheckMs?: number;
}

export interface ReconcileStatus {
  /** Last head the source reported. */
  readonly head: CommitSha | null;
  /** The fast-forward anchor (persisted); may be set while nothing is served yet after a failed restore. */
  readonly accepted: CommitSha | null;
  /** Commit of the published snapshot, `null` before one is. */
  readonly serving: CommitSha | null;
  readonly generation: number;
  readonly refused: Refusal | null;
  readonly conditions: readonly Condition[];
}

interface Accepted {
  readonly compilation: Compilation;
  readonly snapshot: Snapshot;
  /** Epoch ms at which the snapshot's statement should be re-signed; null when nothing is signed. */
  readonly refreshAt: number | null;
}

const MAX_VIOLATIONS_IN_MESSAGE = 3;
/** First-seen times kept for heads not (yet) accepted; the oldest are forgotten beyond this. */
const MAX_SEEN_COMMITS = 256;

/**
 * The producer loop: each new head is verified by the trust gate, read, compiled and checked;
 * an accepted commit becomes ONE signed generation for the whole fleet, persisted and then
 * published to the snapshot cache. A refused commit changes nothing that is served: the
 * previous snapshot stays, and the refusal is recorded and reported through hooks.
 *
 * Contracts:
 * - Runs are serialized; a head queued behind a newer one is skipped (`superseded`).
 * - A generation is persisted before it is published, and never reused: a failed save burns it.
 * - A refused commit is not retried (its verdict cannot change); a failed one is, on the
 *   next fetch event.
 */
export class Reconciler {
  private readonly options: Required<Omit<ReconcilerOptions, 'initialState' | 'generations' | 'refusals'>>;
  private readonly generations: GenerationSink | null;
  private readonly refusals: RefusalSink | null;
  /** Another replica leads: a fetched head is noted, never judged; generations come from `adopt`. */
  private following = false;
  private readonly conditions: Conditions;
  private anchor: CommitSha | null;
  /** When the anchor was first seen (persisted with it); null for state of an older meshcfg. */
  private anchorSeenAt: Date | null;
  /** When each recent head was first seen: the moment its signer's key validity is judged at. */
  private readonly firstSeen = new Map<CommitSha, Date>();
  private generation: number;
  private current: Accepted | null = null;
  /** Per agent, the digest and commit of its (non-baseline) bundle in the served generation. */
  private bundleCommits = new Map<AgentId, { readonly digest: string; readonly commit: CommitSha }>();
  private refused: Refusal | null = null;
  /** Whether the `refusals` sink holds `refused` (written by this process, or adopted from it). */
  private refusalStored = false;
  private head: CommitSha | null = null;
  private latestQueued: CommitSha | null = null;
  private tail: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  /** The outcome of the last judgement that decided something (accepted, refused, failed). */
  private lastDecision: ReconcileResult | null = null;

  constructor(options: ReconcilerOptions) {
    this.options = {
      verifier: options.verifier,
      trees: options.trees,
      compiler: options.compiler,
      signer: options.signer,
      snapshots: options.snapshots,
      store: options.store,
      trustDomain: options.trustDomain,
      bundleTtlMs: options.bundleTtlMs,
      policy: options.policy ?? latestCommitPolicy,
      hooks: options.hooks ?? {},
      now: options.now ?? (() => new Date()),
      refreshCheckMs: options.refreshCheckMs ?? Math.min(60_000, Math.max(1_000, Math.floor(options.bundleTtlMs / 48))),
    };
    this.generations = options.generations ?? null;
    this.refusals = options.refusals ?? null;
    this.anchor = options.initialState.accepted;
    this.anchorSeenAt = options.initialState.seenAt;
    this.generation = options.initialState.generation;
    this.conditions = new Conditions(this.options.now);
    this.conditions.set('Ready', 'False', 'NoAcceptedCommit', 'no commit has been accepted yet');
  }

  /**
   * Re-verifies, re-compiles and republishes the commit a previous run accepted, so agents are
   * served before the first fetch. Under a new generation: the old statement's may be expired
   * and the signer refuses to reuse a generation. No-op on a first start.
   */
  async restore(): Promise<ReconcileResult | null> {
    if (this.anchor === null) return null;
    const commit = this.anchor;
    return this.serialized(() => this.judge(commit, 'restore'));
  }

  /** Judges `head` (queued behind a running judgement). */
  reconcile(head: CommitSha): Promise<ReconcileResult> {
    this.latestQueued = head;
    return this.serialized(() =>
      head === this.latestQueued ? this.judge(head, 'commit') : Promise.resolve<ReconcileResult>({ kind: 'superseded', commit: head }),
    );
  }

  /**
   * Waits for judgements queued so far, then answers how `head` was judged: the recorded
   * decision when it was the last one decided, otherwise a judgement now. For callers that
   * fetched themselves (tests, `syncNow`) while the fetch hook may already have queued one.
   */
  async settle(head: CommitSha): Promise<ReconcileResult> {
    await this.tail.catch(() => {});
    const last = this.lastDecision;
    if (last !== null && decidedCommit(last) === head && last.kind !== 'failed') return last;
    return this.reconcile(head);
  }

  /**
   * The GitSource `onFetch` hook. Starts a judgement when the head is neither what is served
   * nor a refused commit (so a failed judgement is retried on every poll).
   */
  readonly onFetch = (event: FetchEvent): void => {
    if (event.kind === 'failed') {
      this.conditions.set('SourceFetched', 'False', reasonOf(event.error.code), event.error.message);
      return;
    }
    this.head = event.head.commit;
    this.noteSeen(event.head.commit);
    this.conditions.set('SourceFetched', 'True', 'Fetched', `head ${event.head.commit}`);
    if (!this.following && this.needsJudgement(event.head.commit)) void this.reconcile(event.head.commit);
  };

  /**
   * Another replica leads: from now on this one judges no head, signs nothing (no refresh, no
   * republish) and serves what `adopt` is given. Synchronous: a judgement already queued still
   * runs; callers stop polling too.
   */
  follow(): void {
    this.following = true;
  }

  /**
   * This replica leads: it signs again, continuing from the highest generation anyone signed
   * (`highest`: the store's), so no number is signed twice.
   */
  lead(highest: number): Promise<void> {
    return this.serialized(async () => {
      this.generation = Math.max(this.generation, highest);
      this.following = false;
    });
  }

  /**
   * A follower serves the generation the leader signed: it compiles the commits the record
   * names itself (deterministic: the same bytes), checks each agent's digest against the
   * signed leaves, and publishes the leader's signature unchanged. A record not newer than
   * what is served changes nothing; one whose bytes cannot be rebuilt is not served (`failed`,
   * reported through `onFailed`) and the previous generation stays.
   */
  adopt(record: GenerationRecord, compile: AcceptedCompiler, restore: GenerationRestorer): Promise<ReconcileResult> {
    return this.serialized(async () => {
      const served = this.current?.snapshot.generation ?? 0;
      if (!this.following || record.generation <= served) return { kind: 'unchanged', commit: record.commit };
      try {
        const compilations = new Map<CommitSha, Compilation>();
        for (const commit of new Set([record.commit, ...record.agents.map((a) => a.commit)])) compilations.set(commit, await compile(commit));
        const desired: DesiredBundle[] = record.agents.map((a) => {
          const compilation = compilations.get(a.commit);
          const own = compilation === undefined ? undefined : agentsById(compilation).get(a.agentId)?.bundle;
          const bundle = a.baseline ? compilation?.baseline : own;
          if (bundle == null || bundle.digest !== a.digest) {
            throw new SigningError({
              code: 'INVALID_GENERATION',
              message:
                `generation ${record.generation}: ${a.agentId}'s bundle of ${a.commit} compiles to ` +
                `${bundle?.digest ?? 'nothing'} here, the leader signed ${a.digest}`,
            });
          }
          return { agentId: a.agentId, digest: bundle.digest, bytes: bundle.bytes, baseline: a.baseline, commit: a.commit };
        });
        const signed = restore({
          generation: record.generation,
          commit: record.commit,
          bundle: record.bundle,
          agents: record.agents.map((a) => ({ agentId: a.agentId, digest: a.digest as Digest })),
        });
        const compilation = compilations.get(record.commit) as Compilation;
        this.generation = Math.max(this.generation, record.generation);
        this.anchor = record.commit;
        const snapshot = buildSnapshot({ generation: record.generation, commit: record.commit, desired, signed: desired.length === 0 ? null : signed });
        this.show(compilation, snapshot, signed, 'follow', desired);
        return { kind: 'accepted', commit: record.commit, generation: record.generation };
      } catch (err) {
        return this.fail(record.commit, err);
      }
    });
  }

  /**
   * A follower reports the refusal the leader recorded (null: none stands), as the leader does:
   * in `status()` and the Ready condition. Nothing is alerted or counted again. A refusal of the
   * commit being served is stale (the leader accepted a newer one and has not cleared it yet)
   * and is ignored. A no-op on the leader, whose own judgements decide.
   */
  adoptRefusal(refusal: Refusal | null): Promise<void> {
    return this.serialized(async () => {
      if (!this.following) return;
      const serving = this.current?.snapshot.commit;
      if (refusal !== null && refusal.commit === serving) return;
      this.refusalStored = true;
      if (refusal?.commit === this.refused?.commit) return;
      this.refused = refusal;
      if (refusal !== null) this.conditions.set('Ready', ...readyWhileRefused(refusal, serving));
      else if (this.current !== null) this.conditions.set('Ready', ...readyServing(this.current.snapshot));
    });
  }

  /** Re-signs the served content under a new generation when half its lifetime has passed. */
  refreshIfDue(): Promise<boolean> {
    return this.serialized(async () => {
      const current = this.current;
      if (this.following) return false;
      if (current === null || current.refreshAt === null || this.options.now().getTime() < current.refreshAt) return false;
      const result = await this.tryPublish(current.compilation, 'refresh');
      return result.kind === 'accepted';
    });
  }

  /**
   * Signs and publishes the served compilation again under a new generation, asking the policy
   * afresh (an agent was quarantined or approved). Null when nothing is served yet.
   */
  republish(): Promise<ReconcileResult | null> {
    return this.serialized(async () => (this.current === null || this.following ? null : this.tryPublish(this.current.compilation, 'fleet')));
  }

  /** Starts the refresh timer. */
  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => void this.refreshIfDue(), this.options.refreshCheckMs);
    this.timer.unref();
  }

  /** Stops the timer and waits for a running judgement. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.tail.catch(() => {});
  }

  status(): ReconcileStatus {
    return {
      head: this.head,
      accepted: this.anchor,
      serving: this.current?.snapshot.commit ?? null,
      generation: this.generation,
      refused: this.refused,
      conditions: this.conditions.list(),
    };
  }

  /**
   * The commit whose bundle the served generation gives this agent, when it has this digest:
   * the answer for an ack or a hello naming it (two commits may compile to the same bytes; the
   * one served is the one the agent runs). Null when the served generation gives it other bytes.
   */
  bundleCommit(agentId: AgentId, digest: string): CommitSha | null {
    const served = this.bundleCommits.get(agentId);
    return served !== undefined && served.digest === digest ? served.commit : null;
  }

  /** The compilation being served (its inventory is the set of known agents), or null. */
  served(): { readonly compilation: Compilation; readonly snapshot: Snapshot } | null {
    return this.current;
  }

  /**
   * When this server first saw `commit` (a head it fetched, or the accepted commit of a
   * previous run), or undefined when it never did. Key validity (`trust.keyValidity: now`)
   * is judged at this moment, also when the commit is verified again later.
   */
  seenAt(commit: CommitSha): Date | undefined {
    return commit === this.anchor && this.anchorSeenAt !== null ? this.anchorSeenAt : this.firstSeen.get(commit);
  }

  /** Records the first sighting of `commit` (now) unless one is known; returns it. */
  private noteSeen(commit: CommitSha): Date {
    const known = this.seenAt(commit);
    if (known !== undefined) return known;
    const now = this.options.now();
    this.firstSeen.set(commit, now);
    if (this.firstSeen.size > MAX_SEEN_COMMITS) {
      const oldest = this.firstSeen.keys().next().value;
      if (oldest !== undefined) this.firstSeen.delete(oldest);
    }
    return now;
  }

  private needsJudgement(head: CommitSha): boolean {
    return head !== this.current?.snapshot.commit && head !== this.refused?.commit;
  }

  private serialized<T>(step: () => Promise<T>): Promise<T> {
    const run = this.tail.then(step);
    this.tail = run.catch(() => {});
    return run;
  }

  /** Call only through `serialized`. */
  private async judge(commit: CommitSha, reason: 'commit' | 'restore'): Promise<ReconcileResult> {
    const standing = this.refused;
    const result = await this.judgeOnce(commit, reason);
    if (result.kind === 'accepted' || result.kind === 'refused' || result.kind === 'failed') this.lastDecision = result;
    // A refusal made, or ended by a newer accepted commit: the other replicas read it from here.
    // The first decision of a process writes it in any case: a refusal a previous run left in
    // the store may have been ended since (this process judges a refused head again).
    const decided = result.kind === 'accepted' || result.kind === 'refused';
    if (this.refusals !== null && (this.refused !== standing || (decided && !this.refusalStored))) {
      await this.refusals.saveRefusal(this.refused);
      this.refusalStored = true;
    }
    return result;
  }

  private async judgeOnce(commit: CommitSha, reason: 'commit' | 'restore'): Promise<ReconcileResult> {
    if (reason === 'commit' && !this.needsJudgement(commit)) {
      return this.refused?.commit === commit ? { kind: 'refused', refusal: this.refused } : { kind: 'unchanged', commit };
    }
    // A restored anchor is judged at the moment a previous run first saw it, so a key retired
    // since then does not refuse the commit already accepted (state of an older meshcfg has no
    // such moment: then it is judged now, and that moment is recorded).
    const seenAt = this.noteSeen(commit);
    let verified: VerifiedCommit;
    try {
      verified = await this.options.verifier.verify(commit, this.anchor === null ? { seenAt } : { lastAccepted: this.anchor, seenAt });
    } catch (err) {
      if (err instanceof TrustError && err.code !== 'MALFORMED_ALLOWED_SIGNERS') {
        this.conditions.set('SourceVerified', 'False', reasonOf(err.code), err.message);
        return this.refuse(commit, err.code, err.message, 'verify');
      }
      return this.fail(commit, err);
    }
    this.conditions.set(
      'SourceVerified',
      'True',
      'Verified',
      verified.trust.kind === 'verified' ? `commit ${commit} signed by ${verified.trust.signer}` : `commit ${commit}`,
    );

    let compilation: Compilation;
    try {
      compilation = this.options.compiler.compile(await this.options.trees.readTree(verified));
    } catch (err) {
      if (err instanceof CompileError) return this.refuse(commit, err.code, err.message, 'compile');
      if (err instanceof SourceError && (err.code === 'FILE_TOO_LARGE' || err.code === 'TREE_TOO_LARGE')) {
        return this.refuse(commit, err.code, err.message, 'compile');
      }
      return this.fail(commit, err);
    }
    // inventory-shrink compares with the commit being served (none at a first start or a restore).
    const previous = this.current?.compilation.agents.map((a) => a.id) ?? null;
    const violations = [...compilation.violations, ...inventoryShrink(previous, compilation).violations];
    if (violations.length > 0) {
      return this.refuse(commit, 'POLICY_VIOLATIONS', describeViolations(violations), 'compile', violations);
    }
    const repoDomain = compilation.settings?.trustDomain;
    if (repoDomain !== this.options.trustDomain) {
      return this.refuse(
        commit,
        'TRUST_DOMAIN_MISMATCH',
        `meshcfg.yaml names trust domain ${JSON.stringify(repoDomain)}, but this server's is ${JSON.stringify(this.options.trustDomain)}`,
        'compile',
      );
    }
    return this.tryPublish(compilation, reason);
  }

  private async tryPublish(compilation: Compilation, reason: PublishReason): Promise<ReconcileResult> {
    const commit = compilation.commit.sha;
    try {
      const generation = await this.publish(compilation, reason);
      return { kind: 'accepted', commit, generation };
    } catch (err) {
      return this.fail(commit, err);
    }
  }

  /** Sign, persist, publish — in that order. */
  private async publish(compilation: Compilation, reason: PublishReason): Promise<number> {
    const commit = compilation.commit.sha;
    const desired: DesiredBundle[] = [];
    this.options.policy.prepare?.(compilation);
    for (const agent of compilation.agents) {
      const want = this.options.policy.desiredFor(agent.id, compilation);
      if (want !== null) desired.push(want);
    }
    const generation = this.generation + 1;
    // Burned from here on, whatever happens next: a generation number is never signed twice.
    this.generation = generation;
    const signed =
      desired.length === 0
        ? null
        : this.options.signer.signGeneration({
            generation,
            commit,
            agents: desired.map((d) => ({ agentId: d.agentId, digest: d.digest })),
          });
    if (signed !== null && this.generations !== null) {
      // Before the accepted state names it: a follower woken by that change finds it.
      await this.generations.saveGeneration({
        generation,
        commit,
        statement: signed.statement,
        bundle: signed.bundle,
        agents: desired.map((d) => ({ agentId: d.agentId, digest: d.digest, commit: d.commit ?? commit, baseline: d.baseline })),
        at: this.options.now(),
      });
    }
    const seenAt = this.seenAt(commit) ?? null;
    await this.options.store.save({ accepted: commit, generation, seenAt });
    this.anchor = commit;
    this.anchorSeenAt = seenAt;
    this.show(compilation, buildSnapshot({ generation, commit, desired, signed }), signed, reason, desired);
    return generation;
  }

  /** Makes a signed snapshot the served one, tells the snapshot cache and the observers. */
  private show(compilation: Compilation, snapshot: Snapshot, signed: SignedGeneration | null, reason: PublishReason, desired: readonly DesiredBundle[]): void {
    const commit = compilation.commit.sha;
    this.bundleCommits = new Map(desired.filter((d) => !d.baseline).map((d) => [d.agentId, { digest: d.digest, commit: d.commit ?? commit }]));
    let refreshAt: number | null = null;
    if (signed !== null) {
      const issued = Date.parse(signed.statement.issuedAt);
      refreshAt = issued + (Date.parse(signed.statement.expiresAt) - issued) / 2;
    }
    this.current = { compilation, snapshot, refreshAt };
    // A refusal describes a head newer than what is served; accepting a newer one ends it.
    if (reason === 'commit' || reason === 'restore' || reason === 'follow') this.refused = null;
    this.options.snapshots.set(snapshot);

    this.conditions.set('Compiled', 'True', 'Succeeded', `${compilation.agents.length} agents compiled from ${commit}`);
    this.conditions.set('Ready', ...readyServing(snapshot));
    this.emit(() => this.options.hooks.onPublished?.({ reason, snapshot, compilation }));
  }

  private refuse(
    commit: CommitSha,
    code: RefusalCode,
    message: string,
    stage: 'verify' | 'compile',
    violations: readonly Violation[] = [],
  ): ReconcileResult {
    const refusal: Refusal = Object.freeze({ commit, code, message, at: this.options.now(), violations });
    this.refused = refusal;
    if (stage === 'compile') this.conditions.set('Compiled', 'False', reasonOf(code), message);
    this.conditions.set('Ready', ...readyWhileRefused(refusal, this.current?.snapshot.commit));
    this.emit(() => this.options.hooks.onRefused?.(refusal));
    return { kind: 'refused', refusal };
  }

  private fail(commit: CommitSha, error: unknown): ReconcileResult {
    const code = error instanceof SourceError || error instanceof TrustError ? error.code : 'ERROR';
    this.conditions.set('Compiled', 'False', reasonOf(`${code}`), `commit ${commit}: ${errorMessage(error)}`);
    this.emit(() => this.options.hooks.onFailed?.({ commit, error }));
    return { kind: 'failed', commit, error };
  }

  private emit(call: () => void): void {
    // Observers must not break the producer loop (see ReconcileHooks).
    notify(call);
  }
}

/** The Ready condition while `snapshot` is served and no refusal stands. */
function readyServing({ commit, generation }: Snapshot): ['True', string, string] {
  return ['True', 'Serving', `serving ${commit} as generation ${generation}`];
}

/** The Ready condition while `refusal` stands: still serving the previous commit, or nothing yet. */
function readyWhileRefused({ commit, code }: Refusal, serving: CommitSha | undefined): ['True' | 'False', string, string] {
  return serving === undefined
    ? ['False', 'NoAcceptedCommit', `commit ${commit} refused (${code}); nothing accepted yet`]
    : ['True', 'ServingPrevious', `commit ${commit} refused (${code}); still serving ${serving}`];
}

function decidedCommit(result: ReconcileResult): CommitSha {
  return result.kind === 'refused' ? result.refusal.commit : result.commit;
}

function describeViolations(violations: readonly Violation[]): string {
  const shown = violations.slice(0, MAX_VIOLATIONS_IN_MESSAGE).map((v) => {
    const where = [v.agent, v.file, v.path].filter((p) => p !== undefined).join(' ');
    return `${v.rule}${where === '' ? '' : ` (${where})`}: ${v.message}`;
  });
  const more = violations.length > shown.length ? `; and ${violations.length - shown.length} more` : '';
  return `${violations.length} policy violation${violations.length === 1 ? '' : 's'}: ${shown.join('; ')}${more}`;
}
