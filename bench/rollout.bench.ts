/**
 * Rollout controller benchmark: `npm run bench:rollout`.
 *
 * A fleet of 1k, 10k and 100k connected agents in 3 waves (5% canary, 25% early, 70% rest),
 * a commit staged through them, and per fleet size:
 *
 *   ack   µs per `onAck(APPLIED)` while every wave is in flight (promoted so that all agents may ack)
 *   tick  µs per `tick(now)` while a wave bakes, with an allow and a deny window configured
 *   wait  µs per `tick(now)` while the next wave waits for a window (one window evaluation)
 *
 * beside a naive baseline measured in the same run: the same decisions made by rescanning
 * every agent's ack on each ack and each tick to recompute the wave ratios.
 */
import { performance } from 'node:perf_hooks';

import type { Digest } from '../src/domain/types.js';
import { RolloutController, type RolloutCommit, type RolloutSettings } from '../src/rollout/index.js';
import { aid, cid } from '../test/helpers/ids.js';

const SIZES = [1_000, 10_000, 100_000];
const NAIVE_SAMPLE = 2_000;
const TICKS = 20_000;

const WAVES = ['canary', 'early', 'rest'] as const;
const noHistory = { appliedDigests: () => new Set<Digest>() };

function settings(windows: RolloutSettings['windows']): RolloutSettings {
  return {
    waves: [
      { name: 'canary', bakeMs: 600_000 },
      { name: 'early', bakeMs: 1_800_000 },
      { name: 'rest', bakeMs: 0 },
    ],
    successRatio: 1,
    maxNackRatio: 0.05,
    ackTimeoutMs: 120_000,
    windows,
    expediteReverts: false,
  };
}

function waveOf(i: number, n: number): (typeof WAVES)[number] {
  const share = i / n;
  return share < 0.05 ? 'canary' : share < 0.3 ? 'early' : 'rest';
}

function commitFor(sha: string, n: number, s: RolloutSettings): RolloutCommit {
  return {
    commit: cid(sha),
    message: `change ${sha}`,
    agents: Array.from({ length: n }, (_, i) => ({ id: aid(`agent-${i}`), wave: waveOf(i, n), digest: `sha256:${sha}-${i}` as Digest })),
    settings: s,
  };
}

/** A controller with `n` connected agents, c0 complete everywhere, c1 staged. */
function setUp(n: number, s: RolloutSettings, t0: number): RolloutController {
  const rc = new RolloutController({ history: noHistory });
  for (let i = 0; i < n; i++) rc.onConnect(aid(`agent-${i}`), new Date(t0));
  rc.onCommit(commitFor('c0', n, s), new Date(t0));
  for (let i = 0; i < n; i++) rc.onAck(aid(`agent-${i}`), cid('c0'), 'APPLIED', new Date(t0));
  rc.onCommit(commitFor('c1', n, s), new Date(t0));
  return rc;
}

/** The baseline: per ack, rescan every agent to recompute each wave's counts and check the gates. */
class NaiveRollout {
  private readonly results = new Map<string, 'APPLIED' | 'REJECTED' | null>();
  private readonly waves: string[];

  constructor(
    private readonly agents: readonly { id: string; wave: string }[],
    private readonly s: RolloutSettings,
  ) {
    for (const a of agents) this.results.set(a.id, null);
    this.waves = s.waves.map((w) => w.name);
  }

  onAck(id: string, status: 'APPLIED' | 'REJECTED'): boolean {
    this.results.set(id, status);
    return this.evaluate();
  }

  tick(): boolean {
    return this.evaluate();
  }

  private evaluate(): boolean {
    const applied = new Map<string, number>(this.waves.map((w) => [w, 0]));
    const rejected = new Map<string, number>(this.waves.map((w) => [w, 0]));
    const members = new Map<string, number>(this.waves.map((w) => [w, 0]));
    for (const a of this.agents) {
      members.set(a.wave, (members.get(a.wave) ?? 0) + 1);
      const r = this.results.get(a.id);
      if (r === 'APPLIED') applied.set(a.wave, (applied.get(a.wave) ?? 0) + 1);
      if (r === 'REJECTED') rejected.set(a.wave, (rejected.get(a.wave) ?? 0) + 1);
    }
    let any = false;
    for (const w of this.waves) {
      const m = members.get(w) ?? 0;
      any ||= (applied.get(w) ?? 0) >= this.s.successRatio * m || (rejected.get(w) ?? 0) > this.s.maxNackRatio * m;
    }
    return any;
  }
}

