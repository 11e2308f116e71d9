import { readFile } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Command } from 'commander';
import { errorMessage } from '../domain/errors.js';
import { AdminClientError } from './errors.js';
import { type CliIo, ExitCode } from './io.js';
import { isObject } from '../lib/index.js';

export const DEFAULT_ADMIN_URL = 'http://127.0.0.1:7080';

/** Flags every admin verb takes. */
export interface AdminFlags {
  readonly admin?: string;
  readonly adminTokenFile?: string;
  /** Ignored (kept so old scripts still parse): the audit log's actor is the admin token's name. */
  readonly actor?: string;
  /** PEM file of the CA that issued an https admin API's certificate (env MESHCFG_ADMIN_CA). */
  readonly adminCa?: string;
}

/** Adds `--admin` and `--admin-token-file` to a verb. */
export const ADMIN_FLAGS_HELP = {
  admin: `admin API base URL (env MESHCFG_ADMIN; default ${DEFAULT_ADMIN_URL})`,
  adminTokenFile: 'file holding the admin token, e.g. <dataDir>/admin-token (env MESHCFG_ADMIN_TOKEN holds the token itself)',
  actor: 'ignored, kept for old scripts: the audit log records the name of the admin token used (create your own with `meshcfg token create-admin`)',
  adminCa: 'for an https admin API: PEM file of the CA to trust, e.g. <dataDir>/ca.crt with adminTls: server (env MESHCFG_ADMIN_CA; default: the system CAs)',
} as const;

/** Adds `--admin`, `--admin-token-file` and `--admin-ca` to a verb. */
export function withAdminOptions(command: Command): Command {
  return command
    .option('--admin <url>', ADMIN_FLAGS_HELP.admin)
    .option('--admin-token-file <file>', ADMIN_FLAGS_HELP.adminTokenFile)
    .option('--admin-ca <file>', ADMIN_FLAGS_HELP.adminCa);
}

/**
 * Finds the admin API: `--admin` over `MESHCFG_ADMIN` over the default; the token from
 * `--admin-token-file` over `MESHCFG_ADMIN_TOKEN` (the token text; the bootstrap token or a
 * named one); for https, the CA from `--admin-ca` over `MESHCFG_ADMIN_CA` over the system CAs.
 * Never guesses a token file.
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
  const caFile = flags.adminCa ?? (env['MESHCFG_ADMIN_CA'] === '' ? undefined : env['MESHCFG_ADMIN_CA']);
  let ca: string | undefined;
  if (caFile !== undefined) {
    try {
      ca = await readFile(caFile, 'utf8');
    } catch (cause) {
      throw new AdminClientError({ code: 'ADMIN_CONFIG', message: `cannot read the admin CA file: ${errorMessage(cause)}`, cause });
    }
  }
  return new AdminClient(url, token, ca === undefined ? {} : { ca });
}

export interface AdminClientOptions {
  /** Default 10 s. */
  readonly timeoutMs?: number;
  /** PEM CA certificates trusted for an https admin URL instead of the system CAs. */
  readonly ca?: string;
}

/** A small JSON client for the admin API. */
export class AdminClient {
  readonly baseUrl: URL;
  private readonly timeoutMs: number;

  constructor(
    url: string,
    private readonly token: string,
    private readonly options: AdminClientOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? 10_000;
    try {
      this.baseUrl = new URL(url);
    } catch (cause) {
      throw new AdminClientError({ code: 'ADMIN_CONFIG', message: `invalid admin URL ${JSON.stringify(url)}`, cause });
    }
    if (this.baseUrl.protocol !== 'http:' && this.baseUrl.protocol !== 'https:') {
      throw new AdminClientError({ code: 'ADMIN_CONFIG', message: 'the admin URL must be http(s)' });
    }
  }

  async request(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<unknown> {
    const url = new URL(path.replace(/^\//, ''), this.baseUrl.href.endsWith('/') ? this.baseUrl : `${this.baseUrl.href}/`);
    let response: { status: number; text: string };
    try {
      response = await this.send(method, url, body === undefined ? undefined : JSON.stringify(body));
    } catch (cause) {
      const why = cause instanceof Error && cause.name === 'TimeoutError' ? `no answer within ${this.timeoutMs} ms` : describeFetchFailure(cause);
      throw new AdminClientError({ code: 'ADMIN_UNREACHABLE', message: `admin API at ${url.origin}: ${why}`, cause });
    }
    const { status, text } = response;
    let doc: unknown = null;
    try {
      doc = text === '' ? null : JSON.parse(text);
    } catch {
      // Not JSON: reported below by status, or as an unexpected answer.
    }
    if (status < 200 || status > 299) {
      const error = isObject(doc) && isObject(doc['error']) ? doc['error'] : {};
      const apiCode = typeof error['code'] === 'string' ? error['code'] : null;
      const message = typeof error['message'] === 'string' ? error['message'] : `HTTP ${status}`;
      throw new AdminClientError({ code: 'ADMIN_REFUSED', message: `${apiCode ?? `HTTP ${status}`}: ${message}`, status, apiCode });
    }
    return doc;
  }

  /** node:http(s) rather than fetch: an https admin API may need its own CA, which fetch cannot be given. */
  private send(method: string, url: URL, body: string | undefined): Promise<{ status: number; text: string }> {
    const headers: Record<string, string | number> = { authorization: `Bearer ${this.token}`, accept: 'application/json' };
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = Buffer.byteLength(body);
    }
    const signal = AbortSignal.timeout(this.timeoutMs);
    return new Promise((resolve, reject) => {
      const onResponse = (res: IncomingMessage): void => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      };
      const req =
        url.protocol === 'https:'
          ? httpsRequest(url, { method, headers, signal, ...(this.options.ca === undefined ? {} : { ca: this.options.ca }) }, onResponse)
          : httpRequest(url, { method, headers, signal }, onResponse);
      req.on('error', (err) => reject(signal.aborted ? signal.reason : err));
      req.end(body);
    });
  }
}

/** The socket or TLS error's code (ECONNREFUSED, ENOTFOUND, UNABLE_TO_VERIFY_LEAF_SIGNATURE, ...) and what it says. */
function describeFetchFailure(cause: unknown): string {
  const code = isObject(cause) && typeof cause['code'] === 'string' ? cause['code'] : undefined;
  return code === undefined ? errorMessage(cause) : `${code}: ${errorMessage(cause)}`;
}

/**
 * Runs one admin verb: exit 0 when `step` completes; a refusal of the admin API (or no way to
 * reach it) is printed as `meshcfg <verb>: <message>` and exits 2. Anything else is a bug and
 * propagates to the program's internal-error handler.
 */
export async function runAdminVerb(io: CliIo, setExit: (code: number) => void, verb: string, step: () => Promise<void>): Promise<void> {
  try {
    await step();
    setExit(ExitCode.ok);
  } catch (err) {
    if (!(err instanceof AdminClientError)) throw err;
    io.stderr.write(`meshcfg ${verb}: ${err.message}\n`);
    setExit(ExitCode.refused);
  }
}
