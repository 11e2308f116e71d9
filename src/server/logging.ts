import type { Logger } from 'pino';
import { errorMessage } from '../domain/errors.js';
import type { AgentId } from '../domain/types.js';
import { describeSkipped, redactUrl, type FetchEvent } from '../source/index.js';
import type { ConnectFailure, TransportHooks } from '../transport/index.js';
import type { BackendHooks } from './backend.js';
import type { ReconcileHooks } from './reconcile.js';
import type { AdminRefusalReason, AdminServerOptions } from '../admin/index.js';
import type { DataDirChange } from '../pki/index.js';
import type { AgentCertificatesHooks } from './certificates.js';
import type { ServerConfig } from './config.js';
import type { OperatorActionHooks } from './operator-actions.js';
import type { QuarantineHooks } from './quarantine.js';
import type { RolloutServiceHooks } from './rollout.js';
import { assertNever, errnoCode } from '../lib/index.js';
import type { PostgresStoreEvent } from '../fleet/index.js';

/**
 * Log lines for the server's events, as hooks. Contract: nothing here logs a token, a key, a
 * certificate body or a URL with credentials (repository and webhook URLs are redacted upstream).
 */
export function reconcileLogHooks(logger: Logger): ReconcileHooks {
  return {
    onPublished: ({ reason, snapshot, compilation }) => {
      const fields = {
        event: 'published',
        reason,
        commit: snapshot.commit,
        generation: snapshot.generation,
        agents: snapshot.deliveries.size,
        expiresAt: snapshot.expiresAt?.toISOString() ?? null,
      };
      // Once per commit judged (not on every re-signing): what was in the tree but not read.
      if (reason === 'commit' || reason === 'restore') {
        for (const entry of compilation.skipped) {
          logger.warn({ event: 'entry-skipped', commit: snapshot.commit, kind: entry.kind, path: entry.path }, describeSkipped(entry));
        }
      }
      switch (reason) {
        case 'commit': {
          const signer = compilation.commit.trust.kind === 'verified' ? compilation.commit.trust.signer : null;
          logger.info({ ...fields, signer }, 'commit accepted and published');
          return;
        }
        case 'restore':
          logger.info(fields, 'accepted commit of the previous run republished');
          return;
        case 'refresh':
          logger.info(fields, 'bundles re-signed before expiry');
          return;
        case 'fleet':
          logger.info(fields, 'republished for a quarantine or an approval');
          return;
        case 'follow':
          logger.info(fields, 'serving the generation the leading replica signed');
          return;
        default: {
          const never: never = reason;
          throw new Error(`unexpected reason ${String(never)}`);
        }
      }
    },
    onRefused: (refusal) =>
      logger.warn(
        { event: 'commit-refused', commit: refusal.commit, code: refusal.code, violations: refusal.violations.length },
        `commit refused: ${refusal.message}`,
      ),
    onFailed: ({ commit, error }) =>
      logger.warn(
        { event: 'reconcile-failed', commit, code: errnoCode(error) ?? null },
        `commit could not be judged (retried on the next fetch): ${errorMessage(error)}`,
      ),
  };
}

export function fetchLogHook(logger: Logger): (event: FetchEvent) => void {
  return (event) => {
    switch (event.kind) {
      case 'updated':
        logger.info(
          { event: 'fetch', head: event.head.commit, previous: event.previous?.commit ?? null, ms: Math.round(event.durationMs) },
          'new head',
        );
        return;
      case 'unchanged':
        logger.debug({ event: 'fetch', head: event.head.commit, ms: Math.round(event.durationMs) }, 'head unchanged');
        return;
      case 'failed':
        logger.warn(
          { event: 'fetch-failed', code: event.error.code, consecutiveFailures: event.consecutiveFailures },
          `fetch failed: ${event.error.message}`,
        );
        return;
      default: {
        const never: never = event;
        throw new Error(`unexpected fetch event ${JSON.stringify(never)}`);
      }
    }
  };
}

