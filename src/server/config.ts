import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { parseDocument } from 'yaml';
import { errorMessage } from '../domain/errors.js';
import { parseDuration } from '../domain/duration.js';
import type { KeyValidityTime } from '../source/trust/index.js';
import { serverConfigSchema } from './config-schema.js';
import { ServerError } from './errors.js';
import { isObject } from '../lib/index.js';

/** A `host:port` to listen on. Port 0 asks the OS for a free port (tests). */
export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

/**
 * server.yaml, validated, with defaults applied and relative paths resolved against the
 * directory of the file. Every key is documented in the README's server.yaml section.
 */
export interface ServerConfig {
  /** Where the configuration came from (absolute), or `null` when built in memory. */
  readonly source: string | null;
  /**
   * SPIFFE trust domain of agent identities. Part of the server's own configuration, never
   * taken from the repository: a commit whose meshcfg.yaml names another one is refused.
   */
  readonly trustDomain: string;
  readonly repo: {
    /** Absolute local path, or an http(s) URL (may carry credentials: never log it unredacted). */
    readonly url: string;
    readonly branch: string;
    readonly pollIntervalMs: number;
  };
  readonly trust: {
    readonly allowedSigners: string;
    /**
     * When an allowed signer's valid-after/valid-before window is checked: `now` (the moment
     * the server first saw the commit) or `commit-time` (the committer date, as git does;
     * chosen by the signer, so a retired key can backdate).
     */
    readonly keyValidity: KeyValidityTime;
  };
  readonly listen: { readonly grpc: ListenAddress; readonly admin: ListenAddress };
  readonly dataDir: string;
  readonly tls: { readonly serverNames: readonly string[] };
  readonly enrollment: { readonly certificateTtlMs: number };
  readonly bundles: { readonly ttlMs: number };
  readonly alerts: { readonly webhook: string | null };
  /** TLS for the admin API; `off` (plain HTTP, the default, meant for loopback). */
  readonly adminTls: AdminTlsConfig;
  /** Where the fleet state lives: SQLite in the data dir (the default) or a shared PostgreSQL. */
  readonly state: StateConfig;
}

/**
 * `state` in server.yaml and `MESHCFG_POSTGRES_URL`: SQLite at `<dataDir>/fleet.db` unless a
 * PostgreSQL URL is given. The environment wins over the file, so the password need not sit
 * in a file (a Kubernetes Secret, a systemd credential). `url` may carry the password: log it
 * only through `redactUrl`.
 */
export type StateConfig =
  | { readonly kind: 'sqlite' }
  | { readonly kind: 'postgres'; readonly url: string; readonly from: 'server.yaml' | typeof POSTGRES_URL_ENV };

/** The environment variable that names the PostgreSQL fleet store (and wins over `state.postgres`). */
export const POSTGRES_URL_ENV = 'MESHCFG_POSTGRES_URL';

const POSTGRES_PROTOCOLS = ['postgres:', 'postgresql:'] as const;

/**
 * `adminTls` in server.yaml: absent (plain HTTP), `server` (the server's own certificate from
 * the data directory, issued by the enrollment CA for `tls.serverNames`), or `{cert, key}`
 * PEM files (e.g. from the organisation's CA).
 */
export type AdminTlsConfig =
  | { readonly kind: 'off' }
  | { readonly kind: 'server' }
  | { readonly kind: 'files'; readonly cert: string; readonly key: string };

export const CONFIG_DEFAULTS = {
  branch: 'main',
  pollIntervalMs: 30_000,
  certificateTtlMs: 24 * 3_600_000,
  bundleTtlMs: 24 * 3_600_000,
  keyValidity: 'now',
} as const;

/** Smallest bundle ttl: the refresh runs at half of it, and agents allow minutes of clock skew. */
const MIN_BUNDLE_TTL_MS = 60_000;
const MIN_POLL_INTERVAL_MS = 100;
const MAX_CONFIG_BYTES = 64 * 1024;

