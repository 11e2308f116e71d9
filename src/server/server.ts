import { pino } from 'pino';
import { startAdminApi } from './admin-api.js';
import { formatListenAddress, type ServerConfig } from './config.js';
import { startDelivery } from './delivery.js';
import { CertExpiryAlerts } from './fleet-alerts.js';
import { CleanupStack, pollDelay, type WiringContext } from './lifecycle.js';
import * as log from './logging.js';
import { openState } from './open-state.js';
import { buildProducer } from './producer.js';
import { chooseLeadership, runWhileLeading, startReplicaSync } from './replica.js';
import type { SourceStatus } from '../source/index.js';
import type { RunningServer, StartServerOptions } from './running.js';
import { DEFAULT_STORE_OUTAGE_GRACE_MS, StoreOutage } from './store-outage.js';

export { pollDelay } from './lifecycle.js';
export type { TransportHandle } from './links.js';
export type { RunningServer, StartServerOptions, StartTransport } from './running.js';

/**
 * The composition root: the wiring phases in data-flow order, each in its own module. State
 * (data directory, fleet store, signer, caches) → producer (source, trust gate, compiler,
 * rollout, quarantine, reconciler; the accepted commit of a previous run republished) →
 * delivery (backend, gRPC, which listens only now, so reconnecting agents are served at once)
 * → the admin API → the loops start. Each phase pushes its shutdown steps in build order; they
 * run in reverse, so the store closes last. A failed start runs the steps pushed so far.
 */
export async function startServer(config: ServerConfig, options: StartServerOptions = {}): Promise<RunningServer> {
  const logger = options.logger ?? pino({ name: 'meshcfg' });
  const cleanups = new CleanupStack(logger);
  const context: WiringContext = { config, options, logger, now: options.now ?? (() => new Date()), cleanups };
  const { now } = context;
  try {
    const opened = await openState(context);
    const { dataDir, fleetStore, fleet, certificates } = opened;
    const leadership = options.leadership ?? chooseLeadership(config, logger);
    const producer = await buildProducer(context, opened, leadership);
    const { source, alerting, rollout, metrics, quarantine, reconciler, link, transport } = producer;
    const { enrollmentTokens, grpc } = await startDelivery(context, opened, producer);
    const graceMs = options.storeOutageGraceMs ?? DEFAULT_STORE_OUTAGE_GRACE_MS;
    const outage = new StoreOutage({ reachable: () => fleet.storeReachable, graceMs, sink: alerting.sink, now });
    cleanups.every(options.storeOutageCheckMs ?? 5_000, () => outage.check());
    const ready = (): boolean => link.ready() && outage.ready();
    const admin = await startAdminApi({
      config,
      dataDir,
      store: fleetStore,
      logger,
      now,
      inventory: producer.inventory,
      fleet,
      alerts: alerting.recent,
      reconciler,
      branch: source.branch,
      rollout,
      ready,
      replica: () => ({ id: leadership.replica, leader: leadership.isLeader() }),
      metrics,
      actions: { fleet, quarantine, certificates, streams: transport, enrollmentTokens, rollout },
      onRefused: (reason) => metrics.adminUnauthorizedRequest(reason),
    });
    cleanups.push(() => admin.close());
    const certificateTtlMs = config.enrollment.certificateTtlMs;
    const certAlerts = new CertExpiryAlerts({ sink: alerting.sink, agents: () => fleet.list(), certificateTtlMs, now });
    cleanups.every(options.certCheckMs ?? 60_000, () => certAlerts.check());
    cleanups.every(options.staleCheckMs ?? 5_000, () => quarantine.sweepStale());
    const intervalMs = config.repo.pollIntervalMs;
    const poll = { intervalMs, nextDelayMs: (status: SourceStatus) => pollDelay(intervalMs, status) };
    const republish = (): Promise<unknown> => link.republish();
    const compile = producer.compileAccepted;
    const replicaParts = { store: fleetStore, leadership, reconciler, compile, signer: dataDir, logger, streams: transport, republish };
    const sync = startReplicaSync(replicaParts, { fleet, certificates, rollout });
    cleanups.push(() => sync?.stop());
    const highestGeneration = async (): Promise<number> => (await fleetStore.serverState()).generation;
    const catchUp = (): Promise<void> => sync?.catchUp() ?? Promise.resolve();
    cleanups.push(runWhileLeading(leadership, { source, rollout, reconciler, poll, highestGeneration, catchUp }, logger));
    const grpcAddress = formatListenAddress({ host: config.listen.grpc.host, port: grpc.port });
    const adminUrl = `${admin.protocol}://${formatListenAddress({ host: config.listen.admin.host, port: admin.port })}`;
    const adminTokenPath = dataDir.paths.adminToken;
    log.listeningLog(logger, { config, grpc: grpcAddress, admin: adminUrl, pin: dataDir.serverPin, adminTokenFile: adminTokenPath });
    return {
      config,
      dataDir,
      grpcAddress,
      grpcPort: grpc.port,
      adminUrl,
      adminPort: admin.port,
      pin: dataDir.serverPin,
      adminTokenPath,
      metrics,
      reconciler,
      fleet,
      fleetStore,
      quarantine,
      rollout,
      ready,
      leadership,
      syncNow: async () => reconciler.settle((await source.fetch()).head.commit),
      close: (deadlineMs = 5_000) => cleanups.close(deadlineMs, () => rollout.detach()),
    };
  } catch (err) {
    await cleanups.run();
    throw err;
  }
}
