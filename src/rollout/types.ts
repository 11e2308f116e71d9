import type { AckStatus, AgentId, CommitSha, Digest } from '../domain/types.js';

export type { AckStatus };
import type { RolloutSettings } from './settings.js';

/** What an agent that has run bundles before has applied: the revert fast path asks it. */
export interface AppliedHistory {
  /** Every digest this agent acked APPLIED, ever; empty when it never ran a bundle. */
  appliedDigests(agentId: AgentId): ReadonlySet<Digest>;
}

/** The commit a revert names, as its message writes it (`This reverts commit <7 to 64 hex>`): maybe abbreviated, so not a `CommitSha`. */
export type RevertedRevision = string;

/** How a commit is rolled out, and why. */
export type RolloutPath =
  /** Nothing completed before it: nothing older to protect, every agent at once. */
  | { readonly kind: 'first' }
  /** A `git revert` to bundles every agent ran before, with `expediteReverts`: every agent at once. */
  | { readonly kind: 'expedited-revert'; readonly reverts: RevertedRevision }
  | { readonly kind: 'staged'; readonly why: StagedReason };

export type StagedReason =
  | { readonly kind: 'not-a-revert' }
  | { readonly kind: 'expedite-disabled'; readonly reverts: RevertedRevision }
  /** The first agent found whose new bundle it never applied (an agent that never ran any bundle does not count). */
  | { readonly kind: 'new-digest'; readonly reverts: RevertedRevision; readonly agent: AgentId; readonly digest: Digest };

export type OperatorActionKind = 'pause' | 'resume' | 'promote' | 'abort';

export interface OperatorAction {
  readonly kind: OperatorActionKind;
  /** Who, for the audit log. */
  readonly actor: string;
  readonly reason?: string;
}

export const ACTION_REFUSAL_CODES = [
  'ALREADY_PAUSED',
  'NOT_PAUSED',
  /** No rollout is in flight (none yet, complete or aborted). */
  'NO_ROLLOUT',
  /** Promote on a halted rollout: a halt is left by abort or a newer commit, not by pushing on. */
  'HALTED',
] as const;

export type ActionRefusalCode = (typeof ACTION_REFUSAL_CODES)[number];

/** Everything observable that happened; `at` is ISO 8601. Hooks turn these into logs, metrics, alerts and audit entries. */
export type RolloutEvent =
  | { readonly kind: 'rollout-started'; readonly commit: CommitSha; readonly previous: CommitSha | null; readonly path: RolloutPath; readonly at: string }
  | { readonly kind: 'rollout-superseded'; readonly commit: CommitSha; readonly by: CommitSha; readonly at: string }
  | { readonly kind: 'wave-started'; readonly commit: CommitSha; readonly wave: string; readonly agents: number; readonly at: string }
  /** `forced`: completed by promote, not by its gates. */
  | { readonly kind: 'wave-completed'; readonly commit: CommitSha; readonly wave: string; readonly forced: boolean; readonly at: string }
  /** Alert `rollout-halted`. */
  | {
      readonly kind: 'rollout-halted';
      readonly commit: CommitSha;
      readonly wave: string;
      readonly rejected: number;
      readonly connected: number;
      readonly maxNackRatio: number;
      readonly at: string;
    }
  | { readonly kind: 'rollout-complete'; readonly commit: CommitSha; readonly at: string }
  /** Audit log entry. */
  | {
      readonly kind: 'operator-action';
      readonly action: OperatorActionKind;
      readonly actor: string;
      readonly reason: string;
      readonly commit: CommitSha | null;
      readonly at: string;
    }
  /** A window's schedule or duration does not parse: the windows are treated as closed (fail safe). */
  | { readonly kind: 'windows-invalid'; readonly commit: CommitSha; readonly message: string; readonly at: string };

export interface DesiredChange {
  readonly agentId: AgentId;
  /** `null`: the agent should get no delivery (not in the inventory, or nothing it may have). */
  readonly commit: CommitSha | null;
  readonly digest: Digest | null;
}

/** What one input changed: the server re-sends to `changed` only, and hands `events` to its hooks. */
export interface RolloutChanges {
  readonly changed: readonly DesiredChange[];
  readonly events: readonly RolloutEvent[];
}

export type ActionResult =
  | ({ readonly kind: 'done' } & RolloutChanges)
  | { readonly kind: 'refused'; readonly code: ActionRefusalCode; readonly message: string };

export type RolloutState = 'waiting-window' | 'progressing' | 'paused' | 'halted' | 'complete' | 'aborted';
export type WaveState = 'pending' | 'progressing' | 'baking' | 'complete' | 'halted' | 'aborted';

/** The body of `GET /api/v1/rollout`. Dates are ISO 8601. */
export interface RolloutStatus {
  readonly commit: CommitSha | null;
  readonly previous: CommitSha | null;
  readonly state: RolloutState;
  readonly waves: readonly WaveStatus[];
  readonly window: { readonly open: boolean; readonly nextOpen: string | null };
}

export interface WaveStatus {
  readonly name: string;
  /** Members of the wave (connected or not). */
  readonly agents: number;
  /** Members that acked APPLIED / REJECTED for the rollout's commit. */
  readonly applied: number;
  readonly rejected: number;
  /** Connected members that have not acked the rollout's commit yet. */
  readonly pending: number;
  readonly state: WaveState;
  readonly startedAt: string | null;
  readonly completedAt: string | null;
}

/** The delivery side of an agent's fleet state (QUARANTINED is the fleet's own). */
export type AgentDeliveryState = 'SYNCED' | 'PENDING' | 'STALE' | 'NACKED' | 'DISCONNECTED';

export interface AgentRolloutStatus {
  readonly agentId: AgentId;
  /** Its wave in the rollout's commit; null when not in that commit's inventory. */
  readonly wave: string | null;
  readonly desired: { readonly commit: CommitSha; readonly digest: Digest } | null;
  readonly state: AgentDeliveryState;
}

// ---- The persisted document (`toJSON()`): plain JSON, validated by `fromJSON()` ----

export const ROLLOUT_DOCUMENT_VERSION = 1;

export interface RolloutDocumentV1 {
  readonly version: 1;
  readonly paused: boolean;
  readonly rollout: RolloutRecordJson | null;
  readonly agents: readonly AgentRecordJson[];
}

export interface RolloutRecordJson {
  readonly commit: CommitSha;
  readonly previous: CommitSha | null;
  readonly path: RolloutPath;
  readonly phase: 'progressing' | 'complete' | 'aborted';
  readonly settings: RolloutSettings;
  readonly acceptedAt: number;
  readonly halted: { readonly wave: number; readonly at: number } | null;
  readonly waves: readonly WaveRecordJson[];
}

export interface WaveRecordJson {
  readonly startedAt: number | null;
  /** When successRatio was (last) reached; the bake runs from here. */
  readonly ratioAt: number | null;
  readonly completedAt: number | null;
}

export interface AgentRecordJson {
  readonly id: AgentId;
  /** Wave index in the rollout's commit; -1 when not in its inventory. */
  readonly wave: number;
  readonly digest: Digest | null;
  /** Its last completed config: what it keeps until its wave is reached. */
  readonly base: { readonly commit: CommitSha; readonly digest: Digest } | null;
  readonly connected: boolean;
  /** Its ack for the rollout's commit. */
  readonly result: AckStatus | null;
  /** Its last ack of any commit. */
  readonly lastAck: { readonly commit: CommitSha; readonly status: AckStatus } | null;
  /** When its current desired commit was handed to it while connected (ack timeout runs from here). */
  readonly sentAt: number | null;
}
