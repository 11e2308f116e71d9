import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { errorMessage, PkiError } from '../domain/errors.js';
import { isAgentId } from '../domain/agent-id.js';
import type { AgentId } from '../domain/types.js';
import { parseDuration } from '../domain/duration.js';
import { isStoreUnavailable, type AgentStatus, type StoredAuditEntry } from '../fleet/index.js';
import type { ActionRefusalCode, ActionResult, OperatorActionKind, RolloutStatus } from '../rollout/index.js';
import type { Condition } from '../domain/condition.js';
import { BodySchema, maxUtf16Length } from './bodies.js';
import { DASHBOARD_HEADERS, loadDashboardAssets, type DashboardAsset } from './dashboard-assets.js';
import { AdminTokenError, type AdminAuthentication, type AdminTokenErrorCode, type AdminPrincipal, type AdminTokenRefusal, type AdminTokenRevocation, type AdminTokenView } from './tokens.js';

/** `GET /api/v1/source`. */
export interface SourceView {
  readonly branch: string;
  readonly head: string | null;
  readonly accepted: string | null;
  /** The served commit as the trust gate verified it (null before one is served). `seenAt`: when the server first saw it. */
  readonly acceptedCommit: {
    readonly sha: string;
    readonly signer: string | null;
    readonly subject: string;
    readonly committedAt: Date;
    readonly seenAt: Date | null;
  } | null;
  readonly generation: number;
  readonly refused: { readonly commit: string; readonly code: string; readonly message: string; readonly at: Date } | null;
  readonly conditions: readonly Condition[];
  /** Skipped symlinks and submodules of the served commit (never followed; they block nothing). */
  readonly warnings: ReadonlyArray<{ readonly kind: 'symlink' | 'submodule'; readonly path: string; readonly message: string }>;
  /** This server process: its replica id, and whether it leads the repository tracker and the rollout. */
  readonly replica: ReplicaInfo;
}

/** One server replica as `/readyz` and `GET /api/v1/source` show it. */
export interface ReplicaInfo {
  readonly id: string;
  readonly leader: boolean;
}

/** An alert as `GET /api/v1/alerts` shows it: the webhook's JSON plus the ring's `id`. */
export interface AlertView {
  readonly id: number;
  readonly kind: string;
  readonly message: string;
  /** ISO 8601. */
  readonly at: string;
  readonly [field: string]: string | number | undefined;
}

/** Why an operator action on an agent was refused; the HTTP status follows from it. */
export const AGENT_ACTION_REFUSALS = [
  'UNKNOWN_AGENT',
  'NOT_QUARANTINED',
  'ALREADY_QUARANTINED',
  'NO_CERTIFICATE',
  'ALREADY_REVOKED',
] as const;

export type AgentActionRefusal = (typeof AGENT_ACTION_REFUSALS)[number];

export type AgentActionResult =
  | { readonly kind: 'done'; readonly agent: AgentStatus; readonly serial?: string }
  | { readonly kind: 'refused'; readonly code: AgentActionRefusal; readonly message: string };