export interface ConfigOptions {
  /** The environment `MESHCFG_POSTGRES_URL` is read from. Default `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/** Reads and validates server.yaml. Throws ServerError CONFIG_INVALID naming the file and key. */
export async function loadServerConfig(path: string, options: ConfigOptions = {}): Promise<ServerConfig> {
  const file = resolve(path);
  let text: string;
  try {
    const bytes = await readFile(file);
    if (bytes.length > MAX_CONFIG_BYTES) throw new Error(`larger than ${MAX_CONFIG_BYTES} bytes`);
    text = bytes.toString('utf8');
  } catch (cause) {
    throw new ServerError({ code: 'CONFIG_INVALID', message: `cannot read ${file}: ${errorMessage(cause)}`, cause });
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ServerError({ code: 'CONFIG_INVALID', message: `${file}: not valid YAML: ${doc.errors[0]?.message ?? ''}` });
  }
  return parseServerConfig(doc.toJS({ maxAliasCount: 10 }) as unknown, { baseDir: dirname(file), source: file, ...options });
}

/**
 * Validates a parsed server.yaml document: its shape by JSON Schema (`config-schema.ts`), then
 * what a schema cannot say (durations, addresses, URL schemes). Unknown keys are errors (a
 * typo must not silently fall back to a default); so is every missing required key.
 */
export function parseServerConfig(
  doc: unknown,
  { baseDir, source = null, env = process.env }: { baseDir: string; source?: string | null } & ConfigOptions,
): ServerConfig {
  const where = source ?? 'server config';
  const fail = (key: string, why: string): never => {
    throw new ServerError({ code: 'CONFIG_INVALID', message: `${where}: ${key}: ${why}` });
  };
  const root = checkShape(normalize(doc), fail);

  const { trustDomain } = root;
  const rawUrl = root.repo.url;
  const url = /^[a-z][a-z0-9+.-]*:\/\//i.test(rawUrl)
    ? checkUrl(rawUrl, 'repo.url', ['http:', 'https:', 'file:'], fail)
    : resolvePath(baseDir, rawUrl);
  const branch = root.repo.branch ?? CONFIG_DEFAULTS.branch;
  const pollIntervalMs = duration(root.repo.pollInterval, 'repo.pollInterval', fail) ?? CONFIG_DEFAULTS.pollIntervalMs;
  if (pollIntervalMs < MIN_POLL_INTERVAL_MS) fail('repo.pollInterval', `must be at least ${MIN_POLL_INTERVAL_MS}ms`);

  const allowedSigners = resolvePath(baseDir, root.trust.allowedSigners);
  const keyValidity = root.trust.keyValidity ?? CONFIG_DEFAULTS.keyValidity;

  const grpc = parseListenAddress(root.listen.grpc, 'listen.grpc', fail);
  const admin = parseListenAddress(root.listen.admin, 'listen.admin', fail);

  const dataDir = resolvePath(baseDir, root.dataDir);
  const serverNames = root.tls.serverNames;

  const certificateTtlMs = duration(root.enrollment?.certificateTtl, 'enrollment.certificateTtl', fail) ?? CONFIG_DEFAULTS.certificateTtlMs;
  if (certificateTtlMs < 60_000) fail('enrollment.certificateTtl', 'must be at least 1m');

  const ttlMs = duration(root.bundles?.ttl, 'bundles.ttl', fail) ?? CONFIG_DEFAULTS.bundleTtlMs;
  if (ttlMs < MIN_BUNDLE_TTL_MS) fail('bundles.ttl', 'must be at least 1m');

  const rawWebhook = root.alerts?.webhook;
  const webhook = rawWebhook === undefined ? null : checkUrl(rawWebhook, 'alerts.webhook', ['http:', 'https:'], fail);

  const adminTls: AdminTlsConfig =
    root.adminTls === undefined || root.adminTls === false
      ? Object.freeze({ kind: 'off' })
      : root.adminTls === 'server'
        ? Object.freeze({ kind: 'server' })
        : Object.freeze({ kind: 'files', cert: resolvePath(baseDir, root.adminTls.cert), key: resolvePath(baseDir, root.adminTls.key) });

  const state = stateConfig(root.state?.postgres, env[POSTGRES_URL_ENV], fail);

  return Object.freeze({
    source,
    trustDomain,
    repo: Object.freeze({ url, branch, pollIntervalMs }),
    trust: Object.freeze({ allowedSigners, keyValidity }),
    listen: Object.freeze({ grpc, admin }),
    dataDir,
    tls: Object.freeze({ serverNames: Object.freeze([...serverNames]) }),
    enrollment: Object.freeze({ certificateTtlMs }),
    bundles: Object.freeze({ ttlMs }),
    alerts: Object.freeze({ webhook }),
    adminTls,
    state,
  });
}

/** The environment's URL if set (non-blank), else the file's, else SQLite. URLs are checked, never echoed (they may hold a password). */
function stateConfig(fromFile: string | undefined, fromEnv: string | undefined, fail: Fail): StateConfig {
  const env = fromEnv?.trim();
  if (env !== undefined && env !== '') {
    return Object.freeze({ kind: 'postgres', url: checkUrl(env, POSTGRES_URL_ENV, POSTGRES_PROTOCOLS, fail), from: POSTGRES_URL_ENV });
  }
  if (fromFile !== undefined) {
    return Object.freeze({ kind: 'postgres', url: checkUrl(fromFile, 'state.postgres', POSTGRES_PROTOCOLS, fail), from: 'server.yaml' });
  }
  return Object.freeze({ kind: 'sqlite' });
}

/** Loopback only: 127.0.0.0/8, ::1 (also IPv4-mapped) and `localhost`. `0.0.0.0` and `::` are every interface. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice('::ffff:'.length) : h;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}

/** `host:port` or `[v6]:port`; the host may be empty (`:7443`, every interface). */
export function parseListenAddress(text: string, key: string, fail: (key: string, why: string) => never): ListenAddress {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text.trim());
  const port = match ? Number(match[3]) : NaN;
  if (!match || !(port >= 0 && port <= 65535)) {
    return fail(key, `expected host:port (e.g. 127.0.0.1:7443 or [::1]:7443), got ${JSON.stringify(text)}`);
  }
  const host = match[1] ?? match[2] ?? '';
  return Object.freeze({ host: host === '' ? '0.0.0.0' : host, port });
}

