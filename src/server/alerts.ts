import { redactUrl } from '../source/index.js';
import { notify } from '../lib/index.js';

/**
 * What is posted to the webhook, as JSON: `{kind, agent?, commit?, message, at}` plus fields
 * of the kind. `kind` discriminates; `at` is ISO 8601. Messages never carry tokens or keys.
 */
export type Alert =
  | {
      readonly kind: 'commit-refused';
      readonly commit: string;
      readonly code: string;
      readonly message: string;
      readonly at: string;
    }
  | {
      readonly kind: 'agent-quarantined';
      readonly agent: string;
      /** The commit being served when it was quarantined ('' before any). */
      readonly commit: string;
      /** `system` (drift detection) or the operator. */
      readonly actor: string;
      readonly message: string;
      readonly at: string;
    }
  | {
      readonly kind: 'unauthorized-attempt';
      readonly reason: string;
      readonly agent?: string;
      /** Attempts with this reason this alert stands for (rate limiting folds repeats into one). */
      readonly count: number;
      readonly message: string;
      readonly at: string;
    }
  | {
      readonly kind: 'rollout-halted';
      readonly commit: string;
      /** The wave whose rejections exceeded `maxNackRatio`. */
      readonly wave: string;
      readonly rejected: number;
      readonly connected: number;
      readonly message: string;
      readonly at: string;
    }
  | {
      readonly kind: 'fleet-store-unavailable';
      /** When the store was first seen out of reach (ISO 8601). */
      readonly since: string;
      readonly message: string;
      readonly at: string;
    }
  | {
      readonly kind: 'cert-expiring';
      readonly agent: string;
      readonly serial: string;
      readonly expiresAt: string;
      readonly message: string;
      readonly at: string;
    };

export type AlertKind = Alert['kind'];

/** One role: hand an alert over. Never blocks and never throws. */
export interface AlertSink {
  post(alert: Alert): void;
}

export interface WebhookAlerterOptions {
  /** http(s) URL; may carry credentials (only its redacted form is ever reported). */
  readonly url: string;
  /** Alerts waiting beyond this many drop the oldest. Default 100. */
  readonly maxQueue?: number;
  /** Attempts per alert, the first included. Default 6. */
  readonly maxAttempts?: number;
  /** First retry delay; doubles each attempt, with jitter, up to `maxDelayMs`. Default 1 s. */
  readonly baseDelayMs?: number;
  readonly maxDelayMs?: number;
  /** Per request. Default 5 s. */
  readonly timeoutMs?: number;
  /** Reports delivery problems (for the log). Must not throw. */
  readonly onProblem?: (event: {
    readonly kind: 'dropped' | 'failed' | 'gave-up';
    readonly alert: Alert;
    readonly detail: string;
    readonly webhook: string;
  }) => void;
  readonly fetch?: typeof globalThis.fetch;
}

/**
 * Posts alerts to a webhook from a bounded in-memory queue, one at a time, retrying with
 * exponential backoff and jitter. Delivery to agents never waits for it: `post` only queues.
 * 4xx answers (but 408 and 429) are not retried — the receiver will not change its mind.
 */
export class WebhookAlerter implements AlertSink {
  private readonly options: Required<Omit<WebhookAlerterOptions, 'onProblem'>> & Pick<WebhookAlerterOptions, 'onProblem'>;
  private readonly display: string;
  private readonly queue: Alert[] = [];
  private running: Promise<void> | null = null;
  private closed = false;
  private readonly abort = new AbortController();
  private sleeping: { timer: NodeJS.Timeout; wake: () => void } | null = null;

  constructor(options: WebhookAlerterOptions) {
    this.options = {
      url: options.url,
      maxQueue: options.maxQueue ?? 100,
      maxAttempts: options.maxAttempts ?? 6,
      baseDelayMs: options.baseDelayMs ?? 1_000,
      maxDelayMs: options.maxDelayMs ?? 60_000,
      timeoutMs: options.timeoutMs ?? 5_000,
      onProblem: options.onProblem,
      fetch: options.fetch ?? globalThis.fetch,
    };
    this.display = redactUrl(options.url);
  }

