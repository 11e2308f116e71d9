export { AdminServer, DEFAULT_TOKEN_TTL_MS, HTTP_STATUS, adminTokenJson, agentJson, auditJson, sourceJson, statusOf } from './http.js';
export type { AdminApi, AdminErrorCode, AlertView, AdminRefusalReason, AdminServerOptions, AgentActionRefusal, AgentActionResult, ReplicaInfo, SourceView } from './http.js';
export { AdminTokenError, AdminTokens, BOOTSTRAP_ACTOR, OPERATOR_TOKEN_PREFIX } from './tokens.js';
export type {
  AdminAuthentication,
  AdminPrincipal,
  AdminTokenErrorCode,
  AdminTokenRefusal,
  AdminTokenRevocation,
  AdminTokensOptions,
  AdminTokenView,
} from './tokens.js';
