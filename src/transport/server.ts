import { isIP } from 'node:net';
import type { PeerCertificate } from 'node:tls';
import {
  type ChannelOptions,
  type ConnectionInjector,
  type sendUnaryData,
  Server,
  ServerCredentials,
  type ServerUnaryCall,
} from '@grpc/grpc-js';
import { HealthImplementation, type ServingStatus } from 'grpc-health-check';
import { errorMessage, PkiError, TransportError } from '../domain/errors.js';
import type { AgentId } from '../domain/types.js';
import type { AgentIdentity, DistributionBackend, TransportHooks } from './backend.js';
import { authenticatePeer, checkEchoedAgentId, PeerIdentities } from './identity.js';
import { ackReport, activeReport, bundleMessage, enrollResponse } from './messages.js';
import {
  distributionService,
  enrollmentService,
  type AckMsg,
  type EnrollRequestMsg,
  type EnrollResponseMsg,
  type FetchRequestMsg,
  type FetchResponseMsg,
  type RenewRequestMsg,
  type ReportResponseMsg,
} from './proto.js';
import { grpcError, type UnauthorizedRefusal, refusalOfPkiError, Status, statusOfReason } from './status.js';
import { AgentStream, type AgentStreamCall } from './stream-session.js';
import { TlsListener, type TlsMaterial } from './tls-listener.js';

/** pino-compatible subset. Never handed tokens, keys or certificate bodies. */
export interface TransportLogger {
  info(o: object, msg?: string): void;
  warn(o: object, msg?: string): void;
}

export interface GrpcServerOptions {
  /** `host:port`, `[v6]:port`; port 0 picks a free one (read it from `GrpcServer.port`). */
  readonly address: string;
  readonly trustDomain: string;
  readonly serverCertPem: string;
  readonly serverKeyPem: string;
  readonly caPem: string;
  readonly backend: DistributionBackend;
  readonly hooks?: TransportHooks;
  readonly logger?: TransportLogger;
  /** Largest message an agent may send (hello, ack, CSR). Default 64 KiB. */
  readonly maxReceiveMessageBytes?: number;
  /** Largest message the server sends (a bundle with its signature). Default 8 MiB. */
  readonly maxSendMessageBytes?: number;
  /** A stream that says no hello by then is ended. Default 30 s. */
  readonly helloTimeoutMs?: number;
  /** A TLS handshake not finished by then (counted from its start) is dropped. Default 10 s. */
  readonly handshakeTimeoutMs?: number;
  /**
   * TLS handshakes in progress at once; further connections wait for a slot (tls-listener.ts).
   * Default 512: enough that a storm's queue stays short (every waiting connection is a
   * connection the server may have to shed), few enough that each handshake, sharing the CPU
   * with the others, still ends well within its 10 s timeout (~2.5 ms of server CPU each).
   */
  readonly maxConcurrentHandshakes?: number;
  /**
   * Connections waiting for a handshake slot at most; beyond, a new one is closed (overloaded).
   * Default 8,192: each waiting connection holds a file descriptor; with 10,000 agents
   * connected and a 20,000 descriptor limit, a longer queue ends in EMFILE, where libuv
   * accepts and closes connections unseen.
   */
  readonly maxQueuedHandshakes?: number;
  /**
   * A connection that waited this long for a handshake slot is closed (queue-timeout). Default
   * 20 s, grpc-js's connect timeout: shorter sheds connections whose clients would still have
   * waited (at 4,000 agents, 10 s cost 12,085 reconnects); longer keeps file descriptors of
   * clients that already left.
   */
  readonly handshakeQueueTimeoutMs?: number;
  /** Clock for certificate expiry checks (tests). */
  readonly now?: () => Date;
}

/** The health service names: '' is the whole server. */
export const HEALTH_SERVICES = ['', 'meshcfg.v1.Distribution'] as const;

const DEFAULTS = {
  maxReceiveMessageBytes: 64 * 1024,
  maxSendMessageBytes: 8 * 1024 * 1024,
  helloTimeoutMs: 30_000,
  handshakeTimeoutMs: 10_000,
  maxConcurrentHandshakes: 512,
  maxQueuedHandshakes: 8_192,
  handshakeQueueTimeoutMs: 20_000,
  now: (): Date => new Date(),
};

