import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';

import type { Digest } from '../../src/domain/types.js';
import {
  RolloutController,
  RolloutError,
  type AppliedHistory,
  type RolloutChanges,
  type RolloutCommit,
  type RolloutEvent,
  type RolloutSettings,
} from '../../src/rollout/index.js';
import { aid, cid } from '../helpers/ids.js';
import type { AgentId } from '../../src/domain/types.js';

// ---- fixtures: a fake clock, a fleet of 2 canary + 4 early + 4 rest agents, commits by name ----

const MIN = 60_000;

class FakeClock {
  private t: number;
  constructor(iso: string) {
    this.t = Date.parse(iso);
  }
  now(): Date {
    return new Date(this.t);
  }
  advance(ms: number): Date {
    this.t += ms;
    return this.now();
  }
}

const FLEET: Record<string, string[]> = {
  canary: ['c1', 'c2'],
  early: ['e1', 'e2', 'e3', 'e4'],
  rest: ['r1', 'r2', 'r3', 'r4'],
};
const ALL = Object.values(FLEET).flat();

function settings(overrides: Partial<RolloutSettings> = {}): RolloutSettings {
  return {
    waves: [
      { name: 'canary', bakeMs: 10 * MIN },
      { name: 'early', bakeMs: 30 * MIN },
      { name: 'rest', bakeMs: 0 },
    ],
    successRatio: 1,
    maxNackRatio: 0.05,
    ackTimeoutMs: 2 * MIN,
    windows: [],
    expediteReverts: true,
    ...overrides,
  };
}

const digest = (commit: string, agent: string): Digest => `sha256:${commit}-${agent}`;

function commit(sha: string, options: { settings?: RolloutSettings; message?: string; digests?: (agent: string) => Digest } = {}): RolloutCommit {
  return {
    commit: cid(sha),
    message: options.message ?? `change ${sha}`,
    agents: Object.entries(FLEET).flatMap(([wave, ids]) => ids.map((id) => ({ id: aid(id), wave, digest: options.digests?.(id) ?? digest(sha, id) }))),
    settings: options.settings ?? settings(),
  };
}

class FakeHistory implements AppliedHistory {
  readonly applied = new Map<string, Set<Digest>>();
  appliedDigests(agentId: AgentId): ReadonlySet<Digest> {
    return this.applied.get(agentId) ?? new Set();
  }
  record(agentId: AgentId, d: Digest): void {
    let set = this.applied.get(agentId);
    if (set === undefined) this.applied.set(agentId, (set = new Set()));
    set.add(d);
  }
}

const kinds = (changes: RolloutChanges): RolloutEvent['kind'][] => changes.events.map((e) => e.kind);
const changedIds = (changes: RolloutChanges): string[] => changes.changed.map((c) => c.agentId).sort();
const desiredOf = (rc: RolloutController, ids: readonly string[]): (string | null)[] => ids.map((id) => rc.desiredCommit(aid(id)));

/** A controller that completed commit `c0` on every (connected) agent, so `c1` is staged. */
function established(clock: FakeClock, history = new FakeHistory(), s = settings()): RolloutController {
  const rc = new RolloutController({ history });
  for (const id of ALL) rc.onConnect(aid(id), clock.now());
  rc.onCommit(commit('c0', { settings: s }), clock.now());
  for (const id of ALL) {
    rc.onAck(aid(id), cid('c0'), 'APPLIED', clock.now());
    history.record(aid(id), digest('c0', id));
  }
  return rc;
}

function ackAll(rc: RolloutController, ids: readonly string[], sha: string, clock: FakeClock, status: 'APPLIED' | 'REJECTED' = 'APPLIED'): RolloutChanges[] {
  return ids.map((id) => rc.onAck(aid(id), cid(sha), status, clock.now()));
}

