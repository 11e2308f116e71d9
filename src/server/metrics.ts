import { Counter, Gauge, Registry } from 'prom-client';
import type { TransportHooks, UnauthorizedReason } from '../transport/index.js';
import type { BackendHooks } from './backend.js';
import { AGENT_STATES, type AgentState } from '../fleet/index.js';
import type { LiveFleet } from './fleet.js';
import type { ReconcileHooks } from './reconcile.js';

export interface ServerMetricsOptions {
  /** Where fleet gauges are read at scrape time. */
  readonly fleet: Pick<LiveFleet, 'list'>;
  /** Agents with an open stream, read at scrape time. */
  readonly connectedAgents: () => number;
}

/** Why an admin API request was refused; kept apart from agents' unauthorized config loads. */
/** Why an admin API request was refused (AdminServer's `AdminRefusalReason`). */
export type AdminUnauthorizedReason = 'missing-token' | 'bad-token' | 'revoked-token' | 'expired-token' | 'forbidden-role';

/**
 * The server's Prometheus metrics, in a registry of its own (two servers in one process, as
 * in tests, never share counters). Fed only through hooks: the components do not know it.
 */
export class ServerMetrics {
  readonly registry = new Registry();
  private readonly handshakes: Counter<'result'>;
  private readonly unauthorized: Counter<'reason'>;
  private readonly adminUnauthorized: Counter<'reason'>;
  private readonly commits: Counter<'result'>;
  private readonly acks: Counter<'status'>;
  private readonly generation: Gauge;

  constructor(options: ServerMetricsOptions) {
    const registers = [this.registry];
    this.handshakes = new Counter({ name: 'meshcfg_tls_handshakes_total', help: 'TLS handshakes on the gRPC port, by result (ok, failed).', labelNames: ['result'], registers });
    this.unauthorized = new Counter({
      name: 'meshcfg_unauthorized_attempts_total',
      help: 'Refused config loads, enrollments and renewals by agents or impostors, by reason.',
      labelNames: ['reason'],
      registers,
    });
    this.adminUnauthorized = new Counter({
      name: 'meshcfg_admin_unauthorized_requests_total',
      help: 'Admin API requests refused: a missing, wrong, revoked or expired bearer token, or a token whose role lacks the right.',
      labelNames: ['reason'],
      registers,
    });
    this.commits = new Counter({ name: 'meshcfg_commits_total', help: 'Commits judged, by result (accepted, refused).', labelNames: ['result'], registers });
    this.acks = new Counter({ name: 'meshcfg_acks_total', help: 'Acks from agents, by status (applied, rejected, stale).', labelNames: ['status'], registers });
    this.generation = new Gauge({ name: 'meshcfg_generation', help: 'The generation being served (0 before any).', registers });
    new Gauge({
      name: 'meshcfg_connected_agents',
      help: 'Agents with an open stream.',
      registers,
      collect() {
        this.set(options.connectedAgents());
      },
    });
    new Gauge({
      name: 'meshcfg_agents',
      help: 'Inventory agents by state (SYNCED, PENDING, STALE, NACKED, QUARANTINED, DISCONNECTED).',
      labelNames: ['state'],
      registers,
      collect() {
        const counts = new Map<AgentState, number>(AGENT_STATES.map((s) => [s, 0]));
        for (const agent of options.fleet.list()) counts.set(agent.state, (counts.get(agent.state) ?? 0) + 1);
        for (const [state, n] of counts) this.set({ state }, n);
      },
    });
    // Series that exist from the start, so rate() and absent() work before the first event.
    for (const result of ['ok', 'failed']) this.handshakes.inc({ result }, 0);
    for (const result of ['accepted', 'refused']) this.commits.inc({ result }, 0);
    for (const status of ['applied', 'rejected', 'stale']) this.acks.inc({ status }, 0);
  }

  readonly transportHooks: TransportHooks = {
    onHandshake: (result) => this.handshakes.inc({ result }),
    onUnauthorized: (reason: UnauthorizedReason) => this.unauthorized.inc({ reason }),
  };

  readonly backendHooks: BackendHooks = {
    onAck: ({ ack, outcome }) => this.acks.inc({ status: outcome.kind === 'stale' ? 'stale' : ack.status === 'APPLIED' ? 'applied' : 'rejected' }),
  };

  readonly reconcileHooks: ReconcileHooks = {
    onPublished: ({ reason, snapshot }) => {
      if (reason === 'commit') this.commits.inc({ result: 'accepted' });
      this.generation.set(snapshot.generation);
    },
    onRefused: () => this.commits.inc({ result: 'refused' }),
  };

  adminUnauthorizedRequest(reason: AdminUnauthorizedReason): void {
    this.adminUnauthorized.inc({ reason });
  }

  /** Prometheus text exposition. */
  async text(): Promise<{ readonly contentType: string; readonly body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