type ResolvedOptions = Required<Omit<GrpcServerOptions, 'hooks' | 'logger'>> & { readonly hooks: TransportHooks; readonly logger: TransportLogger };

/**
 * The agents' gRPC endpoint: Distribution, Enrollment and health on one mTLS port.
 *
 * The transport authenticates, maps messages and keeps streams; what each agent should have
 * and what its acks mean is the backend's (src/transport/backend.ts).
 */
export class GrpcServer {
  readonly port: number;
  private readonly options: ResolvedOptions;
  private readonly grpc: Server;
  private readonly injector: ConnectionInjector;
  private readonly listener: TlsListener;
  private readonly health: HealthImplementation;
  private readonly streams: StreamRegistry;
  private shuttingDown: Promise<void> | undefined;

  private constructor(parts: {
    options: ResolvedOptions;
    grpc: Server;
    injector: ConnectionInjector;
    listener: TlsListener;
    health: HealthImplementation;
    streams: StreamRegistry;
  }) {
    this.options = parts.options;
    this.grpc = parts.grpc;
    this.injector = parts.injector;
    this.listener = parts.listener;
    this.health = parts.health;
    this.streams = parts.streams;
    this.port = parts.listener.port;
  }

  static async start(options: GrpcServerOptions): Promise<GrpcServer> {
    const resolved: ResolvedOptions = {
      address: options.address,
      trustDomain: options.trustDomain,
      serverCertPem: options.serverCertPem,
      serverKeyPem: options.serverKeyPem,
      caPem: options.caPem,
      backend: options.backend,
      maxReceiveMessageBytes: options.maxReceiveMessageBytes ?? DEFAULTS.maxReceiveMessageBytes,
      maxSendMessageBytes: options.maxSendMessageBytes ?? DEFAULTS.maxSendMessageBytes,
      helloTimeoutMs: options.helloTimeoutMs ?? DEFAULTS.helloTimeoutMs,
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? DEFAULTS.handshakeTimeoutMs,
      maxConcurrentHandshakes: Math.max(1, options.maxConcurrentHandshakes ?? DEFAULTS.maxConcurrentHandshakes),
      maxQueuedHandshakes: Math.max(0, options.maxQueuedHandshakes ?? DEFAULTS.maxQueuedHandshakes),
      handshakeQueueTimeoutMs: options.handshakeQueueTimeoutMs ?? DEFAULTS.handshakeQueueTimeoutMs,
      now: options.now ?? DEFAULTS.now,
      hooks: safeHooks(options.hooks ?? {}, options.logger),
      logger: options.logger ?? { info: () => undefined, warn: () => undefined },
    };
    const { host, port } = parseAddress(resolved.address);
    const grpc = new Server(channelOptions(resolved));
    const streams = new StreamRegistry();
    const handlers = new Handlers(resolved, streams);
    grpc.addService(distributionService, {
      Stream: (call: AgentStreamCall) => handlers.stream(call),
      Fetch: (call: ServerUnaryCall<FetchRequestMsg, FetchResponseMsg>, callback: sendUnaryData<FetchResponseMsg>) => handlers.fetch(call, callback),
      Report: (call: ServerUnaryCall<AckMsg, ReportResponseMsg>, callback: sendUnaryData<ReportResponseMsg>) => handlers.report(call, callback),
    });
    grpc.addService(enrollmentService, {
      Enroll: (call: ServerUnaryCall<EnrollRequestMsg, EnrollResponseMsg>, callback: sendUnaryData<EnrollResponseMsg>) => handlers.enroll(call, callback),
      Renew: (call: ServerUnaryCall<RenewRequestMsg, EnrollResponseMsg>, callback: sendUnaryData<EnrollResponseMsg>) => handlers.renew(call, callback),
    });
    // Health answers without a client certificate: probes and load balancers hold none, and
    // serving status is no secret.
    const health = new HealthImplementation(Object.fromEntries(HEALTH_SERVICES.map((name) => [name, 'NOT_SERVING' as ServingStatus])));
    health.addToServer(grpc);
    // TLS is ours (tls-listener.ts); grpc-js sees already-decrypted connections.
    const injector = grpc.createConnectionInjector(ServerCredentials.createInsecure());
    let listener: TlsListener;
    try {
      listener = await TlsListener.listen({
        host,
        port,
        material: resolved,
        trustDomain: resolved.trustDomain,
        handshakeTimeoutMs: resolved.handshakeTimeoutMs,
        maxConcurrentHandshakes: resolved.maxConcurrentHandshakes,
        maxQueuedHandshakes: resolved.maxQueuedHandshakes,
        handshakeQueueTimeoutMs: resolved.handshakeQueueTimeoutMs,
        hooks: resolved.hooks,
        onRefused: (refusal, remoteAddress) => handlers.refuse(refusal, { method: 'TLS handshake', peer: remoteAddress ?? 'unknown' }),
        inject: (socket) => injector.injectConnection(socket),
      });
    } catch (err) {
      grpc.forceShutdown();
      throw err;
    }
    return new GrpcServer({ options: resolved, grpc, injector, listener, health, streams });
  }

