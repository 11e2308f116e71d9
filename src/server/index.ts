/** The server core: config, the producer loop, the snapshot cache, fleet state, the backend, and their composition. */
export { startServer, pollDelay } from './server.js';
export type { RunningServer, StartServerOptions, StartTransport, TransportHandle } from './server.js';
export { CONFIG_DEFAULTS, POSTGRES_URL_ENV, formatListenAddress, loadServerConfig, parseServerConfig } from './config.js';
export type { ConfigOptions, ListenAddress, ServerConfig, StateConfig } from './config.js';
export { ServerError } from './errors.js';
export type { ServerErrorCode } from './errors.js';
export { parseDuration, formatDuration } from '../domain/duration.js';
export { Reconciler } from './reconcile.js';
export type {
  PublishReason,
  PublishedEvent,
  ReconcileHooks,
  ReconcileResult,
  ReconcileStatus,
  ReconcilerOptions,
  Refusal,
  RefusalCode,
} from './reconcile.js';
export { buildSnapshot, latestCommitPolicy, SnapshotCache } from './snapshot.js';
export type { DesiredBundle, DesiredStatePolicy, Snapshot } from './snapshot.js';
export { FileStateStore, MemoryStateStore, INITIAL_STATE } from './state.js';
export type { PersistedState, StateStore } from './state.js';
export { FleetCache, normalizeSerial } from './fleet.js';
export type { FleetCacheOptions, LiveFleet } from './fleet.js';
export { ANY_CERTIFICATE, ServerBackend } from './backend.js';
export { AgentCertificates } from './certificates.js';
export type { AgentCertificatesHooks, RevokeOutcome } from './certificates.js';
export type { BackendHooks, CertificateRegistry, CertificateStanding, Inventory, ServerBackendOptions } from './backend.js';
export { ServerMetrics } from './metrics.js';
export { WebhookAlerter } from './alerts.js';
export type { Alert, AlertSink } from './alerts.js';
export type { Condition, ConditionType } from './conditions.js';
export { RolloutService } from './rollout.js';
export type { RolloutServiceHooks, RolloutServiceOptions } from './rollout.js';
