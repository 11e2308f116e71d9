import type { Logger } from 'pino';
import type { FleetStore } from '../fleet/index.js';
import type { DataDir } from '../pki/index.js';
import type { GrpcServerOptions } from '../transport/index.js';
import type { ServerConfig } from './config.js';
import type { FleetCache } from './fleet.js';
import type { Leadership } from './leadership.js';
import type { TransportHandle } from './links.js';
import type { ServerMetrics } from './metrics.js';
import type { QuarantineController } from './quarantine.js';
import type { Reconciler, ReconcileResult } from './reconcile.js';
import type { RolloutService } from './rollout.js';
import type { DesiredStatePolicy } from './snapshot.js';

export type StartTransport = (options: GrpcServerOptions) => Promise<TransportHandle>;

export interface StartServerOptions {
  /** Default: pino JSON lines on stdout at `info`. */
  readonly logger?: Logger;
  /** Default: `GrpcServer.start`. Tests may substitute a fake. */
  readonly transport?: StartTransport;
  /** Default: the rollout (waves, windows, gates from meshcfg.yaml). `latestCommitPolicy` gives every agent the latest commit at once. */
  readonly policy?: DesiredStatePolicy;
  readonly now?: () => Date;
  /** How often the bundle-expiry refresh is checked. Default: ttl/48 within 1 s – 60 s. */
  readonly refreshCheckMs?: number;
  /** A fleet agent with no stream and no contact for this long is DISCONNECTED. Default 2 min. */
  readonly disconnectedAfterMs?: number;
  /** How often agent certificates are checked for coming expiry (cert-expiring alerts). Default 1 min. */
  readonly certCheckMs?: number;
  /** Window of the unauthorized-attempt alert rate limit (one per reason per window). Default 1 min. */
  readonly unauthorizedAlertWindowMs?: number;
  /** How often agents are checked against `rollout.quarantineStaleAfter` (when the served commit sets it). Default 5 s. */
  readonly staleCheckMs?: number;
  /** How long the fleet store may be out of reach before `/readyz` answers 503 and an alert is posted. Default 30 s. */
  readonly storeOutageGraceMs?: number;
  /** How often the fleet store's reachability is checked for that alert. Default 5 s. */
  readonly storeOutageCheckMs?: number;
  /** How often the rollout's bakes and windows are checked. Default 1 s. */
  readonly rolloutTickMs?: number;
  /**
   * After a renewal, how long a stream on the replaced certificate may stay open before it is
   * ended (the agent moves its stream onto the new certificate itself). Default 10 s.
   */
  readonly replacedStreamGraceMs?: number;
  /**
   * Who leads the repository tracker and the rollout controller. Default: this process alone
   * (`SoleLeadership`), right for a store no other process writes (SQLite).
   */
  readonly leadership?: Leadership;
  /**
   * A fleet store opened by the caller instead of `<dataDir>/fleet.db` (replicas in one test
   * process sharing one store); the server does not close it.
   */
  readonly fleetStore?: FleetStore;
}

/** A started server. Everything an end-to-end test needs to talk to it. */
export interface RunningServer {
  readonly config: ServerConfig;
  readonly dataDir: DataDir;
  /** `host:port` of the gRPC listener, with the real port. */
  readonly grpcAddress: string;
  readonly grpcPort: number;
  /** `http(s)://host:port` of the admin API, with the real port (`https` with `adminTls`). */
  readonly adminUrl: string;
  readonly adminPort: number;
  /** `sha256/<base64>` — what `meshcfg enroll --pin` takes. */
  readonly pin: string;
  readonly adminTokenPath: string;
  readonly metrics: ServerMetrics;
  readonly reconciler: Reconciler;
  /** Fleet state (a cache written through to `<dataDir>/fleet.db`). */
  readonly fleet: FleetCache;
  readonly fleetStore: FleetStore;
  readonly quarantine: QuarantineController;
  readonly rollout: RolloutService;
  ready(): boolean;
  /** Whether this replica leads (and its id). */
  readonly leadership: Leadership;
  /** Fetches now and waits until the head is judged (instead of waiting for the poll). */
  syncNow(): Promise<ReconcileResult>;
  /** Graceful: stop polling, drain gRPC within `deadlineMs`, close the admin API, flush logs. Idempotent. */
  close(deadlineMs?: number): Promise<void>;
}