/** What the admin API reads and does; the server composes it from its parts. */
export interface AdminApi {
  /** Agents of the served commit's inventory (tokens are only made for them). */
  isKnownAgent(agentId: AgentId): boolean;
  /** Throws PkiError TOKEN_TTL_INVALID for a ttl out of bounds. */
  createToken(agentId: AgentId, ttlMs: number, actor: string): Promise<{ readonly token: string; readonly expiresAt: Date }>;
  agents(): readonly AgentStatus[];
  /** The audit log, newest first. */
  audit(limit: number): Promise<readonly StoredAuditEntry[]>;
  /** Recent alerts (an in-memory ring), newest first. */
  alerts(limit: number): readonly AlertView[];
  /** Lifts a quarantine (audited); the agent gets its desired bundle again. */
  approve(agentId: AgentId, actor: string, reason: string): Promise<AgentActionResult>;
  /** Quarantines by hand (audited); the agent gets the baseline. */
  quarantine(agentId: AgentId, actor: string, reason: string): Promise<AgentActionResult>;
  /** Revokes the agent's current certificate (audited). */
  revoke(agentId: AgentId, actor: string, reason: string): Promise<AgentActionResult>;
  source(): SourceView;
  /** `GET /api/v1/rollout`: the rollout controller's status. */
  rollout(): RolloutStatus;
  /** pause / resume / promote / abort (audited with actor and reason). */
  rolloutAction(kind: OperatorActionKind, actor: string, reason: string | undefined): Promise<ActionResult>;
  /** Creates a named admin token (audited). Throws AdminTokenError for a bad name, role or ttl, or a name in use. */
  createAdminToken(name: string, role: string, ttlMs: number | null, actor: string): Promise<{ readonly token: string; readonly view: AdminTokenView }>;
  listAdminTokens(): Promise<readonly AdminTokenView[]>;
  /** Revokes a named admin token (audited); refused from its next request on. */
  revokeAdminToken(name: string, actor: string, reason: string): Promise<AdminTokenRevocation>;
  /** Ready: a commit is accepted and gRPC listens. */
  ready(): boolean;
  /** This replica's id and whether it leads (every replica serves; one leads). */
  replica(): ReplicaInfo;
  metrics(): Promise<{ readonly contentType: string; readonly body: string }>;
}

/** Why an `/api/*` request was refused before it ran: 401 for the token reasons, 403 for `forbidden-role`. */
export type AdminRefusalReason = 'missing-token' | AdminTokenRefusal | 'forbidden-role';

export interface AdminServerOptions {
  readonly host: string;
  readonly port: number;
  /** Checks a bearer token: the bootstrap token (`<dataDir>/admin-token`) or a named one (AdminTokens). */
  readonly credentials: { authenticate(secret: string): Promise<AdminAuthentication> };
  readonly api: AdminApi;
  /** Observers (metrics, logs). Must not throw. */
  readonly hooks?: {
    onUnauthorized?(
      reason: AdminRefusalReason,
      request: { readonly method: string; readonly path: string; readonly remote: string; readonly actor?: string },
    ): void;
    onError?(err: unknown, request: { readonly method: string; readonly path: string }): void;
  };
  /** Largest accepted request body. Default 16 KiB. */
  readonly maxBodyBytes?: number;
  /** Serve HTTPS with this certificate (chain) and key, PEM. Default: plain HTTP. */
  readonly tls?: { readonly cert: string; readonly key: string };
  /** The dashboard's files by URL path. Default: `loadDashboardAssets()` (the files shipped beside this module). */
  readonly dashboard?: ReadonlyMap<string, DashboardAsset>;
}

export const DEFAULT_TOKEN_TTL_MS = 3_600_000;

const MAX_REASON_LENGTH = 1_000;
const AGENT_ACTION = /^\/api\/v1\/agents\/([^/]+)\/(approve|quarantine|revoke)$/;
const ROLLOUT_ACTION = /^\/api\/v1\/rollout\/(pause|resume|promote|abort)$/;
const ADMIN_TOKEN = /^\/api\/v1\/admin-tokens\/([^/]+)$/;

/**
 * What each role may do. `viewer` reads; `operator` also steers rollouts and quarantine;
 * `admin` (the bootstrap token only) also revokes agent certificates, creates enrollment
 * tokens and manages named tokens — each of those mints or destroys a credential.
 */
