import { readFile } from 'node:fs/promises';
import { BaseError, errorMessage } from '../domain/errors.js';

export const DEFAULT_ADMIN_URL = 'http://127.0.0.1:7080';

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

/** Flags every admin verb takes. */
export interface AdminFlags {
  readonly admin?: string;
  readonly adminTokenFile?: string;
  /** Who acts, for the audit log (sent as X-Meshcfg-Actor; env MESHCFG_ACTOR). */
  readonly actor?: string;
}

/** Adds `--admin` and `--admin-token-file` to a verb. */
export const ADMIN_FLAGS_HELP = {
  admin: `admin API base URL (env MESHCFG_ADMIN; default ${DEFAULT_ADMIN_URL})`,
  adminTokenFile: 'file holding the admin token, e.g. <dataDir>/admin-token (env MESHCFG_ADMIN_TOKEN holds the token itself)',
  actor: 'who you are, for the audit log (env MESHCFG_ACTOR; default: the API records "admin")',
} as const;

/**
 * Finds the admin API: `--admin` over `MESHCFG_ADMIN` over the default; the token from
 * `--admin-token-file` over `MESHCFG_ADMIN_TOKEN` (the token text). Never guesses a token file.
 */
export async function adminClientFrom(flags: AdminFlags, env: NodeJS.ProcessEnv = process.env): Promise<AdminClient> {
  const url = flags.admin ?? env['MESHCFG_ADMIN'] ?? DEFAULT_ADMIN_URL;
  let token: string | undefined;
  if (flags.adminTokenFile !== undefined) {
    try {
      token = (await readFile(flags.adminTokenFile, 'utf8')).trim();
    } catch (cause) {
      throw new AdminClientError({ code: 'ADMIN_CONFIG', message: `cannot read the admin token file: ${errorMessage(cause)}`, cause });
    }
  } else {
    token = env['MESHCFG_ADMIN_TOKEN']?.trim();
  }
  if (token === undefined || token === '') {
    throw new AdminClientError({
      code: 'ADMIN_CONFIG',
      message: 'no admin token: pass --admin-token-file <dataDir>/admin-token or set MESHCFG_ADMIN_TOKEN',
    });
  }
  const actor = flags.actor ?? env['MESHCFG_ACTOR'];
  return new AdminClient(url, token, undefined, actor === undefined || actor === '' ? undefined : actor);
}

/** A small JSON client for the admin API. */
export class AdminClient {
  readonly baseUrl: URL;

  constructor(
    url: string,
    private readonly token: string,
    private readonly timeoutMs = 10_000,
    private readonly actor?: string,
  ) {
    try {
      this.baseUrl = new URL(url);
    } catch (cause) {
      throw new AdminClientError({ code: 'ADMIN_CONFIG', message: `invalid admin URL ${JSON.stringify(url)}`, cause });
    }
    if (this.baseUrl.protocol !== 'http:' && this.baseUrl.protocol !== 'https:') {
      throw new AdminClientError({ code: 'ADMIN_CONFIG', message: 'the admin URL must be http(s)' });
    }
  }

  async request(method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
    const url = new URL(path.replace(/^\//, ''), this.baseUrl.href.endsWith('/') ? this.baseUrl : `${this.baseUrl.href}/`);
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers: {
          authorization: `Bearer ${this.token}`,
          ...(this.actor === undefined ? {} : { 'x-meshcfg-actor': this.actor }),
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (cause) {
      const why = cause instanceof Error && cause.name === 'TimeoutError' ? `no answer within ${this.timeoutMs} ms` : describeFetchFailure(cause);
      throw new AdminClientError({ code: 'ADMIN_UNREACHABLE', message: `admin API at ${url.origin}: ${why}`, cause });
    }
    const text = await response.text();
    let doc: unknown = null;
    try {
      doc = text === '' ? null : JSON.parse(text);
    } catch {
      // Not JSON: reported below by status, or as an unexpected answer.
    }
    if (!response.ok) {
      const error = isObject(doc) && isObject(doc['error']) ? doc['error'] : {};
      const apiCode = typeof error['code'] === 'string' ? error['code'] : null;
      const message = typeof error['message'] === 'string' ? error['message'] : `HTTP ${response.status}`;
      throw new AdminClientError({ code: 'ADMIN_REFUSED', message: `${apiCode ?? `HTTP ${response.status}`}: ${message}`, status: response.status, apiCode });
    }
    return doc;
  }
}

function describeFetchFailure(cause: unknown): string {
  // undici wraps the socket error (ECONNREFUSED, ENOTFOUND) in `cause`.
  const inner = cause instanceof Error ? (cause as Error & { cause?: unknown }).cause : undefined;
  const code = isObject(inner) && typeof inner['code'] === 'string' ? inner['code'] : undefined;
  return code ?? (inner === undefined ? errorMessage(cause) : errorMessage(inner));
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
