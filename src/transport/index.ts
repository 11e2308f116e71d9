/**
 * gRPC distribution: the server's own TLS listener and identity from verified certificates,
 * the pinned client the agent uses, and `DistributionBackend`, the port the server implements.
 */
export type {
  AckOutcome,
  AckReport,
  ActiveReport,
  AgentIdentity,
  Authorization,
  ConnectFailure,
  Delivery,
  DistributionBackend,
  EnrollmentResult,
  TransportHooks,
  UnauthorizedReason,
} from './backend.js';
export { CONNECT_FAILURES } from './backend.js';
export {
  DEFAULT_RPC_TIMEOUT_MS,
  DistributionRpc,
  EnrollmentRpc,
  fromGrpcError,
  parseServerAddress,
  pinnedCredentials,
  pinnedServerIdentityCheck,
  probeServerCertificate,
} from './client.js';
export type { ConfigStream, PinnedCredentialsOptions, ProbeOptions, RpcOptions, ServerAddress, TrustAnchor } from './client.js';
export type { AckMsg, BundleMsg, EnrollResponseMsg, ServerMessageMsg } from './proto.js';
export { GrpcServer, HEALTH_SERVICES } from './server.js';
export type { GrpcServerOptions, TransportLogger } from './server.js';
export type { UnauthorizedRefusal } from './status.js';
