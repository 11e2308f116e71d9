import type { AgentId } from '../domain/types.js';
import type { UnauthorizedReason } from '../transport/index.js';
import type { AlertSink } from './alerts.js';
import type { AgentStatus } from '../fleet/index.js';

export interface UnauthorizedAlertsOptions {
  readonly sink: AlertSink;
  /** At most one alert per reason per window. Default 1 minute. */
  readonly windowMs?: number;
  readonly now?: () => Date;
}

interface Window {
  /** When the last alert for the reason went out. */
  sentAt: number;
  /** Attempts since, not alerted yet. */
  held: number;
  lastAgent: AgentId | undefined;
  lastMessage: string;
  timer: NodeJS.Timeout | null;
}

/**
 * Unauthorized config load attempts, as alerts an on-call human can bear: the first attempt of
 * a reason alerts at once; further ones within the window are counted and sent as one alert
 * (with `count`) when the window ends. A flood of forged certificates is one page per minute
 * per reason, and no attempt goes uncounted.
 */
export class UnauthorizedAlerts {
  private readonly options: Required<UnauthorizedAlertsOptions>;
  private readonly windows = new Map<UnauthorizedReason, Window>();
  private closed = false;

  constructor(options: UnauthorizedAlertsOptions) {
    this.options = { sink: options.sink, windowMs: options.windowMs ?? 60_000, now: options.now ?? (() => new Date()) };
  }

  /** A TransportHooks.onUnauthorized observer. */
  readonly onUnauthorized = (reason: UnauthorizedReason, detail: { readonly agentId?: AgentId; readonly message: string }): void => {
    if (this.closed) return;
    const now = this.options.now().getTime();
    const window = this.windows.get(reason);
    if (window === undefined || (window.timer === null && now - window.sentAt >= this.options.windowMs)) {
      this.windows.set(reason, { sentAt: now, held: 0, lastAgent: undefined, lastMessage: '', timer: null });
      this.post(reason, 1, detail.agentId, detail.message);
      return;
    }
    window.held += 1;
    window.lastAgent = detail.agentId;
    window.lastMessage = detail.message;
    if (window.timer === null) {
      const wait = Math.max(0, window.sentAt + this.options.windowMs - now);
      window.timer = setTimeout(() => this.release(reason), wait);
      window.timer.unref();
    }
  };

  /** Sends what is held (so a shutdown loses no count) and stops. */
  close(): void {
    for (const reason of [...this.windows.keys()]) this.release(reason);
    this.closed = true;
  }

  private release(reason: UnauthorizedReason): void {
    const window = this.windows.get(reason);
    if (window === undefined) return;
    if (window.timer !== null) clearTimeout(window.timer);
    window.timer = null;
    if (window.held === 0) return;
    const count = window.held;
    window.held = 0;
    window.sentAt = this.options.now().getTime();
    this.post(reason, count, window.lastAgent, window.lastMessage);
  }

  private post(reason: UnauthorizedReason, count: number, agent: AgentId | undefined, message: string): void {
    this.options.sink.post({
      kind: 'unauthorized-attempt',
      reason,
      ...(agent === undefined ? {} : { agent }),
      count,
      message: count === 1 ? message : `${count} attempts refused (${reason}); last: ${message}`,
      at: this.options.now().toISOString(),
    });
  }
}

export interface CertExpiryAlertsOptions {
  readonly sink: AlertSink;
  readonly agents: () => readonly AgentStatus[];
  /** Lifetime of agent certificates (the server issues them all with this one). */
  readonly certificateTtlMs: number;
  /** Alert when this share of the lifetime or less remains. Default 0.2. */
  readonly remainingShare?: number;
  readonly now?: () => Date;
}

/**
 * Alerts once per certificate (by serial) when an agent's certificate is within 20 % of its
 * lifetime of expiry — renewal should have happened by then. Checked by `check()` on a timer
 * the server runs. The once-per-certificate memory is in-process: a restart may alert a
 * certificate again, once.
 */
export class CertExpiryAlerts {
  private readonly options: Required<CertExpiryAlertsOptions>;
  private readonly alerted = new Set<string>();

  constructor(options: CertExpiryAlertsOptions) {
    this.options = { remainingShare: 0.2, now: () => new Date(), ...options };
  }

  /** Returns the agents alerted now. */
  check(): AgentId[] {
    const now = this.options.now().getTime();
    const threshold = this.options.certificateTtlMs * this.options.remainingShare;
    const alerted: AgentId[] = [];
    for (const agent of this.options.agents()) {
      if (agent.certExpiry === null) continue;
      const key = agent.certSerial ?? `${agent.id}@${agent.certExpiry.toISOString()}`;
      const remaining = agent.certExpiry.getTime() - now;
      if (remaining > threshold || this.alerted.has(key)) continue;
      this.alerted.add(key);
      alerted.push(agent.id);
      this.options.sink.post({
        kind: 'cert-expiring',
        agent: agent.id,
        serial: agent.certSerial ?? '',
        expiresAt: agent.certExpiry.toISOString(),
        message:
          remaining <= 0
            ? `the certificate of ${agent.id} expired at ${agent.certExpiry.toISOString()}`
            : `the certificate of ${agent.id} expires at ${agent.certExpiry.toISOString()} and was not renewed`,
        at: new Date(now).toISOString(),
      });
    }
    return alerted;
  }
}
