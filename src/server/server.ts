import { pino } from 'pino';
import { Compiler } from '../compile/index.js';
import { defaultFleetStoreConfig, openFleetStore } from '../fleet/index.js';
import { combineHooks } from '../lib/index.js';
import { certificateExpiry, EnrollmentTokens, openDataDir } from '../pki/index.js';
import { BundleSigner } from '../signing/index.js';
import { GitSource } from '../source/index.js';
import { loadAllowedSigners } from '../source/trust/index.js';
import { GrpcServer } from '../transport/index.js';
import { startAdminApi } from './admin-api.js';
import { openAlerting, refusedCommitAlerts } from './alerting.js';
import { ServerBackend } from './backend.js';
import { AgentCertificates } from './certificates.js';
import { formatListenAddress, type ServerConfig } from './config.js';
import { CertExpiryAlerts, UnauthorizedAlerts } from './fleet-alerts.js';
import { FleetCache } from './fleet.js';
import { CleanupStack, pollDelay } from './lifecycle.js';
import { ReconcilerLink, replacedCertificateStreams, TransportLink } from './links.js';
import * as log from './logging.js';
import { ServerMetrics } from './metrics.js';
import { DEFAULT_ACK_TIMEOUT_MS, PublishedInventory, publishedHooks } from './published.js';
import { QuarantineController } from './quarantine.js';
import { Reconciler, type ReconcileHooks } from './reconcile.js';
import { RolloutService } from './rollout.js';
import type { RunningServer, StartServerOptions } from './running.js';
import { SnapshotCache } from './snapshot.js';
import { serverTrust } from './trust.js';
import { FleetStateStore, importStateJson } from './state.js';

export { pollDelay } from './lifecycle.js';
export type { TransportHandle } from './links.js';
export type { RunningServer, StartServerOptions, StartTransport } from './running.js';

/**
 * The composition root: builds each part from its ports and wires them, nothing else. Data
 * directory and fleet store → source, trust gate, compiler, signer, rollout, quarantine →
 * reconciler → snapshot cache → backend → gRPC and the admin API. The accepted commit of a
 * previous run is republished before gRPC listens, so reconnecting agents are served at once.
 */
