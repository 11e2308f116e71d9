/**
 * What other entry points (`npm start`, src/demo/) reuse of the CLI: the admin API client and
 * the process I/O seam. The verbs themselves are wired in main.ts.
 */
export { AdminClient, AdminClientError } from './admin-client.js';
export type { AdminClientErrorCode, AdminClientOptions } from './admin-client.js';
export { ExitCode } from './io.js';
export type { CliIo } from './io.js';