type Right = 'viewer' | 'operator' | 'admin';
const RANK: Readonly<Record<AdminPrincipal['role'], number>> = { viewer: 0, operator: 1, admin: 2 };

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** The `error.code` of the admin API's generic refusals (operator actions add their own refusal codes). */
export const ADMIN_HTTP_ERROR_CODES = [
  'BAD_REQUEST',
  /** No or a wrong bearer token. */
  'UNAUTHORIZED',
  /** A named token whose role does not grant the route. */
  'FORBIDDEN_ROLE',
  /** A path whose percent-encoding does not decode. */
  'BAD_PATH',
  /** No named admin token has that name. */
  'UNKNOWN_TOKEN',
  'NOT_FOUND',
  'METHOD_NOT_ALLOWED',
  'UNSUPPORTED_MEDIA_TYPE',
  'PAYLOAD_TOO_LARGE',
  /** An unexpected failure; the details go to the server log only. */
  'INTERNAL',
  /** The fleet state store (PostgreSQL) is out of reach: nothing was changed; try again. */
  'STORE_UNAVAILABLE',
] as const;

export type AdminHttpErrorCode = (typeof ADMIN_HTTP_ERROR_CODES)[number];

/** Every `error.code` the admin API answers with. */
export type AdminErrorCode = AdminHttpErrorCode | AgentActionRefusal | ActionRefusalCode | AdminTokenErrorCode | AdminTokenRevocationRefusal;

type AdminTokenRevocationRefusal = Extract<AdminTokenRevocation, { kind: 'refused' }>['code'];

/**
 * The one place HTTP statuses are chosen: routes throw codes, this table answers the status.
 * A thing the request names that does not exist is 404 when the path names it; when a body
 * field names it, the request is malformed (400) — see `statusOf`.
 */
export const HTTP_STATUS: Readonly<Record<AdminErrorCode, number>> = {
  BAD_REQUEST: 400,
  BAD_PATH: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN_ROLE: 403,
  NOT_FOUND: 404,
  UNKNOWN_TOKEN: 404,
  UNKNOWN_AGENT: 404,
  METHOD_NOT_ALLOWED: 405,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  INTERNAL: 500,
  STORE_UNAVAILABLE: 503,
  // Agent actions refused by the agent's current state.
  NOT_QUARANTINED: 409,
  ALREADY_QUARANTINED: 409,
  NO_CERTIFICATE: 409,
  ALREADY_REVOKED: 409,
  // Rollout commands refused by the rollout's current state.
  ALREADY_PAUSED: 409,
  NOT_PAUSED: 409,
  NO_ROLLOUT: 409,
  HALTED: 409,
  // Admin and enrollment tokens.
  TOKEN_NAME_INVALID: 400,
  ROLE_INVALID: 400,
  TOKEN_TTL_INVALID: 400,
  TOKEN_NAME_TAKEN: 409,
};

/** Where the request named what the refusal is about. */
type Named = 'path' | 'body';

class HttpError extends Error {
  constructor(
    readonly code: AdminErrorCode,
    message: string,
    readonly named: Named = 'path',
  ) {
    super(message);
  }
}

export function statusOf(code: AdminErrorCode, named: Named = 'path'): number {
  const status = HTTP_STATUS[code];
  return status === 404 && named === 'body' ? 400 : status;
}

/*
 * Request bodies, by JSON Schema (ajv): each field's refusal code and message, in the order
 * fields are checked. Agent-id and duration rules stay with the routes.
 */
const TOKEN_BODY = new BodySchema<{ agentId: string; ttl?: string }, AdminErrorCode>({
  agentId: { schema: { type: 'string' }, required: true, code: 'BAD_REQUEST', message: 'agentId must be an agent id (a DNS label)' },
  ttl: { schema: { type: 'string' }, code: 'BAD_REQUEST', message: 'ttl must be a duration like 30m or 1h' },
});
const ADMIN_TOKEN_BODY = new BodySchema<{ name: string; role: string; ttl?: string | null }, AdminErrorCode>({
  name: { schema: { type: 'string' }, required: true, code: 'TOKEN_NAME_INVALID', message: 'name must be a string' },
  role: { schema: { type: 'string' }, required: true, code: 'ROLE_INVALID', message: 'role must be viewer or operator' },
  ttl: { schema: { type: ['string', 'null'] }, code: 'TOKEN_TTL_INVALID', message: 'ttl must be a duration like 8h or 30d' },
});
/** Agent actions, rollout commands and admin-token revocation: an optional reason for the audit log. */
const REASON_BODY = new BodySchema<{ reason?: string }, AdminErrorCode>({
  reason: { schema: maxUtf16Length(MAX_REASON_LENGTH), code: 'BAD_REQUEST', message: `reason must be a string of at most ${MAX_REASON_LENGTH} characters` },
});

