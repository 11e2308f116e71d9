import { Ajv, type ValidateFunction } from 'ajv';
import type { AgentId, CommitSha, Digest } from '../domain/types.js';
import { RolloutError } from './errors.js';
import type { RolloutCommit, RolloutSettings } from './settings.js';
import {
  ROLLOUT_DOCUMENT_VERSION,
  type AckStatus,
  type ActionResult,
  type AgentRecordJson,
  type AgentRolloutStatus,
  type AppliedHistory,
  type DesiredChange,
  type OperatorAction,
  type RolloutChanges,
  type RolloutDocumentV1,
  type RolloutEvent,
  type RolloutPath,
  type RolloutState,
  type RolloutStatus,
  type WaveState,
  type WaveStatus,
} from './types.js';
import { rolloutDocumentSchema } from './document-schema.js';
import { Windows } from './windows.js';
import { assertNever } from '../lib/index.js';

export interface RolloutControllerOptions {
  /** Per agent, the digests it applied historically (the fleet store answers). Asked only by `onCommit`. */
  readonly history: AppliedHistory;
}

/** Agent state. `desired` is a cache of `desiredOf()`, kept so a change is found without rescanning. */
interface AgentRec {
  readonly id: AgentId;
  wave: number;
  digest: Digest | null;
  base: { readonly commit: CommitSha; readonly digest: Digest } | null;
  connected: boolean;
  result: AckStatus | null;
  lastAck: { readonly commit: CommitSha; readonly status: AckStatus } | null;
  sentAt: number | null;
  desired: CommitSha | null;
}

/** A wave of the rollout. The counters are derived (rebuilt on load) and kept exact on every input: O(1) per ack. */
interface WaveRec {
  readonly name: string;
  readonly bakeMs: number;
  startedAt: number | null;
  ratioAt: number | null;
  completedAt: number | null;
  readonly members: AgentRec[];
  connected: number;
  applied: number;
  rejected: number;
  appliedConnected: number;
  rejectedConnected: number;
}

interface Rollout {
  readonly commit: CommitSha;
  readonly previous: CommitSha | null;
  readonly path: RolloutPath;
  phase: 'progressing' | 'complete' | 'aborted';
  readonly settings: RolloutSettings;
  readonly acceptedAt: number;
  halted: { readonly wave: number; readonly at: number } | null;
  readonly waves: WaveRec[];
  /** `null`: a window does not parse; treated as never open. */
  readonly windows: Windows | null;
}

const REVERT = /^This reverts commit ([0-9a-f]{7,64})\b/m;
/** Ratios are compared with this slack so that 19/20 ≥ 0.95 holds in floating point. */
const EPSILON = 1e-9;

/** Collects what one input changed. */
class Changes {
  readonly changed = new Map<AgentId, DesiredChange>();
  readonly events: RolloutEvent[] = [];

  result(): RolloutChanges {
    return { changed: [...this.changed.values()], events: this.events };
  }
}

/**
 * The rollout state machine: given accepted commits, agent connectivity, acks, operator actions
 * and the time, it decides which commit each agent should have now. Pure: no I/O and no clock
 * (every input carries `now`); its whole state is `toJSON()`, and `fromJSON()` resumes exactly.
 *
 * Rules (README "Rollouts"):
 * - A staged commit moves wave by wave. A wave starts only while the windows are open (and the
 *   controller is not paused or halted). It completes when `successRatio` of its CONNECTED
 *   members acked APPLIED and then `bake` has passed since that ratio was reached (the bake
 *   restarts if the ratio drops again before it ends). A wave with no connected member
 *   completes as soon as it starts — it still waits for a window to start. Agents of waves not
 *   reached keep their last completed config.
 * - An agent that rejects the rollout's commit goes back to its last completed config; when it
 *   connects again (a new stream: maybe a new agent process) it is offered the commit again,
 *   unless the rollout is halted. When rejections among the current wave's connected members
 *   exceed `maxNackRatio`, the rollout halts: no further wave starts until abort or a newer commit.
 * - An agent with no completed config (new in the inventory, or the very first commit) gets the
 *   rollout's commit at once: it has nothing older to protect. Rejecting it changes nothing: it
 *   has nothing to go back to, so it stays offered (on every new stream or poll).
 * - A newer commit supersedes the rollout and starts again at the first wave, from the last
 *   COMPLETED commit.
 *
 * Cost: an ack, connect or disconnect is O(1) (per-wave counters); a tick is O(waves) plus one
 * window evaluation while a wave waits for a window. Starting a wave is O(its members);
 * accepting a commit and abort are O(agents).
 */