describe('RolloutController', () => {
  let clock: FakeClock;
  beforeEach(() => {
    clock = new FakeClock('2025-06-02T10:00:00Z');
  });

  describe('when a fresh controller accepts its first commit', () => {
    it('sends it to every agent at once and is complete', () => {
      const rc = new RolloutController({ history: new FakeHistory() });
      for (const id of ALL) rc.onConnect(aid(id), clock.now());
      const result = rc.onCommit(commit('c0', { settings: settings({ windows: [{ kind: 'deny', schedule: '* * * * *', duration: '1m' }] }) }), clock.now());
      assert.deepEqual(result.path, { kind: 'first' });
      assert.deepEqual(changedIds(result), [...ALL].sort());
      assert.deepEqual(desiredOf(rc, ALL), ALL.map(() => 'c0'));
      const status = rc.status(clock.now());
      assert.equal(status.state, 'complete');
      assert.equal(status.previous, null);
      assert.ok(status.waves.every((w) => w.state === 'complete'));
    });

    it('reports an empty, complete status before any commit', () => {
      const rc = new RolloutController({ history: new FakeHistory() });
      assert.deepEqual(rc.status(clock.now()), { commit: null, previous: null, state: 'complete', waves: [], window: { open: true, nextOpen: null } });
      assert.equal(rc.desiredCommit(aid('c1')), null);
    });
  });

  describe('when a second commit is staged', () => {
    it('starts the first wave at once and keeps later waves on the previous commit', () => {
      const rc = established(clock);
      const result = rc.onCommit(commit('c1'), clock.now());
      assert.equal(result.path.kind, 'staged');
      assert.deepEqual(changedIds(result), ['c1', 'c2']);
      assert.deepEqual(kinds(result), ['rollout-started', 'wave-started']);
      assert.deepEqual(desiredOf(rc, ALL), ['c1', 'c1', ...Array(8).fill('c0')]);
      const status = rc.status(clock.now());
      assert.equal(status.commit, 'c1');
      assert.equal(status.previous, 'c0');
      assert.equal(status.state, 'progressing');
      assert.deepEqual(
        status.waves.map((w) => [w.name, w.state, w.agents, w.pending]),
        [
          ['canary', 'progressing', 2, 2],
          ['early', 'pending', 4, 4],
          ['rest', 'pending', 4, 4],
        ],
      );
      assert.equal(status.waves[0]?.startedAt, '2025-06-02T10:00:00.000Z');
    });

    it('reports the bundle digest with the commit', () => {
      const rc = established(clock);
      rc.onCommit(commit('c1'), clock.now());
      assert.deepEqual(rc.desired(aid('c1')), { commit: cid('c1'), digest: digest('c1', 'c1') });
      assert.deepEqual(rc.desired(aid('e1')), { commit: cid('c0'), digest: digest('c0', 'e1') });
    });
  });

  describe('bake', () => {
    it('runs from when successRatio is reached, not from the wave start', () => {
      const rc = established(clock);
      rc.onCommit(commit('c1'), clock.now());
      clock.advance(5 * MIN);
      ackAll(rc, FLEET.canary!, 'c1', clock);
      assert.equal(rc.status(clock.now()).waves[0]?.state, 'baking');
      assert.deepEqual(rc.tick(clock.advance(5 * MIN)).changed, [], '10 min after the start, 5 after the ratio');
      assert.equal(rc.desiredCommit(aid('e1')), 'c0');
      const done = rc.tick(clock.advance(5 * MIN - 1));
      assert.deepEqual(done.changed, []);
      const next = rc.tick(clock.advance(1));
      assert.deepEqual(kinds(next), ['wave-completed', 'wave-started']);
      assert.deepEqual(changedIds(next), FLEET.early);
      assert.equal(rc.desiredCommit(aid('e1')), 'c1');
    });

    it('restarts when the ratio drops before the bake ends', () => {
      const rc = established(clock);
      rc.onCommit(commit('c1'), clock.now());
      ackAll(rc, ['c1'], 'c1', clock);
      rc.onDisconnect(aid('c2'), clock.now()); // 1/1 connected applied: ratio reached now
      clock.advance(8 * MIN);
      rc.onConnect(aid('c2'), clock.now()); // 1/2: below successRatio 1
      rc.onAck(aid('c2'), cid('c1'), 'APPLIED', clock.advance(1 * MIN)); // reached again at +9m
      assert.deepEqual(rc.tick(clock.advance(5 * MIN)).changed, []);
      assert.deepEqual(changedIds(rc.tick(clock.advance(5 * MIN))), FLEET.early);
    });

    it('completes a wave without bake the moment its ratio is reached, within the ack', () => {
      const rc = established(clock, new FakeHistory(), settings({ waves: [{ name: 'canary', bakeMs: 0 }, { name: 'early', bakeMs: 0 }, { name: 'rest', bakeMs: 0 }] }));
      rc.onCommit(commit('c1', { settings: settings({ waves: [{ name: 'canary', bakeMs: 0 }, { name: 'early', bakeMs: 0 }, { name: 'rest', bakeMs: 0 }] }) }), clock.now());
      rc.onAck(aid('c1'), cid('c1'), 'APPLIED', clock.now());
      const last = rc.onAck(aid('c2'), cid('c1'), 'APPLIED', clock.now());
      assert.deepEqual(changedIds(last), FLEET.early);
    });
  });

  describe('successRatio', () => {
    const s = settings({ successRatio: 0.75, waves: [{ name: 'canary', bakeMs: 0 }, { name: 'early', bakeMs: 0 }, { name: 'rest', bakeMs: 0 }] });

    it('completes a wave once that share of its connected agents applied', () => {
      const rc = established(clock, new FakeHistory(), s);
      rc.onCommit(commit('c1', { settings: s }), clock.now());
      ackAll(rc, FLEET.canary!, 'c1', clock);
      assert.deepEqual(changedIds(rc.onAck(aid('e1'), cid('c1'), 'APPLIED', clock.now())), []);
      assert.deepEqual(changedIds(rc.onAck(aid('e2'), cid('c1'), 'APPLIED', clock.now())), []);
      assert.deepEqual(changedIds(rc.onAck(aid('e3'), cid('c1'), 'APPLIED', clock.now())), FLEET.rest, '3/4 = 0.75');
    });

    it('counts only connected agents', () => {
      const rc = established(clock, new FakeHistory(), s);
      rc.onCommit(commit('c1', { settings: s }), clock.now());
      ackAll(rc, FLEET.canary!, 'c1', clock);
      rc.onDisconnect(aid('e3'), clock.now());
      rc.onDisconnect(aid('e4'), clock.now());
      rc.onAck(aid('e1'), cid('c1'), 'APPLIED', clock.now());
      assert.equal(rc.desiredCommit(aid('r1')), 'c0', '1/2 connected');
      const result = rc.onAck(aid('e2'), cid('c1'), 'APPLIED', clock.now());
      assert.deepEqual(changedIds(result), FLEET.rest, '2/2 connected');
      assert.deepEqual(
        (({ agents, applied, pending }) => ({ agents, applied, pending }))(rc.status(clock.now()).waves[1]!),
        { agents: 4, applied: 2, pending: 0 },
      );
    });
  });

  describe('when an agent connects late', () => {
    it('gets the new commit if its wave started, the previous one if not', () => {
      const history = new FakeHistory();
      const rc = new RolloutController({ history });
      for (const id of ALL.filter((id) => id !== 'c2' && id !== 'e1')) rc.onConnect(aid(id), clock.now());
      rc.onCommit(commit('c0'), clock.now());
      rc.onCommit(commit('c1'), clock.now());
      rc.onConnect(aid('c2'), clock.now());
      rc.onConnect(aid('e1'), clock.now());
      assert.equal(rc.desiredCommit(aid('c2')), 'c1');
      assert.equal(rc.desiredCommit(aid('e1')), 'c0');
    });

    it('counts toward its wave from then on', () => {
      const rc = established(clock);
      rc.onDisconnect(aid('c2'), clock.now());
      rc.onCommit(commit('c1'), clock.now());
      rc.onAck(aid('c1'), cid('c1'), 'APPLIED', clock.now());
      rc.onConnect(aid('c2'), clock.now());
      assert.equal(rc.status(clock.now()).waves[0]?.pending, 1);
      assert.equal(rc.status(clock.now()).waves[0]?.state, 'progressing');
    });
  });

  describe('when a wave has no connected agents', () => {
    it('completes as soon as it starts, and the next wave starts in the same step', () => {
      const rc = established(clock);
      for (const id of FLEET.canary!) rc.onDisconnect(aid(id), clock.now());
      const result = rc.onCommit(commit('c1'), clock.now());
      assert.deepEqual(kinds(result), ['rollout-started', 'wave-started', 'wave-completed', 'wave-started']);
      assert.deepEqual(changedIds(result), [...FLEET.canary!, ...FLEET.early!].sort());
    });

    it('still waits for a window to start', () => {
      const closed = settings({ windows: [{ kind: 'allow', schedule: '0 20 * * *', duration: '1h' }] });
      const rc = established(clock);
      for (const id of FLEET.canary!) rc.onDisconnect(aid(id), clock.now());
      const result = rc.onCommit(commit('c1', { settings: closed }), clock.now());
      assert.deepEqual(kinds(result), ['rollout-started']);
      const status = rc.status(clock.now());
      assert.equal(status.state, 'waiting-window');
      assert.deepEqual(status.window, { open: false, nextOpen: '2025-06-02T20:00:00.000Z' });
      const opened = rc.tick(new Date('2025-06-02T20:00:00Z'));
      assert.deepEqual(kinds(opened), ['wave-started', 'wave-completed', 'wave-started']);
    });
  });

  describe('windows', () => {
    const s = settings({
      waves: [{ name: 'canary', bakeMs: 0 }, { name: 'early', bakeMs: 0 }, { name: 'rest', bakeMs: 0 }],
      windows: [
        { kind: 'allow', schedule: '0 9 * * 1-5', duration: '8h', timeZone: 'Europe/Berlin' },
        { kind: 'deny', schedule: '0 0 24 12 *', duration: '72h' },
      ],
    });

    it('waits for an allowed window, then starts the next wave on a tick inside it', () => {
      const evening = new FakeClock('2025-06-02T16:00:00Z'); // 18:00 CEST, after the allow window
      const rc = established(evening, new FakeHistory(), s);
      const result = rc.onCommit(commit('c1', { settings: s }), evening.now());
      assert.deepEqual(kinds(result), ['rollout-started']);
      assert.equal(rc.status(evening.now()).state, 'waiting-window');
      assert.equal(rc.status(evening.now()).window.nextOpen, '2025-06-03T07:00:00.000Z');
      assert.deepEqual(rc.tick(new Date('2025-06-03T06:59:59Z')).changed, []);
      assert.deepEqual(changedIds(rc.tick(new Date('2025-06-03T07:00:00Z'))), FLEET.canary);
    });

    it('lets an in-flight wave finish outside the window but starts no new one', () => {
      const late = new FakeClock('2025-06-02T14:50:00Z'); // 16:50 CEST, window ends 17:00
      const rc = established(late, new FakeHistory(), s);
      rc.onCommit(commit('c1', { settings: s }), late.now());
      late.advance(20 * MIN);
      const acks = ackAll(rc, FLEET.canary!, 'c1', late);
      assert.deepEqual(kinds(acks[1]!), ['wave-completed']);
      assert.equal(rc.desiredCommit(aid('e1')), 'c0');
      assert.equal(rc.status(late.now()).state, 'waiting-window');
    });

    it('does not start a wave inside a deny window that overlaps an allow window', () => {
      const christmas = new FakeClock('2025-12-24T10:00:00Z');
      const rc = established(christmas, new FakeHistory(), s);
      rc.onCommit(commit('c1', { settings: s }), christmas.now());
      assert.equal(rc.status(christmas.now()).state, 'waiting-window');
      assert.deepEqual(rc.tick(new Date('2025-12-26T10:00:00Z')).changed, []);
      assert.deepEqual(changedIds(rc.tick(new Date('2025-12-29T08:00:00Z'))), FLEET.canary);
    });

    it('treats windows that do not parse as closed, and says so', () => {
      const broken = settings({ windows: [{ kind: 'deny', schedule: '0 0 31 2-13 *', duration: '1h' }] });
      const rc = established(clock);
      const result = rc.onCommit(commit('c1', { settings: broken }), clock.now());
      assert.deepEqual(kinds(result), ['windows-invalid', 'rollout-started']);
      assert.equal(rc.status(clock.now()).state, 'waiting-window');
      assert.deepEqual(rc.status(clock.now()).window, { open: false, nextOpen: null });
    });
  });

  describe('when canary rejects above maxNackRatio', () => {
    it('halts, alerts once, and keeps the rejecting agent on its previous config', () => {
      const rc = established(clock);
      rc.onCommit(commit('c1'), clock.now());
      rc.onAck(aid('c1'), cid('c1'), 'APPLIED', clock.now());
      const rejected = rc.onAck(aid('c2'), cid('c1'), 'REJECTED', clock.now());
      assert.deepEqual(kinds(rejected), ['rollout-halted']);
      const halted = rejected.events[0];
      assert.ok(halted?.kind === 'rollout-halted');
      assert.deepEqual([halted.wave, halted.rejected, halted.connected], ['canary', 1, 2]);
      assert.deepEqual(rejected.changed, [{ agentId: 'c2', commit: cid('c0'), digest: digest('c0', 'c2') }]);
      assert.equal(rc.desiredCommit(aid('c1')), 'c1', 'in-flight deliveries stay');
      const status = rc.status(clock.now());
      assert.equal(status.state, 'halted');
      assert.equal(status.waves[0]?.state, 'halted');
      assert.equal(status.waves[0]?.rejected, 1);
      assert.equal(rc.agentStatus(aid('c2'), clock.now()).state, 'NACKED');
    });

    it('starts no further wave, even after the bake', () => {
      const rc = established(clock);
      rc.onCommit(commit('c1'), clock.now());
      rc.onAck(aid('c2'), cid('c1'), 'REJECTED', clock.now());
      rc.onAck(aid('c1'), cid('c1'), 'APPLIED', clock.now());
      const later = rc.tick(clock.advance(60 * MIN));
      assert.deepEqual(later.changed, []);
      assert.ok(!kinds(later).includes('rollout-halted'), 'the alert fires once');
      assert.equal(rc.desiredCommit(aid('e1')), 'c0');
    });

    it('refuses promote on a halted rollout', () => {
      const rc = established(clock);
      rc.onCommit(commit('c1'), clock.now());
      rc.onAck(aid('c2'), cid('c1'), 'REJECTED', clock.now());
      const result = rc.act({ kind: 'promote', actor: 'alice' }, clock.now());
      assert.equal(result.kind, 'refused');
      assert.ok(result.kind === 'refused' && result.code === 'HALTED');
    });
  });

  describe('when rejections stay at or below maxNackRatio', () => {
    it('does not halt', () => {
      const s = settings({ maxNackRatio: 0.25, successRatio: 0.75, waves: [{ name: 'canary', bakeMs: 0 }, { name: 'early', bakeMs: 0 }, { name: 'rest', bakeMs: 0 }] });
      const rc = established(clock, new FakeHistory(), s);
      rc.onCommit(commit('c1', { settings: s }), clock.now());
      ackAll(rc, FLEET.canary!, 'c1', clock);
      const rejected = rc.onAck(aid('e1'), cid('c1'), 'REJECTED', clock.now()); // 1/4 = 0.25: not above
      assert.ok(!kinds(rejected).includes('rollout-halted'));
      ackAll(rc, ['e2', 'e3', 'e4'], 'c1', clock);
      assert.equal(rc.desiredCommit(aid('r1')), 'c1');
      assert.equal(rc.desiredCommit(aid('e1')), 'c0');
    });
  });

  describe('when a newer commit arrives mid-rollout', () => {
    it('supersedes it and restarts at the first wave from the last completed commit', () => {
      const s = settings({ waves: [{ name: 'canary', bakeMs: 0 }, { name: 'early', bakeMs: 0 }, { name: 'rest', bakeMs: 0 }] });
      const rc = established(clock, new FakeHistory(), s);
      rc.onCommit(commit('c1', { settings: s }), clock.now());
      ackAll(rc, FLEET.canary!, 'c1', clock); // early now has c1
      assert.equal(rc.desiredCommit(aid('e1')), 'c1');
      const result = rc.onCommit(commit('c2', { settings: s }), clock.now());
      assert.deepEqual(kinds(result), ['rollout-superseded', 'rollout-started', 'wave-started']);
      const status = rc.status(clock.now());
      assert.equal(status.commit, 'c2');
      assert.equal(status.previous, 'c0', 'not the superseded c1');
      assert.deepEqual(desiredOf(rc, ['c1', 'e1', 'r1']), ['c2', 'c0', 'c0']);
      assert.deepEqual(changedIds(result), [...FLEET.canary!, ...FLEET.early!].sort());
    });

    it('takes a completed rollout as the new previous', () => {
      const s = settings({ waves: [{ name: 'canary', bakeMs: 0 }, { name: 'early', bakeMs: 0 }, { name: 'rest', bakeMs: 0 }] });
      const rc = established(clock, new FakeHistory(), s);
      rc.onCommit(commit('c1', { settings: s }), clock.now());
      ackAll(rc, ALL, 'c1', clock);
      assert.equal(rc.status(clock.now()).state, 'complete');
      rc.onCommit(commit('c2', { settings: s }), clock.now());
      assert.equal(rc.status(clock.now()).previous, 'c1');
      assert.equal(rc.desiredCommit(aid('r1')), 'c1');
    });
  });

  describe('revert fast path', () => {
    const revert = (sha: string, of: string): RolloutCommit =>
      commit(sha, { message: `Revert "change ${of}"\n\nThis reverts commit ${of.padEnd(40, '0')}.\n`, digests: (id) => digest('c0', id) });

    it('sends a revert to bundles every agent ran before to all agents at once, ignoring windows and pause', () => {
      const history = new FakeHistory();
      const rc = established(clock, history);
      rc.onCommit(commit('c1'), clock.now());
      rc.act({ kind: 'pause', actor: 'alice' }, clock.now());
      const denied = settings({ windows: [{ kind: 'deny', schedule: '0 0 * * *', duration: '24h' }] });
      const result = rc.onCommit({ ...revert('c2', 'c1'), settings: denied }, clock.now());
      assert.deepEqual(result.path, { kind: 'expedited-revert', reverts: 'c1'.padEnd(40, '0') });
      assert.deepEqual(desiredOf(rc, ALL), ALL.map(() => 'c2'));
      assert.equal(rc.status(clock.now()).state, 'complete');
    });

    it('ignores agents that never ran any bundle', () => {
      const history = new FakeHistory();
      const rc = established(clock, history);
      history.applied.delete('r4');
      rc.onCommit(commit('c1'), clock.now());
      assert.equal(rc.onCommit(revert('c2', 'c1'), clock.now()).path.kind, 'expedited-revert');
    });

    it('stages a revert when an agent never ran its new bundle', () => {
      const history = new FakeHistory();
      const rc = established(clock, history);
      rc.onCommit(commit('c1'), clock.now());
      const r = revert('c2', 'c1');
      const result = rc.onCommit({ ...r, agents: r.agents.map((a) => (a.id === 'e2' ? { ...a, digest: digest('x', 'e2') } : a)) }, clock.now());
      assert.deepEqual(result.path, { kind: 'staged', why: { kind: 'new-digest', reverts: 'c1'.padEnd(40, '0'), agent: 'e2', digest: digest('x', 'e2') } });
      assert.equal(rc.desiredCommit(aid('e1')), 'c0');
    });

    it('stages a revert when expediteReverts is false', () => {
      const rc = established(clock);
      rc.onCommit(commit('c1'), clock.now());
      const result = rc.onCommit({ ...revert('c2', 'c1'), settings: settings({ expediteReverts: false }) }, clock.now());
      assert.deepEqual(result.path, { kind: 'staged', why: { kind: 'expedite-disabled', reverts: 'c1'.padEnd(40, '0') } });
    });

    it('stages a commit that is not a revert', () => {
      const rc = established(clock);
      assert.deepEqual(rc.onCommit(commit('c1'), clock.now()).path, { kind: 'staged', why: { kind: 'not-a-revert' } });
    });
  });

  describe('operator actions', () => {
    it('promote starts the next wave now, overriding the bake', () => {
      const rc = established(clock);
      rc.onCommit(commit('c1'), clock.now());
      ackAll(rc, FLEET.canary!, 'c1', clock);
      const result = rc.act({ kind: 'promote', actor: 'alice', reason: 'looks good' }, clock.advance(1 * MIN));
      assert.equal(result.kind, 'done');
      assert.ok(result.kind === 'done');
      assert.deepEqual(kinds(result), ['wave-completed', 'wave-started', 'operator-action']);
      assert.deepEqual(changedIds(result), FLEET.early);
      const audit = result.events.at(-1);
      assert.deepEqual(audit, { kind: 'operator-action', action: 'promote', actor: 'alice', reason: 'looks good', commit: cid('c1'), at: '2025-06-02T10:01:00.000Z' });
      const canary = result.events[0];
      assert.ok(canary?.kind === 'wave-completed' && canary.forced);
    });

    it('promote starts a wave that waits for a window', () => {
      const s = settings({ windows: [{ kind: 'allow', schedule: '0 20 * * *', duration: '1h' }] });
      const rc = established(clock);
      rc.onCommit(commit('c1', { settings: s }), clock.now());
      assert.equal(rc.status(clock.now()).state, 'waiting-window');
      const result = rc.act({ kind: 'promote', actor: 'alice' }, clock.now());
      assert.ok(result.kind === 'done');
      assert.deepEqual(changedIds(result), FLEET.canary);
      assert.equal(rc.status(clock.now()).state, 'progressing');
    });

    it('pause keeps the next wave from starting; in-flight deliveries stay; resume starts it', () => {
      const s = settings({ waves: [{ name: 'canary', bakeMs: 0 }, { name: 'early', bakeMs: 0 }, { name: 'rest', bakeMs: 0 }] });
      const rc = established(clock, new FakeHistory(), s);
      rc.onCommit(commit('c1', { settings: s }), clock.now());
      const paused = rc.act({ kind: 'pause', actor: 'bob' }, clock.now());
      assert.ok(paused.kind === 'done');
      assert.deepEqual(paused.changed, []);
      ackAll(rc, FLEET.canary!, 'c1', clock);
      assert.equal(rc.status(clock.now()).state, 'paused');
      assert.deepEqual(desiredOf(rc, ['c1', 'e1']), ['c1', 'c0']);
      assert.equal(rc.act({ kind: 'pause', actor: 'bob' }, clock.now()).kind, 'refused');
      const resumed = rc.act({ kind: 'resume', actor: 'bob' }, clock.now());
      assert.ok(resumed.kind === 'done');
      assert.deepEqual(changedIds(resumed), FLEET.early);
      const again = rc.act({ kind: 'resume', actor: 'bob' }, clock.now());
      assert.ok(again.kind === 'refused' && again.code === 'NOT_PAUSED');
    });

    it('abort sends every agent the last completed commit again', () => {
      const s = settings({ waves: [{ name: 'canary', bakeMs: 0 }, { name: 'early', bakeMs: 0 }, { name: 'rest', bakeMs: 0 }] });
      const rc = established(clock, new FakeHistory(), s);
      rc.onCommit(commit('c1', { settings: s }), clock.now());
      ackAll(rc, FLEET.canary!, 'c1', clock);
      const result = rc.act({ kind: 'abort', actor: 'carol', reason: 'latency' }, clock.now());
      assert.ok(result.kind === 'done');
      assert.deepEqual(changedIds(result), [...FLEET.canary!, ...FLEET.early!].sort());
      assert.deepEqual(desiredOf(rc, ALL), ALL.map(() => 'c0'));
      const status = rc.status(clock.now());
      assert.equal(status.state, 'aborted');
      assert.deepEqual(status.waves.map((w) => w.state), ['complete', 'aborted', 'pending']);
      assert.deepEqual(rc.tick(clock.advance(60 * MIN)).changed, []);
      const again = rc.act({ kind: 'abort', actor: 'carol' }, clock.now());
      assert.ok(again.kind === 'refused' && again.code === 'NO_ROLLOUT');
    });

    it('refuses promote and abort when nothing is in flight', () => {
      const rc = established(clock);
      for (const kind of ['promote', 'abort'] as const) {
        const result = rc.act({ kind, actor: 'alice' }, clock.now());
        assert.ok(result.kind === 'refused' && result.code === 'NO_ROLLOUT', kind);
      }
    });
  });

  describe('ackTimeout', () => {
    it('reports a connected agent STALE when it has not acked its desired commit in time', () => {
      const rc = established(clock);
      rc.onCommit(commit('c1'), clock.now());
      rc.onAck(aid('c1'), cid('c1'), 'APPLIED', clock.advance(30_000));
      assert.equal(rc.agentStatus(aid('c2'), clock.now()).state, 'PENDING');
      clock.advance(90_000 - 1);
      assert.deepEqual(rc.staleAgents(clock.now()), []);
      clock.advance(1);
      assert.deepEqual(rc.staleAgents(clock.now()), ['c2']);
      assert.equal(rc.agentStatus(aid('c2'), clock.now()).state, 'STALE');
      assert.equal(rc.agentStatus(aid('c1'), clock.now()).state, 'SYNCED');
      rc.onAck(aid('c2'), cid('c1'), 'APPLIED', clock.now());
      assert.deepEqual(rc.staleAgents(clock.now()), []);
    });

    it('does not count a disconnected agent as stale, and restarts the timer on reconnect', () => {
      const rc = established(clock);
      rc.onCommit(commit('c1'), clock.now());
      rc.onDisconnect(aid('c2'), clock.now());
      clock.advance(10 * MIN);
      assert.equal(rc.agentStatus(aid('c2'), clock.now()).state, 'DISCONNECTED');
      rc.onConnect(aid('c2'), clock.now());
      assert.equal(rc.agentStatus(aid('c2'), clock.advance(2 * MIN - 1)).state, 'PENDING');
      assert.equal(rc.agentStatus(aid('c2'), clock.advance(1)).state, 'STALE');
    });

    it('counts a reconnecting agent whose hello reports the rollout commit as applied', () => {
      const rc = established(clock);
      rc.onCommit(commit('c1'), clock.now());
      rc.onAck(aid('c1'), cid('c1'), 'APPLIED', clock.now());
      rc.onDisconnect(aid('c2'), clock.now());
      rc.onConnect(aid('c2'), clock.now(), cid('c1'));
      assert.equal(rc.agentStatus(aid('c2'), clock.now()).state, 'SYNCED');
      assert.equal(rc.status(clock.now()).waves[0]?.state, 'baking');
    });
  });

  describe('persistence', () => {
    it('resumes exactly where it was after a JSON round trip mid-rollout', () => {
      const history = new FakeHistory();
      const original = established(clock, history);
      original.onCommit(commit('c1'), clock.now());
      ackAll(original, FLEET.canary!, 'c1', clock);
      original.tick(clock.advance(10 * MIN)); // early starts
      original.onAck(aid('e1'), cid('c1'), 'APPLIED', clock.now());
      original.onAck(aid('e2'), cid('c1'), 'REJECTED', clock.now()); // halts: 1/4 > 0.05
      original.onDisconnect(aid('r4'), clock.now());
      original.act({ kind: 'pause', actor: 'dave' }, clock.now());

      const restored = RolloutController.fromJSON(JSON.parse(JSON.stringify(original)), { history });
      assert.deepEqual(restored.toJSON(), original.toJSON());
      assert.deepEqual(restored.status(clock.now()), original.status(clock.now()));
      assert.deepEqual(desiredOf(restored, ALL), desiredOf(original, ALL));
      assert.deepEqual(restored.staleAgents(clock.advance(5 * MIN)), original.staleAgents(clock.now()));
      assert.equal(restored.isPaused, true);

      // The same inputs from here on give the same outputs.
      for (const rc of [original, restored]) rc.act({ kind: 'abort', actor: 'dave' }, clock.now());
      assert.deepEqual(restored.status(clock.now()), original.status(clock.now()));
      assert.deepEqual(desiredOf(restored, ALL), desiredOf(original, ALL));
    });

    it('continues a baking wave after restore', () => {
      const history = new FakeHistory();
      const original = established(clock, history);
      original.onCommit(commit('c1'), clock.now());
      ackAll(original, FLEET.canary!, 'c1', clock);
      const restored = RolloutController.fromJSON(JSON.parse(JSON.stringify(original.toJSON())), { history });
      assert.deepEqual(restored.tick(clock.advance(10 * MIN - 1)).changed, []);
      assert.deepEqual(changedIds(restored.tick(clock.advance(1))), FLEET.early);
    });

    it('restoreDisconnected: everyone starts disconnected, and an empty started wave waits out the hold before completing', () => {
      const history = new FakeHistory();
      const original = established(clock, history);
      original.onCommit(commit('c1'), clock.now()); // canary started, nobody acked
      const restored = RolloutController.fromJSON(JSON.parse(JSON.stringify(original.toJSON())), { history });
      restored.restoreDisconnected(clock.now(), 30_000);
      assert.ok(restored.toJSON().agents.every((a) => !a.connected));
      assert.equal(restored.agentStatus(aid('c1'), clock.now()).state, 'DISCONNECTED');
      const canary = (): string | undefined => restored.status(clock.now()).waves[0]?.state;
      assert.equal(canary(), 'progressing');
      assert.equal(restored.status(clock.now()).waves[0]?.pending, 0);
      // A replayed ack (the agent is not connected yet) is counted without completing the wave.
      assert.deepEqual(kinds(restored.onAck(aid('c1'), cid('c1'), 'APPLIED', clock.now())), []);
      assert.equal(restored.status(clock.now()).waves[0]?.applied, 1);
      assert.deepEqual(kinds(restored.tick(clock.advance(29_999))), []);
      assert.equal(canary(), 'progressing');
      // An agent that reconnects in the hold counts again: the wave waits for c2's ack.
      restored.onConnect(aid('c2'), clock.now());
      assert.deepEqual(kinds(restored.tick(clock.advance(60_000))), []);
      assert.equal(canary(), 'progressing');
      assert.equal(restored.status(clock.now()).waves[0]?.pending, 1);
    });

    it('restoreDisconnected without a hold: the next tick completes a wave nobody reconnected to', () => {
      const history = new FakeHistory();
      const original = established(clock, history);
      original.onCommit(commit('c1'), clock.now());
      const restored = RolloutController.fromJSON(JSON.parse(JSON.stringify(original.toJSON())), { history });
      restored.restoreDisconnected(clock.now());
      assert.equal(restored.status(clock.now()).waves[0]?.state, 'progressing', 'not completed by the restore itself');
      assert.ok(kinds(restored.tick(clock.advance(1))).includes('wave-completed'));
    });

    it('refuses a document it cannot read with INVALID_STATE', () => {
      for (const doc of [null, { version: 2 }, { version: 1, paused: false, rollout: null, agents: [{ id: 1 }] }]) {
        assert.throws(
          () => RolloutController.fromJSON(doc, { history: new FakeHistory() }),
          (err: unknown) => err instanceof RolloutError && err.code === 'INVALID_STATE',
        );
      }
    });

    it('refuses, with INVALID_STATE, a stored rollout record whose shape would change a decision', () => {
      const history = new FakeHistory();
      const original = established(clock, history);
      original.onCommit(commit('c1'), clock.now());
      const stored = (): { rollout: Record<string, unknown> } & Record<string, unknown> => JSON.parse(JSON.stringify(original.toJSON()));
      assert.doesNotThrow(() => RolloutController.fromJSON(stored(), { history }), 'the untouched document reads');
      const broken: Array<[string, (doc: ReturnType<typeof stored>) => void]> = [
        ['an unknown phase', (doc) => (doc.rollout['phase'] = 'paused')],
        ['one wave record too few', (doc) => (doc.rollout['waves'] as unknown[]).pop()],
        ['no configured waves', (doc) => ((doc.rollout['settings'] as { waves: unknown[] }).waves = [])],
        ['a missing rollout record', (doc) => Reflect.deleteProperty(doc, 'rollout')],
        ['a paused flag that is not a boolean', (doc) => (doc['paused'] = 'no')],
        ['a fractional agent wave', (doc) => ((doc['agents'] as Array<{ wave: number }>)[0]!.wave = 0.5)],
      ];
      for (const [what, breakIt] of broken) {
        const doc = stored();
        breakIt(doc);
        assert.throws(
          () => RolloutController.fromJSON(doc, { history }),
          (err: unknown) => err instanceof RolloutError && err.code === 'INVALID_STATE',
          what,
        );
      }
    });
  });

  describe('inventory changes', () => {
    it('gives an agent new in the inventory the new commit at once (nothing older to protect)', () => {
      const rc = established(clock);
      const c1 = commit('c1');
      rc.onCommit({ ...c1, agents: [...c1.agents, { id: aid('r9'), wave: 'rest', digest: digest('c1', 'r9') }] }, clock.now());
      assert.equal(rc.desiredCommit(aid('r9')), 'c1');
      assert.equal(rc.desiredCommit(aid('r1')), 'c0');
    });

    it('gives an agent removed from the inventory nothing', () => {
      const rc = established(clock);
      const c1 = commit('c1');
      const result = rc.onCommit({ ...c1, agents: c1.agents.filter((a) => a.id !== 'r4') }, clock.now());
      assert.equal(rc.desiredCommit(aid('r4')), null);
      assert.ok(result.changed.some((c) => c.agentId === 'r4' && c.commit === null));
    });
  });

  describe('when an agent rejects', () => {
    it('keeps offering the very first commit to an agent that rejected it (nothing to go back to)', () => {
      const rc = new RolloutController({ history: new FakeHistory() });
      for (const id of ALL) rc.onConnect(aid(id), clock.now());
      rc.onCommit(commit('c0'), clock.now());
      const rejected = rc.onAck(aid('c1'), cid('c0'), 'REJECTED', clock.now());
      assert.deepEqual(rejected.changed, [], 'its delivery stays');
      assert.equal(rc.desiredCommit(aid('c1')), 'c0');
      assert.equal(rc.agentStatus(aid('c1'), clock.now()).state, 'NACKED');
      rc.onDisconnect(aid('c1'), clock.now());
      rc.onConnect(aid('c1'), clock.now());
      assert.equal(rc.desiredCommit(aid('c1')), 'c0');
    });

    it('keeps offering a staged commit to an agent with no completed config that rejected it', () => {
      const rc = established(clock);
      const c1 = commit('c1');
      rc.onCommit({ ...c1, agents: [...c1.agents, { id: aid('r9'), wave: 'rest', digest: digest('c1', 'r9') }] }, clock.now());
      rc.onConnect(aid('r9'), clock.now());
      rc.onAck(aid('r9'), cid('c1'), 'REJECTED', clock.now());
      assert.equal(rc.desiredCommit(aid('r9')), 'c1');
    });

    it('offers the rejected commit again when the agent connects again, and counts its next answer', () => {
      const s = settings({ maxNackRatio: 0.5 });
      const rc = established(clock, new FakeHistory(), s);
      rc.onCommit(commit('c1', { settings: s }), clock.now());
      rc.onAck(aid('c1'), cid('c1'), 'APPLIED', clock.now());
      rc.onAck(aid('c2'), cid('c1'), 'REJECTED', clock.now()); // 1/2: not above 0.5
      assert.equal(rc.desiredCommit(aid('c2')), 'c0', 'back on its previous config');
      rc.onDisconnect(aid('c2'), clock.now());
      assert.equal(rc.desiredCommit(aid('c2')), 'c0', 'not while it is away');
      const back = rc.onConnect(aid('c2'), clock.now());
      assert.deepEqual(back.changed, [{ agentId: 'c2', commit: cid('c1'), digest: digest('c1', 'c2') }]);
      assert.equal(rc.status(clock.now()).waves[0]?.rejected, 0);
      rc.onAck(aid('c2'), cid('c1'), 'APPLIED', clock.now());
      assert.equal(rc.status(clock.now()).waves[0]?.applied, 2);
    });

    it('does not offer it again while the rollout is halted', () => {
      const rc = established(clock);
      rc.onCommit(commit('c1'), clock.now());
      rc.onAck(aid('c2'), cid('c1'), 'REJECTED', clock.now());
      assert.equal(rc.status(clock.now()).state, 'halted');
      rc.onDisconnect(aid('c2'), clock.now());
      assert.deepEqual(rc.onConnect(aid('c2'), clock.now()).changed, []);
      assert.equal(rc.desiredCommit(aid('c2')), 'c0');
    });
  });

  describe('acks', () => {
    it('ignores an ack for another commit in the wave counters', () => {
      const rc = established(clock);
      rc.onCommit(commit('c1'), clock.now());
      const result = rc.onAck(aid('c1'), cid('c0'), 'REJECTED', clock.now());
      assert.deepEqual(result, { changed: [], events: [] });
      assert.equal(rc.status(clock.now()).waves[0]?.rejected, 0);
    });
  });
});
