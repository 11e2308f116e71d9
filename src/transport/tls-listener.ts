import type { AgentId } from '../domain/types.js';
import type { X509Certificate } from 'node:crypto';
import type { AddressInfo } from 'node:net';
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
  /** A handshake not finished by then is dropped (slow-loris clients). */
  readonly handshakeTimeoutMs: number;
  readonly hooks: TransportHooks;
  /** A handshake that presented a certificate we refuse: an unauthorized attempt. */
  readonly onRefused: (refusal: UnauthorizedRefusal, remoteAddress: string | undefined) => void;
  /** Receives each established connection. */
  readonly inject: (socket: tls.TLSSocket) => void;
}

export class TlsListener {
  readonly port: number;
  private readonly server: tls.Server;
  private readonly sockets = new Set<tls.TLSSocket>();
  private readonly options: TlsListenerOptions;
  private cas: readonly X509Certificate[];

  private constructor(server: tls.Server, port: number, cas: readonly X509Certificate[], options: TlsListenerOptions) {
    this.server = server;
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
    await new Promise<void>((resolve, reject) => {
      const onError = (cause: Error): void => {
        reject(new TransportError({ code: 'LISTEN_FAILED', message: `cannot listen on ${options.host}:${options.port}: ${cause.message}`, cause }));
      };
      server.once('error', onError);
      server.listen({ host: options.host, port: options.port }, () => {
        server.off('error', onError);
        resolve();
      });
    });
    const listener = new TlsListener(server, (server.address() as AddressInfo).port, cas, options);
    server.on('secureConnection', (socket) => listener.onSecureConnection(socket));
    server.on('tlsClientError', (err: NodeJS.ErrnoException, socket) => {
      options.hooks.onHandshake?.('failed', err.code ?? 'TLS_ERROR');
      socket.destroy();
    });
    // Errors after listening (EMFILE on accept, ...) must not crash the process; the listener keeps going.
    server.on('error', () => undefined);
    return listener;
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
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** Drops every connection still open, established or mid-handshake. */
  destroyConnections(): void {
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  private onSecureConnection(socket: tls.TLSSocket): void {
    const { hooks } = this.options;
    // After injection HTTP/2 owns the socket's errors; before that nobody does.
    socket.on('error', () => undefined);
    if (socket.alpnProtocol !== 'h2') {
      hooks.onHandshake?.('failed', 'NO_H2_ALPN');
      socket.destroy();
      return;
    }
    const peer = socket.getPeerX509Certificate();
    if (peer !== undefined && !socket.authorized) {
      const code = String(socket.authorizationError);
      hooks.onHandshake?.('failed', code);
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
