import type { AlertSink } from './alerts.js';

export interface StoreOutageOptions {
  /** Is the fleet store answering? (`FleetCache.storeReachable`: false from a write failing with STORE_UNAVAILABLE until one succeeds.) */
  readonly reachable: () => boolean;
  /** How long the store may be out of reach before this replica reports not ready and alerts. */
  readonly graceMs: number;
  readonly sink: AlertSink;
  readonly now: () => Date;
}

/** Default grace before an unreachable fleet store makes `/readyz` answer 503 and posts an alert. */
export const DEFAULT_STORE_OUTAGE_GRACE_MS = 30_000;

/**
 * A fleet store out of reach (PostgreSQL down): agents keep being served the last accepted
 * config and writes wait in the fleet cache, so a short outage changes nothing visible. Past
 * the grace period the replica reports not ready (a load balancer sends agents elsewhere) and
 * one `fleet-store-unavailable` alert is posted per outage; both clear when the store answers.
 */
export class StoreOutage {
  private since: number | null = null;
  private alerted = false;

  constructor(private readonly options: StoreOutageOptions) {}

  /** Notes the store's state; posts the outage's alert once the grace period is over. */
  check(): void {
    const now = this.options.now().getTime();
    if (this.options.reachable()) {
      this.since = null;
      this.alerted = false;
      return;
    }
    this.since ??= now;
    if (this.alerted || now - this.since < this.options.graceMs) return;
    this.alerted = true;
    const seconds = Math.round((now - this.since) / 1000);
    this.options.sink.post({
      kind: 'fleet-store-unavailable',
      since: new Date(this.since).toISOString(),
      message: `the fleet store has been out of reach for ${seconds} s: agents keep their config, state changes are refused and writes wait`,
      at: new Date(now).toISOString(),
    });
  }

  /** False once the store has been out of reach for the grace period. */
  ready(): boolean {
    this.check();
    return this.since === null || this.options.now().getTime() - this.since < this.options.graceMs;
  }
}
