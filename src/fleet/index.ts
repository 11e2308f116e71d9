export { StoreError } from './errors.js';
export type { StoreErrorCode } from './errors.js';
export type { FleetChange, FleetChangeEvent, FleetChangeFeed } from './changes.js';
export { MemoryFleetStore } from './memory.js';
export { READ_THROUGH, SINGLE_WRITER } from './coherence.js';
export type { CacheCoherence, CoherentCache } from './coherence.js';
export { defaultFleetStoreConfig, openFleetStore } from './open.js';
export type { FleetStoreConfig } from './open.js';
export { SqliteFleetStore } from './sqlite/store.js';
export type { SqliteFleetStoreOptions } from './sqlite/store.js';
export { ADMIN_ROLES, AGENT_STATES, CURRENT_CERTIFICATE_KINDS, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from './store.js';
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
  PageRequest,
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
