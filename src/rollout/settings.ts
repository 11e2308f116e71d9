import { type Compilation, IMPLICIT_WAVE, type MeshcfgSettings } from '../compile/index.js';
import { parseDuration } from '../domain/duration.js';
import type { AgentId, CommitSha, Digest, JsonValue } from '../domain/types.js';
import type { WindowSpec } from './windows.js';

/** The rollout gates of one commit's meshcfg.yaml, with defaults applied. JSON-serialisable. */
export interface RolloutSettings {
  /** In rollout order; never empty (no `rollout.waves` → one implicit wave `all`). */
  readonly waves: readonly { readonly name: string; readonly bakeMs: number }[];
  readonly successRatio: number;
  readonly maxNackRatio: number;
  readonly ackTimeoutMs: number;
  readonly windows: readonly WindowSpec[];
  readonly expediteReverts: boolean;
}

/**
 * Defaults when meshcfg.yaml leaves a key out. Conservative: every connected agent of a wave
 * must apply, any rejection halts, reverts go through waves unless the repository opts in.
 */
export const ROLLOUT_DEFAULTS = Object.freeze({
  successRatio: 1,
  maxNackRatio: 0,
  ackTimeoutMs: 120_000,
  expediteReverts: false,
});

/** What the controller needs of an accepted commit. */
export interface RolloutCommit {
  readonly commit: CommitSha;
  /** The commit message: `This reverts commit <sha>` marks a `git revert`. */
  readonly message: string;
  readonly agents: readonly { readonly id: AgentId; readonly wave: string; readonly digest: Digest }[];
  readonly settings: RolloutSettings;
}

/**
 * Reads the raw `rollout` keys the compiler kept. The compiler has already validated them
 * against the schema; this still reads defensively (a bad value falls back to its default)
 * because it is also fed documents restored from the store.
 */
export function rolloutSettings(settings: MeshcfgSettings | null): RolloutSettings {
  const raw = settings?.rollout;
  const waves = (raw?.waves ?? []).map((w) => ({ name: w.name, bakeMs: (w.bake === undefined ? 0 : parseDuration(w.bake)) ?? 0 }));
  const ackTimeout = raw?.['ackTimeout'];
  return {
    waves: waves.length > 0 ? waves : [{ name: IMPLICIT_WAVE, bakeMs: 0 }],
    successRatio: ratio(raw?.['successRatio']) ?? ROLLOUT_DEFAULTS.successRatio,
    maxNackRatio: ratio(raw?.['maxNackRatio']) ?? ROLLOUT_DEFAULTS.maxNackRatio,
    ackTimeoutMs: (typeof ackTimeout === 'string' ? parseDuration(ackTimeout) : undefined) ?? ROLLOUT_DEFAULTS.ackTimeoutMs,
    windows: windowSpecs(raw?.['windows']),
    expediteReverts: typeof raw?.['expediteReverts'] === 'boolean' ? raw['expediteReverts'] : ROLLOUT_DEFAULTS.expediteReverts,
  };
}

/**
 * `rollout.quarantineStaleAfter` in ms, or null when absent (the default: off). Not part of
 * RolloutSettings: the rollout controller does not use it, the server's quarantine does.
 */
export function quarantineStaleAfterMs(settings: MeshcfgSettings | null): number | null {
  const raw = settings?.rollout['quarantineStaleAfter'];
  const ms = typeof raw === 'string' ? parseDuration(raw) : undefined;
  return ms === undefined || ms <= 0 ? null : ms;
}

/** The controller's input for an accepted (violation-free) compilation. */
export function rolloutCommitOf(compilation: Compilation): RolloutCommit {
  return {
    commit: compilation.commit.sha,
    message: compilation.commit.message,
    agents: compilation.agents.map((a) => ({ id: a.id, wave: a.wave, digest: a.bundle.digest })),
    settings: rolloutSettings(compilation.settings),
  };
}

function ratio(value: unknown): number | undefined {
  return typeof value === 'number' && value >= 0 && value <= 1 ? value : undefined;
}

function windowSpecs(value: JsonValue | readonly unknown[] | undefined): WindowSpec[] {
  if (!Array.isArray(value)) return [];
  const specs: WindowSpec[] = [];
  for (const item of value as readonly unknown[]) {
    if (typeof item !== 'object' || item === null) continue;
    const { kind, schedule, duration, timeZone } = item as Record<string, unknown>;
    if ((kind !== 'allow' && kind !== 'deny') || typeof schedule !== 'string' || typeof duration !== 'string') continue;
    specs.push(typeof timeZone === 'string' && timeZone !== '' ? { kind, schedule, duration, timeZone } : { kind, schedule, duration });
  }
  return specs;
}
