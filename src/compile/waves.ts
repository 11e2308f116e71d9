import { createHash } from 'node:crypto';

import type { AgentId, Labels } from '../domain/types.js';
import { matchesSelector } from './selector.js';
import type { WaveSpec } from './types.js';

/** The wave every agent belongs to when `rollout.waves` is absent or empty. */
export const IMPLICIT_WAVE = 'all';

/**
 * An agent's stable rollout bucket in [0, 100): the first 4 bytes of sha256(agent id) as a
 * big-endian unsigned integer, modulo 100. Stable across commits, replicas and releases, so
 * an agent stays in the same percentage wave as long as its id does.
 */
export function bucketOf(agentId: AgentId): number {
  return createHash('sha256').update(agentId, 'utf8').digest().readUInt32BE(0) % 100;
}

/**
 * The wave of one agent: the first wave that selects it, where a wave with `match` selects by
 * labels (a `percent` beside `match` does not narrow it here), a wave with only `percent`
 * selects agents whose bucket is below it (so percentages are cumulative across waves: a 5%
 * canary then a 50% wave put buckets 5–49 in the second), and a wave with neither selects
 * everyone. An agent no wave selects goes to the last wave.
 *
 * `bucket` is called at most once, and only when a percentage wave is reached (hashing is
 * the expensive part; callers may cache it).
 */
export function assignWave(waves: readonly WaveSpec[], labels: Labels, bucket: () => number): string {
  const last = waves[waves.length - 1];
  if (last === undefined) return IMPLICIT_WAVE;
  let agentBucket: number | undefined;
  for (const wave of waves) {
    if (wave.match !== undefined) {
      if (matchesSelector(wave.match, labels)) return wave.name;
    } else if (wave.percent !== undefined) {
      agentBucket ??= bucket();
      if (wave.percent > agentBucket) return wave.name;
    } else {
      return wave.name;
    }
  }
  return last.name;
}
