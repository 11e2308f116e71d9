import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import { pino, type Logger } from 'pino';
import { AdminServer, AdminTokens, type AdminApi } from '../admin/index.js';
import { Compiler } from '../compile/index.js';
import type { AgentId, CommitSha } from '../domain/types.js';
import { parseDuration } from '../domain/duration.js';
import { defaultFleetStoreConfig, openFleetStore, type FleetStore } from '../fleet/index.js';
import { certificateExpiry, EnrollmentTokens, openDataDir, readSecretFile, type DataDir } from '../pki/index.js';
import { errorMessage } from '../domain/errors.js';
import { quarantineStaleAfterMs } from '../rollout/index.js';
import { combineHooks } from '../lib/index.js';
import { BundleSigner } from '../signing/index.js';
import { describeSkipped, GitSource, redactUrl, type SourceStatus } from '../source/index.js';
import { loadAllowedSigners, SshSignatureVerifier, TrustGate } from '../source/trust/index.js';
import { GrpcServer, type GrpcServerOptions } from '../transport/index.js';
import { AlertRing, WebhookAlerter, type AlertSink } from './alerts.js';
import { ServerBackend, type BackendHooks } from './backend.js';
import { AgentCertificates } from './certificates.js';
import { formatListenAddress, isLoopbackHost, type AdminTlsConfig, type ServerConfig } from './config.js';
import { ServerError } from './errors.js';
import { CertExpiryAlerts, UnauthorizedAlerts } from './fleet-alerts.js';
import { FleetCache } from './fleet.js';
import { backendLogHooks, fetchLogHook, reconcileLogHooks, transportLogHooks } from './logging.js';
import { ServerMetrics } from './metrics.js';
import { Reconciler, type ReconcileHooks, type ReconcileResult } from './reconcile.js';
import { QuarantineController } from './quarantine.js';
import { RolloutService } from './rollout.js';
import { SnapshotCache, type DesiredStatePolicy } from './snapshot.js';
import { FleetStateStore, importStateJson } from './state.js';

/** What `startServer` needs from the gRPC transport (GrpcServer satisfies it). */
export interface TransportHandle {
  readonly port: number;
  setServing(serving: boolean): void;
  /** Ends the agent's open streams whose certificate is no longer accepted (revoked, replaced). */
  recheckStreams(agentId: AgentId): void;
  shutdown(deadlineMs?: number): Promise<void>;
}

export type StartTransport = (options: GrpcServerOptions) => Promise<TransportHandle>;

export interface StartServerOptions {
  /** Default: pino JSON lines on stdout at `info`. */
  readonly logger?: Logger;
  /** Default: `GrpcServer.start`. Tests may substitute a fake. */
  readonly transport?: StartTransport;
  /** Default: the rollout (waves, windows, gates from meshcfg.yaml). `latestCommitPolicy` gives every agent the latest commit at once. */
  readonly policy?: DesiredStatePolicy;
  readonly now?: () => Date;
  /** How often the bundle-expiry refresh is checked. Default: ttl/48 within 1 s – 60 s. */
  readonly refreshCheckMs?: number;
  /** A fleet agent with no stream and no contact for this long is DISCONNECTED. Default 2 min. */
  readonly disconnectedAfterMs?: number;
  /** How often agent certificates are checked for coming expiry (cert-expiring alerts). Default 1 min. */
  readonly certCheckMs?: number;
  /** Window of the unauthorized-attempt alert rate limit (one per reason per window). Default 1 min. */
  readonly unauthorizedAlertWindowMs?: number;
  /** How often agents are checked against `rollout.quarantineStaleAfter` (when the served commit sets it). Default 5 s. */
  readonly staleCheckMs?: number;
  /** How often the rollout's bakes and windows are checked. Default 1 s. */
  readonly rolloutTickMs?: number;
  /**
   * After a renewal, how long a stream on the replaced certificate may stay open before it is
   * ended (the agent moves its stream onto the new certificate itself). Default 10 s.
   */
  readonly replacedStreamGraceMs?: number;
}

