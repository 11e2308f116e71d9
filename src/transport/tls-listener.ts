import type { AgentId } from '../domain/types.js';
import type { X509Certificate } from 'node:crypto';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { TransportError } from '../domain/errors.js';
import { agentIdFromCertificate } from '../pki/index.js';
import type { TransportHooks } from './backend.js';
import { issuedBy, parseCaBundle } from './identity.js';
import type { UnauthorizedRefusal } from './status.js';

/**
 * The TLS side of the gRPC server. grpc-js has no hook that sees failed handshakes, so meshcfg
 * terminates TLS itself and hands each established connection to grpc-js through a connection
 * injector (docs/architecture.md, grpc-js). That also gives hot certificate reload (`setSecureContext`).
 *
 * Client certificates are requested but not required at the TLS level, only so that
 * `Enrollment.Enroll` works for an agent that has none yet; every other RPC checks for a
 * verified certificate itself. A certificate that is presented and does not verify against the
 * enrollment CA is refused here: the connection is destroyed before any HTTP/2 byte is read.
 *
 * Handshakes are admitted, not all started at once. A TLS handshake costs the server about a
 * millisecond of CPU; when thousands of agents connect together (a restart, a network blip),
 * starting every handshake at accept shares the CPU between all of them, so they all finish
 * late and past the handshake timeout together — at 4,000 agents, 1,659 were dropped that way
 * and each had to start over. Instead at most `maxConcurrentHandshakes` run at once; further
 * connections wait unread in arrival order, and each handshake's timeout starts when it does.
 * A connection that waited longer than `handshakeQueueTimeoutMs`, or found the queue full, is
 * closed without a handshake (it costs nothing) and counted.
 */

export interface TlsMaterial {
  readonly serverCertPem: string;
  readonly serverKeyPem: string;
  readonly caPem: string;
}

export interface TlsListenerOptions {
  readonly host: string;
  readonly port: number;
  readonly material: TlsMaterial;
  readonly trustDomain: string;
  /** A handshake not finished by then (counted from its start) is dropped (slow-loris clients). */
  readonly handshakeTimeoutMs: number;
  /** Handshakes in progress at once; more connections wait for a slot. */
  readonly maxConcurrentHandshakes: number;
  /** Connections waiting for a slot at most; a new one beyond is closed at once (overloaded). */
  readonly maxQueuedHandshakes: number;
  /** A connection that waited this long for a slot is closed without a handshake. */
  readonly handshakeQueueTimeoutMs: number;
  readonly hooks: TransportHooks;
  /** A handshake that presented a certificate we refuse: an unauthorized attempt. */
  readonly onRefused: (refusal: UnauthorizedRefusal, remoteAddress: string | undefined) => void;
  /** Receives each established connection. */
  readonly inject: (socket: tls.TLSSocket) => void;
}

export class TlsListener {
  readonly port: number;
  /** Handshakes only: it never listens; the acceptor hands it the connections it admits. */
  private readonly server: tls.Server;
  private readonly acceptor: net.Server;
  private readonly sockets = new Set<tls.TLSSocket>();
  private readonly options: TlsListenerOptions;
  private cas: readonly X509Certificate[];
  /** Handshakes in progress, by the connection's remote address and port → releases its slot. */
  private readonly handshaking = new Map<string, () => void>();
  private inProgress = 0;
  /** Connections waiting for a slot, oldest first (`queueHead` is the next one: no O(n) shift). */
  private queue: Array<{ readonly socket: net.Socket; readonly since: number }> = [];
  private queueHead = 0;
  private closing = false;

  private constructor(server: tls.Server, acceptor: net.Server, port: number, cas: readonly X509Certificate[], options: TlsListenerOptions) {
    this.server = server;
    this.acceptor = acceptor;
    this.port = port;
    this.cas = cas;
    this.options = options;
  }