  /** Health status of the server and of `meshcfg.v1.Distribution`. */
  setServing(serving: boolean): void {
    const status: ServingStatus = serving ? 'SERVING' : 'NOT_SERVING';
    for (const name of HEALTH_SERVICES) this.health.setStatus(name, status);
  }

  /** New certificate, key and CA for new connections; open ones keep theirs. Throws TLS_CONFIG_INVALID and keeps the old ones. */
  updateCertificates(pem: TlsMaterial): void {
    this.listener.updateCertificates(pem);
  }

  /** TLS handshakes in progress and connections waiting for a handshake slot. */
  get handshakes(): { readonly inProgress: number; readonly queued: number } {
    return this.listener.handshakes;
  }

  /** Agent streams that said hello and are open now. */
  get openStreams(): number {
    let open = 0;
    for (const stream of this.streams) if (stream.isOpen) open += 1;
    return open;
  }

  /**
   * Re-authorizes the agent's open streams now, instead of at their next delivery or ack:
   * after a revocation or a renewal, a stream of a refused certificate is ended (refused,
   * counted and logged). Returns how many were ended.
   */
  recheckStreams(agentId: AgentId): number {
    let ended = 0;
    for (const stream of this.streams.ofAgent(agentId)) {
      try {
        if (stream.recheck()) ended += 1;
      } catch (err) {
        this.options.logger.warn({ event: 'internal-error', method: 'recheckStreams', agentId }, `failed re-authorizing a stream: ${errorMessage(err)}`);
      }
    }
    return ended;
  }

  /**
   * Stops accepting, ends every agent stream with UNAVAILABLE (agents reconnect, with jitter,
   * to whichever replica is up), lets unary calls in flight finish, and after `deadlineMs`
   * cuts whatever is left. Idempotent.
   */
  shutdown(deadlineMs = 5_000): Promise<void> {
    this.shuttingDown ??= this.doShutdown(deadlineMs);
    return this.shuttingDown;
  }

  private async doShutdown(deadlineMs: number): Promise<void> {
    this.setServing(false);
    const closed = this.listener.close();
    const graceful = new Promise<void>((resolve) => this.grpc.tryShutdown(() => resolve()));
    for (const stream of this.streams.snapshot()) stream.close(grpcError(Status.UNAVAILABLE, 'server is shutting down'));
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'deadline'>((resolve) => {
      timer = setTimeout(() => resolve('deadline'), deadlineMs);
    });
    const outcome = await Promise.race([graceful.then(() => 'graceful' as const), deadline]);
    clearTimeout(timer);
    if (outcome === 'deadline') {
      this.options.logger.warn({ deadlineMs }, 'gRPC shutdown deadline passed; closing remaining connections');
      this.grpc.forceShutdown();
    }
    this.injector.destroy();
    this.listener.destroyConnections();
    await closed;
  }
}

/** Every agent stream, and an index by agent: re-checking one agent's streams must not scan the fleet's. */
class StreamRegistry {
  private readonly all = new Set<AgentStream>();
  private readonly byAgent = new Map<AgentId, Set<AgentStream>>();

  add(stream: AgentStream): void {
    this.all.add(stream);
    const agentId = stream.identity.agentId;
    let set = this.byAgent.get(agentId);
    if (set === undefined) {
      set = new Set();
      this.byAgent.set(agentId, set);
    }
    set.add(stream);
  }

  delete(stream: AgentStream): void {
    this.all.delete(stream);
    const agentId = stream.identity.agentId;
    const set = this.byAgent.get(agentId);
    set?.delete(stream);
    if (set?.size === 0) this.byAgent.delete(agentId);
  }

