import { AlertRing, WebhookAlerter, type AlertSink, type WebhookAlerterOptions } from './alerts.js';
import type { ReconcileHooks } from './reconcile.js';

/** How many recent alerts `GET /api/v1/alerts` keeps (in memory). */
export const RECENT_ALERTS = 100;

/** Where the server's alerts go: always the in-memory ring, and the webhook when one is configured. */
export interface Alerting {
  /** The ring `GET /api/v1/alerts` and the dashboard read. */
  readonly recent: AlertRing;
  readonly sink: AlertSink;
  /** Drains the webhook queue (bounded). */
  close(): Promise<void>;
}

export function openAlerting(options: {
  readonly webhook: string | null;
  readonly onProblem?: WebhookAlerterOptions['onProblem'];
}): Alerting {
  const recent = new AlertRing(RECENT_ALERTS);
  if (options.webhook === null) return { recent, sink: recent, close: () => Promise.resolve() };
  const { onProblem } = options;
  const alerter = new WebhookAlerter({ url: options.webhook, ...(onProblem === undefined ? {} : { onProblem }) });
  return {
    recent,
    sink: { post: (alert) => (recent.post(alert), alerter.post(alert)) },
    close: () => alerter.close(),
  };
}

/** A refused commit raises `commit-refused`. */
export function refusedCommitAlerts(sink: AlertSink): ReconcileHooks {
  return {
    onRefused: (r) => sink.post({ kind: 'commit-refused', commit: r.commit, code: r.code, message: r.message, at: r.at.toISOString() }),
  };
}
