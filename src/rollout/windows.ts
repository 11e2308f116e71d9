import { CronExpressionParser, type CronExpression } from 'cron-parser';

import { parseDuration } from '../domain/duration.js';

/** One `rollout.windows` entry of meshcfg.yaml (already schema-checked by the compiler). */
export interface WindowSpec {
  readonly kind: 'allow' | 'deny';
  /** Five-field cron: when the window opens. */
  readonly schedule: string;
  /** How long it stays open after each occurrence, e.g. `8h`. */
  readonly duration: string;
  /** IANA zone the schedule is read in; UTC when absent. */
  readonly timeZone?: string;
}

export interface WindowStatus {
  readonly open: boolean;
  /** When closed: the earliest later instant at which it opens (within the search horizon), else null. Null when open. */
  readonly nextOpen: Date | null;
}

export interface WindowsOptions {
  /** How far `nextOpen` searches. Default 366 days (a yearly window is always found). */
  readonly horizonMs?: number;
  /** Bound on the steps of the `nextOpen` search (pathological schedules like a 1-minute deny every minute). Default 10,000. */
  readonly maxSteps?: number;
}

const DAY_MS = 86_400_000;
/**
 * Occurrences are re-derived by walking forward from an anchor this many `prev()` steps back.
 * cron-parser's `prev()` and `next()` disagree around DST transitions (prev() skips the
 * spring-forward occurrence that next() shifts to 03:xx, and yields the repeated fall-back
 * hour that next() fires once); walking forward from an earlier anchor makes both directions
 * agree on next()'s answer, which is what a cron daemon does.
 */
const ANCHOR_STEPS = 2;
/** Forward steps tried from a remembered occurrence before searching afresh. */
const FORWARD_STEPS = 8;

interface Memo {
  readonly at: number;
  readonly next: number;
}

class CompiledWindow {
  readonly kind: 'allow' | 'deny';
  readonly durationMs: number;
  private readonly cron: CronExpression;

  constructor(spec: WindowSpec) {
    this.kind = spec.kind;
    const duration = parseDuration(spec.duration);
    if (duration === undefined || duration <= 0) throw new RangeError(`window duration ${JSON.stringify(spec.duration)} is not a positive duration`);
    this.durationMs = duration;
    // One parsed expression per window, repositioned with reset(): parsing is the costly part.
    this.cron = CronExpressionParser.parse(spec.schedule, { tz: spec.timeZone ?? 'UTC', currentDate: new Date(0) });
  }

  /**
   * The last answer: occurrence `at` and the one after it (`next`), so any t in [at, next) is
   * answered without touching cron-parser, and a t a little later by stepping forward from
   * `next`. Only a cache: it never changes an answer, so it is not part of any persisted state.
   */
  private memo: Memo | null = null;
  /** The memo before the last one: `status` asks about now and about a later jump target in turn. */
  private older: Memo | null = null;

  /** The latest occurrence s ≤ t (epoch ms), or null when there is none. */
  latestAtOrBefore(t: number): number | null {
    if (this.older !== null && this.older.at <= t && t < this.older.next) {
      [this.memo, this.older] = [this.older, this.memo];
    }
    const memo = this.memo;
    if (memo !== null && memo.at <= t) {
      if (t < memo.next) return memo.at;
      // Walk forward from a known occurrence: the same sequence, a few steps.
      this.cron.reset(new Date(memo.next));
      let at = memo.next;
      for (let i = 0; i < FORWARD_STEPS; i++) {
        const next = step(() => this.cron.next()) ?? Number.POSITIVE_INFINITY;
        if (next > t) {
          this.remember({ at, next });
          return at;
        }
        at = next;
      }
    }
    const at = this.search(t);
    if (at !== null) {
      this.cron.reset(new Date(at));
      this.remember({ at, next: step(() => this.cron.next()) ?? Number.POSITIVE_INFINITY });
    }
    return at;
  }

  private remember(memo: Memo): void {
    this.older = this.memo;
    this.memo = memo;
  }