/** The body as its schema types it, or a 400-class refusal naming the first wrong field. */
function bodyOf<T>(schema: BodySchema<T, AdminErrorCode>, body: Record<string, unknown>): T {
  const checked = schema.check(body);
  if (checked.kind === 'refused') throw new HttpError(checked.code, checked.message, 'body');
  return checked.body;
}

interface RequestContext {
  readonly req: IncomingMessage;
  readonly method: string;
  readonly path: string;
  readonly principal: AdminPrincipal;
}

/**
 * The admin HTTP API (node:http, no framework: a handful of routes).
 *
 * Authentication: `Authorization: Bearer <token>` on `/api/*` — the bootstrap token or a named
 * one — and authorisation by the token's role (403 FORBIDDEN_ROLE). The audit log's actor is
 * the token's name; no request field can name another.
 * `/healthz`, `/readyz` and `/metrics` are open: probes and Prometheus scrapers must not need
 * the admin credential, and what they show (counts, states) is not secret — bind
 * `listen.admin` to a trusted interface.
 */
export class AdminServer {
  private constructor(
    private readonly server: Server,
    readonly port: number,
    /** `https` when started with `tls`. */
    readonly protocol: 'http' | 'https',
  ) {}

  static async start(options: AdminServerOptions): Promise<AdminServer> {
    const handler = new Handler(options);
    const timeouts = { requestTimeout: 30_000, headersTimeout: 10_000 };
    const listener = (req: IncomingMessage, res: ServerResponse): void => void handler.handle(req, res);
    // https.Server extends tls.Server, not http.Server, but has the same request API.
    const server: Server =
      options.tls === undefined
        ? createServer(timeouts, listener)
        : (createHttpsServer({ ...timeouts, cert: options.tls.cert, key: options.tls.key, minVersion: 'TLSv1.2' }, listener) as unknown as Server);
    server.keepAliveTimeout = 5_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, options.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return new AdminServer(server, (server.address() as AddressInfo).port, options.tls === undefined ? 'http' : 'https');
  }