  /** A copy: closing a stream while iterating deletes it. */
  ofAgent(agentId: AgentId): AgentStream[] {
    return [...(this.byAgent.get(agentId) ?? [])];
  }

  snapshot(): AgentStream[] {
    return [...this.all];
  }

  [Symbol.iterator](): Iterator<AgentStream> {
    return this.all[Symbol.iterator]();
  }
}

/** What a unary handler's body decides: an answer, a refusal of the caller, or a gRPC error. */
type UnaryResult<Res> = { value: Res } | { refusal: UnauthorizedRefusal } | { error: Error };

type CallerCheck = { readonly ok: true; readonly identity: AgentIdentity } | { readonly ok: false; readonly refusal: UnauthorizedRefusal };

/** The RPC implementations, separate from the lifecycle above. */
class Handlers {
  private readonly options: ResolvedOptions;
  private readonly streams: StreamRegistry;
  /** Open streams per agent: `disconnected` is reported when the last one closes. */
  private readonly openPerAgent = new Map<AgentId, number>();
  private readonly identities: PeerIdentities;

  constructor(options: ResolvedOptions, streams: StreamRegistry) {
    this.options = options;
    this.streams = streams;
    this.identities = new PeerIdentities(options.trustDomain);
  }

  /** Counts, logs and returns the status a refused call ends with. */
  refuse(refusal: UnauthorizedRefusal, where: { method: string; peer: string }): Error {
    const { hooks, logger } = this.options;
    hooks.onUnauthorized?.(refusal.reason, { ...(refusal.agentId === undefined ? {} : { agentId: refusal.agentId }), message: refusal.message });
    logger.warn(
      { event: 'unauthorized', reason: refusal.reason, ...(refusal.agentId === undefined ? {} : { agentId: refusal.agentId }), method: where.method, peer: where.peer },
      `refused: ${refusal.message}`,
    );
    return grpcError(statusOfReason(refusal.reason), refusal.message);
  }

  stream(call: AgentStreamCall): void {
    const where = { method: 'Distribution.Stream', peer: call.getPeer() };
    let auth: CallerCheck;
    try {
      auth = this.authenticate(call);
    } catch (err) {
      this.failed(err, where, 'the request');
      call.emit('error', grpcError(Status.INTERNAL, 'internal error'));
      return;
    }
    if (!auth.ok) {
      call.emit('error', this.refuse(auth.refusal, where));
      return;
    }
    const stream = new AgentStream(call, auth.identity, {
      backend: this.options.backend,
      helloTimeoutMs: this.options.helloTimeoutMs,
      now: this.options.now,
      reauthorize: (identity) => this.authorize(identity),
      refuse: (refusal) => this.refuse(refusal, where),
      failed: (err, what) => this.failed(err, where, what),
      helloTimedOut: () => this.options.hooks.onConnectFailed?.('hello-timeout', 'DEADLINE_EXCEEDED'),
      opened: (s) => {
        const agentId = s.identity.agentId;
        this.openPerAgent.set(agentId, (this.openPerAgent.get(agentId) ?? 0) + 1);
        this.options.hooks.onStream?.('open', agentId);
      },
      closed: (s, wasOpen) => {
        this.streams.delete(s);
        if (!wasOpen) return;
        const agentId = s.identity.agentId;
        const left = (this.openPerAgent.get(agentId) ?? 1) - 1;
        if (left > 0) this.openPerAgent.set(agentId, left);
        else this.openPerAgent.delete(agentId);
        this.options.hooks.onStream?.('close', agentId);
        if (left <= 0) this.options.backend.disconnected(agentId);
      },
    });
    this.streams.add(stream);
    stream.start();
  }

  fetch(call: ServerUnaryCall<FetchRequestMsg, FetchResponseMsg>, callback: sendUnaryData<FetchResponseMsg>): void {
    this.unary(call, callback, 'Distribution.Fetch', (identity) => {
      const mismatch = checkEchoedAgentId(identity, call.request.agent_id, 'fetch');
      if (mismatch !== undefined) return { refusal: mismatch };
      const active = activeReport(call.request.active);
      if (!active.ok) return { refusal: { ...active.refusal, agentId: identity.agentId } };
      const { backend } = this.options;
      const judged = backend.reportActive(identity, active.value);
      // Answered only once the report is judged: a drifting agent's first answer is the baseline.
      const answer = (): { value: FetchResponseMsg } | { error: Error } => {
        const desired = backend.desired(identity.agentId);
        if (desired === null) return { error: grpcError(Status.UNAVAILABLE, 'no accepted commit yet') };
        const ifNoneMatch = call.request.if_none_match;
        if (ifNoneMatch !== '' && ifNoneMatch === desired.digest) return { value: { not_modified: true } };
        return { value: { bundle: bundleMessage(desired) } };
      };
      return judged === undefined ? answer() : judged.then(answer);
    });
  }