export function backendLogHooks(logger: Logger): BackendHooks {
  return {
    onAck: ({ agentId, ack, outcome }) => {
      const { commit, digest, generation, status } = ack;
      const fields = { event: 'ack', agentId, commit, digest, generation, status, outcome: outcome.kind };
      // Per agent and per rollout: at debug (10,000 lines a commit at info); rollout events and
      // metrics say how a rollout goes. A rejection needs a human: warn.
      if (outcome.kind === 'stale') logger.debug(fields, 'stale ack ignored');
      else if (ack.status === 'REJECTED') logger.warn({ ...fields, error: ack.error }, 'agent rejected its bundle');
      else logger.debug(fields, 'agent applied its bundle');
    },
    onCertificateIssued: ({ agentId, kind, notAfter, serialNumber }) =>
      logger.info(
        { event: 'certificate-issued', agentId, kind, serialNumber, notAfter: notAfter.toISOString() },
        `agent certificate issued (${kind})`,
      ),
    // Per agent, and a whole fleet reconnects at once after a restart: at debug.
    onConnection: ({ agentId, connected }) =>
      logger.debug(
        { event: connected ? 'agent-connected' : 'agent-disconnected', agentId },
        connected ? 'agent connected' : 'agent disconnected',
      ),
  };
}

/** How often, at most, connection failures are summarised in the log. */
export const CONNECT_FAILURE_LOG_WINDOW_MS = 10_000;

/**
 * Connection failures come in storms (thousands of agents reconnecting at once): one line per
 * failure would flood the log exactly when it is read. The first failure after a quiet window
 * is logged at once; the following ones are counted by reason and summarised in one line per
 * window (`connect-failures`, with `counts` and `windowMs`). Each single failure is at debug.
 */
export function connectFailureLog(logger: Logger, windowMs = CONNECT_FAILURE_LOG_WINDOW_MS): Pick<TransportHooks, 'onConnectFailed'> {
  let counts = new Map<ConnectFailure, number>();
  let timer: NodeJS.Timeout | undefined;
  const summarise = (): void => {
    timer = undefined;
    if (counts.size === 0) return;
    const total = [...counts.values()].reduce((a, b) => a + b, 0);
    const fields = { event: 'connect-failures', counts: Object.fromEntries(counts), total, windowMs };
    logger.warn(fields, `${total} connections failed before becoming agent streams`);
    counts = new Map();
    timer = setTimeout(summarise, windowMs);
    timer.unref();
  };
  return {
    onConnectFailed: (reason, detail) => {
      logger.debug({ event: 'connect-failed', reason, detail }, 'a connection failed before becoming an agent stream');
      counts.set(reason, (counts.get(reason) ?? 0) + 1);
      if (timer === undefined) summarise();
    },
  };
}

export function transportLogHooks(logger: Logger): TransportHooks {
  return {
    ...connectFailureLog(logger),
    onHandshake: (result, detail) => {
      if (result === 'failed') logger.debug({ event: 'tls-handshake-failed', detail }, 'TLS handshake failed');
    },
    onUnauthorized: (reason, detail) =>
      logger.warn(
        { event: 'unauthorized', reason, agentId: detail.agentId ?? null },
        `unauthorized config load attempt: ${detail.message}`,
      ),
  };
}

export function dataDirLog(logger: Logger, changes: readonly DataDirChange[]): void {
  for (const change of changes) {
    const fields = { event: 'data-dir', action: change.action, what: change.what, path: change.path, reason: change.reason ?? null };
    logger.info(fields, `${change.action} ${change.what}`);
  }
}

/** A failed write-through of a cache to the fleet store. */
export function storeErrorLog(logger: Logger): (err: unknown, what: string) => void {
  return (err, what) => logger.error({ event: 'fleet-store-failed', what, err }, `fleet store: cannot ${what}`);
}

/** Connection trouble of the PostgreSQL fleet store's pool and change feed (never with the password). */
export function postgresEventLog(logger: Logger): (event: PostgresStoreEvent) => void {
  return (event) => {
    switch (event.kind) {
      case 'pool-error':
        logger.warn({ event: 'fleet-store-connection-lost', err: event.error }, 'fleet store: a PostgreSQL connection failed; the next call opens a new one');
        return;
      case 'feed-disconnected':
        logger.warn(
          { event: 'fleet-feed-disconnected', err: event.error, retryInMs: event.retryInMs },
          `fleet store: the change feed lost PostgreSQL; retrying in ${event.retryInMs} ms`,
        );
        return;
      case 'feed-listening':
        if (event.reconnects > 0) {
          logger.info({ event: 'fleet-feed-listening', reconnects: event.reconnects }, 'fleet store: the change feed listens again (resync)');
        }
        return;
      case 'feed-malformed':
        logger.warn({ event: 'fleet-feed-malformed', malformed: event.malformed }, 'fleet store: ignored a notification that is not a fleet change');
        return;
      default:
        assertNever(event);
    }
  };
}

/** How many agent ids a `certificates-adopted` summary names. */
const ADOPTED_SAMPLE = 20;