export async function startServer(config: ServerConfig, options: StartServerOptions = {}): Promise<RunningServer> {
  const logger = options.logger ?? pino({ name: 'meshcfg' });
  const now = options.now ?? (() => new Date());
  const cleanups = new CleanupStack(logger);
  try {
    const dataDir = await openDataDir({ dataDir: config.dataDir, trustDomain: config.trustDomain, serverNames: config.tls.serverNames, agentCertTtlMs: config.enrollment.certificateTtlMs, now });
    log.dataDirLog(logger, dataDir.changes);
    const allowedSigners = await loadAllowedSigners(config.trust.allowedSigners);
    const fleetStore = await openFleetStore(defaultFleetStoreConfig(config.dataDir), { now });
    cleanups.push(() => fleetStore.close()); // pushed first: closed last
    const imported = await importStateJson(config.dataDir, fleetStore);
    if (imported !== null) logger.info({ event: 'state-imported', commit: imported.accepted, generation: imported.generation }, 'state.json imported into fleet.db (renamed to state.json.imported)');
    const stateStore = new FleetStateStore(fleetStore);
    const state = await stateStore.load();
    const signer = new BundleSigner({ privateKey: dataDir.signingKey, ttlMs: config.bundles.ttlMs, lastGeneration: state.generation, now: () => now().getTime() });
    const snapshots = new SnapshotCache({ onListenerError: (agentId, err) => logger.warn({ event: 'watch-listener-failed', agentId, err }, 'a delivery listener threw') });
    const disconnected = options.disconnectedAfterMs === undefined ? {} : { disconnectedAfterMs: options.disconnectedAfterMs };
    const fleet = await FleetCache.load(fleetStore, { now, ackTimeoutMs: DEFAULT_ACK_TIMEOUT_MS, onStoreError: log.storeErrorLog(logger), ...disconnected });
    cleanups.push(() => fleet.flush());
    const certificates = await AgentCertificates.load(fleetStore, { now, hooks: log.certificateLogHooks(logger) });
    const link = new ReconcilerLink();
    const transport = new TransportLink();
    const inventory = new PublishedInventory();
    const logFetch = log.fetchLogHook(logger);
    const source = await GitSource.open({ repository: config.repo.url, branch: config.repo.branch, dataDir: config.dataDir, now, hooks: { onFetch: (event) => (logFetch(event), link.onFetch(event)) } });
    cleanups.push(() => source.close());
    const { gate, reverify } = serverTrust({ reader: source, allowedSigners, keyValidityAt: config.trust.keyValidity, seenAt: (commit) => link.seenAt(commit), now });
    const alerting = openAlerting({ webhook: config.alerts.webhook, onProblem: ({ kind, alert, detail, webhook }) => logger.warn({ event: 'alert-delivery', kind, alert: alert.kind, webhook }, `alert webhook: ${detail}`) });
    cleanups.push(() => alerting.close());
    const unauthorizedAlerts = new UnauthorizedAlerts({ sink: alerting.sink, now, ...(options.unauthorizedAlertWindowMs === undefined ? {} : { windowMs: options.unauthorizedAlertWindowMs }) });
    cleanups.push(() => unauthorizedAlerts.close());
    const compiler = new Compiler();
    const rollout = await RolloutService.load({ store: fleetStore, knownAgents: () => fleet.list().map((a) => a.id), compile: async (commit) => compiler.compile(await source.readTree(await reverify(commit))), republish: () => link.republish(), alerts: alerting.sink, now, ...(options.rolloutTickMs === undefined ? {} : { tickMs: options.rolloutTickMs }), hooks: log.rolloutLogHooks(logger) });
    cleanups.push(() => rollout.stop()); // before the store closes: the last acks are saved
    let backend: ServerBackend | undefined;
    const sourceState = () => ({ accepted: link.status()?.serving ?? null, refused: link.status()?.refused?.commit ?? null });
    const metrics = new ServerMetrics({ fleet, connectedAgents: () => backend?.connectedCount() ?? 0, rollout: () => rollout.status(), source: sourceState, certificates: { server: certificateExpiry(dataDir.serverCertPem), ca: dataDir.ca.notAfter }, acceptedAt: (commit) => link.seenAt(commit), now, ...disconnected });
    const quarantine = new QuarantineController({ fleet, store: fleetStore, deliveries: snapshots, republish: () => link.republish(), servingCommit: () => link.servingCommit(), alerts: alerting.sink, now, hooks: log.quarantineLogHooks(logger) });
    const onPublished = publishedHooks({ inventory, fleet, quarantine, rollout, serving: transport });
    const hooks = combineHooks<ReconcileHooks>(onPublished, metrics.reconcileHooks, log.reconcileLogHooks(logger), refusedCommitAlerts(alerting.sink));
    const reconciler = new Reconciler({ verifier: gate, trees: source, compiler, signer, snapshots, store: stateStore, initialState: state, trustDomain: config.trustDomain, bundleTtlMs: config.bundles.ttlMs, now, hooks, policy: quarantine.policy(options.policy ?? rollout.policy), ...(options.refreshCheckMs === undefined ? {} : { refreshCheckMs: options.refreshCheckMs }) });
    link.bind(reconciler);
    cleanups.push(() => reconciler.stop());
    if (state.accepted !== null) {
      logger.info({ event: 'restore', commit: state.accepted, generation: state.generation }, 'republishing the accepted commit of the previous run');
      await reconciler.restore();
    }
    const enrollmentTokens = new EnrollmentTokens({ store: fleetStore.tokens, now });
    backend = new ServerBackend({ snapshots, fleet, inventory, tokens: enrollmentTokens, ca: dataDir.ca, signingPublicKeyPem: dataDir.signingPublicKeyPem, certificateTtlMs: config.enrollment.certificateTtlMs, certificates, hooks: combineHooks(metrics.backendHooks, log.backendLogHooks(logger), quarantine.backendHooks, rollout.backendHooks, replacedCertificateStreams(transport, options.replacedStreamGraceMs ?? 10_000)), commitOfDigest: (agentId, digest) => rollout.commitOf(agentId, digest), driftCheck: (agentId, active) => quarantine.checkActive(agentId, active), now });
    const serverKeyPem = dataDir.serverKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const grpc = await (options.transport ?? ((o) => GrpcServer.start(o)))({ address: formatListenAddress(config.listen.grpc), trustDomain: config.trustDomain, serverCertPem: dataDir.serverCertPem, serverKeyPem, caPem: dataDir.ca.certificatePem, backend, hooks: combineHooks(metrics.transportHooks, log.transportLogHooks(logger), { onUnauthorized: unauthorizedAlerts.onUnauthorized }), logger, now });
    transport.bind(grpc);
    cleanups.push(() => grpc.shutdown(cleanups.deadlineMs));
    const ready = (): boolean => link.ready();
    grpc.setServing(ready());
    const admin = await startAdminApi({
      config, dataDir, store: fleetStore, logger, now, inventory, fleet, alerts: alerting.recent, reconciler, branch: source.branch, rollout, ready, metrics,
      actions: { fleet, quarantine, certificates, streams: transport, enrollmentTokens, rollout },
      onRefused: (reason) => metrics.adminUnauthorizedRequest(reason),
    });
    cleanups.push(() => admin.close());
    const certAlerts = new CertExpiryAlerts({ sink: alerting.sink, agents: () => fleet.list(), certificateTtlMs: config.enrollment.certificateTtlMs, now });
    cleanups.every(options.certCheckMs ?? 60_000, () => certAlerts.check());
    cleanups.every(options.staleCheckMs ?? 5_000, () => quarantine.sweepStale());
    reconciler.start();
    rollout.start();
    source.start({ intervalMs: config.repo.pollIntervalMs, nextDelayMs: (status) => pollDelay(config.repo.pollIntervalMs, status) });
    cleanups.push(() => source.stop());
    const grpcAddress = formatListenAddress({ host: config.listen.grpc.host, port: grpc.port });
    const adminUrl = `${admin.protocol}://${formatListenAddress({ host: config.listen.admin.host, port: admin.port })}`;
    log.listeningLog(logger, { config, grpc: grpcAddress, admin: adminUrl, pin: dataDir.serverPin, adminTokenFile: dataDir.paths.adminToken });
    const close = (deadlineMs = 5_000): Promise<void> => cleanups.close(deadlineMs, () => rollout.detach());
    const syncNow = async () => reconciler.settle((await source.fetch()).head.commit);
    return { config, dataDir, grpcAddress, grpcPort: grpc.port, adminUrl, adminPort: admin.port, pin: dataDir.serverPin, adminTokenPath: dataDir.paths.adminToken, metrics, reconciler, fleet, fleetStore, quarantine, rollout, ready, syncNow, close };
  } catch (err) {
    await cleanups.run();
    throw err;
  }
}