  report(call: ServerUnaryCall<AckMsg, ReportResponseMsg>, callback: sendUnaryData<ReportResponseMsg>): void {
    this.unary(call, callback, 'Distribution.Report', (identity) => {
      const mismatch = checkEchoedAgentId(identity, call.request.agent_id, 'ack');
      if (mismatch !== undefined) return { refusal: mismatch };
      const report = ackReport(call.request);
      if (report === undefined) return { error: grpcError(Status.INVALID_ARGUMENT, 'ack status must be APPLIED or REJECTED') };
      if (!report.ok) return { refusal: { ...report.refusal, agentId: identity.agentId } };
      // `stale` (an answer to a superseded delivery) is not the agent's error: OK either way.
      this.options.backend.ack(identity, report.value);
      return { value: {} };
    });
  }

  enroll(call: ServerUnaryCall<EnrollRequestMsg, EnrollResponseMsg>, callback: sendUnaryData<EnrollResponseMsg>): void {
    const where = { method: 'Enrollment.Enroll', peer: call.getPeer() };
    // No client certificate needed: the one-time token is the credential.
    const { token, csr_pem: csr } = call.request;
    this.settle(where, callback, async () => ({ kind: 'answer', answer: await this.options.backend.enroll(token, csr.toString('utf8')) }));
  }

  renew(call: ServerUnaryCall<RenewRequestMsg, EnrollResponseMsg>, callback: sendUnaryData<EnrollResponseMsg>): void {
    const where = { method: 'Enrollment.Renew', peer: call.getPeer() };
    // Inside settle so that a throwing backend.authorize becomes INTERNAL, not a crash.
    this.settle(where, callback, async () => {
      const auth = this.authenticate(call);
      if (!auth.ok) return { kind: 'refused', refusal: auth.refusal };
      return { kind: 'answer', answer: await this.options.backend.renew(auth.identity, call.request.csr_pem.toString('utf8')) };
    });
  }

  /** Runs an enrollment step and answers; the promise is always handled here. */
  private settle(where: { method: string; peer: string }, callback: sendUnaryData<EnrollResponseMsg>, step: () => Promise<EnrollmentStep>): void {
    Promise.resolve()
      .then(step)
      .then(
        (result) => (result.kind === 'answer' ? callback(null, enrollResponse(result.answer)) : callback(this.refuse(result.refusal, where))),
        (err: unknown) => callback(this.enrollmentError(err, where)),
      )
      .catch((err: unknown) => this.failed(err, where, 'the answer'));
  }

  private enrollmentError(err: unknown, where: { method: string; peer: string }): Error {
    if (err instanceof PkiError) {
      const refusal = refusalOfPkiError(err);
      if (refusal !== undefined) return this.refuse(refusal, where);
      this.options.logger.warn({ event: 'enrollment-failed', code: err.code, method: where.method, peer: where.peer }, err.message);
      return grpcError(Status.FAILED_PRECONDITION, `enrollment cannot be completed (${err.code})`);
    }
    if (err instanceof TransportError && err.code === 'BACKEND_UNAVAILABLE') {
      // The token or certificate cannot be checked or recorded now: retryable.
      this.options.logger.warn({ event: 'enrollment-failed', code: err.code, method: where.method, peer: where.peer }, `${where.method} refused: ${err.message}`);
      return grpcError(Status.UNAVAILABLE, `${where.method} is unavailable: the server cannot reach its fleet state (${err.code}); try again`);
    }
    this.failed(err, where, 'the request');
    return grpcError(Status.INTERNAL, 'internal error');
  }

