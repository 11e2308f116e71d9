import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { errorMessage, PkiError } from '../domain/errors.js';
import { isAgentId } from '../domain/agent-id.js';
import { parseDuration } from '../domain/duration.js';
import type { StoredAuditEntry } from '../fleet/index.js';
import type { ActionResult, OperatorActionKind, RolloutStatus } from '../rollout/index.js';
import type { AgentStatus } from '../server/fleet.js';
import type { Condition } from '../server/conditions.js';

/** `GET /api/v1/source`. */
export interface SourceView {
  readonly branch: string;
  readonly head: string | null;
  readonly accepted: string | null;
  readonly generation: number;
  readonly refused: { readonly commit: string; readonly code: string; readonly message: string; readonly at: Date } | null;
  readonly conditions: readonly Condition[];
  /** Skipped symlinks and submodules of the served commit (never followed; they block nothing). */
  readonly warnings: ReadonlyArray<{ readonly kind: 'symlink' | 'submodule'; readonly path: string; readonly message: string }>;
}

/** Why an operator action on an agent was refused; the HTTP status follows from it. */
export type AgentActionRefusal = 'UNKNOWN_AGENT' | 'NOT_QUARANTINED' | 'ALREADY_QUARANTINED' | 'NO_CERTIFICATE' | 'ALREADY_REVOKED';

export type AgentActionResult =
  | { readonly kind: 'done'; readonly agent: AgentStatus; readonly serial?: string }
  | { readonly kind: 'refused'; readonly code: AgentActionRefusal; readonly message: string };

/** What the admin API reads and does; the server composes it from its parts. */
export interface AdminApi {
  /** Agents of the served commit's inventory (tokens are only made for them). */
  isKnownAgent(agentId: string): boolean;
  /** Throws PkiError TOKEN_TTL_INVALID for a ttl out of bounds. */
  createToken(agentId: string, ttlMs: number, actor: string): Promise<{ readonly token: string; readonly expiresAt: Date }>;
  agents(): readonly AgentStatus[];
  /** The audit log, newest first. */
  audit(limit: number): Promise<readonly StoredAuditEntry[]>;
  /** Lifts a quarantine (audited); the agent gets its desired bundle again. */
  approve(agentId: string, actor: string, reason: string): Promise<AgentActionResult>;
  /** Quarantines by hand (audited); the agent gets the baseline. */
  quarantine(agentId: string, actor: string, reason: string): Promise<AgentActionResult>;
  /** Revokes the agent's current certificate (audited). */
  revoke(agentId: string, actor: string, reason: string): Promise<AgentActionResult>;
  source(): SourceView;
  /** `GET /api/v1/rollout`: the rollout controller's status. */
  rollout(): RolloutStatus;
  /** pause / resume / promote / abort (audited with actor and reason). */
  rolloutAction(kind: OperatorActionKind, actor: string, reason: string | undefined): Promise<ActionResult>;
  /** Ready: a commit is accepted and gRPC listens. */
  ready(): boolean;
  metrics(): Promise<{ readonly contentType: string; readonly body: string }>;
}

export interface AdminServerOptions {
  readonly host: string;
  readonly port: number;
  /** The bearer token (contents of `<dataDir>/admin-token`, trimmed). */
  readonly token: string;
  readonly api: AdminApi;
  /** Observers (metrics, logs). Must not throw. */
  readonly hooks?: {
    onUnauthorized?(reason: 'missing-token' | 'bad-token', request: { readonly method: string; readonly path: string; readonly remote: string }): void;
    onError?(err: unknown, request: { readonly method: string; readonly path: string }): void;
  };
  /** Largest accepted request body. Default 16 KiB. */
  readonly maxBodyBytes?: number;
}

export const DEFAULT_TOKEN_TTL_MS = 3_600_000;

/**
 * Who did it, for the audit log. There is one admin token, so the API cannot know; a caller
 * may name itself with `X-Meshcfg-Actor` (the CLI sends $USER). Informational, not
 * authenticated: anyone holding the token can claim any name.
 */
export const ACTOR_HEADER = 'x-meshcfg-actor';
const DEFAULT_ACTOR = 'admin';
const ACTOR = /^[A-Za-z0-9._@+-]{1,64}$/;
const MAX_REASON_LENGTH = 1_000;
const AGENT_ACTION = /^\/api\/v1\/agents\/([^/]+)\/(approve|quarantine|revoke)$/;
const ROLLOUT_ACTION = /^\/api\/v1\/rollout\/(pause|resume|promote|abort)$/;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The admin HTTP API (node:http, no framework: a handful of routes).
 *
 * Authentication: `Authorization: Bearer <admin token>` on `/api/*`, compared in constant time.
 * `/healthz`, `/readyz` and `/metrics` are open: probes and Prometheus scrapers must not need
 * the admin credential, and what they show (counts, states) is not secret — bind
 * `listen.admin` to a trusted interface.
 */
