import type { Logger } from 'pino';
import { errorMessage } from '../domain/errors.js';
import { describeSkipped, type FetchEvent } from '../source/index.js';
import type { TransportHooks } from '../transport/index.js';
import type { BackendHooks } from './backend.js';
import type { ReconcileHooks } from './reconcile.js';
import { errnoCode } from '../lib/index.js';

/**
 * Log lines for the server's events, as hooks. Contract: nothing here logs a token, a key, a
 * certificate body or a URL with credentials (repository and webhook URLs are redacted upstream).
 */
export function reconcileLogHooks(logger: Logger): ReconcileHooks {
  return {
    onPublished: ({ reason, snapshot, compilation }) => {
      const fields = { event: 'published', reason, commit: snapshot.commit, generation: snapshot.generation, agents: snapshot.deliveries.size, expiresAt: snapshot.expiresAt?.toISOString() ?? null };
      // Once per commit judged (not on every re-signing): what was in the tree but not read.
      if (reason === 'commit' || reason === 'restore') {
        for (const entry of compilation.skipped) {
          logger.warn({ event: 'entry-skipped', commit: snapshot.commit, kind: entry.kind, path: entry.path }, describeSkipped(entry));
        }
      }
      switch (reason) {
        case 'commit':
          logger.info({ ...fields, signer: compilation.commit.trust.kind === 'verified' ? compilation.commit.trust.signer : null }, 'commit accepted and published');
          return;
        case 'restore':
          logger.info(fields, 'accepted commit of the previous run republished');
          return;
        case 'refresh':
          logger.info(fields, 'bundles re-signed before expiry');
          return;
        case 'fleet':
          logger.info(fields, 'republished for a quarantine or an approval');
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
      logger.warn({ event: 'reconcile-failed', commit, code: errnoCode(error) ?? null }, `commit could not be judged (retried on the next fetch): ${errorMessage(error)}`),
  };
}

export function fetchLogHook(logger: Logger): (event: FetchEvent) => void {
  return (event) => {
    switch (event.kind) {
      case 'updated':
        logger.info({ event: 'fetch', head: event.head.commit, previous: event.previous?.commit ?? null, ms: Math.round(event.durationMs) }, 'new head');
        return;
      case 'unchanged':
        logger.debug({ event: 'fetch', head: event.head.commit, ms: Math.round(event.durationMs) }, 'head unchanged');
        return;
      case 'failed':
        logger.warn({ event: 'fetch-failed', code: event.error.code, consecutiveFailures: event.consecutiveFailures }, `fetch failed: ${event.error.message}`);
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
      const fields = { event: 'ack', agentId, commit: ack.commit, digest: ack.digest, generation: ack.generation, status: ack.status, outcome: outcome.kind };
      if (outcome.kind === 'stale') logger.debug(fields, 'stale ack ignored');
      else if (ack.status === 'REJECTED') logger.warn({ ...fields, error: ack.error }, 'agent rejected its bundle');
      else logger.info(fields, 'agent applied its bundle');
    },
    onCertificateIssued: ({ agentId, kind, notAfter, serialNumber }) =>
      logger.info({ event: 'certificate-issued', agentId, kind, serialNumber, notAfter: notAfter.toISOString() }, `agent certificate issued (${kind})`),
    onConnection: ({ agentId, connected }) => logger.info({ event: connected ? 'agent-connected' : 'agent-disconnected', agentId }, connected ? 'agent connected' : 'agent disconnected'),
  };
}

export function transportLogHooks(logger: Logger): TransportHooks {
  return {
    onHandshake: (result, detail) => {
      if (result === 'failed') logger.info({ event: 'tls-handshake-failed', detail }, 'TLS handshake failed');
    },
    onUnauthorized: (reason, detail) =>
      logger.warn({ event: 'unauthorized', reason, agentId: detail.agentId ?? null }, `unauthorized config load attempt: ${detail.message}`),
  };
}