function microsPer(count: number, run: () => void): number {
  const start = performance.now();
  run();
  return ((performance.now() - start) * 1000) / count;
}

const fmt = (us: number): string => (us < 10 ? us.toFixed(2) : us < 1000 ? us.toFixed(1) : us.toFixed(0)).padStart(9);

const windows: RolloutSettings['windows'] = [
  { kind: 'allow', schedule: '0 9 * * 1-5', duration: '8h', timeZone: 'Europe/Berlin' },
  { kind: 'deny', schedule: '0 0 24 12 *', duration: '72h' },
];
// Monday 2 June 2025 10:00Z: inside the allow window.
const T0 = Date.parse('2025-06-02T10:00:00Z');

// Warm-up (JIT), not printed.
{
  const warm = setUp(2_000, settings(windows), T0);
  warm.act({ kind: 'promote', actor: 'bench' }, new Date(T0));
  warm.act({ kind: 'promote', actor: 'bench' }, new Date(T0));
  for (let i = 0; i < 2_000; i++) warm.onAck(aid(`agent-${i}`), cid('c1'), 'APPLIED', new Date(T0));
  for (let i = 0; i < TICKS; i++) warm.tick(new Date(T0 + i));
}

console.log('rollout controller: µs per operation (lower is better); naive = rescan all agents per ack/tick\n');
console.log(`${'agents'.padStart(8)} ${'ack'.padStart(9)} ${'naive ack'.padStart(9)} ${'tick'.padStart(9)} ${'naive tick'.padStart(10)} ${'wait tick'.padStart(9)}`);
for (const n of SIZES) {
  const s = settings(windows);
  // ack: promote canary and early so that every agent's ack counts; the last one completes the rollout.
  const rc = setUp(n, s, T0);
  rc.act({ kind: 'promote', actor: 'bench' }, new Date(T0));
  rc.act({ kind: 'promote', actor: 'bench' }, new Date(T0));
  const now = new Date(T0 + 1_000);
  const ack = microsPer(n, () => {
    for (let i = 0; i < n; i++) rc.onAck(aid(`agent-${i}`), cid('c1'), 'APPLIED', now);
  });
  if (rc.status(now).state !== 'complete') throw new Error('bench: rollout did not complete');

  const naive = new NaiveRollout(commitFor('c1', n, s).agents, s);
  const sample = Math.min(n, NAIVE_SAMPLE);
  const naiveAck = microsPer(sample, () => {
    for (let i = 0; i < sample; i++) naive.onAck(`agent-${i}`, 'APPLIED');
  });
  const naiveTick = microsPer(Math.min(TICKS, 200), () => {
    for (let i = 0; i < Math.min(TICKS, 200); i++) naive.tick();
  });

  // tick: canary baking (all canary applied), time moving forward inside the window.
  const baking = setUp(n, s, T0);
  for (let i = 0; i < n * 0.05; i++) baking.onAck(aid(`agent-${i}`), cid('c1'), 'APPLIED', new Date(T0));
  const tick = microsPer(TICKS, () => {
    for (let i = 0; i < TICKS; i++) baking.tick(new Date(T0 + i * 10));
  });
  if (baking.status(new Date(T0)).waves[0]?.state !== 'baking') throw new Error('bench: canary is not baking');

  // wait: the next wave waits for a window (evening), so every tick evaluates the windows.
  const evening = Date.parse('2025-06-02T18:00:00Z');
  const waiting = setUp(n, s, evening);
  const wait = microsPer(TICKS, () => {
    for (let i = 0; i < TICKS; i++) waiting.tick(new Date(evening + i * 1_000));
  });
  if (waiting.status(new Date(evening)).state !== 'waiting-window') throw new Error('bench: not waiting for a window');

  console.log(`${String(n).padStart(8)} ${fmt(ack)} ${fmt(naiveAck)} ${fmt(tick)} ${fmt(naiveTick).padStart(10)} ${fmt(wait)}`);
}