export class RolloutController {
  private readonly history: AppliedHistory;
  private readonly agents = new Map<AgentId, AgentRec>();
  private rollout: Rollout | null = null;
  private paused = false;
  /** Until then (ms), a started wave with no connected member does not complete: see `restoreDisconnected`. */
  private emptyHoldUntil = Number.NEGATIVE_INFINITY;

  constructor(options: RolloutControllerOptions) {
    this.history = options.history;
  }

  // ---- inputs ----

  /** A newly accepted commit. Returns the path taken (and why) with what changed. */
  onCommit(input: RolloutCommit, now: Date): RolloutChanges & { readonly path: RolloutPath } {
    const t = now.getTime();
    const out = new Changes();
    const old = this.rollout;
    if (old !== null && old.phase === 'progressing') {
      out.events.push({ kind: 'rollout-superseded', commit: old.commit, by: input.commit, at: iso(t) });
    }
    // What each agent keeps until its wave is reached: the old rollout's commit if it completed
    // (and the agent did not reject it), else what it kept before.
    const previous = old === null ? null : old.phase === 'complete' ? old.commit : old.previous;
    for (const rec of this.agents.values()) {
      if (old !== null && old.phase === 'complete' && rec.digest !== null && rec.result !== 'REJECTED') {
        rec.base = { commit: old.commit, digest: rec.digest };
      }
      rec.wave = -1;
      rec.digest = null;
      rec.result = null;
    }

    const settings = input.settings;
    const waveIndex = new Map(settings.waves.map((w, i) => [w.name, i]));
    const lastWave = settings.waves.length - 1;
    for (const agent of input.agents) {
      const rec = this.agent(agent.id);
      // The compiler puts an agent no wave selects in the last wave; an unknown name does the same here.
      rec.wave = waveIndex.get(agent.wave) ?? lastWave;
      rec.digest = agent.digest;
    }

    const path = this.choosePath(input, previous);
    let windows: Windows | null = null;
    try {
      windows = new Windows(settings.windows);
    } catch (err) {
      out.events.push({ kind: 'windows-invalid', commit: input.commit, message: err instanceof Error ? err.message : String(err), at: iso(t) });
    }
    const rollout: Rollout = {
      commit: input.commit,
      previous,
      path,
      phase: 'progressing',
      settings,
      acceptedAt: t,
      halted: null,
      waves: settings.waves.map((w) => emptyWave(w.name, w.bakeMs)),
      windows,
    };
    this.rollout = rollout;
    this.rebuildWaves();
    out.events.push({ kind: 'rollout-started', commit: input.commit, previous, path, at: iso(t) });

    if (path.kind !== 'staged') {
      // Every agent at once: waves, windows and pause do not apply.
      for (const wave of rollout.waves) {
        wave.startedAt = t;
        wave.completedAt = t;
      }
      rollout.phase = 'complete';
      out.events.push({ kind: 'rollout-complete', commit: input.commit, at: iso(t) });
    }
    for (const rec of this.agents.values()) this.refresh(rec, t, out);
    this.advance(t, out);
    return { ...out.result(), path };
  }

  /** Moves time-based transitions on: bakes ending, windows opening. */
  tick(now: Date): RolloutChanges {
    const out = new Changes();
    this.advance(now.getTime(), out);
    return out.result();
  }

