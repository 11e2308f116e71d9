/**
 * What other entry points (`npm start`, src/demo/) reuse of the CLI: the admin API client and
 * the process I/O seam. The verbs themselves are wired in main.ts.
 */
export { AdminClient } from './admin-client.js';
export type { AdminClientOptions } from './admin-client.js';
export { AdminClientError } from './errors.js';
export type { AdminClientErrorCode } from './errors.js';
export { ExitCode } from './io.js';
export type { CliIo } from './io.js';
