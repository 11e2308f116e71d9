import { BaseError } from '../domain/errors.js';

export const ADMIN_CLIENT_ERROR_CODES = [
  /** No token (or an unreadable token file), or an invalid admin URL. */
  'ADMIN_CONFIG',
  /** The admin API could not be reached or did not answer in time. */
  'ADMIN_UNREACHABLE',
  /** The admin API answered with an error status (`status`, `apiCode` say which). */
  'ADMIN_REFUSED',
] as const;

export type AdminClientErrorCode = (typeof ADMIN_CLIENT_ERROR_CODES)[number];

export class AdminClientError extends BaseError<AdminClientErrorCode> {
  readonly status: number | null;
  /** The `error.code` of the API's JSON error body, when it sent one. */
  readonly apiCode: string | null;

  constructor(init: { code: AdminClientErrorCode; message: string; cause?: unknown; status?: number; apiCode?: string | null }) {
    super(init);
    this.status = init.status ?? null;
    this.apiCode = init.apiCode ?? null;
  }
}
