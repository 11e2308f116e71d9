import pg from 'pg';
import { StoreError } from '../errors.js';

/**
 * What the PostgreSQL backend shares between its pool and its listening connection: the
 * connection settings, the redaction of the URL and the mapping of pg's errors onto the
 * store's codes.
 */

/**
 * `pg` hands BIGINT (int8) back as a string, since it may exceed 2^53. Every BIGINT this
 * store writes is a safe integer (generations, epoch milliseconds and ids are checked or
 * small), so it is read back as a number; a value that is not would be a row no valid write
 * made, and is kept as NaN for the mappers to refuse rather than silently rounded.
 */
function parseBigint(text: string): number {
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : Number.NaN;
}

const TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === pg.types.builtins.INT8 && format !== 'binary' ? parseBigint : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
};

export interface ConnectionSettings {
  readonly url: string;
  /** How long to wait for a connection (TCP + authentication) before STORE_UNAVAILABLE. */
  readonly connectTimeoutMs: number;
  /** How long one statement may take, client side, before STORE_UNAVAILABLE (a hung network). */
  readonly queryTimeoutMs: number;
}

/** The pg client configuration for `url`: our BIGINT parsing, TCP keep-alive, a name in pg_stat_activity. */
export function clientConfig(settings: ConnectionSettings): pg.ClientConfig {
  return {
    connectionString: settings.url,
    connectionTimeoutMillis: settings.connectTimeoutMs,
    query_timeout: settings.queryTimeoutMs,
    keepAlive: true,
    application_name: 'meshcfg',
    types: TYPES,
  };
}

/**
 * Refuses what is not a PostgreSQL URL (`postgres://` or `postgresql://`), so a typo fails at
 * start with a message instead of pg's TypeError. The message names the URL redacted.
 */
export function checkPostgresUrl(url: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new StoreError({ code: 'STORE_UNAVAILABLE', message: `the PostgreSQL URL does not parse (expected postgres://user[:password]@host[:port]/database)` });
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new StoreError({ code: 'STORE_UNAVAILABLE', message: `${redactUrl(url)} is not a PostgreSQL URL (expected postgres://user[:password]@host[:port]/database)` });
  }
}

/**
 * The URL for messages and logs: the password (in the userinfo or a `password=` parameter)
 * replaced by `***`. A URL that does not parse is not echoed at all.
 */
export function redactUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return '(a PostgreSQL URL that does not parse)';
  }
  if (parsed.password !== '') parsed.password = '***';
  if (parsed.searchParams.has('password')) parsed.searchParams.set('password', '***');
  // URLSearchParams encodes `***` as `%2A%2A%2A`; keep it readable.
  return parsed.toString().replaceAll('%2A%2A%2A', '***');
}

/** The password in `url` (userinfo or parameter), to scrub from messages pg or the OS wrote. */
function passwordOf(url: string): string[] {
  try {
    const parsed = new URL(url);
    return [decodeURIComponent(parsed.password), parsed.password, parsed.searchParams.get('password') ?? ''].filter((p) => p.length >= 3);
  } catch {
    return [];
  }
}

export function scrub(text: string, url: string): string {
  let out = text;
  for (const secret of passwordOf(url)) out = out.replaceAll(secret, '***');
  return out;
}

/** Is this a failure of the connection (not of the statement)? Then the pooled client is discarded. */
export function isConnectionFailure(err: unknown): boolean {
  if (err instanceof StoreError) return err.code === 'STORE_UNAVAILABLE';
  if (!(err instanceof Error)) return false;
  if (err instanceof pg.DatabaseError) return sqlStateClass(err.code) === '08' || sqlStateClass(err.code) === '57';
  return true;
}

function sqlStateClass(code: string | undefined): string {
  return (code ?? '').slice(0, 2);
}

/**
 * Maps pg's errors onto the store's codes; StoreErrors pass through. A DatabaseError's SQLSTATE
 * decides: unique violation is a lost race (CONFLICT); other integrity and data errors are a
 * record the schema refuses (INVALID_RECORD); undefined tables or columns mean the schema is
 * not what the migrations made (CORRUPT, an operator acts); connection, shutdown, resource,
 * serialization and lock errors are retried (STORE_UNAVAILABLE). Anything else pg throws —
 * refused or reset connections, timeouts, a terminated backend — is the network:
 * STORE_UNAVAILABLE. Programming errors (TypeError, RangeError) pass through. The message never
 * carries the password.
 */
export function translate(err: unknown, context: string, url: string): unknown {
  if (err instanceof StoreError) return err;
  if (err instanceof TypeError || err instanceof RangeError || err instanceof SyntaxError) return err;
  if (!(err instanceof Error)) return err;
  const detail = scrub(err.message || String((err as { code?: unknown }).code ?? 'unknown error'), url);
  if (err instanceof pg.DatabaseError) {
    const message = `${context}: ${detail} (SQLSTATE ${err.code ?? '?'})`;
    const cls = sqlStateClass(err.code);
    if (err.code === '23505') return new StoreError({ code: 'CONFLICT', message, cause: err });
    if (cls === '23' || cls === '22') return new StoreError({ code: 'INVALID_RECORD', message, cause: err });
    if (err.code === '42P01' || err.code === '42703' || err.code === '42883' || cls === 'XX') return new StoreError({ code: 'CORRUPT', message, cause: err });
    return new StoreError({ code: 'STORE_UNAVAILABLE', message, cause: err });
  }
  return new StoreError({ code: 'STORE_UNAVAILABLE', message: `${context}: ${detail}`, cause: err });
}