  /**
   * The agent's stream opened (or it polled after being away). `running`: the commit its hello
   * says it runs; when that is the rollout's commit it counts as applied (a restart loses no ack).
   */
  onConnect(agentId: AgentId, now: Date, running: CommitSha | null = null): RolloutChanges {
    const t = now.getTime();
    const out = new Changes();
    const rec = this.agent(agentId);
    if (!rec.connected) {
      this.uncount(rec);
      rec.connected = true;
      // A new stream may be a new agent process (say, with a fixed reload command): what it
      // rejected is offered again — unless the rollout is halted, which waits for a human.
      const retry = rec.result === 'REJECTED' && this.rollout?.halted === null;
      if (retry) rec.result = null;
      if (running !== null && running === rec.desired) rec.lastAck = { commit: running, status: 'APPLIED' };
      if (running !== null && running === this.rollout?.commit && rec.digest !== null && rec.result === null) rec.result = 'APPLIED';
      this.count(rec);
      if (retry) this.refresh(rec, t, out);
      // The server sends the desired bundle on connect; the ack timeout runs from now.
      rec.sentAt = rec.desired === null ? null : t;
      this.advance(t, out);
    }
    return out.result();
  }

  onDisconnect(agentId: AgentId, now: Date): RolloutChanges {
    const t = now.getTime();
    const out = new Changes();
    const rec = this.agents.get(agentId);
    if (rec !== undefined && rec.connected) {
      this.uncount(rec);
      rec.connected = false;
      rec.sentAt = null;
      this.count(rec);
      this.advance(t, out);
    }
    return out.result();
  }

  /**
   * For a fresh process resuming a restored document: nobody is connected to it yet, so every
   * agent becomes disconnected — without re-evaluating anything now (a wave with no connected
   * member would complete at once). Until `now + holdEmptyMs`, a started wave with no connected
   * member does not complete for that reason either, so agents have time to reconnect (with
   * their running commit) before the next tick judges the wave. O(agents).
   */
  restoreDisconnected(now: Date, holdEmptyMs = 0): void {
    for (const rec of this.agents.values()) {
      if (!rec.connected) continue;
      this.uncount(rec);
      rec.connected = false;
      rec.sentAt = null;
      this.count(rec);
    }
    this.emptyHoldUntil = now.getTime() + holdEmptyMs;
  }

  /** An ack. One for a commit other than the rollout's only updates the agent's last ack. O(1). */
  onAck(agentId: AgentId, commit: CommitSha, status: AckStatus, now: Date): RolloutChanges {
    const t = now.getTime();
    const out = new Changes();
    const rec = this.agents.get(agentId);
    if (rec === undefined) return out.result();
    rec.lastAck = { commit, status };
    const rollout = this.rollout;
    if (rollout !== null && commit === rollout.commit && rec.digest !== null && rec.result !== status) {
      this.uncount(rec);
      rec.result = status;
      this.count(rec);
      // A rejecting agent is not re-sent what it rejected on this connection: it goes back to its
      // last completed config (if it has one; see `onConnect` for the retry).
      this.refresh(rec, t, out);
    }
    this.advance(t, out);
    return out.result();
  }

