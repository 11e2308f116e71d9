import type { Compilation } from '../compile/index.js';
import { formatDuration } from '../domain/duration.js';
import type { AgentId } from '../domain/types.js';
import type { DeliveryStore } from '../fleet/index.js';
import type { AckReport, ActiveReport, AckOutcome, Delivery } from '../transport/index.js';
import type { AlertSink } from './alerts.js';
import type { BackendHooks } from './backend.js';
import type { FleetCache } from './fleet.js';
import type { DesiredBundle, DesiredStatePolicy } from './snapshot.js';
import { notify } from '../lib/index.js';

/** Why an agent was quarantined. */
export type QuarantineCause =
  /** It reported running a digest the server never issued to it (hand-edited or foreign config). */
  | { readonly kind: 'foreign-digest'; readonly digest: string }
  /** It acked APPLIED for a digest other than the one it was sent. */
  | { readonly kind: 'ack-mismatch'; readonly digest: string; readonly sent: string }
  /** Connected, it left its desired bundle unanswered for `rollout.quarantineStaleAfter` (off by default). */
  | { readonly kind: 'stale'; readonly digest: string; readonly since: Date; readonly afterMs: number }
  /** An operator asked for it. */
  | { readonly kind: 'manual'; readonly reason: string };

export interface QuarantineHooks {
  onQuarantined?(event: {
    readonly agentId: AgentId;
    readonly actor: string;
    readonly cause: QuarantineCause;
    readonly message: string;
  }): void;
  onApproved?(event: { readonly agentId: AgentId; readonly actor: string; readonly reason: string }): void;
  /** A drift check or a republish failed (the store was unavailable); logged by the server. */
  onError?(err: unknown, what: string): void;
}

export interface QuarantineControllerOptions {
  readonly fleet: FleetCache;
  /** Where sends are recorded; null: only the current delivery counts as issued. */
  readonly store: Pick<DeliveryStore, 'wasIssued'> | null;
  /** The current delivery of an agent (the snapshot cache). */
  readonly deliveries: { desired(agentId: AgentId): Delivery | null };
  /** Signs and publishes the served compilation again (a new generation), so a changed policy answer reaches agents. */
  readonly republish: () => Promise<unknown>;
  /** The commit being served, for alerts ('' before any). */
  readonly servingCommit: () => string;
  readonly alerts?: AlertSink | null;
  readonly hooks?: QuarantineHooks;
  readonly now?: () => Date;
}

/**
 * Drift detection and quarantine. An agent that reports (hello, poll) a digest the server
 * never sent it, or acks APPLIED for a digest other than the one it was sent, is quarantined:
 * recorded with an audit entry (actor `system`), alerted, and from then on the policy answers
 * the repository's baseline for it — through every later commit — until an operator approves.
 *
 * A repository without `baseline/` cannot offer a safe bundle: the agent is still marked and
 * alerted, and gets no delivery at all (nothing new is sent to it) until approved.
 *
 * An agent in contact that leaves its desired bundle unanswered past `rollout.quarantineStaleAfter`
 * is quarantined the same way (`sweepStale`); off unless the repository sets it.
 *
 * Digests are compared with `===`; an empty digest (an agent that runs nothing yet) is not drift.
 */
export class QuarantineController {
  private readonly options: Required<Omit<QuarantineControllerOptions, 'alerts' | 'hooks'>> & {
    readonly alerts: AlertSink | null;
    readonly hooks: QuarantineHooks;
  };
  /** Per agent, the last reported digest found issued: polls repeat it, and it stays issued. */
  private readonly knownIssued = new Map<AgentId, string>();
  private queuedRepublish: Promise<unknown> | null = null;
  /** `rollout.quarantineStaleAfter` of the served commit; null: stale agents are not quarantined. */
  private staleAfterMs: number | null = null;

  constructor(options: QuarantineControllerOptions) {
    this.options = { now: () => new Date(), ...options, alerts: options.alerts ?? null, hooks: options.hooks ?? {} };
  }