/** How many recent alerts `GET /api/v1/alerts` keeps (in memory). */
export const RECENT_ALERTS = 100;

/** The ack timeout when meshcfg.yaml sets no `rollout.ackTimeout`. */
export const DEFAULT_ACK_TIMEOUT_MS = 120_000;

/** A started server. Everything an end-to-end test needs to talk to it. */
export interface RunningServer {
  readonly config: ServerConfig;
  readonly dataDir: DataDir;
  /** `host:port` of the gRPC listener, with the real port. */
  readonly grpcAddress: string;
  readonly grpcPort: number;
  /** `http(s)://host:port` of the admin API, with the real port (`https` with `adminTls`). */
  readonly adminUrl: string;
  readonly adminPort: number;
  /** `sha256/<base64>` — what `meshcfg enroll --pin` takes. */
  readonly pin: string;
  readonly adminTokenPath: string;
  readonly metrics: ServerMetrics;
  readonly reconciler: Reconciler;
  /** Fleet state (a cache written through to `<dataDir>/fleet.db`). */
  readonly fleet: FleetCache;
  readonly fleetStore: FleetStore;
  readonly quarantine: QuarantineController;
  readonly rollout: RolloutService;
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

    // Everything the server knows that git does not. Closed last (cleanups run in reverse).
    const fleetStore = await openFleetStore(defaultFleetStoreConfig(config.dataDir), { now });
    cleanups.push(() => fleetStore.close());
    const imported = await importStateJson(config.dataDir, fleetStore);
    if (imported !== null) {
      logger.info({ event: 'state-imported', commit: imported.accepted, generation: imported.generation }, 'state.json imported into fleet.db (renamed to state.json.imported)');
    }
    const store = new FleetStateStore(fleetStore);
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
    const fleet = await FleetCache.load(fleetStore, {
      now,
      ackTimeoutMs: DEFAULT_ACK_TIMEOUT_MS,
      onStoreError: (err, what) => logger.error({ event: 'fleet-store-failed', what, err }, `fleet store: cannot ${what}`),
      ...(options.disconnectedAfterMs === undefined ? {} : { disconnectedAfterMs: options.disconnectedAfterMs }),
    });
    cleanups.push(() => fleet.flush());
    const certificates = await AgentCertificates.load(fleetStore, {
      now,
      hooks: {
        onAdopted: ({ agentId, serial }) =>
          logger.info({ event: 'certificate-adopted', agentId, serial }, `agent ${agentId} had no recorded certificate: ${serial} is its current one from now on`),
        onStoreError: (err, what) => logger.error({ event: 'fleet-store-failed', what, err }, `fleet store: cannot ${what}`),
      },
    });
    const tokens = new EnrollmentTokens({ store: fleetStore.tokens, now });
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
    const verifiers = [new SshSignatureVerifier({ allowedSigners })];
    const gate = new TrustGate({ reader: source, verifiers, keyValidityAt: config.trust.keyValidity, clock: now });
    // Commits the rollout recompiles were accepted before; one whose first sighting is unknown
    // (accepted by an earlier run, not the anchor) is re-verified at its commit time.
    const acceptedGate = new TrustGate({ reader: source, verifiers, keyValidityAt: 'commit-time' });
    const reverify = (commit: CommitSha) => {
      const seenAt = reconciler?.seenAt(commit);
      return seenAt === undefined ? acceptedGate.verify(commit) : gate.verify(commit, { seenAt });
    };

    let backend: ServerBackend | undefined;
    // Every alert is kept in the ring (GET /api/v1/alerts, the dashboard), webhook or not.
    const recentAlerts = new AlertRing(RECENT_ALERTS);
    let alerts: AlertSink = recentAlerts;
    if (config.alerts.webhook !== null) {
      const alerter = new WebhookAlerter({
        url: config.alerts.webhook,
        onProblem: ({ kind, alert, detail, webhook }) =>
          logger.warn({ event: 'alert-delivery', kind, alert: alert.kind, webhook }, `alert webhook: ${detail}`),
      });
      cleanups.push(() => alerter.close());
      alerts = { post: (alert) => (recentAlerts.post(alert), alerter.post(alert)) };
    }
    const sink = alerts;
    const unauthorizedAlerts = new UnauthorizedAlerts({ sink, now, ...(options.unauthorizedAlertWindowMs === undefined ? {} : { windowMs: options.unauthorizedAlertWindowMs }) });
    cleanups.push(() => unauthorizedAlerts.close());