  /** pause / resume / promote / abort, each recorded as an `operator-action` event for the audit log. */
  act(action: OperatorAction, now: Date): ActionResult {
    const t = now.getTime();
    const out = new Changes();
    const rollout = this.rollout;
    const inFlight = rollout !== null && rollout.phase === 'progressing' ? rollout : null;
    switch (action.kind) {
      case 'pause':
        if (this.paused) return refused('ALREADY_PAUSED', 'rollouts are already paused');
        this.paused = true;
        break;
      case 'resume':
        if (!this.paused) return refused('NOT_PAUSED', 'rollouts are not paused');
        this.paused = false;
        break;
      case 'promote': {
        if (inFlight === null) return refused('NO_ROLLOUT', 'no rollout is in flight');
        if (inFlight.halted !== null) return refused('HALTED', `rollout of ${inFlight.commit} is halted: abort it or push a fix`);
        const i = currentWave(inFlight);
        const wave = inFlight.waves[i];
        if (wave === undefined) return refused('NO_ROLLOUT', 'every wave has completed');
        if (wave.startedAt === null) {
          this.startWave(inFlight, i, t, out);
        } else {
          this.completeWave(inFlight, i, t, true, out);
          if (inFlight.waves[i + 1] !== undefined) this.startWave(inFlight, i + 1, t, out);
        }
        break;
      }
      case 'abort': {
        if (inFlight === null) return refused('NO_ROLLOUT', 'no rollout is in flight');
        inFlight.phase = 'aborted';
        for (const rec of this.agents.values()) this.refresh(rec, t, out);
        break;
      }
      default:
        return assertNever(action.kind);
    }
    out.events.push({
      kind: 'operator-action',
      action: action.kind,
      actor: action.actor,
      reason: action.reason ?? '',
      commit: rollout?.commit ?? null,
      at: iso(t),
    });
    this.advance(t, out);
    return { kind: 'done', ...out.result() };
  }

  // ---- outputs ----

  desiredCommit(agentId: AgentId): CommitSha | null {
    return this.agents.get(agentId)?.desired ?? null;
  }

  /** The commit and bundle digest the agent should have now. */
  desired(agentId: AgentId): { readonly commit: CommitSha; readonly digest: Digest } | null {
    const rec = this.agents.get(agentId);
    return rec === undefined ? null : desiredBundle(rec, this.rollout);
  }

  agentStatus(agentId: AgentId, now: Date): AgentRolloutStatus {
    const rec = this.agents.get(agentId);
    const rollout = this.rollout;
    if (rec === undefined) return { agentId, wave: null, desired: null, state: 'DISCONNECTED' };
    return {
      agentId,
      wave: rollout === null || rec.wave < 0 ? null : (rollout.waves[rec.wave]?.name ?? null),
      desired: desiredBundle(rec, rollout),
      state: this.deliveryState(rec, now.getTime()),
    };
  }

  /** Connected agents sent their desired commit at least `ackTimeout` ago without acking it. O(agents). */
  staleAgents(now: Date): AgentId[] {
    const t = now.getTime();
    const stale: AgentId[] = [];
    for (const rec of this.agents.values()) if (this.deliveryState(rec, t) === 'STALE') stale.push(rec.id);
    return stale;
  }

  /** The body of `GET /api/v1/rollout`. */
  status(now: Date): RolloutStatus {
    const t = now.getTime();
    const rollout = this.rollout;
    const window = this.window(rollout, t);
    if (rollout === null) return { commit: null, previous: null, state: 'complete', waves: [], window };
    return {
      commit: rollout.commit,
      previous: rollout.previous,
      state: this.state(rollout, window.open),
      waves: rollout.waves.map((w, i) => waveStatus(rollout, w, i, t)),
      window,
    };
  }

  get isPaused(): boolean {
    return this.paused;
  }

  // ---- persistence ----

  toJSON(): RolloutDocumentV1 {
    const r = this.rollout;
    return {
      version: ROLLOUT_DOCUMENT_VERSION,
      paused: this.paused,
      rollout:
        r === null
          ? null
          : {
              commit: r.commit,
              previous: r.previous,
              path: r.path,
              phase: r.phase,
              settings: r.settings,
              acceptedAt: r.acceptedAt,
              halted: r.halted,
              waves: r.waves.map((w) => ({ startedAt: w.startedAt, ratioAt: w.ratioAt, completedAt: w.completedAt })),
            },
      agents: [...this.agents.values()].map(
        (a): AgentRecordJson => ({
          id: a.id,
          wave: a.wave,
          digest: a.digest,
          base: a.base,
          connected: a.connected,
          result: a.result,
          lastAck: a.lastAck,
          sentAt: a.sentAt,
        }),
      ),
    };
  }