export function certificateLogHooks(logger: Logger, windowMs = CONNECT_FAILURE_LOG_WINDOW_MS): AgentCertificatesHooks {
  // After an upgrade the whole fleet adopts at once: the first adoption of a quiet window is
  // logged on its own (`certificate-adopted`), the rest as one `certificates-adopted` line per
  // window with their count and the first agents.
  let pending: AgentId[] = [];
  let count = 0;
  let timer: NodeJS.Timeout | undefined;
  const summarise = (): void => {
    timer = undefined;
    if (count === 0) return;
    const fields = { event: 'certificates-adopted', count, agents: pending, windowMs };
    logger.info(fields, `${count} agents had no recorded certificate: the ones they presented are current from now on`);
    pending = [];
    count = 0;
    timer = setTimeout(summarise, windowMs);
    timer.unref();
  };
  return {
    onAdopted: ({ agentId, serial }) => {
      if (timer === undefined) {
        const fields = { event: 'certificate-adopted', agentId, serial };
        logger.info(fields, `agent ${agentId} had no recorded certificate: ${serial} is its current one from now on`);
        timer = setTimeout(summarise, windowMs);
        timer.unref();
        return;
      }
      count += 1;
      if (pending.length < ADOPTED_SAMPLE) pending.push(agentId);
    },
    onStoreError: storeErrorLog(logger),
  };
}

export function rolloutLogHooks(logger: Logger): RolloutServiceHooks {
  return {
    onEvent: (event) => logger.info({ event: event.kind, ...event }, `rollout: ${event.kind}`),
    onError: (err, what) => logger.error({ event: 'rollout-failed', what, err }, `rollout: cannot ${what}`),
  };
}

export function quarantineLogHooks(logger: Logger): QuarantineHooks {
  return {
    onQuarantined: ({ agentId, actor, cause, message }) =>
      logger.warn({ event: 'agent-quarantined', agentId, actor, cause: cause.kind }, message),
    onApproved: ({ agentId, actor, reason }) =>
      logger.info({ event: 'agent-approved', agentId, actor, reason }, `agent ${agentId} approved to rejoin`),
    onError: (err, what) => logger.error({ event: 'quarantine-failed', what, err }, `quarantine: cannot ${what}`),
  };
}

/** Operator actions. Never logs a token: only names, roles and expiry. */
export function operatorActionLogHooks(logger: Logger): OperatorActionHooks {
  return {
    onTokenCreated: ({ agentId, actor, expiresAt }) =>
      logger.info({ event: 'token-created', agentId, actor, expiresAt: expiresAt.toISOString() }, 'enrollment token created'),
    onAgentRevoked: ({ agentId, actor, serial }) =>
      logger.warn(
        { event: 'agent-revoked', agentId, serial, actor },
        `agent ${agentId} revoked: every certificate issued to it is refused until it enrolls again`,
      ),
    onAdminTokenCreated: ({ name, actor, view }) =>
      logger.info(
        { event: 'admin-token-created', name, role: view.role, actor, expiresAt: view.expiresAt?.toISOString() ?? null },
        `admin token ${name} created`,
      ),
    onAdminTokenRevoked: ({ name, actor }) => logger.warn({ event: 'admin-token-revoked', name, actor }, `admin token ${name} revoked`),
  };
}

/** The admin API's refusals (also counted by `onRefused`, the metrics) and failures. */
export function adminLogHooks(logger: Logger, onRefused: (reason: AdminRefusalReason) => void): NonNullable<AdminServerOptions['hooks']> {
  return {
    onUnauthorized: (reason, request) => {
      onRefused(reason);
      logger.warn(
        {
          event: 'admin-unauthorized',
          reason,
          method: request.method,
          path: request.path,
          remote: request.remote,
          ...(request.actor === undefined ? {} : { actor: request.actor }),
        },
        reason === 'forbidden-role' ? 'admin API request beyond the token’s role' : 'admin API request without a valid token',
      );
    },
    onError: (err, request) =>
      logger.error({ event: 'admin-error', err, method: request.method, path: request.path }, 'admin API request failed'),
  };
}

/** The start line: where the server listens and what it tracks (the repository URL redacted; the admin token by path only). */
export function listeningLog(
  logger: Logger,
  where: {
    readonly config: ServerConfig;
    readonly grpc: string;
    readonly admin: string;
    readonly pin: string;
    readonly adminTokenFile: string;
  },
): void {
  const { config, ...listening } = where;
  const tracks = { repo: redactUrl(config.repo.url), branch: config.repo.branch, trustDomain: config.trustDomain };
  logger.info({ event: 'listening', ...listening, ...tracks }, 'meshcfg server started');
}