    const compiler = new Compiler();
    const rollout = await RolloutService.load({
      store: fleetStore,
      knownAgents: () => fleet.list().map((a) => a.id),
      compile: async (commit) => compiler.compile(await source.readTree(await reverify(commit))),
      republish: () => (reconciler as Reconciler).republish(),
      alerts,
      now,
      ...(options.rolloutTickMs === undefined ? {} : { tickMs: options.rolloutTickMs }),
      hooks: {
        onEvent: (event) => logger.info({ event: event.kind, ...event }, `rollout: ${event.kind}`),
        onError: (err, what) => logger.error({ event: 'rollout-failed', what, err }, `rollout: cannot ${what}`),
      },
    });
    // Stopped before the store closes (cleanups run in reverse): the last acks are saved.
    cleanups.push(() => rollout.stop());

    const metrics = new ServerMetrics({
      fleet,
      connectedAgents: () => backend?.connectedCount() ?? 0,
      rollout: () => rollout.status(),
      source: () => {
        const s = (reconciler as Reconciler).status();
        return { accepted: s.serving, refused: s.refused?.commit ?? null };
      },
      certificates: { server: certificateExpiry(dataDir.serverCertPem), ca: dataDir.ca.notAfter },
      acceptedAt: (commit) => reconciler?.seenAt(commit),
      now,
      ...(options.disconnectedAfterMs === undefined ? {} : { disconnectedAfterMs: options.disconnectedAfterMs }),
    });

    const quarantine = new QuarantineController({
      fleet,
      store: fleetStore,
      deliveries: snapshots,
      republish: () => (reconciler as Reconciler).republish(),
      servingCommit: () => reconciler?.served()?.snapshot.commit ?? '',
      alerts,
      now,
      hooks: {
        onQuarantined: ({ agentId, actor, cause, message }) => logger.warn({ event: 'agent-quarantined', agentId, actor, cause: cause.kind }, message),
        onApproved: ({ agentId, actor, reason }) => logger.info({ event: 'agent-approved', agentId, actor, reason }, `agent ${agentId} approved to rejoin`),
        onError: (err, what) => logger.error({ event: 'quarantine-failed', what, err }, `quarantine: cannot ${what}`),
      },
    });

    let transport: TransportHandle | undefined;
    const fleetAndReadiness: ReconcileHooks = {
      onPublished: ({ snapshot, compilation }) => {
        inventory = new Set(compilation.agents.map((a) => a.id));
        const ackTimeout = compilation.settings?.rollout['ackTimeout'];
        fleet.setAckTimeout((typeof ackTimeout === 'string' ? parseDuration(ackTimeout) : undefined) ?? DEFAULT_ACK_TIMEOUT_MS);
        quarantine.setStaleAfter(quarantineStaleAfterMs(compilation.settings));
        fleet.setDesired(
          compilation.agents.map((a) => {
            const d = snapshot.deliveries.get(a.id);
            return {
              id: a.id,
              labels: a.labels,
              wave: a.wave,
              // A generation names one commit; an agent held back by the rollout runs an older one.
              desired:
                d === undefined
                  ? null
                  : { commit: (d.baseline ? null : rollout.desiredCommit(a.id)) ?? d.commit, digest: d.digest, generation: d.generation, baseline: d.baseline },
            };
          }),
        );
        transport?.setServing(true);
      },
    };
    const alertHooks: ReconcileHooks = {
      onRefused: (r) => alerts.post({ kind: 'commit-refused', commit: r.commit, code: r.code, message: r.message, at: r.at.toISOString() }),
    };
    reconciler = new Reconciler({
      verifier: gate,
      trees: source,
      compiler,
      signer,
      snapshots,
      store,
      initialState: state,
      trustDomain: config.trustDomain,
      bundleTtlMs: config.bundles.ttlMs,
      now,
      hooks: combineHooks<ReconcileHooks>(fleetAndReadiness, metrics.reconcileHooks, reconcileLogHooks(logger), alertHooks),
      policy: quarantine.policy(options.policy ?? rollout.policy),
      ...(options.refreshCheckMs === undefined ? {} : { refreshCheckMs: options.refreshCheckMs }),
    });
    cleanups.push(() => reconciler?.stop());
    if (state.accepted !== null) {
      logger.info({ event: 'restore', commit: state.accepted, generation: state.generation }, 'republishing the accepted commit of the previous run');
      await reconciler.restore();
    }