  /** Resumes from `toJSON()`'s document (parsed JSON, untrusted shape): throws INVALID_STATE if it is not one. */
  static fromJSON(document: unknown, options: RolloutControllerOptions): RolloutController {
    const doc = readDocument(document);
    const controller = new RolloutController(options);
    controller.paused = doc.paused;
    for (const a of doc.agents) {
      controller.agents.set(a.id, { ...a, desired: null });
    }
    const r = doc.rollout;
    if (r !== null) {
      let windows: Windows | null = null;
      try {
        windows = new Windows(r.settings.windows);
      } catch {
        windows = null; // as when it was accepted: reported then, fail safe now
      }
      controller.rollout = {
        commit: r.commit,
        previous: r.previous,
        path: r.path,
        phase: r.phase,
        settings: r.settings,
        acceptedAt: r.acceptedAt,
        halted: r.halted,
        waves: r.settings.waves.map((w, i) => {
          const saved = r.waves[i];
          return { ...emptyWave(w.name, w.bakeMs), startedAt: saved?.startedAt ?? null, ratioAt: saved?.ratioAt ?? null, completedAt: saved?.completedAt ?? null };
        }),
        windows,
      };
      controller.rebuildWaves();
    }
    for (const rec of controller.agents.values()) rec.desired = desiredBundle(rec, controller.rollout)?.commit ?? null;
    return controller;
  }

  // ---- internals ----

  private agent(id: AgentId): AgentRec {
    let rec = this.agents.get(id);
    if (rec === undefined) {
      rec = { id, wave: -1, digest: null, base: null, connected: false, result: null, lastAck: null, sentAt: null, desired: null };
      this.agents.set(id, rec);
    }
    return rec;
  }

  private choosePath(input: RolloutCommit, previous: CommitSha | null): RolloutPath {
    if (previous === null) return { kind: 'first' };
    const reverts = REVERT.exec(input.message)?.[1];
    if (reverts === undefined) return { kind: 'staged', why: { kind: 'not-a-revert' } };
    if (!input.settings.expediteReverts) return { kind: 'staged', why: { kind: 'expedite-disabled', reverts } };
    for (const agent of input.agents) {
      const applied = this.history.appliedDigests(agent.id);
      if (applied.size > 0 && !applied.has(agent.digest)) {
        return { kind: 'staged', why: { kind: 'new-digest', reverts, agent: agent.id, digest: agent.digest } };
      }
    }
    return { kind: 'expedited-revert', reverts };
  }

  /** Rebuilds member lists and counters from the agents: after a new commit and on load. */
  private rebuildWaves(): void {
    const rollout = this.rollout;
    if (rollout === null) return;
    for (const rec of this.agents.values()) {
      if (rec.wave >= rollout.waves.length) rec.wave = rollout.waves.length - 1;
      const wave = rollout.waves[rec.wave];
      if (wave === undefined) continue;
      wave.members.push(rec);
      this.count(rec);
    }
  }

  private count(rec: AgentRec): void {
    this.adjust(rec, 1);
  }

  private uncount(rec: AgentRec): void {
    this.adjust(rec, -1);
  }

  private adjust(rec: AgentRec, by: 1 | -1): void {
    const wave = this.rollout?.waves[rec.wave];
    if (wave === undefined) return;
    if (rec.result === 'APPLIED') wave.applied += by;
    if (rec.result === 'REJECTED') wave.rejected += by;
    if (!rec.connected) return;
    wave.connected += by;
    if (rec.result === 'APPLIED') wave.appliedConnected += by;
    if (rec.result === 'REJECTED') wave.rejectedConnected += by;
  }

  /** Recomputes one agent's desired commit and records a change. */
  private refresh(rec: AgentRec, t: number, out: Changes): void {
    const next = desiredBundle(rec, this.rollout);
    const commit = next?.commit ?? null;
    if (commit === rec.desired) return;
    rec.desired = commit;
    rec.sentAt = rec.connected && commit !== null ? t : null;
    out.changed.set(rec.id, { agentId: rec.id, commit, digest: next?.digest ?? null });
  }

