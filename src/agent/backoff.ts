/**
 * Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And
 * Jitter"): the n-th delay is uniform in [0, min(max, initial·2^n)]. Full jitter spreads a
 * fleet reconnecting after a server restart over the whole window instead of in waves —
 * every mTLS handshake costs the server ~1 ms of CPU (docs/architecture.md).
 */
export interface BackoffOptions {
  /** Default 500 ms. */
  readonly initialMs?: number;
  /** Default 30 s. */
  readonly maxMs?: number;
  /** In [0, 1). Default `Math.random`. */
  readonly random?: () => number;
}

export class Backoff {
  private readonly options: Required<BackoffOptions>;
  private attempt = 0;

  constructor(options: BackoffOptions = {}) {
    this.options = { initialMs: options.initialMs ?? 500, maxMs: options.maxMs ?? 30_000, random: options.random ?? Math.random };
    if (!(this.options.initialMs > 0) || !(this.options.maxMs >= this.options.initialMs)) {
      throw new RangeError('backoff needs 0 < initialMs <= maxMs');
    }
  }

  /** The delay before the next attempt; each call widens the window until it reaches maxMs. */
  next(): number {
    const ceiling = Math.min(this.options.maxMs, this.options.initialMs * 2 ** Math.min(this.attempt, 30));
    this.attempt += 1;
    return Math.floor(this.options.random() * ceiling);
  }

  /** After a healthy connection: the next failure starts from the smallest window again. */
  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}

/** Resolves after `ms`, or at once when `signal` aborts (never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted === true) {
      resolve();
      return;
    }
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    // setTimeout fires at once for delays beyond 2^31-1 ms; callers loop and re-compute.
    const timer = setTimeout(done, Math.min(Math.max(0, ms), 2 ** 31 - 1));
    signal?.addEventListener('abort', done, { once: true });
  });
}