  /** Stops accepting, ends idle keep-alive connections, and waits for running requests. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    const force = setTimeout(() => this.server.closeAllConnections(), 2_000);
    await closed;
    clearTimeout(force);
  }
}

class Handler {
  private readonly maxBodyBytes: number;
  private readonly dashboard: ReadonlyMap<string, DashboardAsset>;

  constructor(private readonly options: AdminServerOptions) {
    this.maxBodyBytes = options.maxBodyBytes ?? 16 * 1024;
    this.dashboard = options.dashboard ?? loadDashboardAssets();
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    let path = '/';
    try {
      path = new URL(req.url ?? '/', 'http://admin').pathname;
      await this.route(method, path, req, res);
    } catch (err) {
      if (err instanceof HttpError) {
        sendError(res, statusOf(err.code, err.named), err.code, err.message);
      } else if (isStoreUnavailable(err)) {
        // The store's message names no secret (URLs are redacted); it tells the operator what is down.
        try {
          this.options.hooks?.onError?.(err, { method, path });
        } catch {
          // Observers must not fail a request.
        }
        res.setHeader('retry-after', '5');
        sendError(res, HTTP_STATUS.STORE_UNAVAILABLE, 'STORE_UNAVAILABLE', `the fleet state store is out of reach; nothing was changed, try again (${errorMessage(err)})`);
      } else {
        try {
          this.options.hooks?.onError?.(err, { method, path });
        } catch {
          // Observers must not fail a request.
        }
        sendError(res, HTTP_STATUS.INTERNAL, 'INTERNAL', 'internal error');
      }
    }
  }

  private async route(method: string, path: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { api } = this.options;
    switch (path) {
      case '/healthz':
        allow(method, 'GET');
        return sendJson(res, 200, { status: 'ok' });
      case '/readyz': {
        allow(method, 'GET');
        const ready = api.ready();
        return sendJson(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not-ready', replica: { ...api.replica() } });
      }
      case '/metrics': {
        allow(method, 'GET');
        const { contentType, body } = await api.metrics();
        res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' });
        res.end(body);
        return;
      }
    }
    // The dashboard's page and assets: open like the probes, and free of fleet data.
    const asset = this.dashboard.get(path);
    if (asset !== undefined) {
      allow(method, 'GET');
      res.writeHead(200, { ...DASHBOARD_HEADERS, 'content-type': asset.contentType, 'content-length': asset.body.length });
      res.end(method === 'HEAD' ? undefined : asset.body);
      return;
    }
    if (!path.startsWith('/api/')) throw new HttpError('NOT_FOUND', `no route ${path}`);
    const ctx: RequestContext = { req, method, path, principal: await this.authenticate(req, method, path) };
    switch (path) {
      case '/api/v1/agents':
        this.permit(ctx, 'GET', 'viewer');
        return sendJson(res, 200, api.agents().map(agentJson));
      case '/api/v1/source':
        this.permit(ctx, 'GET', 'viewer');
        return sendJson(res, 200, sourceJson(api.source()));
      case '/api/v1/rollout':
        this.permit(ctx, 'GET', 'viewer');
        return sendJson(res, 200, api.rollout() as unknown as Json);
      case '/api/v1/audit': {
        this.permit(ctx, 'GET', 'viewer');
        const limit = limitParam(req, 100, 1000);
        return sendJson(res, 200, (await api.audit(limit)).map(auditJson));
      }
      case '/api/v1/alerts': {
        this.permit(ctx, 'GET', 'viewer');
        const limit = limitParam(req, 100, 100);
        return sendJson(res, 200, api.alerts(limit).map((alert) => ({ ...alert }) as { [key: string]: Json }));
      }
      case '/api/v1/whoami':
        // Who the token is and what it may do: the dashboard disables what the role cannot.
        this.permit(ctx, 'GET', 'viewer');
        return sendJson(res, 200, { name: ctx.principal.name, role: ctx.principal.role });
      case '/api/v1/tokens': {
        this.permit(ctx, 'POST', 'admin');
        const { agentId, ttl: ttlText } = bodyOf(TOKEN_BODY, await this.readJson(req));
        if (!isAgentId(agentId)) throw new HttpError('BAD_REQUEST', 'agentId must be an agent id (a DNS label)');
        let ttlMs = DEFAULT_TOKEN_TTL_MS;
        if (ttlText !== undefined) {
          const parsed = parseDuration(ttlText);
          if (parsed === undefined || parsed <= 0) throw new HttpError('BAD_REQUEST', 'ttl must be a duration like 30m or 1h');
          ttlMs = parsed;
        }
        if (!api.isKnownAgent(agentId)) {
          throw new HttpError('UNKNOWN_AGENT', `agent ${agentId} is not in the inventory of the accepted commit`, 'body');
        }
        try {
          const created = await api.createToken(agentId, ttlMs, ctx.principal.name);
          return sendJson(res, 201, { token: created.token, expiresAt: created.expiresAt.toISOString() });
        } catch (err) {
          if (err instanceof PkiError && err.code === 'TOKEN_TTL_INVALID') throw new HttpError(err.code, errorMessage(err));
          throw err;
        }
      }
      case '/api/v1/admin-tokens':
        if (method === 'POST') {
          this.permit(ctx, 'POST', 'admin');
          return this.createAdminToken(ctx, res);
        }
        this.permit(ctx, 'GET', 'admin');
        return sendJson(res, 200, (await api.listAdminTokens()).map(adminTokenJson));
      default: {
        const rolloutAction = ROLLOUT_ACTION.exec(path);
        if (rolloutAction !== null) {
          this.permit(ctx, 'POST', 'operator');
          return this.rolloutAction(rolloutAction[1] as OperatorActionKind, ctx, res);
        }
        const adminToken = ADMIN_TOKEN.exec(path);
        if (adminToken !== null) {
          this.permit(ctx, 'DELETE', 'admin');
          return this.revokeAdminToken(decodePathSegment(adminToken[1] ?? ''), ctx, res);
        }
        const action = AGENT_ACTION.exec(path);
        if (action === null) throw new HttpError('NOT_FOUND', `no route ${path}`);
        const verb = action[2] as 'approve' | 'quarantine' | 'revoke';
        this.permit(ctx, 'POST', verb === 'revoke' ? 'admin' : 'operator');
        return this.agentAction(decodePathSegment(action[1] ?? ''), verb, ctx, res);
      }
    }
  }

  private async createAdminToken(ctx: RequestContext, res: ServerResponse): Promise<void> {
    const { name, role, ttl } = bodyOf(ADMIN_TOKEN_BODY, await this.readJson(ctx.req));
    let ttlMs: number | null = null;
    if (ttl !== undefined && ttl !== null) {
      const parsed = parseDuration(ttl);
      if (parsed === undefined || parsed <= 0) throw new HttpError('TOKEN_TTL_INVALID', 'ttl must be a duration like 8h or 30d');
      ttlMs = parsed;
    }
    try {
      const created = await this.options.api.createAdminToken(name, role, ttlMs, ctx.principal.name);
      return sendJson(res, 201, { token: created.token, ...adminTokenJson(created.view) });
    } catch (err) {
      if (err instanceof AdminTokenError) throw new HttpError(err.code, errorMessage(err));
      throw err;
    }
  }

  private async revokeAdminToken(name: string, ctx: RequestContext, res: ServerResponse): Promise<void> {
    const reason = hasBody(ctx.req) ? reasonOf(await this.readJson(ctx.req)) : undefined;
    const result = await this.options.api.revokeAdminToken(name, ctx.principal.name, reason ?? '');
    switch (result.kind) {
      case 'revoked':
        return sendJson(res, 200, { ...adminTokenJson(result.token), actor: ctx.principal.name });
      case 'refused':
        throw new HttpError(result.code, result.message);
      default: {
        const never: never = result;
        throw new Error(`unexpected result ${JSON.stringify(never)}`);
      }
    }
  }

  private async agentAction(agentId: string, verb: 'approve' | 'quarantine' | 'revoke', ctx: RequestContext, res: ServerResponse): Promise<void> {
    if (!isAgentId(agentId)) throw new HttpError('BAD_REQUEST', 'the agent id must be a DNS label');
    const reason = reasonOf(hasBody(ctx.req) ? await this.readJson(ctx.req) : {});
    // A human decision needs its why on record; revoking is urgent and may go without.
    if (verb !== 'revoke' && (reason === undefined || reason.trim() === '')) throw new HttpError('BAD_REQUEST', `${verb} needs a reason`);
    const { api } = this.options;
    const actor = ctx.principal.name;
    const run = verb === 'approve' ? api.approve : verb === 'quarantine' ? api.quarantine : api.revoke;
    const result = await run.call(api, agentId, actor, reason ?? '');
    switch (result.kind) {
      case 'done':
        return sendJson(res, 200, { agent: agentJson(result.agent), actor, ...(result.serial === undefined ? {} : { serial: result.serial }) });
      case 'refused':
        throw new HttpError(result.code, result.message);
      default: {
        const never: never = result;
        throw new Error(`unexpected result ${JSON.stringify(never)}`);
      }
    }
  }

  private async rolloutAction(kind: OperatorActionKind, ctx: RequestContext, res: ServerResponse): Promise<void> {
    const reason = reasonOf(hasBody(ctx.req) ? await this.readJson(ctx.req) : {});
    const { api } = this.options;
    const actor = ctx.principal.name;
    const result = await api.rolloutAction(kind, actor, reason);
    switch (result.kind) {
      case 'done':
        return sendJson(res, 200, { action: kind, actor, rollout: api.rollout() as unknown as Json });
      case 'refused':
        throw new HttpError(result.code, result.message);
      default: {
        const never: never = result;
        throw new Error(`unexpected result ${JSON.stringify(never)}`);
      }
    }
  }

  private async authenticate(req: IncomingMessage, method: string, path: string): Promise<AdminPrincipal> {
    const header = req.headers.authorization;
    const match = header === undefined ? null : /^Bearer[ ]+(\S+)\s*$/i.exec(header);
    const result: AdminAuthentication = match === null ? { kind: 'refused', reason: 'bad-token' } : await this.options.credentials.authenticate(match[1] ?? '');
    if (result.kind === 'authenticated') return result.principal;
    const reason: AdminRefusalReason = match === null ? 'missing-token' : result.reason;
    this.refused(reason, { method, path, remote: req.socket.remoteAddress ?? '' });
    const why = reason === 'revoked-token' ? 'this token is revoked' : reason === 'expired-token' ? 'this token has expired' : 'a valid admin bearer token is required';
    throw new HttpError('UNAUTHORIZED', `${why} (the bootstrap token is <dataDir>/admin-token; named tokens come from meshcfg token create-admin)`);
  }

  /** Checks the method, then the role: 405 before 403, so a wrong verb is never reported as a missing right. */
  private permit(ctx: RequestContext, expected: string, right: Right): void {
    allow(ctx.method, expected);
    if (RANK[ctx.principal.role] >= RANK[right]) return;
    this.refused('forbidden-role', { method: ctx.method, path: ctx.path, remote: ctx.req.socket.remoteAddress ?? '', actor: ctx.principal.name });
    throw new HttpError('FORBIDDEN_ROLE', `the ${ctx.principal.role} token ${ctx.principal.name} may not ${ctx.method} ${ctx.path} (needs ${right === 'admin' ? 'the bootstrap admin token' : `role ${right}`})`);
  }

