export { AdminServer, DEFAULT_TOKEN_TTL_MS, agentJson, sourceJson } from './http.js';
export type { AdminApi, AdminServerOptions, SourceView } from './http.js';