export class AdminServer {
  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(options: AdminServerOptions): Promise<AdminServer> {
    const handler = new Handler(options);
    const server = createServer({ requestTimeout: 30_000, headersTimeout: 10_000 }, (req, res) => void handler.handle(req, res));
    server.keepAliveTimeout = 5_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, options.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return new AdminServer(server, (server.address() as AddressInfo).port);
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
  private readonly tokenHash: Buffer;
  private readonly maxBodyBytes: number;

  constructor(private readonly options: AdminServerOptions) {
    this.tokenHash = sha256(options.token);
    this.maxBodyBytes = options.maxBodyBytes ?? 16 * 1024;
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    let path = '/';
    try {
      path = new URL(req.url ?? '/', 'http://admin').pathname;
      await this.route(method, path, req, res);
    } catch (err) {
      if (err instanceof HttpError) {
        sendError(res, err.status, err.code, err.message);
      } else {
        try {
          this.options.hooks?.onError?.(err, { method, path });
        } catch {
          // Observers must not fail a request.
        }
        sendError(res, 500, 'INTERNAL', 'internal error');
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
        return sendJson(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not-ready' });
      }
      case '/metrics': {
        allow(method, 'GET');
        const { contentType, body } = await api.metrics();
        res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' });
        res.end(body);
        return;
      }
    }
    if (!path.startsWith('/api/')) throw new HttpError(404, 'NOT_FOUND', `no route ${path}`);
    this.authenticate(req, method, path);
    switch (path) {
      case '/api/v1/agents':
        allow(method, 'GET');
        return sendJson(res, 200, api.agents().map(agentJson));
      case '/api/v1/source':
        allow(method, 'GET');
        return sendJson(res, 200, sourceJson(api.source()));
      case '/api/v1/rollout':
        allow(method, 'GET');
        return sendJson(res, 200, api.rollout() as unknown as Json);
      case '/api/v1/audit': {
        allow(method, 'GET');
        const limitText = new URL(req.url ?? '/', 'http://admin').searchParams.get('limit');
        const limit = limitText === null ? 100 : Number(limitText);
        if (!Number.isSafeInteger(limit) || limit < 1 || limit > 1000) throw new HttpError(400, 'BAD_REQUEST', 'limit must be an integer from 1 to 1000');
        return sendJson(res, 200, (await api.audit(limit)).map(auditJson));
      }
      case '/api/v1/tokens': {
        allow(method, 'POST');
        const body = await this.readJson(req);
        const agentId = body['agentId'];
        if (typeof agentId !== 'string' || !isAgentId(agentId)) throw new HttpError(400, 'BAD_REQUEST', 'agentId must be an agent id (a DNS label)');
        const ttlText = body['ttl'];
        let ttlMs = DEFAULT_TOKEN_TTL_MS;
        if (ttlText !== undefined) {
          const parsed = typeof ttlText === 'string' ? parseDuration(ttlText) : undefined;
          if (parsed === undefined || parsed <= 0) throw new HttpError(400, 'BAD_REQUEST', 'ttl must be a duration like 30m or 1h');
          ttlMs = parsed;
        }
        if (!api.isKnownAgent(agentId)) {
          throw new HttpError(400, 'UNKNOWN_AGENT', `agent ${agentId} is not in the inventory of the accepted commit`);
        }
        try {
          const created = await api.createToken(agentId, ttlMs, actorOf(req));
          return sendJson(res, 201, { token: created.token, expiresAt: created.expiresAt.toISOString() });
        } catch (err) {
          if (err instanceof PkiError && err.code === 'TOKEN_TTL_INVALID') throw new HttpError(400, err.code, errorMessage(err));
          throw err;
        }
      }
      default: {
        const rolloutAction = ROLLOUT_ACTION.exec(path);
        if (rolloutAction !== null) {
          allow(method, 'POST');
          return this.rolloutAction(rolloutAction[1] as OperatorActionKind, req, res);
        }
        const action = AGENT_ACTION.exec(path);
        if (action === null) throw new HttpError(404, 'NOT_FOUND', `no route ${path}`);
        allow(method, 'POST');
        return this.agentAction(decodeURIComponent(action[1] ?? ''), action[2] as 'approve' | 'quarantine' | 'revoke', req, res);
      }
    }
  }

  private async agentAction(agentId: string, verb: 'approve' | 'quarantine' | 'revoke', req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!isAgentId(agentId)) throw new HttpError(400, 'BAD_REQUEST', 'the agent id must be a DNS label');
    const body = hasBody(req) ? await this.readJson(req) : {};
    const reason = body['reason'];
    if (reason !== undefined && (typeof reason !== 'string' || reason.length > MAX_REASON_LENGTH)) {
      throw new HttpError(400, 'BAD_REQUEST', `reason must be a string of at most ${MAX_REASON_LENGTH} characters`);
    }
    // A human decision needs its why on record; revoking is urgent and may go without.
    if (verb !== 'revoke' && (reason === undefined || reason.trim() === '')) throw new HttpError(400, 'BAD_REQUEST', `${verb} needs a reason`);
    const { api } = this.options;
    const actor = actorOf(req);
    const run = verb === 'approve' ? api.approve : verb === 'quarantine' ? api.quarantine : api.revoke;
    const result = await run.call(api, agentId, actor, reason ?? '');
    switch (result.kind) {
      case 'done':
        return sendJson(res, 200, { agent: agentJson(result.agent), actor, ...(result.serial === undefined ? {} : { serial: result.serial }) });
      case 'refused':
        throw new HttpError(result.code === 'UNKNOWN_AGENT' ? 404 : 409, result.code, result.message);
      default: {
        const never: never = result;
        throw new Error(`unexpected result ${JSON.stringify(never)}`);
      }
    }
  }

  private async rolloutAction(kind: OperatorActionKind, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = hasBody(req) ? await this.readJson(req) : {};
    const reason = body['reason'];
    if (reason !== undefined && (typeof reason !== 'string' || reason.length > MAX_REASON_LENGTH)) {
      throw new HttpError(400, 'BAD_REQUEST', `reason must be a string of at most ${MAX_REASON_LENGTH} characters`);
    }
    const { api } = this.options;
    const actor = actorOf(req);
    const result = await api.rolloutAction(kind, actor, reason);
    switch (result.kind) {
      case 'done':
        return sendJson(res, 200, { action: kind, actor, rollout: api.rollout() as unknown as Json });
      case 'refused':
        throw new HttpError(409, result.code, result.message);
      default: {
        const never: never = result;
        throw new Error(`unexpected result ${JSON.stringify(never)}`);
      }
    }
  }

  private authenticate(req: IncomingMessage, method: string, path: string): void {
    const header = req.headers.authorization;
    const match = header === undefined ? null : /^Bearer[ ]+(\S+)\s*$/i.exec(header);
    const reason = match === null ? 'missing-token' : timingSafeEqual(sha256(match[1] ?? ''), this.tokenHash) ? null : 'bad-token';
    if (reason === null) return;
    try {
      this.options.hooks?.onUnauthorized?.(reason, { method, path, remote: req.socket.remoteAddress ?? '' });
    } catch {
      // Observers must not fail a request.
    }
    throw new HttpError(401, 'UNAUTHORIZED', 'a valid admin bearer token is required (see <dataDir>/admin-token)');
  }

  /** The body is attacker-controlled: bounded, and parsed defensively into a plain object. */
  private async readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
    const type = req.headers['content-type'];
    if (type !== undefined && !/^application\/json\b/i.test(type)) {
      throw new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', 'the body must be application/json');
    }
    const declared = Number(req.headers['content-length'] ?? '0');
    if (declared > this.maxBodyBytes) throw new HttpError(413, 'PAYLOAD_TOO_LARGE', `the body exceeds ${this.maxBodyBytes} bytes`);
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > this.maxBodyBytes) throw new HttpError(413, 'PAYLOAD_TOO_LARGE', `the body exceeds ${this.maxBodyBytes} bytes`);
      chunks.push(chunk as Buffer);
    }
    let doc: unknown;
    try {
      doc = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      throw new HttpError(400, 'BAD_REQUEST', 'the body is not JSON');
    }
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new HttpError(400, 'BAD_REQUEST', 'the body must be a JSON object');
    return doc as Record<string, unknown>;
  }
}

function allow(method: string, expected: string): void {
  if (method !== expected && !(expected === 'GET' && method === 'HEAD')) {
    throw new HttpError(405, 'METHOD_NOT_ALLOWED', `use ${expected}`);
  }
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

function iso(date: Date | null): string | null {
  return date === null ? null : date.toISOString();
}

function hasBody(req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? '0') > 0;
}

function actorOf(req: IncomingMessage): string {
  const header = req.headers[ACTOR_HEADER];
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined) return DEFAULT_ACTOR;
  if (!ACTOR.test(value)) throw new HttpError(400, 'BAD_REQUEST', `${ACTOR_HEADER} must be 1-64 characters of [A-Za-z0-9._@+-]`);
  return value;
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
  };
}

export function sourceJson(source: SourceView): Json {
  return {
    branch: source.branch,
    head: source.head,
    accepted: source.accepted,
    generation: source.generation,
    refused:
      source.refused === null
        ? null
        : { commit: source.refused.commit, code: source.refused.code, message: source.refused.message, at: source.refused.at.toISOString() },
    conditions: source.conditions.map((c) => ({ ...c })),
    warnings: source.warnings.map((w) => ({ ...w })),
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