  private refused(reason: AdminRefusalReason, request: { method: string; path: string; remote: string; actor?: string }): void {
    try {
      this.options.hooks?.onUnauthorized?.(reason, request);
    } catch {
      // Observers must not fail a request.
    }
  }

  /** The body is attacker-controlled: bounded, and parsed defensively into a plain object. */
  private async readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
    const type = req.headers['content-type'];
    if (type !== undefined && !/^application\/json\b/i.test(type)) {
      throw new HttpError('UNSUPPORTED_MEDIA_TYPE', 'the body must be application/json');
    }
    const declared = Number(req.headers['content-length'] ?? '0');
    if (declared > this.maxBodyBytes) throw new HttpError('PAYLOAD_TOO_LARGE', `the body exceeds ${this.maxBodyBytes} bytes`);
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > this.maxBodyBytes) throw new HttpError('PAYLOAD_TOO_LARGE', `the body exceeds ${this.maxBodyBytes} bytes`);
      chunks.push(chunk as Buffer);
    }
    let doc: unknown;
    try {
      doc = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      throw new HttpError('BAD_REQUEST', 'the body is not JSON');
    }
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new HttpError('BAD_REQUEST', 'the body must be a JSON object');
    return doc as Record<string, unknown>;
  }
}

function allow(method: string, expected: string): void {
  if (method !== expected && !(expected === 'GET' && method === 'HEAD')) {
    throw new HttpError('METHOD_NOT_ALLOWED', `use ${expected}`);
  }
}