  /**
   * Applies every transition due at t: halt, wave completion, next wave start, rollout
   * completion. O(1) unless a wave starts (O(its members)) or waits for a window (one window
   * evaluation); at most O(waves) iterations.
   */
  private advance(t: number, out: Changes): void {
    const rollout = this.rollout;
    if (rollout === null || rollout.phase !== 'progressing') return;
    for (;;) {
      const i = currentWave(rollout);
      const wave = rollout.waves[i];
      if (wave === undefined) {
        if (rollout.halted !== null) return;
        rollout.phase = 'complete';
        out.events.push({ kind: 'rollout-complete', commit: rollout.commit, at: iso(t) });
        return;
      }
      if (wave.startedAt === null) {
        if (rollout.halted !== null || this.paused || !this.windowOpen(rollout, t)) return;
        this.startWave(rollout, i, t, out);
      }
      if (rollout.halted === null && wave.connected > 0 && wave.rejectedConnected / wave.connected > rollout.settings.maxNackRatio + EPSILON) {
        rollout.halted = { wave: i, at: t };
        out.events.push({
          kind: 'rollout-halted',
          commit: rollout.commit,
          wave: wave.name,
          rejected: wave.rejectedConnected,
          connected: wave.connected,
          maxNackRatio: rollout.settings.maxNackRatio,
          at: iso(t),
        });
      }
      if (!this.gatesPassed(rollout, wave, t)) return;
      this.completeWave(rollout, i, t, false, out);
    }
  }

  private gatesPassed(rollout: Rollout, wave: WaveRec, t: number): boolean {
    // Nobody connected: nothing to wait for and nothing to bake (unless just restored: agents are reconnecting).
    if (wave.connected === 0) return t >= this.emptyHoldUntil;
    if (wave.appliedConnected < rollout.settings.successRatio * wave.connected - EPSILON) {
      wave.ratioAt = null;
      return false;
    }
    wave.ratioAt ??= t;
    return t >= wave.ratioAt + wave.bakeMs;
  }

  private startWave(rollout: Rollout, i: number, t: number, out: Changes): void {
    const wave = rollout.waves[i];
    if (wave === undefined || wave.startedAt !== null) return;
    wave.startedAt = t;
    out.events.push({ kind: 'wave-started', commit: rollout.commit, wave: wave.name, agents: wave.members.length, at: iso(t) });
    for (const rec of wave.members) this.refresh(rec, t, out);
  }

  private completeWave(rollout: Rollout, i: number, t: number, forced: boolean, out: Changes): void {
    const wave = rollout.waves[i];
    if (wave === undefined || wave.completedAt !== null) return;
    wave.completedAt = t;
    out.events.push({ kind: 'wave-completed', commit: rollout.commit, wave: wave.name, forced, at: iso(t) });
  }

  private windowOpen(rollout: Rollout, t: number): boolean {
    return rollout.windows !== null && rollout.windows.isOpen(new Date(t));
  }

  private window(rollout: Rollout | null, t: number): RolloutStatus['window'] {
    if (rollout === null) return { open: true, nextOpen: null };
    if (rollout.windows === null) return { open: false, nextOpen: null };
    const status = rollout.windows.status(new Date(t));
    return { open: status.open, nextOpen: status.nextOpen?.toISOString() ?? null };
  }

  private state(rollout: Rollout, windowOpen: boolean): RolloutState {
    switch (rollout.phase) {
      case 'aborted':
        return 'aborted';
      case 'complete':
        return 'complete';
      case 'progressing': {
        if (rollout.halted !== null) return 'halted';
        if (this.paused) return 'paused';
        const next = rollout.waves[currentWave(rollout)];
        return next !== undefined && next.startedAt === null && !windowOpen ? 'waiting-window' : 'progressing';
      }
      default:
        return assertNever(rollout.phase);
    }
  }

