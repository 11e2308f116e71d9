export { AdminServer, DEFAULT_TOKEN_TTL_MS, adminTokenJson, agentJson, auditJson, sourceJson } from './http.js';
export type { AdminApi, AlertView, AdminRefusalReason, AdminServerOptions, AgentActionRefusal, AgentActionResult, SourceView } from './http.js';
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