/** `host:port` with IPv6 hosts in brackets, as gRPC and URLs expect. */
export function formatListenAddress({ host, port }: ListenAddress): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

type Fail = (key: string, why: string) => never;

/** server.yaml as the schema admits it (after `normalize`). */
interface ServerYaml {
  readonly trustDomain: string;
  readonly repo: { readonly url: string; readonly branch?: string; readonly pollInterval?: string };
  readonly trust: { readonly allowedSigners: string; readonly keyValidity?: KeyValidityTime };
  readonly listen: { readonly grpc: string; readonly admin: string };
  readonly dataDir: string;
  readonly tls: { readonly serverNames: readonly string[] };
  readonly enrollment?: { readonly certificateTtl?: string };
  readonly bundles?: { readonly ttl?: string };
  readonly alerts?: { readonly webhook?: string };
  readonly adminTls?: false | 'server' | { readonly cert: string; readonly key: string };
  readonly state?: { readonly postgres?: string };
}

let validateShape: ValidateFunction<ServerYaml> | undefined;

/**
 * The schema check. The first error is reported, naming its key as a dotted path
 * (`repo.url`, `tls.serverNames[0]`, `(root)` for the document itself).
 */
function checkShape(doc: unknown, fail: Fail): ServerYaml {
  // strict: a schema mistake fails loudly; verbose: errors carry the schema node (its description).
  validateShape ??= new Ajv({ strict: true, verbose: true }).compile<ServerYaml>(serverConfigSchema);
  if (validateShape(doc)) return doc;
  const error = validateShape.errors?.[0];
  if (error === undefined) return fail('(root)', 'invalid');
  return fail(...describeError(error));
}

function describeError(error: ErrorObject): [key: string, why: string] {
  const path = error.instancePath
    .split('/')
    .slice(1)
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((key, part) => (/^\d+$/.test(part) ? `${key}[${part}]` : key === '' ? part : `${key}.${part}`), '');
  const at = (child: string): string => (path === '' ? child : `${path}.${child}`);
  const described = (error.parentSchema as { description?: unknown } | undefined)?.description;
  const why = typeof described === 'string' ? described : (error.message ?? 'invalid');
  switch (error.keyword) {
    case 'required':
      return [at(String(error.params['missingProperty'])), 'is required'];
    case 'additionalProperties': {
      const allowed = Object.keys((error.parentSchema as { properties?: object } | undefined)?.properties ?? {});
      return [at(String(error.params['additionalProperty'])), `unknown key (expected one of: ${allowed.join(', ')})`];
    }
    case 'enum':
      return [path || '(root)', `${why}, got ${JSON.stringify(error.data)}`];
    default:
      return [path || '(root)', why];
  }
}

/**
 * A key with no value (`key:` — null) reads as absent, and surrounding blanks of a string do
 * not count, as they never have. Returns a copy; the parsed document is untouched.
 */
function normalize(value: unknown): unknown {
  if (typeof value === 'string') return value.trim();
  if (Array.isArray(value)) return value.map(normalize);
  if (!isObject(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, entry] of Object.entries(value)) {
    if (entry !== null && entry !== undefined) out[key] = normalize(entry);
  }
  return out;
}

/** An optional duration (already a non-empty string by the schema), in milliseconds. */
function duration(text: string | undefined, key: string, fail: Fail): number | undefined {
  if (text === undefined) return undefined;
  const ms = parseDuration(text);
  if (ms === undefined || ms <= 0) return fail(key, `expected a positive duration like 5s, 10m or 24h, got ${JSON.stringify(text)}`);
  return ms;
}

function checkUrl(text: string, key: string, protocols: readonly string[], fail: Fail): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return fail(key, 'is not a valid URL');
  }
  if (!protocols.includes(url.protocol)) return fail(key, `expected a ${protocols.map((p) => p.slice(0, -1)).join(' or ')} URL`);
  return text;
}

function resolvePath(baseDir: string, path: string): string {
  return isAbsolute(path) ? path : resolve(baseDir, path);
}
