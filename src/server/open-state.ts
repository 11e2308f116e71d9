import { defaultFleetStoreConfig, openFleetStore, type FleetStore } from '../fleet/index.js';
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
  const fleetStore = await openFleetStore(defaultFleetStoreConfig(config.dataDir), { now });
  cleanups.push(() => fleetStore.close()); // pushed first: closed last
  const imported = await importStateJson(config.dataDir, fleetStore);
  if (imported !== null) {
    const fields = { event: 'state-imported', commit: imported.accepted, generation: imported.generation };
    logger.info(fields, 'state.json imported into fleet.db (renamed to state.json.imported)');
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
    ...disconnectedAfter(options),
  });
  cleanups.push(() => fleet.flush());
  const certificates = await AgentCertificates.load(fleetStore, { now, hooks: log.certificateLogHooks(logger) });
  cleanups.push(() => certificates.flush());
  return { dataDir, allowedSigners, fleetStore, stateStore, state, signer, snapshots, fleet, certificates };
}

/** `disconnectedAfterMs` when the caller set it: the fleet cache and the metrics judge DISCONNECTED alike. */
export function disconnectedAfter(options: WiringContext['options']): { disconnectedAfterMs?: number } {
  return options.disconnectedAfterMs === undefined ? {} : { disconnectedAfterMs: options.disconnectedAfterMs };
}
