import { defaultFleetStoreConfig, describeFleetStore, openFleetStore, type FleetStore, type FleetStoreConfig } from '../fleet/index.js';
import { openDataDir, type DataDir } from '../pki/index.js';
import { BundleSigner } from '../signing/index.js';
import { loadAllowedSigners, type AllowedSigners } from '../source/trust/index.js';
import { AgentCertificates } from './certificates.js';
import { FleetCache } from './fleet.js';
import type { WiringContext } from './lifecycle.js';
import * as log from './logging.js';
import { DEFAULT_ACK_TIMEOUT_MS } from './published.js';
import { SnapshotCache } from './snapshot.js';
import { FleetStateStore, importStateJson, type PersistedState } from './state.js';

/** How long shutdown waits for fleet writes queued behind an unreachable store before dropping them. */
const FLUSH_AT_SHUTDOWN_MS = 10_000;

/** What the server keeps and signs with, opened before any part that reads it. */
export interface OpenedState {
  readonly dataDir: DataDir;
  readonly allowedSigners: AllowedSigners;
  readonly fleetStore: FleetStore;
  readonly stateStore: FleetStateStore;
  /** The accepted commit and generation of the previous run. */
  readonly state: PersistedState;
  readonly signer: BundleSigner;
  readonly snapshots: SnapshotCache;
  readonly fleet: FleetCache;
  readonly certificates: AgentCertificates;
}

/**
 * The first phase: the data directory (CA, keys, pins), the allowed signers, the fleet store
 * (a `state.json` of an older meshcfg imported into it), the signer continuing the stored
 * generation, the snapshot cache and the store's in-memory views. The store's close is the
 * first shutdown step pushed, so it runs last; the fleet cache flushes just before it.
 */
export async function openState({ config, options, logger, now, cleanups }: WiringContext): Promise<OpenedState> {
  const dataDir = await openDataDir({
    dataDir: config.dataDir,
    trustDomain: config.trustDomain,
    serverNames: config.tls.serverNames,
    agentCertTtlMs: config.enrollment.certificateTtlMs,
    now,
  });
  log.dataDirLog(logger, dataDir.changes);
  const allowedSigners = await loadAllowedSigners(config.trust.allowedSigners);
  const storeConfig = fleetStoreConfig(config);
  const given = options.fleetStore;
  const fleetStore = given ?? (await openFleetStore(storeConfig, { now, onPostgresEvent: log.postgresEventLog(logger) }));
  cleanups.push(() => (given === undefined ? fleetStore.close() : undefined)); // pushed first: closed last
  logger.info(
    {
      event: 'fleet-store',
      backend: storeConfig.kind,
      where: describeFleetStore(storeConfig),
      ...(config.state.kind === 'postgres' ? { from: config.state.from } : {}),
    },
    `fleet state: ${describeFleetStore(storeConfig)}`,
  );
  // An older meshcfg's state.json is imported into whichever store this is (once: it is renamed).
  const imported = await importStateJson(config.dataDir, fleetStore);
  if (imported !== null) {
    const fields = { event: 'state-imported', commit: imported.accepted, generation: imported.generation };
    logger.info(fields, `state.json imported into the fleet store (${storeConfig.kind}; renamed to state.json.imported)`);
  }
  const stateStore = new FleetStateStore(fleetStore);
  const state = await stateStore.load();
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
    onStoreError: log.storeErrorLog(logger),
    onStoreRecovered: (retried) =>
      logger.info({ event: 'fleet-store-recovered', retried }, `fleet store: reachable again; ${retried} delayed writes recorded in order`),
    ...disconnectedAfter(options),
  });
  // Waits for the writes still queued; gives up (logging each dropped one) when the store stays out of reach.
  cleanups.push(() => fleet.flush({ timeoutMs: FLUSH_AT_SHUTDOWN_MS }));
  const certificates = await AgentCertificates.load(fleetStore, { now, hooks: log.certificateLogHooks(logger) });
  cleanups.push(() => certificates.flush());
  return { dataDir, allowedSigners, fleetStore, stateStore, state, signer, snapshots, fleet, certificates };
}

/** server.yaml `state` (and MESHCFG_POSTGRES_URL) as the fleet store to open: SQLite in the data dir unless PostgreSQL is named. */
export function fleetStoreConfig(config: Pick<WiringContext['config'], 'dataDir' | 'state'>): FleetStoreConfig {
  return config.state.kind === 'postgres' ? { kind: 'postgres', url: config.state.url } : defaultFleetStoreConfig(config.dataDir);
}

/** `disconnectedAfterMs` when the caller set it: the fleet cache and the metrics judge DISCONNECTED alike. */
export function disconnectedAfter(options: WiringContext['options']): { disconnectedAfterMs?: number } {
  return options.disconnectedAfterMs === undefined ? {} : { disconnectedAfterMs: options.disconnectedAfterMs };
}