    // A renewed or re-enrolled agent's older certificate is refused from now on; its open
    // streams end too: at once after an enrollment, after a grace after a renewal (the agent
    // moves its stream onto the new certificate itself, and should not be counted as refused).
    const replacedStreamGraceMs = options.replacedStreamGraceMs ?? 10_000;
    const streamsOfReplacedCertificates: BackendHooks = {
      onCertificateIssued: ({ agentId, kind }) => {
        if (kind === 'enroll') {
          transport?.recheckStreams(agentId);
          return;
        }
        const timer = setTimeout(() => transport?.recheckStreams(agentId), replacedStreamGraceMs);
        timer.unref();
      },
    };
    backend = new ServerBackend({
      snapshots,
      fleet,
      inventory: { has: (id) => inventory.has(id) },
      tokens,
      ca: dataDir.ca,
      signingPublicKeyPem: dataDir.signingPublicKeyPem,
      certificateTtlMs: config.enrollment.certificateTtlMs,
      certificates,
      hooks: combineHooks(metrics.backendHooks, backendLogHooks(logger), quarantine.backendHooks, rollout.backendHooks, streamsOfReplacedCertificates),
      commitOfDigest: (agentId, digest) => rollout.commitOf(agentId, digest),
      driftCheck: (agentId, active) => quarantine.checkActive(agentId, active),
      now,
    });

    const grpc = await startTransport({
      address: formatListenAddress(config.listen.grpc),
      trustDomain: config.trustDomain,
      serverCertPem: dataDir.serverCertPem,
      serverKeyPem: dataDir.serverKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      caPem: dataDir.ca.certificatePem,
      backend,
      hooks: combineHooks(metrics.transportHooks, transportLogHooks(logger), { onUnauthorized: unauthorizedAlerts.onUnauthorized }),
      logger,
      now,
    });
    transport = grpc;
    cleanups.push(() => grpc.shutdown(shutdownDeadline));
    const ready = (): boolean => reconciler?.served() != null;
    grpc.setServing(ready());