  /** Wraps the policy deciding what agents should have: a quarantined agent gets the baseline instead. */
  policy(inner: DesiredStatePolicy): DesiredStatePolicy {
    return {
      prepare: (compilation: Compilation): void => inner.prepare?.(compilation),
      desiredFor: (agentId: AgentId, compilation: Compilation): DesiredBundle | null => {
        if (!this.options.fleet.isQuarantined(agentId)) return inner.desiredFor(agentId, compilation);
        const baseline = compilation.baseline;
        return baseline === null ? null : { agentId, digest: baseline.digest, bytes: baseline.bytes, baseline: true };
      },
    };
  }

  /** Observers for the backend: every ack is checked for drift (hellos and polls go through `checkActive`). */
  readonly backendHooks: BackendHooks = {
    onAck: ({ agentId, ack, outcome, delivery }) => void this.checkAck(agentId, ack, outcome, delivery ?? null),
  };

  /**
   * The backend's drift check of a hello or poll. `undefined` when the verdict is known without
   * I/O (nothing reported, already quarantined, a digest known to be issued); otherwise a
   * promise that settles once the agent is judged — and, if it drifted, quarantined with the
   * baseline published — so the backend can hold its first delivery until then. Never rejects.
   */
  checkActive(agentId: AgentId, active: ActiveReport | null): Promise<void> | undefined {
    if (active === null || active.digest === '' || this.options.fleet.isQuarantined(agentId)) return undefined;
    if (this.knownIssued.get(agentId) === active.digest) return undefined;
    if (this.options.deliveries.desired(agentId)?.digest === active.digest) {
      this.knownIssued.set(agentId, active.digest);
      return undefined;
    }
    return this.checkReported(agentId, active);
  }

  /**
   * Quarantines the agent (idempotent: false when it already was). Resolves once recorded;
   * the baseline generation is published before it resolves.
   */
  async quarantine(agentId: AgentId, actor: string, cause: QuarantineCause): Promise<boolean> {
    const now = this.options.now();
    const message = describe(agentId, cause);
    const reason = cause.kind === 'manual' ? cause.reason : message;
    const changed = await this.options.fleet.quarantine(
      agentId,
      { since: now, reason, by: actor },
      { at: now, actor, action: 'agent.quarantine', target: agentId, reason, details: { cause: cause.kind, ...causeDetails(cause) } },
    );
    if (!changed) return false;
    this.knownIssued.delete(agentId);
    this.emit(() => this.options.hooks.onQuarantined?.({ agentId, actor, cause, message }));
    const commit = this.options.servingCommit();
    this.options.alerts?.post({ kind: 'agent-quarantined', agent: agentId, commit, actor, message, at: now.toISOString() });
    await this.republish();
    return true;
  }

  /** Lets the agent rejoin: it gets its desired bundle again in a new generation. False when it was not quarantined. */
  async approve(agentId: AgentId, actor: string, reason: string): Promise<boolean> {
    const now = this.options.now();
    const entry = { at: now, actor, action: 'agent.approve', target: agentId, reason, details: null };
    const changed = await this.options.fleet.approve(agentId, entry);
    if (!changed) return false;
    this.emit(() => this.options.hooks.onApproved?.({ agentId, actor, reason }));
    await this.republish();
    return true;
  }

  /** Follows the served commit's `rollout.quarantineStaleAfter` (null: off, the default). */
  setStaleAfter(ms: number | null): void {
    this.staleAfterMs = ms;
  }

  /**
   * Quarantines every agent in contact that has left its desired bundle unanswered for
   * `rollout.quarantineStaleAfter` (FleetCache.silentAgents). Off unless the served commit sets
   * it: a silent agent may be wedged or overloaded rather than compromised, so the repository
   * opts in. Disconnected agents are never quarantined for it. Returns the agents quarantined.
   * Never rejects (failures go to hooks.onError).
   */
  async sweepStale(): Promise<AgentId[]> {
    const afterMs = this.staleAfterMs;
    if (afterMs === null) return [];
    const done: AgentId[] = [];
    for (const agent of this.options.fleet.silentAgents(afterMs)) {
      try {
        const cause: QuarantineCause = { kind: 'stale', digest: agent.desired.digest, since: agent.since, afterMs };
        if (await this.quarantine(agent.id, 'system', cause)) done.push(agent.id);
      } catch (err) {
        this.emit(() => this.options.hooks.onError?.(err, 'quarantine a stale agent'));
      }
    }
    return done;
  }