/** The path is attacker-controlled: a malformed percent-encoding is the client's mistake (400), not ours. */
function decodePathSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError('BAD_PATH', 'the path holds a malformed percent-encoding');
  }
}

/** `?limit=N`: an integer from 1 to `max`; `fallback` when absent. */
function limitParam(req: IncomingMessage, fallback: number, max: number): number {
  const text = new URL(req.url ?? '/', 'http://admin').searchParams.get('limit');
  const limit = text === null ? fallback : Number(text);
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > max) throw new HttpError('BAD_REQUEST', `limit must be an integer from 1 to ${max}`);
  return limit;
}

function iso(date: Date | null): string | null {
  return date === null ? null : date.toISOString();
}

function hasBody(req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? '0') > 0;
}

function reasonOf(body: Record<string, unknown>): string | undefined {
  return bodyOf(REASON_BODY, body).reason;
}

export function adminTokenJson(token: AdminTokenView): { [key: string]: Json } {
  return {
    name: token.name,
    role: token.role,
    state: token.state,
    createdAt: token.createdAt.toISOString(),
    createdBy: token.createdBy,
    expiresAt: iso(token.expiresAt),
    revokedAt: iso(token.revokedAt),
  };
}

export function auditJson(entry: StoredAuditEntry): Json {
  return {
    id: entry.id,
    at: entry.at.toISOString(),
    actor: entry.actor,
    action: entry.action,
    target: entry.target,
    reason: entry.reason,
    details: (entry.details ?? null) as Json,
  };
}