  private deliveryState(rec: AgentRec, t: number): AgentRolloutStatus['state'] {
    if (!rec.connected) return 'DISCONNECTED';
    if (rec.result === 'REJECTED') return 'NACKED';
    if (rec.desired === null || (rec.lastAck?.commit === rec.desired && rec.lastAck.status === 'APPLIED')) return 'SYNCED';
    const timeout = this.rollout?.settings.ackTimeoutMs ?? Number.POSITIVE_INFINITY;
    return rec.sentAt !== null && t - rec.sentAt >= timeout ? 'STALE' : 'PENDING';
  }
}

/** The first wave not completed (all before it have). */
function currentWave(rollout: Rollout): number {
  let i = 0;
  while (i < rollout.waves.length && rollout.waves[i]?.completedAt !== null) i++;
  return i;
}

function desiredBundle(rec: AgentRec, rollout: Rollout | null): { readonly commit: CommitSha; readonly digest: Digest } | null {
  if (rollout === null || rec.digest === null) return null;
  const current = { commit: rollout.commit, digest: rec.digest };
  switch (rollout.phase) {
    case 'aborted':
      return rec.base;
    case 'complete':
      // Nothing older to go back to: an agent that rejected its very first bundle keeps being offered it.
      return rec.result === 'REJECTED' && rec.base !== null ? rec.base : current;
    case 'progressing':
      // Nothing completed to keep: it has nothing older to protect, and nothing to go back to.
      if (rec.base === null) return current;
      if (rec.result === 'REJECTED') return rec.base;
      return rollout.waves[rec.wave]?.startedAt != null ? current : rec.base;
    default:
      return assertNever(rollout.phase);
  }
}

function waveStatus(rollout: Rollout, wave: WaveRec, i: number, t: number): WaveStatus {
  return {
    name: wave.name,
    agents: wave.members.length,
    applied: wave.applied,
    rejected: wave.rejected,
    pending: wave.connected - wave.appliedConnected - wave.rejectedConnected,
    state: waveState(rollout, wave, i, t),
    startedAt: wave.startedAt === null ? null : iso(wave.startedAt),
    completedAt: wave.completedAt === null ? null : iso(wave.completedAt),
  };
}

function waveState(rollout: Rollout, wave: WaveRec, i: number, t: number): WaveState {
  if (wave.completedAt !== null) return 'complete';
  if (wave.startedAt === null) return 'pending';
  if (rollout.phase === 'aborted') return 'aborted';
  if (rollout.halted?.wave === i) return 'halted';
  return wave.ratioAt !== null && t >= wave.ratioAt ? 'baking' : 'progressing';
}

function emptyWave(name: string, bakeMs: number): WaveRec {
  return { name, bakeMs, startedAt: null, ratioAt: null, completedAt: null, members: [], connected: 0, applied: 0, rejected: 0, appliedConnected: 0, rejectedConnected: 0 };
}

function refused(code: Extract<ActionResult, { kind: 'refused' }>['code'], message: string): ActionResult {
  return { kind: 'refused', code, message };
}

function iso(t: number): string {
  return new Date(t).toISOString();
}

// ---- reading a persisted document defensively ----

let validateDocument: ValidateFunction<RolloutDocumentV1> | undefined;

function readDocument(value: unknown): RolloutDocumentV1 {
  const bad = (why: string): never => {
    throw new RolloutError({ code: 'INVALID_STATE', message: `stored rollout document: ${why}` });
  };
  validateDocument ??= new Ajv({ strict: true, allowUnionTypes: true }).compile<RolloutDocumentV1>(rolloutDocumentSchema);
  if (!validateDocument(value)) {
    const error = validateDocument.errors?.[0];
    return bad(`${error?.instancePath || '(root)'} ${error?.message ?? 'is malformed'}`);
  }
  const { rollout } = value;
  if (rollout !== null && rollout.settings.waves.length !== rollout.waves.length) return bad('waves do not match the settings');
  return value;
}
