import { BaseError } from '../domain/errors.js';

/**
 * Errors of the server core: its configuration and its persisted state. A refused commit is
 * not an error of this layer (it is a recorded `Refusal`, see reconcile.ts).
 */
export const SERVER_ERROR_CODES = [
  /** server.yaml is missing, does not parse, or a key is invalid (the message names the key). */
  'CONFIG_INVALID',
  /** `<dataDir>/state.json` does not parse; never silently reset (it is the rollback anchor). */
  'STATE_INVALID',
] as const;

export type ServerErrorCode = (typeof SERVER_ERROR_CODES)[number];

export class ServerError extends BaseError<ServerErrorCode> {}
