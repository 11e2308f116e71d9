import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { errorMessage } from '../domain/errors.js';
import { parseDuration } from '../domain/duration.js';
import type { KeyValidityTime } from '../source/trust/index.js';
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
}

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

const KEY_VALIDITY_TIMES: readonly KeyValidityTime[] = ['now', 'commit-time'];

/** Smallest bundle ttl: the refresh runs at half of it, and agents allow minutes of clock skew. */
const MIN_BUNDLE_TTL_MS = 60_000;
const MIN_POLL_INTERVAL_MS = 100;
const MAX_CONFIG_BYTES = 64 * 1024;
/** The same shape the PKI accepts for SPIFFE trust domains: lowercase DNS name. */
const TRUST_DOMAIN = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** Reads and validates server.yaml. Throws ServerError CONFIG_INVALID naming the file and key. */
export async function loadServerConfig(path: string): Promise<ServerConfig> {
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
  return parseServerConfig(doc.toJS({ maxAliasCount: 10 }) as unknown, { baseDir: dirname(file), source: file });
}

/**
 * Validates a parsed server.yaml document. Unknown keys are errors (a typo must not silently
 * fall back to a default); so is every missing required key.
 */
export function parseServerConfig(doc: unknown, { baseDir, source = null }: { baseDir: string; source?: string | null }): ServerConfig {
  const where = source ?? 'server config';
  const fail = (key: string, why: string): never => {
    throw new ServerError({ code: 'CONFIG_INVALID', message: `${where}: ${key}: ${why}` });
  };
  const root = object(doc, '(root)', fail);
  allowKeys(root, '', ['trustDomain', 'repo', 'trust', 'listen', 'dataDir', 'tls', 'enrollment', 'bundles', 'alerts', 'adminTls'], fail);

  const trustDomain = requiredString(root, 'trustDomain', fail);
  if (!TRUST_DOMAIN.test(trustDomain)) fail('trustDomain', `${JSON.stringify(trustDomain)} is not a lowercase DNS name (e.g. example.org)`);

  const repo = object(root['repo'], 'repo', fail);
  allowKeys(repo, 'repo.', ['url', 'branch', 'pollInterval'], fail);
  const rawUrl = requiredString(repo, 'url', fail, 'repo.');
  const url = /^[a-z][a-z0-9+.-]*:\/\//i.test(rawUrl) ? checkUrl(rawUrl, 'repo.url', ['http:', 'https:', 'file:'], fail) : resolvePath(baseDir, rawUrl);
  const branch = optionalString(repo, 'branch', fail, 'repo.') ?? CONFIG_DEFAULTS.branch;
  const pollIntervalMs = optionalDuration(repo, 'pollInterval', fail, 'repo.') ?? CONFIG_DEFAULTS.pollIntervalMs;
  if (pollIntervalMs < MIN_POLL_INTERVAL_MS) fail('repo.pollInterval', `must be at least ${MIN_POLL_INTERVAL_MS}ms`);

  const trust = object(root['trust'], 'trust', fail);
  allowKeys(trust, 'trust.', ['allowedSigners', 'keyValidity'], fail);
  const allowedSigners = resolvePath(baseDir, requiredString(trust, 'allowedSigners', fail, 'trust.'));
  const rawKeyValidity = optionalString(trust, 'keyValidity', fail, 'trust.') ?? CONFIG_DEFAULTS.keyValidity;
  const keyValidity = KEY_VALIDITY_TIMES.find((t) => t === rawKeyValidity);
  if (keyValidity === undefined) return fail('trust.keyValidity', `expected one of ${KEY_VALIDITY_TIMES.join(', ')}, got ${JSON.stringify(rawKeyValidity)}`);

  const listen = object(root['listen'], 'listen', fail);
  allowKeys(listen, 'listen.', ['grpc', 'admin'], fail);
  const grpc = parseListenAddress(requiredString(listen, 'grpc', fail, 'listen.'), 'listen.grpc', fail);
  const admin = parseListenAddress(requiredString(listen, 'admin', fail, 'listen.'), 'listen.admin', fail);

  const dataDir = resolvePath(baseDir, requiredString(root, 'dataDir', fail));

  const tls = object(root['tls'], 'tls', fail);
  allowKeys(tls, 'tls.', ['serverNames'], fail);
  const names = tls['serverNames'];
  if (!Array.isArray(names) || names.length === 0 || !names.every((n) => typeof n === 'string' && n.trim() !== '')) {
    fail('tls.serverNames', 'expected a non-empty list of host names or IP addresses');
  }
  const serverNames = (names as string[]).map((n) => n.trim());

  const enrollment = optionalObject(root['enrollment'], 'enrollment', fail);
  allowKeys(enrollment, 'enrollment.', ['certificateTtl'], fail);
  const certificateTtlMs = optionalDuration(enrollment, 'certificateTtl', fail, 'enrollment.') ?? CONFIG_DEFAULTS.certificateTtlMs;
  if (certificateTtlMs < 60_000) fail('enrollment.certificateTtl', 'must be at least 1m');

  const bundles = optionalObject(root['bundles'], 'bundles', fail);
  allowKeys(bundles, 'bundles.', ['ttl'], fail);
  const ttlMs = optionalDuration(bundles, 'ttl', fail, 'bundles.') ?? CONFIG_DEFAULTS.bundleTtlMs;
  if (ttlMs < MIN_BUNDLE_TTL_MS) fail('bundles.ttl', 'must be at least 1m');

  const alerts = optionalObject(root['alerts'], 'alerts', fail);
  allowKeys(alerts, 'alerts.', ['webhook'], fail);
  const rawWebhook = optionalString(alerts, 'webhook', fail, 'alerts.');
  const webhook = rawWebhook === undefined ? null : checkUrl(rawWebhook, 'alerts.webhook', ['http:', 'https:'], fail);

  const adminTls = parseAdminTls(root['adminTls'], baseDir, fail);

  return Object.freeze({
    source,
    trustDomain,
    repo: Object.freeze({ url, branch, pollIntervalMs }),
    trust: Object.freeze({ allowedSigners, keyValidity }),
    listen: Object.freeze({ grpc, admin }),
    dataDir,
    tls: Object.freeze({ serverNames: Object.freeze(serverNames) }),
    enrollment: Object.freeze({ certificateTtlMs }),
    bundles: Object.freeze({ ttlMs }),
    alerts: Object.freeze({ webhook }),
    adminTls,
  });
}