  /** Authentication, authorization and error containment shared by the polling RPCs. */
  private unary<Req, Res>(
    call: ServerUnaryCall<Req, Res>,
    callback: sendUnaryData<Res>,
    method: string,
    body: (identity: AgentIdentity) => UnaryResult<Res> | Promise<UnaryResult<Res>>,
  ): void {
    const where = { method, peer: call.getPeer() };
    const failed = (err: unknown): void => {
      this.failed(err, where, 'the request');
      callback(grpcError(Status.INTERNAL, 'internal error'));
    };
    const answer = (result: UnaryResult<Res>): void => {
      if ('value' in result) callback(null, result.value);
      else if ('refusal' in result) callback(this.refuse(result.refusal, where));
      else callback(result.error);
    };
    try {
      const auth = this.authenticate(call);
      if (!auth.ok) {
        callback(this.refuse(auth.refusal, where));
        return;
      }
      const result = body(auth.identity);
      if (result instanceof Promise) result.then(answer).catch(failed);
      else answer(result);
    } catch (err) {
      failed(err);
    }
  }

  private authenticate(call: { getAuthContext(): { sslPeerCertificate?: PeerCertificate } }): CallerCheck {
    const auth = authenticatePeer(call.getAuthContext().sslPeerCertificate, this.options.trustDomain, this.options.now(), this.identities);
    if (!auth.ok) return { ok: false, refusal: auth };
    const refusal = this.authorize(auth.identity);
    return refusal === undefined ? { ok: true, identity: auth.identity } : { ok: false, refusal };
  }

  /** Expiry again (long-lived connections), then the backend's inventory and revocation checks. */
  private authorize(identity: AgentIdentity): UnauthorizedRefusal | undefined {
    const agentId = identity.agentId;
    if (identity.notAfter.getTime() <= this.options.now().getTime()) {
      return { reason: 'expired-certificate', message: `the client certificate expired at ${identity.notAfter.toISOString()}`, agentId };
    }
    const verdict = this.options.backend.authorize(identity);
    return verdict.ok ? undefined : { reason: verdict.reason, message: verdict.message, agentId };
  }

  private failed(err: unknown, where: { method: string; peer: string }, what: string): void {
    this.options.logger.warn(
      { event: 'internal-error', method: where.method, peer: where.peer, ...(err instanceof Error && 'code' in err ? { code: String(err.code) } : {}) },
      `failed handling ${what}: ${errorMessage(err)}`,
    );
  }
}

/** What an enrollment step ends in: an answer for the agent, or a refusal of its identity (answered in one place). */
type EnrollmentStep = { readonly kind: 'answer'; readonly answer: Parameters<typeof enrollResponse>[0] } | { readonly kind: 'refused'; readonly refusal: UnauthorizedRefusal };

function channelOptions(options: ResolvedOptions): ChannelOptions {
  return {
    'grpc.max_receive_message_length': options.maxReceiveMessageBytes,
    'grpc.max_send_message_length': options.maxSendMessageBytes,
    // Streams idle for hours are the normal case: ping every 2 minutes to find dead peers
    // (and keep NAT entries), give up after 20 s without an answer.
    'grpc.keepalive_time_ms': 120_000,
    'grpc.keepalive_timeout_ms': 20_000,
    // An agent needs one stream plus the odd unary call; more per connection is abuse.
    'grpc.max_concurrent_streams': 16,
  };
}

/** `host:port` or `[v6]:port`. */
export function parseAddress(address: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(address);
  const host = match?.[1] ?? match?.[2];
  const port = Number(match?.[3]);
  if (host === undefined || !Number.isInteger(port) || port > 65535 || (match?.[1] !== undefined && isIP(host) !== 6)) {
    throw new TransportError({ code: 'LISTEN_FAILED', message: `not a host:port address: ${JSON.stringify(address)}` });
  }
  return { host, port };
}

/** Hooks "must not throw"; one that does must still not take a socket handler down with it. */
function safeHooks(hooks: TransportHooks, logger: TransportLogger | undefined): TransportHooks {
  const guard =
    <A extends unknown[]>(name: string, fn: ((...args: A) => void) | undefined) =>
    (...args: A): void => {
      if (fn === undefined) return;
      try {
        fn.apply(hooks, args);
      } catch (err) {
        logger?.warn({ event: 'hook-failed', hook: name }, errorMessage(err));
      }
    };
  return {
    onHandshake: guard('onHandshake', hooks.onHandshake),
    onConnectFailed: guard('onConnectFailed', hooks.onConnectFailed),
    onUnauthorized: guard('onUnauthorized', hooks.onUnauthorized),
    onStream: guard('onStream', hooks.onStream),
  };
}
