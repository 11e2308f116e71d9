import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import * as tls from 'node:tls';
import {
  type CallOptions,
  type ChannelCredentials,
  type ChannelOptions,
  type ClientDuplexStream,
  credentials as grpcCredentials,
  Metadata,
  type ServiceError,
  status as GrpcStatus,
} from '@grpc/grpc-js';
import { AgentError, type AgentErrorCode } from '../domain/errors.js';
import { matchesAnyPin, type Pin } from '../pki/index.js';
import {
  type AckMsg,
  type AgentMessageMsg,
  DistributionClient,
  type EnrollRequestMsg,
  type EnrollResponseMsg,
  EnrollmentClient,
  type FetchRequestMsg,
  type FetchResponseMsg,
  type RenewRequestMsg,
  type ServerMessageMsg,
} from './proto.js';

/**
 * The agent's side of the transport: pinned TLS credentials for grpc-js and small typed
 * wrappers over the generated-at-run-time clients. Every grpc-js failure leaves this module
 * as an {@link AgentError} with the status mapped to a code and the original as `cause`.
 */

// ---- Server address ----

export interface ServerAddress {
  readonly host: string;
  readonly port: number;
  /** The gRPC target, `host:port` (IPv6 in brackets). */
  readonly target: string;
}

/** Parses `HOST:PORT` (`[::1]:7443` for IPv6). Throws AgentError UNREACHABLE with a usage message. */
export function parseServerAddress(text: string): ServerAddress {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text.trim());
  const host = match?.[1] ?? match?.[2];
  const port = Number(match?.[3]);
  if (host === undefined || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new AgentError({ code: 'UNREACHABLE', message: `not a server address of the form HOST:PORT: ${JSON.stringify(text)}` });
  }
  return { host, port, target: isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}` };
}

// ---- Pinned credentials ----

/**
 * What the TLS chain is verified against before the pin is checked.
 *
 * - `ca`: the enrollment CA the agent received at enrollment (every connection after it).
 * - `pinned-certificate`: the server's own certificate, as fetched and pin-checked by
 *   {@link probeServerCertificate} (enrollment, when the agent has no CA yet). It becomes the
 *   only trust anchor, via OpenSSL's partial-chain mode; no system roots are ever loaded.
 */
export type TrustAnchor =
  | { readonly kind: 'ca'; readonly caPem: string }
  | { readonly kind: 'pinned-certificate'; readonly certPem: string };

export interface PinnedCredentialsOptions {
  readonly trust: TrustAnchor;
  /** The agent's key and certificate for mTLS; absent for Enroll, the one RPC served without them. */
  readonly keyPem?: string;
  readonly certPem?: string;
  /** One or two pins (`sha256/<base64 SPKI digest>`); the server key must match one. */
  readonly pins: readonly Pin[];
  /** Told when a handshake is refused for the pin, so callers can say so instead of "unavailable". */
  readonly onPinMismatch?: (host: string) => void;
}

/**
 * `checkServerIdentity` for pinned connections. It replaces node's host-name check (grpc-js
 * passes it straight to `tls.connect`), so that check runs first; then the leaf's SPKI must
 * match a pin. Node calls this only after the chain verified, so the pin narrows the trust
 * anchor's authority down to one key (two during a rotation).
 */
export function pinnedServerIdentityCheck(
  pins: readonly Pin[],
  onPinMismatch?: (host: string) => void,
): (host: string, cert: tls.PeerCertificate) => Error | undefined {
  if (pins.length === 0) throw new AgentError({ code: 'PIN_MISMATCH', message: 'at least one server pin is required' });
  const pinned = [...pins];
  return (host, cert) => {
    const hostError = tls.checkServerIdentity(host, cert);
    if (hostError !== undefined) return hostError;
    if (matchesAnyPin(cert.raw, pinned)) return undefined;
    onPinMismatch?.(host);
    return new AgentError({ code: 'PIN_MISMATCH', message: `the server key at ${host} matches none of the pinned keys` });
  };
}

/**
 * grpc-js channel credentials that connect only to a server whose certificate chains to the
 * trust anchor, names the host, and carries a pinned key.
 *
 * Built with `createFromSecureContext` rather than `createSsl` so that (a) no system roots are
 * ever trusted — `createSsl` falls back to them when given no roots — and (b) the pinned server
 * certificate itself can be the anchor during enrollment (`allowPartialTrustChain`: a
 * certificate in the trust store is an anchor even when it is not self-signed). If the Node
 * version ignored that option, chain verification would fail and nothing would connect: the
 * failure mode is closed, never open.
 */
export function pinnedCredentials(options: PinnedCredentialsOptions): ChannelCredentials {
  if ((options.keyPem === undefined) !== (options.certPem === undefined)) {
    throw new TypeError('keyPem and certPem go together');
  }
  const anchor = options.trust.kind === 'ca' ? options.trust.caPem : options.trust.certPem;
  const context = tls.createSecureContext({
    ca: anchor,
    ...(options.trust.kind === 'pinned-certificate' ? { allowPartialTrustChain: true } : {}),
    ...(options.keyPem === undefined ? {} : { key: options.keyPem, cert: options.certPem }),
    minVersion: 'TLSv1.2',
  });
  return grpcCredentials.createFromSecureContext(context, {
    checkServerIdentity: pinnedServerIdentityCheck(options.pins, options.onPinMismatch),
  });
}

export interface ProbeOptions {
  readonly server: ServerAddress;
  readonly pins: readonly Pin[];
  readonly timeoutMs?: number;
}

/**
 * Fetches the server's certificate over a TLS connection that trusts nothing, and returns it
 * only if it names the host and its key matches a pin. Nothing is sent over this connection.
 *
 * This is how enrollment gets a trust anchor without trusting anything but the pin: the
 * returned certificate becomes the anchor of the real (gRPC) connection, which checks the
 * chain against it and the pin again — a server swapped in between would need the pinned key.
 * Throws AgentError PIN_MISMATCH, TLS_FAILED or UNREACHABLE.
 */
export function probeServerCertificate(options: ProbeOptions): Promise<{ readonly certPem: string }> {
  const { server, pins } = options;
  const timeoutMs = options.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (err: AgentError | undefined, certPem?: string): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      if (err !== undefined) reject(err);
      else resolve({ certPem: certPem as string });
    };
    const socket = tls.connect({
      host: server.host,
      port: server.port,
      // RFC 6066 forbids IP addresses as SNI; node checks the name against `host` then.
      ...(isIP(server.host) === 0 ? { servername: server.host } : {}),
      ALPNProtocols: ['h2'],
      // Deliberately no trust here: the pin is checked below, before anything is used.
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
    });
    socket.setTimeout(timeoutMs, () =>
      finish(new AgentError({ code: 'UNREACHABLE', message: `no TLS handshake with ${server.target} within ${timeoutMs} ms` })),
    );
    socket.once('secureConnect', () => {
      const peer = socket.getPeerCertificate(false);
      if (peer === null || peer.raw === undefined || peer.raw.length === 0) {
        finish(new AgentError({ code: 'TLS_FAILED', message: `${server.target} presented no certificate` }));
        return;
      }
      if (!matchesAnyPin(peer.raw, pins)) {
        finish(new AgentError({ code: 'PIN_MISMATCH', message: `the server key at ${server.target} matches none of the pinned keys` }));
        return;
      }
      const hostError = tls.checkServerIdentity(server.host, peer);
      if (hostError !== undefined) {
        finish(new AgentError({ code: 'TLS_FAILED', message: `the server certificate does not name ${server.host}: ${hostError.message}`, cause: hostError }));
        return;
      }
      finish(undefined, new X509Certificate(peer.raw).toString());
    });
    socket.once('error', (cause: NodeJS.ErrnoException) => {
      const network = ['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT'];
      const code: AgentErrorCode = network.includes(cause.code ?? '') ? 'UNREACHABLE' : 'TLS_FAILED';
      finish(new AgentError({ code, message: `cannot connect to ${server.target}: ${cause.message}`, cause }));
    });
  });
}

// ---- Errors ----

function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === 'number' && 'metadata' in err;
}

/** Maps a grpc-js failure to an AgentError; `what` names the call for the message. */
export function fromGrpcError(err: unknown, what: string): AgentError {
  if (err instanceof AgentError) return err;
  if (!isServiceError(err)) {
    return new AgentError({ code: 'RPC_FAILED', message: `${what} failed: ${err instanceof Error ? err.message : String(err)}`, cause: err });
  }
  const code: AgentErrorCode = (() => {
    switch (err.code) {
      case GrpcStatus.UNAUTHENTICATED:
        return 'UNAUTHENTICATED';
      case GrpcStatus.PERMISSION_DENIED:
        return 'PERMISSION_DENIED';
      case GrpcStatus.DEADLINE_EXCEEDED:
        return 'DEADLINE_EXCEEDED';
      case GrpcStatus.UNAVAILABLE:
        return /PIN_MISMATCH|pinned keys/.test(err.details) ? 'PIN_MISMATCH' : 'UNREACHABLE';
      default:
        return 'RPC_FAILED';
    }
  })();
  const detail = err.details === '' ? GrpcStatus[err.code] : err.details;
  return new AgentError({ code, message: `${what}: ${detail}`, cause: err });
}

// ---- Typed clients ----

/** Defaults for every channel the agent opens (the fleet benchmark gives its floor clients the same). */
export const CHANNEL_OPTIONS: ChannelOptions = {
  // A half-open connection (NAT timeout, server gone without FIN) is noticed within ~40 s.
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_timeout_ms': 10_000,
  // Bundles are bounded by the server; refuse anything absurdly larger than one.
  'grpc.max_receive_message_length': 16 * 1024 * 1024,
  // Reconnecting is the agent's job (with jitter); don't let grpc-js retry behind its back.
  'grpc.enable_retries': 0,
};

export const DEFAULT_RPC_TIMEOUT_MS = 15_000;

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: CallOptions,
  callback: (err: ServiceError | null, response?: Res) => void,
) => unknown;

interface GrpcClientLike {
  close(): void;
}

function unary<Req, Res>(client: GrpcClientLike, method: string, request: Req, timeoutMs: number, what: string): Promise<Res> {
  const fn = (client as unknown as Record<string, UnaryMethod<Req, Res>>)[method];
  if (typeof fn !== 'function') throw new TypeError(`no RPC ${method}`);
  return new Promise((resolve, reject) => {
    fn.call(client, request, new Metadata(), { deadline: Date.now() + timeoutMs }, (err, response) => {
      if (err !== null) reject(fromGrpcError(err, what));
      else if (response === undefined) reject(new AgentError({ code: 'RPC_FAILED', message: `${what}: empty response` }));
      else resolve(response);
    });
  });
}

export interface RpcOptions {
  /** Deadline of each unary call. Default 15 s. */
  readonly timeoutMs?: number;
}

/** `meshcfg.v1.Enrollment`. Enroll goes over a channel without a client certificate, Renew over mTLS. */
export class EnrollmentRpc {
  private readonly client: GrpcClientLike;
  private readonly timeoutMs: number;

  constructor(server: ServerAddress, credentials: ChannelCredentials, options: RpcOptions = {}) {
    this.client = new EnrollmentClient(server.target, credentials, CHANNEL_OPTIONS) as unknown as GrpcClientLike;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_RPC_TIMEOUT_MS;
  }

  enroll(request: EnrollRequestMsg): Promise<EnrollResponseMsg> {
    return unary(this.client, 'Enroll', request, this.timeoutMs, 'enrollment');
  }

  renew(request: RenewRequestMsg): Promise<EnrollResponseMsg> {
    return unary(this.client, 'Renew', request, this.timeoutMs, 'certificate renewal');
  }

  close(): void {
    this.client.close();
  }
}

export type ConfigStream = ClientDuplexStream<AgentMessageMsg, ServerMessageMsg>;

/** `meshcfg.v1.Distribution`, over mTLS. */
export class DistributionRpc {
  private readonly client: GrpcClientLike;
  private readonly timeoutMs: number;

  constructor(server: ServerAddress, credentials: ChannelCredentials, options: RpcOptions = {}) {
    this.client = new DistributionClient(server.target, credentials, CHANNEL_OPTIONS) as unknown as GrpcClientLike;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_RPC_TIMEOUT_MS;
  }

  /**
   * Opens the config stream. It has no deadline (it lives as long as the connection);
   * keepalive pings bound how long a dead peer goes unnoticed.
   */
  stream(): ConfigStream {
    const open = (this.client as unknown as Record<string, (metadata: Metadata, options: CallOptions) => ConfigStream>)['Stream'];
    if (typeof open !== 'function') throw new TypeError('no RPC Stream');
    return open.call(this.client, new Metadata(), {});
  }

  fetch(request: FetchRequestMsg): Promise<FetchResponseMsg> {
    return unary(this.client, 'Fetch', request, this.timeoutMs, 'fetch');
  }

  report(ack: AckMsg): Promise<void> {
    return unary<AckMsg, unknown>(this.client, 'Report', ack, this.timeoutMs, 'report').then(() => undefined);
  }

  close(): void {
    this.client.close();
  }
}