  static async listen(options: TlsListenerOptions): Promise<TlsListener> {
    const { cas, context } = loadMaterial(options.material);
    const server = tls.createServer({
      ...context,
      ALPNProtocols: ['h2'],
      requestCert: true,
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
      handshakeTimeout: options.handshakeTimeoutMs,
    });
    // Accepted connections stay unread (no TLS byte consumed) until admitted.
    const acceptor = net.createServer({ pauseOnConnect: true });
    await new Promise<void>((resolve, reject) => {
      const onError = (cause: Error): void => {
        reject(new TransportError({ code: 'LISTEN_FAILED', message: `cannot listen on ${options.host}:${options.port}: ${cause.message}`, cause }));
      };
      acceptor.once('error', onError);
      acceptor.listen({ host: options.host, port: options.port, backlog: ACCEPT_BACKLOG }, () => {
        acceptor.off('error', onError);
        resolve();
      });
    });
    const listener = new TlsListener(server, acceptor, (acceptor.address() as net.AddressInfo).port, cas, options);
    acceptor.on('connection', (socket: net.Socket) => listener.admit(socket));
    // The outcome is reported before the slot goes to the next connection.
    server.on('secureConnection', (socket: tls.TLSSocket) => {
      const key = connectionKey(socket);
      listener.onSecureConnection(socket);
      listener.handshakeEnded(key);
    });
    server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: tls.TLSSocket) => {
      const key = connectionKey(socket);
      const code = err.code ?? 'TLS_ERROR';
      options.hooks.onHandshake?.('failed', code);
      options.hooks.onConnectFailed?.(code === 'ERR_TLS_HANDSHAKE_TIMEOUT' ? 'handshake-timeout' : 'tls-error', code);
      listener.handshakeEnded(key);
      socket.destroy();
    });
    // Errors after listening (EMFILE on accept, ...) must not crash the process; the listener keeps going.
    server.on('error', () => undefined);
    acceptor.on('error', () => undefined);
    return listener;
  }

  /** Handshakes in progress and connections waiting for one (for tests and metrics). */
  get handshakes(): { readonly inProgress: number; readonly queued: number } {
    return { inProgress: this.inProgress, queued: this.queue.length - this.queueHead };
  }

  /** Replaces certificate, key and CA for new handshakes; open connections keep theirs. */
  updateCertificates(material: TlsMaterial): void {
    const { cas, context } = loadMaterial(material);
    try {
      this.server.setSecureContext(context);
    } catch (cause) {
      throw new TransportError({ code: 'TLS_CONFIG_INVALID', message: 'the new server certificate, key or CA does not load', cause });
    }
    this.cas = cas;
  }

  /** Stops accepting. Resolves when every connection is gone (see `destroyConnections`). */
  close(): Promise<void> {
    this.closing = true;
    this.dropQueue();
    return new Promise((resolve) => this.acceptor.close(() => resolve()));
  }

  /** Drops every connection still open, established, mid-handshake or waiting for one. */
  destroyConnections(): void {
    this.dropQueue();
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  private admit(socket: net.Socket): void {
    // Nobody else listens for this socket's errors until the TLS layer takes it.
    socket.on('error', () => undefined);
    if (this.closing) {
      socket.destroy();
      return;
    }
    if (this.inProgress < this.options.maxConcurrentHandshakes) {
      this.startHandshake(socket);
      return;
    }
    if (this.queue.length - this.queueHead >= this.options.maxQueuedHandshakes) {
      this.refuseUnhandshaken(socket, 'overloaded');
      return;
    }
    this.queue.push({ socket, since: performance.now() });
  }

  private startHandshake(socket: net.Socket): void {
    const key = connectionKey(socket);
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.inProgress -= 1;
      if (key !== undefined && this.handshaking.get(key) === release) this.handshaking.delete(key);
      this.admitWaiting();
    };
    this.inProgress += 1;
    if (key !== undefined) this.handshaking.set(key, release);
    // The safety net: a connection that ends without a handshake outcome still frees its slot.
    socket.once('close', release);
    this.server.emit('connection', socket);
  }

  /** A handshake finished (either way): its slot goes to the next waiting connection. */
  private handshakeEnded(key: string | undefined): void {
    if (key !== undefined) this.handshaking.get(key)?.();
  }

  private admitWaiting(): void {
    const now = performance.now();
    while (this.inProgress < this.options.maxConcurrentHandshakes && this.queueHead < this.queue.length) {
      const next = this.queue[this.queueHead] as { readonly socket: net.Socket; readonly since: number };
      this.queueHead += 1;
      if (next.socket.destroyed) continue;
      if (now - next.since > this.options.handshakeQueueTimeoutMs) this.refuseUnhandshaken(next.socket, 'queue-timeout');
      else this.startHandshake(next.socket);
    }
    if (this.queueHead === this.queue.length) {
      this.queue = [];
      this.queueHead = 0;
    } else if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
  }

  private refuseUnhandshaken(socket: net.Socket, reason: 'overloaded' | 'queue-timeout'): void {
    this.options.hooks.onHandshake?.('failed', reason);
    this.options.hooks.onConnectFailed?.(reason, reason);
    socket.destroy();
  }

  private dropQueue(): void {
    for (let i = this.queueHead; i < this.queue.length; i += 1) this.queue[i]?.socket.destroy();
    this.queue = [];
    this.queueHead = 0;
  }

  private onSecureConnection(socket: tls.TLSSocket): void {
    const { hooks } = this.options;
    // After injection HTTP/2 owns the socket's errors; before that nobody does.
    socket.on('error', () => undefined);
    if (socket.alpnProtocol !== 'h2') {
      hooks.onHandshake?.('failed', 'NO_H2_ALPN');
      hooks.onConnectFailed?.('no-h2', 'NO_H2_ALPN');
      socket.destroy();
      return;
    }
    // An authorized socket presented a certificate that verified; parsing it (a third of a
    // millisecond) is only needed to classify one that did not.
    const peer = socket.authorized ? null : socket.getPeerX509Certificate();
    if (peer !== null && peer !== undefined) {
      const code = String(socket.authorizationError);
      hooks.onHandshake?.('failed', code);
      hooks.onConnectFailed?.('refused-certificate', code);
      this.options.onRefused(this.classifyRefused(peer, code), socket.remoteAddress);
      socket.destroy();
      return;
    }
    hooks.onHandshake?.('ok', peer === undefined ? 'no-client-certificate' : 'client-certificate');
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    this.options.inject(socket);
  }

  private classifyRefused(peer: X509Certificate, code: string): UnauthorizedRefusal {
    if (code === 'CERT_HAS_EXPIRED' && issuedBy(peer, this.cas)) {
      let agentId: AgentId | undefined;
      try {
        agentId = agentIdFromCertificate(peer, this.options.trustDomain);
      } catch {
        agentId = undefined;
      }
      return {
        reason: 'expired-certificate',
        message: `the client certificate expired at ${new Date(peer.validTo).toISOString()}`,
        ...(agentId === undefined ? {} : { agentId }),
      };
    }
    return { reason: 'untrusted-certificate', message: `the client certificate does not verify against the enrollment CA (${code})` };
  }
}

