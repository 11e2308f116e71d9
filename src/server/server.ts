import { readFile } from 'node:fs/promises';
import { pino, type Logger } from 'pino';
import { AdminServer, type AdminApi } from '../admin/index.js';
import { Compiler } from '../compile/index.js';
import type { AgentId } from '../domain/types.js';
import { EnrollmentTokens, FileTokenStore, openDataDir, type DataDir } from '../pki/index.js';
import { BundleSigner } from '../signing/index.js';
import { GitSource, redactUrl, type SourceStatus } from '../source/index.js';
import { loadAllowedSigners, SshSignatureVerifier, TrustGate } from '../source/trust/index.js';
import { GrpcServer, type GrpcServerOptions } from '../transport/server.js';
import { WebhookAlerter, type AlertSink } from './alerts.js';
import { ServerBackend } from './backend.js';
import { formatListenAddress, type ServerConfig } from './config.js';
import { MemoryFleetStore } from './fleet.js';
import { backendLogHooks, combineHooks, fetchLogHook, reconcileLogHooks, transportLogHooks } from './logging.js';
import { ServerMetrics } from './metrics.js';
import { Reconciler, type ReconcileHooks, type ReconcileResult } from './reconcile.js';
import { SnapshotCache, type DesiredStatePolicy } from './snapshot.js';
import { FileStateStore } from './state.js';

/** What `startServer` needs from the gRPC transport (GrpcServer satisfies it). */
export interface TransportHandle {
  readonly port: number;
  setServing(serving: boolean): void;
  shutdown(deadlineMs?: number): Promise<void>;
}

export type StartTransport = (options: GrpcServerOptions) => Promise<TransportHandle>;

export interface StartServerOptions {
  /** Default: pino JSON lines on stdout at `info`. */
  readonly logger?: Logger;
  /** Default: `GrpcServer.start`. Tests may substitute a fake. */
  readonly transport?: StartTransport;
  /** Default: `latestCommitPolicy` (every agent gets the latest accepted commit). */
  readonly policy?: DesiredStatePolicy;
  readonly now?: () => Date;
  /** How often the bundle-expiry refresh is checked. Default: ttl/48 within 1 s – 60 s. */
  readonly refreshCheckMs?: number;
  /** A fleet agent with no stream and no contact for this long is DISCONNECTED. Default 2 min. */
  readonly disconnectedAfterMs?: number;
}

/** A started server. Everything an end-to-end test needs to talk to it. */
export interface RunningServer {
  readonly config: ServerConfig;
  readonly dataDir: DataDir;
  /** `host:port` of the gRPC listener, with the real port. */
  readonly grpcAddress: string;
  readonly grpcPort: number;
  /** `http://host:port` of the admin API, with the real port. */
  readonly adminUrl: string;
  readonly adminPort: number;
  /** `sha256/<base64>` — what `meshcfg enroll --pin` takes. */
  readonly pin: string;
  readonly adminTokenPath: string;
  readonly metrics: ServerMetrics;
  readonly reconciler: Reconciler;
  ready(): boolean;
  /** Fetches now and waits until the head is judged (instead of waiting for the poll). */
  syncNow(): Promise<ReconcileResult>;
  /** Graceful: stop polling, drain gRPC within `deadlineMs`, close the admin API, flush logs. Idempotent. */
  close(deadlineMs?: number): Promise<void>;
}

/**
 * Composes the server: data directory → source, trust gate, compiler, signer → reconciler →
 * snapshot cache → backend → gRPC transport and admin API. The accepted commit of a previous
 * run is republished before gRPC listens, so reconnecting agents are served at once.
 */