function parseAdminTls(value: unknown, baseDir: string, fail: Fail): AdminTlsConfig {
  if (value === undefined || value === null || value === false) return Object.freeze({ kind: 'off' });
  if (value === 'server') return Object.freeze({ kind: 'server' });
  if (!isObject(value)) return fail('adminTls', 'expected `server` (the server certificate) or a mapping {cert, key} of PEM files');
  allowKeys(value, 'adminTls.', ['cert', 'key'], fail);
  const cert = resolvePath(baseDir, requiredString(value, 'cert', fail, 'adminTls.'));
  const key = resolvePath(baseDir, requiredString(value, 'key', fail, 'adminTls.'));
  return Object.freeze({ kind: 'files', cert, key });
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
  if (!match || !(port >= 0 && port <= 65535)) return fail(key, `expected host:port (e.g. 127.0.0.1:7443 or [::1]:7443), got ${JSON.stringify(text)}`);
  const host = match[1] ?? match[2] ?? '';
  return Object.freeze({ host: host === '' ? '0.0.0.0' : host, port });
}

/** `host:port` with IPv6 hosts in brackets, as gRPC and URLs expect. */
export function formatListenAddress({ host, port }: ListenAddress): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

type Fail = (key: string, why: string) => never;
type Obj = Record<string, unknown>;

function object(value: unknown, key: string, fail: Fail): Obj {
  if (value === undefined || value === null) return fail(key, 'is required');
  if (!isObject(value)) return fail(key, 'expected a mapping');
  return value;
}

function optionalObject(value: unknown, key: string, fail: Fail): Obj {
  if (value === undefined || value === null) return {};
  if (!isObject(value)) return fail(key, 'expected a mapping');
  return value;
}

function allowKeys(obj: Obj, prefix: string, allowed: readonly string[], fail: Fail): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) fail(`${prefix}${key}`, `unknown key (expected one of: ${allowed.join(', ')})`);
  }
}

function requiredString(obj: Obj, key: string, fail: Fail, prefix = ''): string {
  const value = obj[key];
  if (value === undefined || value === null) return fail(`${prefix}${key}`, 'is required');
  if (typeof value !== 'string' || value.trim() === '') return fail(`${prefix}${key}`, 'expected a non-empty string');
  return value.trim();
}

function optionalString(obj: Obj, key: string, fail: Fail, prefix = ''): string | undefined {
  return obj[key] === undefined || obj[key] === null ? undefined : requiredString(obj, key, fail, prefix);
}

function optionalDuration(obj: Obj, key: string, fail: Fail, prefix = ''): number | undefined {
  const text = optionalString(obj, key, fail, prefix);
  if (text === undefined) return undefined;
  const ms = parseDuration(text);
  if (ms === undefined || ms <= 0) return fail(`${prefix}${key}`, `expected a positive duration like 5s, 10m or 24h, got ${JSON.stringify(text)}`);
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