/**
 * The kernel's queue of connections not yet accepted. Node's default (511) overflows when
 * thousands of agents connect at once: the kernel then drops their SYNs and each retries after
 * a second or more. Capped by net.core.somaxconn.
 */
const ACCEPT_BACKLOG = 4096;

/** Identifies a connection across the TLS layer taking it over (the socket object changes; the peer does not). */
function connectionKey(socket: net.Socket): string | undefined {
  return socket.remotePort === undefined ? undefined : `${socket.remoteAddress ?? ''}|${socket.remotePort}`;
}

function loadMaterial(material: TlsMaterial): { cas: readonly X509Certificate[]; context: tls.SecureContextOptions } {
  let cas: readonly X509Certificate[];
  try {
    cas = parseCaBundle(material.caPem);
    // Building the context here surfaces a bad certificate or key as our error, with its cause.
    tls.createSecureContext({ cert: material.serverCertPem, key: material.serverKeyPem, ca: material.caPem });
  } catch (cause) {
    throw new TransportError({ code: 'TLS_CONFIG_INVALID', message: 'the server certificate, key or CA does not load', cause });
  }
  if (cas.length === 0) throw new TransportError({ code: 'TLS_CONFIG_INVALID', message: 'the CA bundle holds no certificate' });
  return { cas, context: { cert: material.serverCertPem, key: material.serverKeyPem, ca: material.caPem } };
}
