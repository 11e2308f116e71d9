import type { SkippedEntry, VerifiedCommit } from '../domain/commit.js';
import type { AgentId, Digest, JsonObject, JsonValue, Labels, RuleId, Violation } from '../domain/types.js';

/** A label selector: every key must match; a list value means any-of. */
export type Selector = Readonly<Record<string, string | readonly string[]>>;

export interface PolicySettings {
  /** Zones (the agent's `zone` label) where mTLS must be STRICT. */
  readonly secureZones: readonly string[];
  /** Host globs routes may point at; `undefined` turns the destination-allowlist rule off. */
  readonly allowedDestinations?: readonly string[];
  /**
   * Largest share (0–1) of the previous commit's agents one commit may remove from the
   * inventory (`inventory-shrink`); absent means the default, 0.1.
   */
  readonly maxInventoryRemoval?: number;
  /** Agents this commit deliberately removes; they do not count against `maxInventoryRemoval`. */
  readonly allowInventoryRemoval?: readonly string[];
}

export interface WaveSpec {
  readonly name: string;
  readonly match?: Selector;
  readonly percent?: number;
  readonly bake?: string;
}

/** The parsed `meshcfg.yaml` at one commit. Rollout keys beyond waves are kept raw for the rollout layer. */
export interface MeshcfgSettings {
  readonly trustDomain: string;
  readonly policy: PolicySettings;
  readonly rollout: { readonly waves: readonly WaveSpec[] } & Readonly<Record<string, JsonValue | readonly WaveSpec[]>>;
}

/** What a policy rule or the schema reports about one document: a JSON pointer into it and why. */
export interface Finding {
  readonly path: string;
  readonly message: string;
}

/** What a policy rule checks: an agent's bundle, or the baseline (checked like an agent). */
export type PolicySubjectId = AgentId | '(baseline)';

export interface PolicyContext {
  readonly agentId: PolicySubjectId;
  readonly labels: Labels;
  readonly document: JsonValue;
  readonly policy: PolicySettings;
}

/** A built-in policy rule. Pure: the same context always gives the same findings. */
export interface PolicyRule {
  readonly id: Exclude<RuleId, 'parse' | 'schema'>;
  check(ctx: PolicyContext): readonly Finding[];
}

/** A compiled, canonical bundle. Immutable once built. */
export interface CompiledBundle {
  readonly digest: Digest;
  /** RFC 8785 canonical JSON of `document`. */
  readonly bytes: Uint8Array;
  readonly document: JsonObject;
}

export interface CompiledAgent {
  readonly id: AgentId;
  readonly labels: Labels;
  readonly wave: string;
  readonly bundle: CompiledBundle;
  /** Repository paths merged into this agent's document, in the order applied. */
  readonly layers: readonly string[];
}

export interface Compilation {
  readonly commit: VerifiedCommit;
  /** `null` when meshcfg.yaml is invalid (then `violations` says why); a missing one is a CompileError (INVALID_REPOSITORY). */
  readonly settings: MeshcfgSettings | null;
  /** Every inventory agent that could be compiled, sorted by id. */
  readonly agents: readonly CompiledAgent[];
  readonly baseline: CompiledBundle | null;
  /** Empty means the commit may reach agents. */
  readonly violations: readonly Violation[];
  /** The tree's skipped symlinks and submodules (passed through for warnings; they block nothing). */
  readonly skipped: readonly SkippedEntry[];
}
