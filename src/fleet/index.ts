export { StoreError, isStoreUnavailable } from './errors.js';
export type { StoreErrorCode } from './errors.js';
export type { FleetChange, FleetChangeEvent, FleetChangeFeed } from './changes.js';
export { MemoryFleetStore } from './memory.js';
export { notified, READ_THROUGH, SINGLE_WRITER } from './coherence.js';
export type { CacheCoherence, CoherentCache, NotifiedCoherence } from './coherence.js';
export { defaultFleetStoreConfig, describeFleetStore, openFleetStore } from './open.js';
export { importFleet } from './open.js';
export type { ImportedFleet } from './open.js';
export type { FleetStoreConfig, OpenFleetStoreOptions } from './open.js';
export { PostgresFleetStore } from './postgres/store.js';
export type { PostgresFleetStoreOptions, PostgresStoreEvent } from './postgres/store.js';
export type { PostgresChangeFeed, PostgresChangeFeedStats, PostgresFeedEvent } from './postgres/feed.js';
export { redactUrl } from './postgres/connection.js';
export { SqliteFleetStore } from './sqlite/store.js';
export type { SqliteFleetStoreOptions } from './sqlite/store.js';
export { ADMIN_ROLES, AGENT_STATES, BATCH_ID_RETENTION_MS, CURRENT_CERTIFICATE_KINDS, DEFAULT_PAGE_SIZE, GENERATIONS_KEPT, MAX_PAGE_SIZE } from './store.js';
export type {
  AcceptedState,
  AdminRole,
  AdminTokenRecord,
  AckRecord,
  AckStatus,
  ActiveVersion,
  AgentPatch,
  AgentRecord,
  AgentState,
  AgentStore,
  AgentUpdate,
  AuditEntry,
  AuditStore,
  CredentialStore,
  CurrentCertificate,
  CurrentCertificateKind,
  DeliveryStore,
  DeliveryWrite,
  FleetStore,
  FleetStoreOptions,
  GenerationAgent,
  GenerationRecord,
  GenerationStore,
  PageRequest,
  RecordBatchOptions,
  Quarantine,
  RefusalRecord,
  RevocationRecord,
  RolloutDocument,
  RolloutStore,
  SaveRolloutOptions,
  SendRecord,
  ServerState,
  ServerStateStore,
  StoredAck,
  StoredAuditEntry,
  StoredRollout,
  StoredSend,
  Version,
} from './store.js';
export type { AgentStatus, DesiredVersion, LastRejection } from './view.js';
