import type { X509Certificate } from 'node:crypto';
import type { AgentId, CommitSha, Digest } from '../domain/types.js';

/**
 * The seam between delivery (gRPC, in src/transport) and the producer side (the server
 * core in src/server): the transport authenticates, maps messages and keeps streams; the
 * backend decides what each agent should have and records what it reports. Neither
 * imports the other's internals (go-control-plane's cache/server split).
 */

/** Who is calling, taken from the verified client certificate only. */
export interface AgentIdentity {
  readonly agentId: AgentId;
  readonly certificate: X509Certificate;
  /** Upper-case hex serial, as node:crypto prints it. */
  readonly serialNumber: string;
  readonly notAfter: Date;
}

/** One bundle on its way to one agent. Immutable; `nonce` identifies this send. */
export interface Delivery {
  readonly commit: CommitSha;
  readonly digest: Digest;
  readonly generation: number;
  readonly bytes: Uint8Array;
  /** The signed delivery in src/signing wire form (`encodeDelivery`). */
  readonly signature: string;
  readonly nonce: string;
  readonly baseline: boolean;
}

/** What an agent says it runs (hello, fetch). Digest of the file on disk, so drift shows. */
export interface ActiveReport {
  /**
   * Checked at the transport boundary (`parseCommitSha`); `''` when the agent names no commit
   * (the proto default: it runs a file without the state that says which, e.g. a hand-placed one).
   */
  readonly commit: CommitSha | '';
  readonly digest: string;
  readonly generation: number;
}

export interface AckReport {
  /** The delivery's commit, echoed; checked at the transport boundary (`parseCommitSha`). */
  readonly commit: CommitSha;
  readonly digest: string;
  readonly generation: number;
  readonly nonce: string;
  readonly status: 'APPLIED' | 'REJECTED';
  readonly error: string;
}

export type AckOutcome =
  | { readonly kind: 'recorded' }
  /** The nonce is not the one of the agent's current delivery: an old answer, ignored. */
  | { readonly kind: 'stale' };

/** Why a caller is refused. Each is counted as `meshcfg_unauthorized_attempts_total{reason}`. */
export type UnauthorizedReason =
  | 'no-client-certificate'
  | 'bad-identity'
  | 'unknown-agent'
  /** The agent's identity is revoked: every certificate ever issued to it is refused until it enrolls again. */
  | 'revoked'
  /** A certificate a later enrollment or renewal replaced: only an agent's current certificate is accepted. */
  | 'replaced-certificate'
  | 'expired-certificate'
  /** A client certificate that does not chain to the enrollment CA (refused at the TLS handshake). */
  | 'untrusted-certificate'
  | 'identity-mismatch'
  | 'bad-token'
  | 'expired-token'
  | 'reused-token'
  | 'bad-csr'
  /** A hello, ack, fetch or report whose commit is not a full lowercase hex object id (INVALID_ARGUMENT). */
  | 'malformed-commit';

export type Authorization = { readonly ok: true } | { readonly ok: false; readonly reason: UnauthorizedReason; readonly message: string };

export interface EnrollmentResult {
  readonly agentId: AgentId;
  readonly certificatePem: string;
  readonly caPem: string;
  readonly signingKeyPem: string;
  readonly expiresAt: Date;
}

export interface DistributionBackend {
  /** Checks beyond the TLS handshake: the agent is in the inventory, not revoked, and this is its current certificate. */
  authorize(identity: AgentIdentity): Authorization;
  /**
   * Subscribes to the agent's desired delivery: `listener` is called at once with the current
   * one (when there is one) and again whenever it changes. Returns the unsubscribe function.
   */
  watch(agentId: AgentId, listener: (delivery: Delivery) => void): () => void;
  /** The current desired delivery, for polling agents; `null` before any commit is accepted. */
  desired(agentId: AgentId): Delivery | null;
  /**
   * A stream opened (hello) or a poll arrived: what the agent runs now. May return a promise
   * when judging the report takes I/O (drift detection): the transport sends the agent nothing
   * — no stream delivery, no poll answer — until it settles, so an agent found drifting is
   * answered with what it gets after the verdict (the quarantine baseline), never before it.
   * A rejection ends the stream or fails the poll (INTERNAL).
   */
  reportActive(identity: AgentIdentity, active: ActiveReport | null): void | Promise<void>;
  ack(identity: AgentIdentity, ack: AckReport): AckOutcome;
  /** A stream closed. */
  disconnected(agentId: AgentId): void;
  /**
   * Redeems a one-time token for a certificate. Refusals throw PkiError (TOKEN_UNKNOWN,
   * TOKEN_EXPIRED, TOKEN_USED, CSR_INVALID, KEY_UNSUPPORTED, NAME_INVALID).
   */
  enroll(token: string, csrPem: string): Promise<EnrollmentResult>;
  /** A new certificate for an already authorized agent; it replaces the caller's certificate. */
  renew(identity: AgentIdentity, csrPem: string): Promise<EnrollmentResult>;
}

/**
 * Why a connection failed before it became an agent stream (counted by reason, logged at a
 * bounded rate): `handshake-timeout` the TLS handshake did not finish within its timeout
 * (counted from when the server started it); `tls-error` the handshake failed otherwise (the
 * peer reset, spoke no TLS, offered nothing in common); `no-h2` no HTTP/2 by ALPN;
 * `refused-certificate` a client certificate that does not verify (also an unauthorized
 * attempt); `queue-timeout` the connection waited for a handshake slot longer than the queue
 * allows; `overloaded` the handshake queue was full; `hello-timeout` a stream said no hello in time.
 */
export type ConnectFailure = 'handshake-timeout' | 'tls-error' | 'no-h2' | 'refused-certificate' | 'queue-timeout' | 'overloaded' | 'hello-timeout';
export const CONNECT_FAILURES: readonly ConnectFailure[] = Object.freeze([
  'handshake-timeout',
  'tls-error',
  'no-h2',
  'refused-certificate',
  'queue-timeout',
  'overloaded',
  'hello-timeout',
]);

/** Observers for metrics, logs and alerts. Must not throw. */
export interface TransportHooks {
  onHandshake?(result: 'ok' | 'failed', detail: string): void;
  /** A connection failed before it became an agent stream; `detail` is the TLS error code or similar (no peer data). */
  onConnectFailed?(reason: ConnectFailure, detail: string): void;
  onUnauthorized?(reason: UnauthorizedReason, detail: { readonly agentId?: AgentId; readonly message: string }): void;
  onStream?(event: 'open' | 'close', agentId: AgentId): void;
}
