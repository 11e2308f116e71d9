import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { AgentId, CommitSha } from '../domain/types.js';
import { AGENT_STATES, type AgentState, type AgentStatus } from '../fleet/index.js';
import type { RolloutState, RolloutStatus } from '../rollout/index.js';
import { CONNECT_FAILURES, type TransportHooks, type UnauthorizedReason } from '../transport/index.js';
import type { BackendHooks } from './backend.js';
import { DEFAULT_DISCONNECTED_AFTER_MS, type LiveFleet } from './fleet.js';
import type { ReconcileHooks } from './reconcile.js';

export interface ServerMetricsOptions {
  /** Where fleet gauges are read at scrape time. */
  readonly fleet: Pick<LiveFleet, 'list'>;
  /** Agents with an open stream, read at scrape time. */
  readonly connectedAgents: () => number;
  /** The rollout controller's status, read at scrape time. Without it the rollout gauges stay empty. */
  readonly rollout?: () => RolloutStatus;
  /** The served commit and the refused head newer than it (null: none), read at scrape time. */
  readonly source?: () => { readonly accepted: string | null; readonly refused: string | null };
  /** `notAfter` of the server's gRPC certificate and of the enrollment CA (the data directory's). */
  readonly certificates?: { readonly server: Date; readonly ca: Date };
  /**
   * When the server first saw a commit it accepted in an earlier run (convergence after a
   * restart is measured from there); undefined: unknown, that commit's convergence is not observed.
   */
  readonly acceptedAt?: (commit: CommitSha) => Date | undefined;
  /** An agent with no stream that has not been seen this long is out of contact. Default: the fleet's 2 minutes. */
  readonly disconnectedAfterMs?: number;
  /** Waves beyond this many are summed under `wave="_other"` in `meshcfg_rollout_wave_agents`. Default 20. */
  readonly maxWaveSeries?: number;
  readonly now?: () => Date;
}

/** Why an admin API request was refused (AdminServer's `AdminRefusalReason`); kept apart from agents' unauthorized attempts. */
export type AdminUnauthorizedReason = 'missing-token' | 'bad-token' | 'revoked-token' | 'expired-token' | 'forbidden-role';

/**
 * Every label value known up front, so each series exists from the first scrape (`rate()` and
 * dashboards find it before the first event). Records, not arrays: the compiler insists that
 * a reason added to a union is added here too.
 */
const UNAUTHORIZED_REASONS: Readonly<Record<UnauthorizedReason, true>> = {
  'no-client-certificate': true,
  'bad-identity': true,
  'unknown-agent': true,
  revoked: true,
  'replaced-certificate': true,
  'expired-certificate': true,
  'untrusted-certificate': true,
  'identity-mismatch': true,
  'bad-token': true,
  'expired-token': true,
  'reused-token': true,
  'bad-csr': true,
  'malformed-commit': true,
};
const ADMIN_UNAUTHORIZED_REASONS: Readonly<Record<AdminUnauthorizedReason, true>> = {
  'missing-token': true,
  'bad-token': true,
  'revoked-token': true,
  'expired-token': true,
  'forbidden-role': true,
};
const ROLLOUT_STATES: Readonly<Record<RolloutState, true>> = {
  'waiting-window': true,
  progressing: true,
  paused: true,
  halted: true,
  complete: true,
  aborted: true,
};

/** The cumulative windows of `meshcfg_agents_certificate_expiring{within}`. */
export const CERTIFICATE_EXPIRY_WINDOWS: ReadonlyArray<readonly [within: string, ms: number]> = [
  ['1h', 3_600_000],
  ['24h', 86_400_000],
  ['7d', 7 * 86_400_000],
];

/** The per-wave counts of `meshcfg_rollout_wave_agents{state}`: those of `GET /api/v1/rollout`. */
const WAVE_COUNTS = ['applied', 'rejected', 'pending'] as const;

/** The label value that sums the waves beyond `maxWaveSeries` (wave names come from the repository: unbounded). */
export const OTHER_WAVES = '_other';

/** From seconds (a fast canary) to a day (bakes and deployment windows). */
const CONVERGENCE_BUCKETS = [0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21_600, 86_400];

/**
 * prom-client's default collectors also export sums as gauges named `*_total`, which
 * `promtool check metrics` refuses (only counters end in `_total`); the same numbers are in
 * `nodejs_active_handles{type}` and friends.
 */
const DEFAULT_METRICS_DROPPED = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/** The commit whose convergence is being measured: the last one accepted. */
interface Converging {
  readonly acceptedAt: number;
  /** Each agent's bundle digest at that commit. */
  readonly digests: ReadonlyMap<AgentId, string>;
  /** Agents already observed (each agent converges on a commit once). */
  readonly converged: Set<AgentId>;
}