  private search(t: number): number | null {
    const cron = this.cron;
    cron.reset(new Date(t + 1)); // prev() is strictly before its current date
    let anchor: number | null = null;
    for (let i = 0; i < ANCHOR_STEPS; i++) {
      const previous = step(() => cron.prev());
      if (previous === null) break;
      anchor = previous;
    }
    if (anchor === null) return null;
    cron.reset(new Date(anchor));
    let latest = anchor;
    // A handful of steps: at most ANCHOR_STEPS occurrences (plus a DST-shifted one) lie in (anchor, t].
    for (;;) {
      const next = step(() => cron.next());
      if (next === null || next > t) return latest;
      latest = next;
    }
  }

  /** The first occurrence strictly after t; +Infinity when there is none. */
  firstAfter(t: number): number {
    const latest = this.latestAtOrBefore(t);
    if (latest !== null) return this.memo?.next ?? Number.POSITIVE_INFINITY;
    const cron = this.cron;
    cron.reset(new Date(t));
    for (;;) {
      const next = step(() => cron.next());
      if (next === null) return Number.POSITIVE_INFINITY;
      if (next > t) return next;
    }
  }

  /** When active at t: the end of the occurrence covering t (s + duration); otherwise null. */
  activeUntil(t: number): number | null {
    const s = this.latestAtOrBefore(t);
    return s !== null && t < s + this.durationMs ? s + this.durationMs : null;
  }
}

/**
 * One cron step; null when the schedule has no further occurrence that way (cron-parser
 * throws for schedules that never fire, like 30 February, once its search gives up).
 */
function step(move: () => { getTime(): number }): number | null {
  try {
    return move().getTime();
  } catch {
    return null;
  }
}

/**
 * Argo CD-style sync windows: each window is active at t when some occurrence s of its cron
 * schedule (read in its time zone) has s ≤ t < s + duration. Rollouts may move when no deny
 * window is active and, if any allow window exists, at least one allow window is active.
 *
 * Cost: one status is O(windows) cron steps (the latest occurrence is found with prev(), not
 * by scanning the duration); `nextOpen` jumps from transition to transition.
 */
export class Windows {
  private readonly windows: readonly CompiledWindow[];
  private readonly allows: readonly CompiledWindow[];
  private readonly denies: readonly CompiledWindow[];
  private readonly options: Required<WindowsOptions>;

  constructor(specs: readonly WindowSpec[], options: WindowsOptions = {}) {
    this.windows = specs.map((s) => new CompiledWindow(s));
    this.allows = this.windows.filter((w) => w.kind === 'allow');
    this.denies = this.windows.filter((w) => w.kind === 'deny');
    this.options = { horizonMs: options.horizonMs ?? 366 * DAY_MS, maxSteps: options.maxSteps ?? 10_000 };
  }

  /** True when there are no windows at all (always open, nothing to compute). */
  get unrestricted(): boolean {
    return this.windows.length === 0;
  }

  isOpen(now: Date): boolean {
    return this.blockedUntil(now.getTime()) === 0;
  }

  status(now: Date): WindowStatus {
    const t0 = now.getTime();
    let t = t0;
    let wait = this.blockedUntil(t);
    if (wait === 0) return { open: true, nextOpen: null };
    const limit = t0 + this.options.horizonMs;
    for (let step = 0; step < this.options.maxSteps; step++) {
      // The state can only turn open at an allow start or a deny end; `wait` is the earliest such
      // instant that can possibly be open, so jumping there skips nothing.
      t = wait;
      if (t > limit) return { open: false, nextOpen: null };
      wait = this.blockedUntil(t);
      if (wait === 0) return { open: false, nextOpen: new Date(t) };
    }
    return { open: false, nextOpen: null };
  }

  /** 0 when open at t; otherwise an instant > t before which it cannot open. */
  private blockedUntil(t: number): number {
    let denyEnd = 0;
    for (const deny of this.denies) {
      const end = deny.activeUntil(t);
      if (end !== null && end > denyEnd) denyEnd = end;
    }
    if (denyEnd > 0) return denyEnd;
    if (this.allows.length === 0) return 0;
    let nextAllow = Number.POSITIVE_INFINITY;
    for (const allow of this.allows) {
      if (allow.activeUntil(t) !== null) return 0;
      nextAllow = Math.min(nextAllow, allow.firstAfter(t));
    }
    return nextAllow;
  }
}

/** `new Windows(windows).status(now)`, for one-off questions (the controller keeps a `Windows`). */
export function windowStatus(windows: readonly WindowSpec[], now: Date, options?: WindowsOptions): WindowStatus {
  return new Windows(windows, options).status(now);
}