    const adminTokens = new AdminTokens({ store: fleetStore, bootstrapToken: adminToken, now });
    const api: AdminApi = {
      isKnownAgent: (id) => inventory.has(id),
      createToken: async (agentId, ttlMs, actor) => {
        const created = await tokens.create(agentId, ttlMs);
        await fleetStore.appendAudit({ at: now(), actor, action: 'token.create', target: agentId, reason: '', details: { expiresAt: created.expiresAt.toISOString() } });
        logger.info({ event: 'token-created', agentId, actor, expiresAt: created.expiresAt.toISOString() }, 'enrollment token created');
        return created;
      },
      agents: () => fleet.list(),
      audit: (limit) => fleetStore.listAudit({ limit }),
      alerts: (limit) => recentAlerts.recent(limit),
      approve: async (agentId, actor, reason) => {
        const agent = fleet.get(agentId);
        if (agent === undefined) return unknownAgent(agentId);
        if (!(await quarantine.approve(agentId, actor, reason))) return { kind: 'refused', code: 'NOT_QUARANTINED', message: `agent ${agentId} is not quarantined` };
        return { kind: 'done', agent: fleet.get(agentId) ?? agent };
      },
      quarantine: async (agentId, actor, reason) => {
        const agent = fleet.get(agentId);
        if (agent === undefined) return unknownAgent(agentId);
        if (!(await quarantine.quarantine(agentId, actor, { kind: 'manual', reason }))) {
          return { kind: 'refused', code: 'ALREADY_QUARANTINED', message: `agent ${agentId} is already quarantined` };
        }
        return { kind: 'done', agent: fleet.get(agentId) ?? agent };
      },
      revoke: async (agentId, actor, reason) => {
        const agent = fleet.get(agentId);
        if (agent === undefined) return unknownAgent(agentId);
        const outcome = await certificates.revoke(agentId, agent.certSerial, actor, reason, now());
        switch (outcome.kind) {
          case 'no-certificate':
            return { kind: 'refused', code: 'NO_CERTIFICATE', message: `no certificate of ${agentId} is known (it never enrolled or connected)` };
          case 'already-revoked':
            return { kind: 'refused', code: 'ALREADY_REVOKED', message: `agent ${agentId} is already revoked (certificate ${outcome.serial}); it must enroll again with a new token` };
          case 'revoked':
            // Streams open now end at once, not at their next delivery.
            transport?.recheckStreams(agentId);
            logger.warn(
              { event: 'agent-revoked', agentId, serial: outcome.serial, actor },
              `agent ${agentId} revoked: every certificate issued to it is refused until it enrolls again`,
            );
            return { kind: 'done', agent, serial: outcome.serial };
          default: {
            const never: never = outcome;
            throw new Error(`unexpected revoke outcome ${JSON.stringify(never)}`);
          }
        }
      },
      source: () => {
        const s = (reconciler as Reconciler).status();
        const skipped = (reconciler as Reconciler).served()?.compilation.skipped ?? [];
        const warnings = skipped.map((entry) => ({ kind: entry.kind, path: entry.path, message: describeSkipped(entry) }));
        const served = (reconciler as Reconciler).served()?.compilation.commit;
        const acceptedCommit =
          served === undefined
            ? null
            : {
                sha: served.sha,
                signer: served.trust.kind === 'verified' ? served.trust.signer : null,
                subject: served.message.split('\n', 1)[0] ?? '',
                committedAt: served.committedAt,
                seenAt: (reconciler as Reconciler).seenAt(served.sha) ?? null,
              };
        return { branch: source.branch, head: s.head, accepted: s.serving, acceptedCommit, generation: s.generation, refused: s.refused, conditions: s.conditions, warnings };
      },
      createAdminToken: async (name, role, ttlMs, actor) => {
        const created = await adminTokens.create(name, role, ttlMs, actor);
        logger.info({ event: 'admin-token-created', name, role: created.view.role, actor, expiresAt: created.view.expiresAt?.toISOString() ?? null }, `admin token ${name} created`);
        return created;
      },
      listAdminTokens: () => adminTokens.list(),
      revokeAdminToken: async (name, actor, reason) => {
        const result = await adminTokens.revoke(name, actor, reason);
        if (result.kind === 'revoked') logger.warn({ event: 'admin-token-revoked', name, actor }, `admin token ${name} revoked`);
        return result;
      },
      rollout: () => rollout.status(),
      rolloutAction: (kind, actor, reason) => rollout.act({ kind, actor, ...(reason === undefined ? {} : { reason }) }),
      ready,
      metrics: () => metrics.text(),
    };
    const adminTls = await loadAdminTls(config.adminTls, dataDir);
    if (!isLoopbackHost(config.listen.admin.host)) {
      logger.warn(
        { event: 'admin-not-loopback', host: config.listen.admin.host, tls: adminTls !== undefined },
        adminTls === undefined
          ? `the admin API listens on ${config.listen.admin.host}, beyond loopback, in plain HTTP: tokens cross the network in clear text; set adminTls`
          : `the admin API listens on ${config.listen.admin.host}, beyond loopback (TLS on)`,
      );
    }
    const admin = await AdminServer.start({
      host: config.listen.admin.host,
      port: config.listen.admin.port,
      credentials: adminTokens,
      ...(adminTls === undefined ? {} : { tls: adminTls }),
      api,
      hooks: {
        onUnauthorized: (reason, request) => {
          metrics.adminUnauthorizedRequest(reason);
          logger.warn(
            { event: 'admin-unauthorized', reason, method: request.method, path: request.path, remote: request.remote, ...(request.actor === undefined ? {} : { actor: request.actor }) },
            reason === 'forbidden-role' ? 'admin API request beyond the token’s role' : 'admin API request without a valid token',
          );
        },
        onError: (err, request) => logger.error({ event: 'admin-error', err, method: request.method, path: request.path }, 'admin API request failed'),
      },
    });
    cleanups.push(() => admin.close());

