export { ACTOR_HEADER, AdminServer, DEFAULT_TOKEN_TTL_MS, agentJson, auditJson, sourceJson } from './http.js';
export type { AdminApi, AdminServerOptions, AgentActionRefusal, AgentActionResult, SourceView } from './http.js';
