/**
 * What the fleet benchmark's processes say to each other over the fork IPC channel, and the
 * floor's wire format. Everything here is plain data (structured-clone safe).
 */

/** The server a load generator targets: meshcfg's Distribution service, or the bare floor. */
export type Target = 'meshcfg' | 'floor';
export type Mode = 'stream' | 'poll';

/** One simulated agent's identity, as the bench issued it from the server's CA. */
export interface SimAgentSpec {
  readonly agentId: string;
  readonly certPem: string;
  /** Index into {@link WorkerSetup.keys}: agents share a small pool of RSA keys (keygen is ~100 ms each). */
  readonly key: number;
}

export interface WorkerSetup {
  readonly target: Target;
  readonly mode: Mode;
  /** host:port of the gRPC server. */
  readonly address: string;
  readonly caPem: string;
  /** The server's pin (`sha256/…`), as an enrolled agent holds it. */
  readonly pin: string;
  /** SPKI PEM of the bundle signing key (meshcfg only). */
  readonly signingKeyPem: string;
  readonly keys: readonly string[];
  /** JSON file with this worker's SimAgentSpec[] (certificates are too many for one IPC message). */
  readonly agentsFile: string;
  /** Poll mode: each agent's interval (±10 % jitter, like the reference agent). */
  readonly pollIntervalMs: number;
  /** Spread the first connections over this long (the reference agent's fleet does not start in one tick). */
  readonly rampMs: number;
}

export type ToWorker =
  | { readonly type: 'setup'; readonly setup: WorkerSetup }
  | { readonly type: 'connect' }
  | { readonly type: 'disconnect' }
  /** Poll mode: reset the poll counters (start of a measured idle window). */
  | { readonly type: 'reset-polls' }
  | { readonly type: 'report' };

/** Counters of one worker; the parent sums them. */
export interface WorkerReport {
  readonly agents: number;
  /** Agents that received the answer to their first hello (stream) or first fetch (poll) on their current connection. */
  readonly connected: number;
  /** Per generation (meshcfg) or sequence (floor): agents that verified and acked/echoed it. */
  readonly acked: Record<string, number>;
  readonly rejected: Record<string, number>;
  /** Stream errors and failed polls by code (AgentError code or grpc status name). */
  readonly errors: Record<string, number>;
  readonly reconnects: number;
  /** Not-modified poll answers since the last reset-polls. */
  readonly notModified: number;
  /** Wire size of the bundle messages received (bytes + signed delivery), for the floor's payload. */
  readonly bundleSizes: readonly number[];
}

export type FromWorker =
  | { readonly type: 'ready' }
  | { readonly type: 'report'; readonly report: WorkerReport }
  | { readonly type: 'disconnected' }
  | { readonly type: 'fatal'; readonly error: string };

// ---- The floor server ----

export interface FloorSetup {
  readonly caPem: string;
  readonly certPem: string;
  readonly keyPem: string;
}

export type ToFloor =
  | { readonly type: 'setup'; readonly setup: FloorSetup }
  /** Sets the payload every hello and every poll is answered with (the median meshcfg bundle size). */
  | { readonly type: 'payload'; readonly bytes: number }
  /** Writes sequence `seq` to every open stream (stream mode) / makes it the current one (poll mode). */
  | { readonly type: 'broadcast'; readonly seq: number }
  | { readonly type: 'report'; readonly seq: number }
  | { readonly type: 'reset-loop-delay' };

export type FromFloor =
  | { readonly type: 'listening'; readonly port: number }
  | {
      readonly type: 'report';
      readonly seq: number;
      /** Epoch ms at which the broadcast began. */
      readonly startedAt: number;
      /** Epoch ms at which each echo of `seq` arrived, one per agent (the first echo of each). */
      readonly echoes: readonly number[];
      /** Longest event-loop delay since the last reset, ms. */
      readonly loopDelayMaxMs: number;
      readonly streams: number;
    };

/**
 * Floor wire format: raw bytes (no protobuf). Byte 0 is the kind, bytes 1–4 a big-endian uint32
 * sequence, the rest the agent id (hello, echo) or padding (payload).
 */
export const FLOOR_HELLO = 0x48; // 'H'
export const FLOOR_PAYLOAD = 0x50; // 'P'
export const FLOOR_ECHO = 0x45; // 'E'
export const FLOOR_NOT_MODIFIED = 0x4e; // 'N'

export function floorFrame(kind: number, seq: number, body: Buffer | number): Buffer {
  const rest = typeof body === 'number' ? Buffer.alloc(Math.max(0, body - 5), 0x2e) : body;
  const frame = Buffer.allocUnsafe(5 + rest.length);
  frame[0] = kind;
  frame.writeUInt32BE(seq, 1);
  rest.copy(frame, 5);
  return frame;
}

export function parseFloorFrame(frame: Buffer): { readonly kind: number; readonly seq: number; readonly body: Buffer } {
  if (frame.length < 5) throw new Error('floor frame shorter than 5 bytes');
  return { kind: frame[0] ?? 0, seq: frame.readUInt32BE(1), body: frame.subarray(5) };
}

/** The floor's service: the same RPC shapes as meshcfg's (a bidi stream, a unary poll and report). */
export const FLOOR_SERVICE = {
  stream: '/floor.v1.Floor/Stream',
  poll: '/floor.v1.Floor/Poll',
  report: '/floor.v1.Floor/Report',
} as const;