export async function startServer(config: ServerConfig, options: StartServerOptions = {}): Promise<RunningServer> {
  const logger = options.logger ?? pino({ name: 'meshcfg' });
  const now = options.now ?? (() => new Date());
  const startTransport: StartTransport = options.transport ?? ((o) => GrpcServer.start(o));
  const cleanups: Array<() => Promise<void> | void> = [];
  let shutdownDeadline = 5_000;
  const cleanup = async (): Promise<void> => {
    for (const step of cleanups.splice(0).reverse()) {
      try {
        await step();
      } catch (err) {
        logger.warn({ event: 'shutdown-step-failed', err }, 'a shutdown step failed');
      }
    }
  };

  try {
    const dataDir = await openDataDir({
      dataDir: config.dataDir,
      trustDomain: config.trustDomain,
      serverNames: config.tls.serverNames,
      agentCertTtlMs: config.enrollment.certificateTtlMs,
      now,
    });
    for (const change of dataDir.changes) {
      logger.info({ event: 'data-dir', action: change.action, what: change.what, path: change.path, reason: change.reason ?? null }, `${change.action} ${change.what}`);
    }
    const adminToken = (await readFile(dataDir.paths.adminToken, 'utf8')).trim();
    const allowedSigners = await loadAllowedSigners(config.trust.allowedSigners);

    const store = FileStateStore.inDataDir(config.dataDir);
    const state = await store.load();
    const signer = new BundleSigner({
      privateKey: dataDir.signingKey,
      ttlMs: config.bundles.ttlMs,
      lastGeneration: state.generation,
      now: () => now().getTime(),
    });
    const snapshots = new SnapshotCache({
      onListenerError: (agentId, err) => logger.warn({ event: 'watch-listener-failed', agentId, err }, 'a delivery listener threw'),
    });
    const fleet = new MemoryFleetStore({ now, ...(options.disconnectedAfterMs === undefined ? {} : { disconnectedAfterMs: options.disconnectedAfterMs }) });
    const tokens = new EnrollmentTokens({ store: await FileTokenStore.open(dataDir.paths.enrollmentTokens), now });
    let inventory: ReadonlySet<AgentId> = new Set();

    let reconciler: Reconciler | undefined;
    const logFetch = fetchLogHook(logger);
    const source = await GitSource.open({
      repository: config.repo.url,
      branch: config.repo.branch,
      dataDir: config.dataDir,
      now,
      hooks: {
        onFetch: (event) => {
          logFetch(event);
          reconciler?.onFetch(event);
        },
      },
    });
    cleanups.push(() => source.close());
    const gate = new TrustGate({ reader: source, verifiers: [new SshSignatureVerifier({ allowedSigners })] });

    let backend: ServerBackend | undefined;
    const metrics = new ServerMetrics({ fleet, connectedAgents: () => backend?.connectedCount() ?? 0 });

    let alerts: AlertSink | null = null;
    if (config.alerts.webhook !== null) {
      const alerter = new WebhookAlerter({
        url: config.alerts.webhook,
        onProblem: ({ kind, alert, detail, webhook }) =>
          logger.warn({ event: 'alert-delivery', kind, alert: alert.kind, commit: alert.commit, webhook }, `alert webhook: ${detail}`),
      });
      cleanups.push(() => alerter.close());
      alerts = alerter;
    }

    let transport: TransportHandle | undefined;
    const fleetAndReadiness: ReconcileHooks = {
      onPublished: ({ snapshot, compilation }) => {
        inventory = new Set(compilation.agents.map((a) => a.id));
        fleet.setDesired(
          compilation.agents.map((a) => {
            const d = snapshot.deliveries.get(a.id);
            return { id: a.id, labels: a.labels, desired: d === undefined ? null : { commit: d.commit, digest: d.digest, generation: d.generation } };
          }),
        );
        transport?.setServing(true);
      },
    };
    const alertHooks: ReconcileHooks = {
      onRefused: (r) => alerts?.post({ kind: 'commit-refused', commit: r.commit, code: r.code, message: r.message, at: r.at.toISOString() }),
    };
    reconciler = new Reconciler({
      verifier: gate,
      trees: source,
      compiler: new Compiler(),
      signer,
      snapshots,
      store,
      initialState: state,
      trustDomain: config.trustDomain,
      bundleTtlMs: config.bundles.ttlMs,
      now,
      hooks: combineHooks<ReconcileHooks>(fleetAndReadiness, metrics.reconcileHooks, reconcileLogHooks(logger), alertHooks),
      ...(options.policy === undefined ? {} : { policy: options.policy }),
      ...(options.refreshCheckMs === undefined ? {} : { refreshCheckMs: options.refreshCheckMs }),
    });
    cleanups.push(() => reconciler?.stop());
    if (state.accepted !== null) {
      logger.info({ event: 'restore', commit: state.accepted, generation: state.generation }, 'republishing the accepted commit of the previous run');
      await reconciler.restore();
    }

    backend = new ServerBackend({
      snapshots,
      fleet,
      inventory: { has: (id) => inventory.has(id) },
      tokens,
      ca: dataDir.ca,
      signingPublicKeyPem: dataDir.signingPublicKeyPem,
      certificateTtlMs: config.enrollment.certificateTtlMs,
      hooks: combineHooks(metrics.backendHooks, backendLogHooks(logger)),
      now,
    });

    const grpc = await startTransport({
      address: formatListenAddress(config.listen.grpc),
      trustDomain: config.trustDomain,
      serverCertPem: dataDir.serverCertPem,
      serverKeyPem: dataDir.serverKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      caPem: dataDir.ca.certificatePem,
      backend,
      hooks: combineHooks(metrics.transportHooks, transportLogHooks(logger)),
      logger,
      now,
    });
    transport = grpc;
    cleanups.push(() => grpc.shutdown(shutdownDeadline));
    const ready = (): boolean => reconciler?.served() != null;
    grpc.setServing(ready());

    const api: AdminApi = {
      isKnownAgent: (id) => inventory.has(id),
      createToken: async (agentId, ttlMs) => {
        const created = await tokens.create(agentId, ttlMs);
        logger.info({ event: 'token-created', agentId, expiresAt: created.expiresAt.toISOString() }, 'enrollment token created');
        return created;
      },
      agents: () => fleet.list(),
      source: () => {
        const s = (reconciler as Reconciler).status();
        return { branch: source.branch, head: s.head, accepted: s.serving, generation: s.generation, refused: s.refused, conditions: s.conditions };
      },
      ready,
      metrics: () => metrics.text(),
    };
    const admin = await AdminServer.start({
      host: config.listen.admin.host,
      port: config.listen.admin.port,
      token: adminToken,
      api,
      hooks: {
        onUnauthorized: (reason, request) => {
          metrics.adminUnauthorizedRequest(reason);
          logger.warn({ event: 'admin-unauthorized', reason, method: request.method, path: request.path, remote: request.remote }, 'admin API request without a valid token');
        },
        onError: (err, request) => logger.error({ event: 'admin-error', err, method: request.method, path: request.path }, 'admin API request failed'),
      },
    });
    cleanups.push(() => admin.close());

    reconciler.start();
    source.start({ intervalMs: config.repo.pollIntervalMs, nextDelayMs: (status) => pollDelay(config.repo.pollIntervalMs, status) });
    cleanups.push(() => source.stop());

    const grpcAddress = formatListenAddress({ host: config.listen.grpc.host, port: grpc.port });
    const adminUrl = `http://${formatListenAddress({ host: config.listen.admin.host, port: admin.port })}`;
    logger.info(
      {
        event: 'listening',
        grpc: grpcAddress,
        admin: adminUrl,
        pin: dataDir.serverPin,
        adminTokenFile: dataDir.paths.adminToken,
        repo: redactUrl(config.repo.url),
        branch: config.repo.branch,
        trustDomain: config.trustDomain,
      },
      'meshcfg server started',
    );

    let closing: Promise<void> | undefined;
    return {
      config,
      dataDir,
      grpcAddress,
      grpcPort: grpc.port,
      adminUrl,
      adminPort: admin.port,
      pin: dataDir.serverPin,
      adminTokenPath: dataDir.paths.adminToken,
      metrics,
      reconciler,
      ready,
      syncNow: async () => {
        const fetched = await source.fetch();
        return (reconciler as Reconciler).settle(fetched.head.commit);
      },
      close: (deadlineMs = 5_000) => {
        shutdownDeadline = deadlineMs;
        closing ??= (async () => {
          logger.info({ event: 'shutdown' }, 'shutting down');
          await cleanup();
          logger.info({ event: 'stopped' }, 'meshcfg server stopped');
          logger.flush();
        })();
        return closing;
      },
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/** The poll interval, backing off exponentially (with jitter) while fetches fail, up to 5 minutes. */
export function pollDelay(intervalMs: number, status: SourceStatus): number {
  if (status.consecutiveFailures === 0) return intervalMs;
  const ceiling = Math.min(300_000, intervalMs * 2 ** Math.min(status.consecutiveFailures, 16));
  return Math.max(intervalMs, ceiling / 2 + Math.random() * (ceiling / 2));
}