/**
 * The server's Prometheus metrics, in a registry of its own (two servers in one process, as
 * in tests, never share counters). Fed only through hooks and read-only views at scrape time:
 * the components do not know it.
 */
export class ServerMetrics {
  readonly registry = new Registry();
  private readonly handshakes: Counter<'result'>;
  private readonly connectFailures: Counter<'reason'>;
  private readonly unauthorized: Counter<'reason'>;
  private readonly adminUnauthorized: Counter<'reason'>;
  private readonly commits: Counter<'result'>;
  private readonly acks: Counter<'status'>;
  private readonly generation: Gauge;
  private readonly convergence: Histogram;
  private readonly now: () => Date;
  private readonly fleet: Pick<LiveFleet, 'list'>;
  private readonly acceptedAt: (commit: CommitSha) => Date | undefined;
  private converging: Converging | null = null;

  constructor(options: ServerMetricsOptions) {
    const registers = [this.registry];
    const now = (this.now = options.now ?? (() => new Date()));
    this.fleet = options.fleet;
    this.acceptedAt = options.acceptedAt ?? (() => undefined);
    const disconnectedAfterMs = options.disconnectedAfterMs ?? DEFAULT_DISCONNECTED_AFTER_MS;
    const maxWaves = options.maxWaveSeries ?? 20;

    this.handshakes = new Counter({
      name: 'meshcfg_tls_handshakes_total',
      help: 'TLS handshakes on the gRPC port, by result (ok, failed).',
      labelNames: ['result'],
      registers,
    });
    this.connectFailures = new Counter({
      name: 'meshcfg_connect_failures_total',
      help:
        'Connections to the gRPC port that failed before becoming an agent stream, by reason (handshake-timeout, tls-error, no-h2, ' +
        'refused-certificate, queue-timeout, overloaded, hello-timeout).',
      labelNames: ['reason'],
      registers,
    });
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
    this.convergence = new Histogram({
      name: 'meshcfg_convergence_seconds',
      help:
        'From a commit being accepted to an agent’s APPLIED ack of its bundle at that commit being recorded; ' +
        'agents of later rollout waves converge later.',
      buckets: CONVERGENCE_BUCKETS,
      registers,
    });
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
    new Gauge({
      name: 'meshcfg_quarantined_agents',
      help: 'Inventory agents in quarantine (sent the baseline until approved).',
      registers,
      collect() {
        this.set(options.fleet.list().filter((a) => a.quarantine !== null).length);
      },
    });
    new Gauge({
      name: 'meshcfg_config_mismatch_agents',
      help: 'Agents in contact (an open stream, or seen within the disconnected timeout) whose active digest differs from their desired one.',
      registers,
      collect() {
        const t = now().getTime();
        const inContact = (a: AgentStatus): boolean => a.connected || (a.lastSeen !== null && t - a.lastSeen.getTime() <= disconnectedAfterMs);
        this.set(options.fleet.list().filter((a) => a.desired !== null && inContact(a) && a.active?.digest !== a.desired.digest).length);
      },
    });

    // Certificates. The agent label is bounded by the inventory: the one place an agent id is a label.
    new Gauge({
      name: 'meshcfg_agent_certificate_expiry_timestamp_seconds',
      help: 'When each enrolled inventory agent’s current certificate expires, in seconds since the epoch.',
      labelNames: ['agent'],
      registers,
      collect() {
        this.reset();
        for (const a of options.fleet.list()) if (a.certExpiry !== null) this.set({ agent: a.id }, a.certExpiry.getTime() / 1000);
      },
    });
    new Gauge({
      name: 'meshcfg_agents_certificate_expiring',
      help: 'Inventory agents whose certificate expires within the window (cumulative: 1h ⊂ 24h ⊂ 7d; expired ones count in every window).',
      labelNames: ['within'],
      registers,
      collect() {
        const t = now().getTime();
        const expiries = options.fleet.list().flatMap((a) => (a.certExpiry === null ? [] : [a.certExpiry.getTime() - t]));
        for (const [within, ms] of CERTIFICATE_EXPIRY_WINDOWS) this.set({ within }, expiries.filter((left) => left <= ms).length);
      },
    });
    if (options.certificates !== undefined) {
      const serverHelp = 'When the server’s gRPC certificate expires, in seconds since the epoch.';
      new Gauge({ name: 'meshcfg_server_certificate_expiry_timestamp_seconds', help: serverHelp, registers }).set(
        options.certificates.server.getTime() / 1000,
      );
      const caHelp = 'When the enrollment CA certificate expires, in seconds since the epoch.';
      new Gauge({ name: 'meshcfg_ca_certificate_expiry_timestamp_seconds', help: caHelp, registers }).set(
        options.certificates.ca.getTime() / 1000,
      );
    }

    const { rollout, source } = options;
    if (rollout !== undefined) {
      new Gauge({
        name: 'meshcfg_rollout_state',
        help: 'The rollout’s state: 1 for the current one, 0 for the others.',
        labelNames: ['state'],
        registers,
        collect() {
          const current = rollout().state;
          for (const state of Object.keys(ROLLOUT_STATES)) this.set({ state }, state === current ? 1 : 0);
        },
      });
      new Gauge({
        name: 'meshcfg_rollout_wave_agents',
        help:
          'Agents of each wave of the current rollout that applied, rejected or have not yet answered (connected) its commit; ' +
          `waves after the first ${maxWaves} are summed under wave="${OTHER_WAVES}".`,
        labelNames: ['wave', 'state'],
        registers,
        collect() {
          this.reset();
          const sums = new Map<string, Record<(typeof WAVE_COUNTS)[number], number>>();
          rollout().waves.forEach((w, i) => {
            const wave = i < maxWaves ? w.name : OTHER_WAVES;
            const sum = sums.get(wave) ?? { applied: 0, rejected: 0, pending: 0 };
            for (const state of WAVE_COUNTS) sum[state] += w[state];
            sums.set(wave, sum);
          });
          for (const [wave, sum] of sums) for (const state of WAVE_COUNTS) this.set({ wave, state }, sum[state]);
        },
      });
    }
    if (source !== undefined) {
      new Gauge({
        name: 'meshcfg_source_info',
        help: 'Always 1: the served commit and the refused head newer than it ("" for none). One series at a time.',
        labelNames: ['accepted_commit', 'refused_commit'],
        registers,
        collect() {
          const { accepted, refused } = source();
          this.reset();
          this.set({ accepted_commit: accepted ?? '', refused_commit: refused ?? '' }, 1);
        },
      });
    }

    collectDefaultMetrics({ register: this.registry });
    for (const name of DEFAULT_METRICS_DROPPED) this.registry.removeSingleMetric(name);

    // Series that exist from the start, so rate() and absent() work before the first event.
    for (const result of ['ok', 'failed']) this.handshakes.inc({ result }, 0);
    for (const reason of CONNECT_FAILURES) this.connectFailures.inc({ reason }, 0);
    for (const result of ['accepted', 'refused']) this.commits.inc({ result }, 0);
    for (const status of ['applied', 'rejected', 'stale']) this.acks.inc({ status }, 0);
    for (const reason of Object.keys(UNAUTHORIZED_REASONS)) this.unauthorized.inc({ reason }, 0);
    for (const reason of Object.keys(ADMIN_UNAUTHORIZED_REASONS)) this.adminUnauthorized.inc({ reason }, 0);
  }