  post(alert: Alert): void {
    if (this.closed) return;
    if (this.queue.length >= this.options.maxQueue) {
      const dropped = this.queue.shift() as Alert;
      this.problem('dropped', dropped, `queue full (${this.options.maxQueue}); oldest alert dropped`);
    }
    this.queue.push(alert);
    this.running ??= this.drain().finally(() => {
      this.running = null;
    });
  }

  /** Alerts not delivered yet. */
  pending(): number {
    return this.queue.length + (this.running === null ? 0 : 1);
  }

  /** Gives queued alerts up to `drainMs` to go out, then abandons the rest. */
  async close(drainMs = 2_000): Promise<void> {
    this.closed = true;
    if (this.running !== null) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.running, new Promise<void>((resolve) => (timer = setTimeout(resolve, drainMs)))]);
      clearTimeout(timer);
    }
    this.queue.length = 0;
    this.abort.abort();
    if (this.sleeping !== null) {
      clearTimeout(this.sleeping.timer);
      this.sleeping.wake();
    }
    await this.running;
  }

  private async drain(): Promise<void> {
    for (let alert = this.queue.shift(); alert !== undefined; alert = this.queue.shift()) {
      await this.deliver(alert);
    }
  }

  private async deliver(alert: Alert): Promise<void> {
    const body = JSON.stringify(alert);
    for (let attempt = 1; attempt <= this.options.maxAttempts; attempt += 1) {
      if (this.abort.signal.aborted) return;
      let detail: string;
      let retry = true;
      try {
        const response = await this.options.fetch(this.options.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
          signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.options.timeoutMs)]),
        });
        await response.body?.cancel();
        if (response.ok) return;
        detail = `HTTP ${response.status}`;
        retry = response.status >= 500 || response.status === 408 || response.status === 429;
      } catch (err) {
        // fetch errors may echo the URL; say only what kind of failure it was.
        detail = err instanceof Error ? err.name : 'request failed';
      }
      if (!retry || attempt === this.options.maxAttempts) {
        this.problem('gave-up', alert, `${detail} after ${attempt} attempt${attempt === 1 ? '' : 's'}`);
        return;
      }
      this.problem('failed', alert, `${detail}; retrying`);
      await this.sleep(this.backoff(attempt));
    }
  }

  private backoff(attempt: number): number {
    const ceiling = Math.min(this.options.maxDelayMs, this.options.baseDelayMs * 2 ** (attempt - 1));
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        this.sleeping = null;
        resolve();
      };
      const timer = setTimeout(wake, ms);
      timer.unref();
      this.sleeping = { timer, wake };
    });
  }

  private problem(kind: 'dropped' | 'failed' | 'gave-up', alert: Alert, detail: string): void {
    // Observers must not break alert delivery.
    notify(() => this.options.onProblem?.({ kind, alert, detail, webhook: this.display }));
  }
}

/** An alert as the ring keeps it: `id` increases by one per alert posted (it orders them and names them to the dashboard). */
export type RecentAlert = Alert & { readonly id: number };

/**
 * The most recent alerts, in memory (`GET /api/v1/alerts`, the dashboard): bounded, so a
 * flood costs at most `capacity` entries; the oldest fall out. Lost on restart by design —
 * the webhook (and the audit log, for quarantines and operator actions) is the durable record.
 */
export class AlertRing implements AlertSink {
  private readonly entries: RecentAlert[] = [];
  private nextId = 1;

  /** `capacity` defaults to 100. */
  constructor(private readonly capacity = 100) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError('AlertRing capacity must be a positive integer');
  }

  post(alert: Alert): void {
    this.entries.push(Object.freeze({ ...alert, id: this.nextId++ }));
    if (this.entries.length > this.capacity) this.entries.shift();
  }

  /** Newest first, at most `limit`. */
  recent(limit = this.capacity): readonly RecentAlert[] {
    return limit < 1 ? [] : this.entries.slice(-limit).reverse();
  }
}