  private async checkReported(agentId: AgentId, active: ActiveReport): Promise<void> {
    try {
      if (await this.issued(agentId, active.digest)) {
        this.knownIssued.set(agentId, active.digest);
        return;
      }
      await this.quarantine(agentId, 'system', { kind: 'foreign-digest', digest: active.digest });
    } catch (err) {
      this.emit(() => this.options.hooks.onError?.(err, 'check a reported digest'));
    }
  }

  private async checkAck(agentId: AgentId, ack: AckReport, outcome: AckOutcome, delivery: Delivery | null): Promise<void> {
    if (ack.status !== 'APPLIED' || ack.digest === '' || this.options.fleet.isQuarantined(agentId)) return;
    try {
      if (outcome.kind === 'recorded' && delivery !== null && ack.digest !== delivery.digest) {
        await this.quarantine(agentId, 'system', { kind: 'ack-mismatch', digest: ack.digest, sent: delivery.digest });
        return;
      }
      if (!(await this.issued(agentId, ack.digest))) {
        await this.quarantine(agentId, 'system', { kind: 'foreign-digest', digest: ack.digest });
      }
    } catch (err) {
      this.emit(() => this.options.hooks.onError?.(err, 'check an ack'));
    }
  }

  /**
   * Issued: sent to this agent at some point (the store's send log), or its current delivery
   * (covers a data directory that predates the send log: an agent on today's bundle is fine).
   */
  private async issued(agentId: AgentId, digest: string): Promise<boolean> {
    if (this.options.deliveries.desired(agentId)?.digest === digest) return true;
    if (this.options.store === null) return false;
    // Sends are written through a queue; the one this digest came in may still be in it.
    await this.options.fleet.flush();
    return this.options.store.wasIssued(agentId, digest);
  }

  /** Coalesces bursts (many agents drifting at once) into one new generation. */
  private republish(): Promise<unknown> {
    this.queuedRepublish ??= Promise.resolve().then(() => {
      this.queuedRepublish = null;
      return this.options.republish();
    });
    return this.queuedRepublish.catch((err: unknown) => this.emit(() => this.options.hooks.onError?.(err, 'publish the quarantine')));
  }

  private emit(call: () => void): void {
    // Observers must not break drift detection.
    notify(call);
  }
}

function describe(agentId: AgentId, cause: QuarantineCause): string {
  switch (cause.kind) {
    case 'foreign-digest':
      return `agent ${agentId} runs ${cause.digest}, which the server never issued to it`;
    case 'ack-mismatch':
      return `agent ${agentId} acked APPLIED for ${cause.digest}, but was sent ${cause.sent}`;
    case 'stale':
      return (
        `agent ${agentId} left ${cause.digest} unanswered since ${cause.since.toISOString()}, ` +
        `longer than rollout.quarantineStaleAfter (${formatDuration(cause.afterMs)})`
      );
    case 'manual':
      return `agent ${agentId} quarantined by an operator: ${cause.reason}`;
    default: {
      const never: never = cause;
      throw new Error(`unexpected cause ${JSON.stringify(never)}`);
    }
  }
}

function causeDetails(cause: QuarantineCause): Record<string, string> {
  switch (cause.kind) {
    case 'foreign-digest':
      return { digest: cause.digest };
    case 'ack-mismatch':
      return { digest: cause.digest, sent: cause.sent };
    case 'stale':
      return { digest: cause.digest, since: cause.since.toISOString(), after: formatDuration(cause.afterMs) };
    case 'manual':
      return {};
    default: {
      const never: never = cause;
      throw new Error(`unexpected cause ${JSON.stringify(never)}`);
    }
  }
}