export function agentJson(agent: AgentStatus): Json {
  return {
    id: agent.id,
    labels: { ...agent.labels },
    wave: agent.wave,
    state: agent.state,
    desired:
      agent.desired === null
        ? null
        : { commit: agent.desired.commit, digest: agent.desired.digest, generation: agent.desired.generation, baseline: agent.desired.baseline ?? false },
    active:
      agent.active === null
        ? null
        : { commit: agent.active.commit, digest: agent.active.digest, generation: agent.active.generation, at: agent.active.at.toISOString() },
    certSerial: agent.certSerial,
    certExpiry: iso(agent.certExpiry),
    lastSeen: iso(agent.lastSeen),
    connected: agent.connected,
    lastError: agent.lastError,
    quarantine: agent.quarantine === null ? null : { since: agent.quarantine.since.toISOString(), reason: agent.quarantine.reason, by: agent.quarantine.by },
    lastRejection:
      agent.lastRejection === null
        ? null
        : { commit: agent.lastRejection.commit, digest: agent.lastRejection.digest, error: agent.lastRejection.error, at: agent.lastRejection.at.toISOString() },
  };
}

export function sourceJson(source: SourceView): Json {
  return {
    branch: source.branch,
    head: source.head,
    accepted: source.accepted,
    acceptedCommit:
      source.acceptedCommit === null
        ? null
        : {
            sha: source.acceptedCommit.sha,
            signer: source.acceptedCommit.signer,
            subject: source.acceptedCommit.subject,
            committedAt: source.acceptedCommit.committedAt.toISOString(),
            seenAt: iso(source.acceptedCommit.seenAt),
          },
    generation: source.generation,
    refused:
      source.refused === null
        ? null
        : { commit: source.refused.commit, code: source.refused.code, message: source.refused.message, at: source.refused.at.toISOString() },
    conditions: source.conditions.map((c) => ({ ...c })),
    warnings: source.warnings.map((w) => ({ ...w })),
    replica: { id: source.replica.id, leader: source.replica.leader },
  };
}

function sendJson(res: ServerResponse, status: number, body: Json): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: ServerResponse, status: number, code: string, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (status === 401) res.setHeader('www-authenticate', 'Bearer realm="meshcfg"');
  // An unread request body must not be parsed as the next request on this connection.
  if (status === 413) res.setHeader('connection', 'close');
  sendJson(res, status, { error: { code, message } });
}