    const certAlerts = new CertExpiryAlerts({ sink, agents: () => fleet.list(), certificateTtlMs: config.enrollment.certificateTtlMs, now });
    const certTimer = setInterval(() => certAlerts.check(), options.certCheckMs ?? 60_000);
    certTimer.unref();
    cleanups.push(() => clearInterval(certTimer));

    const staleTimer = setInterval(() => void quarantine.sweepStale(), options.staleCheckMs ?? 5_000);
    staleTimer.unref();
    cleanups.push(() => clearInterval(staleTimer));

    reconciler.start();
    rollout.start();
    source.start({ intervalMs: config.repo.pollIntervalMs, nextDelayMs: (status) => pollDelay(config.repo.pollIntervalMs, status) });
    cleanups.push(() => source.stop());

    const grpcAddress = formatListenAddress({ host: config.listen.grpc.host, port: grpc.port });
    const adminUrl = `${admin.protocol}://${formatListenAddress({ host: config.listen.admin.host, port: admin.port })}`;
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
      fleet,
      fleetStore,
      quarantine,
      rollout,
      ready,
      syncNow: async () => {
        const fetched = await source.fetch();
        return (reconciler as Reconciler).settle(fetched.head.commit);
      },
      close: (deadlineMs = 5_000) => {
        shutdownDeadline = deadlineMs;
        closing ??= (async () => {
          logger.info({ event: 'shutdown' }, 'shutting down');
          rollout.detach();
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

/**
 * The admin API's certificate and key: none (plain HTTP), the server's own (from the data
 * directory), or PEM files — checked here, so a bad file fails the start naming `adminTls`.
 */
async function loadAdminTls(config: AdminTlsConfig, dataDir: DataDir): Promise<{ cert: string; key: string } | undefined> {
  switch (config.kind) {
    case 'off':
      return undefined;
    case 'server':
      return { cert: dataDir.serverCertPem, key: dataDir.serverKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
    case 'files': {
      let material: { cert: string; key: string };
      try {
        const key = await readSecretFile(config.key);
        if (key === undefined) throw new Error(`${config.key} does not exist`);
        material = { cert: await readFile(config.cert, 'utf8'), key };
        createSecureContext(material);
      } catch (cause) {
        throw new ServerError({ code: 'CONFIG_INVALID', message: `adminTls: cannot use ${config.cert} and ${config.key}: ${errorMessage(cause)}`, cause });
      }
      return material;
    }
    default: {
      const never: never = config;
      throw new Error(`unexpected adminTls ${JSON.stringify(never)}`);
    }
  }
}

/** The poll interval, backing off exponentially (with jitter) while fetches fail, up to 5 minutes. */
export function pollDelay(intervalMs: number, status: SourceStatus): number {
  if (status.consecutiveFailures === 0) return intervalMs;
  const ceiling = Math.min(300_000, intervalMs * 2 ** Math.min(status.consecutiveFailures, 16));
  return Math.max(intervalMs, ceiling / 2 + Math.random() * (ceiling / 2));
}

function unknownAgent(agentId: string): { readonly kind: 'refused'; readonly code: 'UNKNOWN_AGENT'; readonly message: string } {
  return { kind: 'refused', code: 'UNKNOWN_AGENT', message: `agent ${agentId} is not in the inventory of the served commit` };
}