  readonly transportHooks: TransportHooks = {
    onHandshake: (result) => this.handshakes.inc({ result }),
    onConnectFailed: (reason) => this.connectFailures.inc({ reason }),
    onUnauthorized: (reason: UnauthorizedReason) => this.unauthorized.inc({ reason }),
  };

  readonly backendHooks: BackendHooks = {
    onAck: ({ agentId, ack, outcome, delivery }) => {
      this.acks.inc({ status: outcome.kind === 'stale' ? 'stale' : ack.status === 'APPLIED' ? 'applied' : 'rejected' });
      const c = this.converging;
      if (c === null || outcome.kind !== 'recorded' || ack.status !== 'APPLIED' || delivery?.baseline === true) return;
      if (c.converged.has(agentId) || c.digests.get(agentId) !== ack.digest) return;
      c.converged.add(agentId);
      this.convergence.observe(Math.max(0, this.now().getTime() - c.acceptedAt) / 1000);
    },
  };

  readonly reconcileHooks: ReconcileHooks = {
    onPublished: ({ reason, snapshot, compilation }) => {
      if (reason === 'commit') this.commits.inc({ result: 'accepted' });
      this.generation.set(snapshot.generation);
      if (reason === 'commit' || reason === 'restore') this.track(reason, compilation.commit.sha, compilation.agents);
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

  /**
   * Starts measuring convergence on a newly accepted commit (the previous one's is over: agents
   * not reached by then never converged on it). After a restart the clock is the earlier run's
   * first sighting, and agents already running their bundle were observed by that run.
   */
  private track(
    reason: 'commit' | 'restore',
    commit: CommitSha,
    agents: ReadonlyArray<{ readonly id: AgentId; readonly bundle: { readonly digest: string } }>,
  ): void {
    const acceptedAt = reason === 'commit' ? this.now() : this.acceptedAt(commit);
    if (acceptedAt === undefined) {
      this.converging = null;
      return;
    }
    const digests = new Map(agents.map((a) => [a.id, a.bundle.digest]));
    const converged = new Set<AgentId>();
    if (reason === 'restore') for (const a of this.fleet.list()) if (a.active !== null && a.active.digest === digests.get(a.id)) converged.add(a.id);
    this.converging = { acceptedAt: acceptedAt.getTime(), digests, converged };
  }
}
