import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import pg from 'pg';
import { notify } from '../lib/index.js';

/*
 * Which replica leads the repository tracker and the rollout controller. With a store only
 * this process writes (SQLite, memory) the process always leads (`SoleLeadership`); replicas
 * sharing PostgreSQL elect one by `pg_try_advisory_lock` held on a dedicated connection
 * (`AdvisoryLockLeadership`): the lock belongs to that session, so PostgreSQL releases it the
 * moment the leader's socket closes (`kill -9`, a crash, `pg_terminate_backend`).
 */

/** Why a replica stopped leading. */
export type StepDownReason =
  /** The lock connection reported an error or ended (terminated backend, database restart). */
  | 'connection-lost'
  /** The periodic check did not answer within its timeout (a hung connection or network). */
  | 'check-failed'
  /** `stop()`: shutting down releases the lock for the next replica. */
  | 'stopped';

export type LeadershipState =
  | { readonly kind: 'leader'; readonly since: Date }
  | { readonly kind: 'follower' };

export interface LeadershipHooks {
  /** This replica took the lock: start polling and ticking. */
  onElected?(event: { readonly replica: string }): void;
  /** This replica no longer leads: stop polling and ticking at once. */
  onDeposed?(event: { readonly replica: string; readonly reason: StepDownReason; readonly error?: unknown }): void;
  /** A try to take the lock failed for another reason than another leader (database down); retried. */
  onCandidateError?(event: { readonly replica: string; readonly error: unknown }): void;
}

/** What the server's parts see of the election. */
export interface Leadership {
  /** `sole`: the only writer of its store, leading from the start; `elected`: one of several replicas. */
  readonly kind: 'sole' | 'elected';
  /** This replica's id (`host-pid-random`), shown by `/readyz` and `/api/v1/source`. */
  readonly replica: string;
  isLeader(): boolean;
  state(): LeadershipState;
  /** Calls `listener` on every change (true: elected); returns the unsubscribe function. */
  subscribe(listener: (leader: boolean) => void): () => void;
  /** Starts campaigning (idempotent). */
  start(): void;
  /** Steps down (releasing the lock) and stops campaigning. Idempotent. */
  stop(): Promise<void>;
}

/** A new replica id: the host, the process and a random suffix (two processes never share one). */
export function newReplicaId(): string {
  return `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

abstract class Listeners {
  private readonly listeners = new Set<(leader: boolean) => void>();

  subscribe(listener: (leader: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  protected emit(leader: boolean): void {
    // A throwing listener must not break the election loop.
    for (const listener of [...this.listeners]) notify(() => listener(leader));
  }
}

/** The only writer of its store leads from the start; nothing to elect. */
export class SoleLeadership extends Listeners implements Leadership {
  readonly kind = 'sole';
  private readonly since: Date;

  constructor(
    readonly replica: string = newReplicaId(),
    now: () => Date = () => new Date(),
  ) {
    super();
    this.since = now();
  }

  isLeader(): boolean {
    return true;
  }

  state(): LeadershipState {
    return { kind: 'leader', since: this.since };
  }

  start(): void {}

  async stop(): Promise<void> {}
}

/** The advisory lock key every meshcfg replica of one database contends for ("meshcfg" as ASCII). */
export const LEADER_LOCK_KEY = 0x6d657368636667n;

export interface AdvisoryLockLeadershipOptions {
  /** The fleet database (the lock lives there; one election per database). */
  readonly connectionString: string;
  readonly replica?: string;
  /** Default LEADER_LOCK_KEY. */
  readonly lockKey?: bigint;
  /** How often a follower tries to take the lock. Default 3 s. */
  readonly retryMs?: number;
  /** How often the leader checks its lock connection. Default 2 s. */
  readonly checkMs?: number;
  /** A check not answered within this is a lost connection. Default 1.5 s. */
  readonly checkTimeoutMs?: number;
  /**
   * PostgreSQL ends the lock session after this long without a query (`idle_session_timeout`,
   * PostgreSQL 14+), so a leader cut off by the network — whose socket PostgreSQL would otherwise
   * keep for hours — releases the lock this long after its last check. Default 10 s: with a check
   * every 2 s and a retry every 3 s, another replica leads within 15 s of the leader vanishing.
   */
  readonly sessionTimeoutMs?: number;
  readonly hooks?: LeadershipHooks;
  readonly now?: () => Date;
}

/**
 * Elects by `pg_try_advisory_lock(key)` on a dedicated `pg.Client` (never a pooled one: the
 * lock belongs to the session, and a pool would hand the session to other queries or close it
 * when idle). A follower retries every `retryMs`; the leader runs a cheap query every `checkMs`
 * with a timeout and steps down at once — before its listeners could run one more poll or tick
 * — when the check fails or the connection reports an error or its end. Stepping down ends the
 * connection, so PostgreSQL frees the lock if it still held it. Another replica takes over
 * within `retryMs` of PostgreSQL releasing the lock; the deposed one campaigns again only after
 * two `retryMs`, so a healthy replica is preferred.
 */
export class AdvisoryLockLeadership extends Listeners implements Leadership {
  readonly kind = 'elected';
  readonly replica: string;
  private readonly options: Required<Omit<AdvisoryLockLeadershipOptions, 'replica'>>;
  private current: LeadershipState = { kind: 'follower' };
  private client: pg.Client | null = null;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  /** Until when a deposed leader leaves the lock to the others (epoch ms). */
  private holdOffUntil = 0;
  private step: Promise<void> = Promise.resolve();

  constructor(options: AdvisoryLockLeadershipOptions) {
    super();
    this.replica = options.replica ?? newReplicaId();
    this.options = {
      connectionString: options.connectionString,
      lockKey: options.lockKey ?? LEADER_LOCK_KEY,
      retryMs: options.retryMs ?? 3_000,
      checkMs: options.checkMs ?? 2_000,
      checkTimeoutMs: options.checkTimeoutMs ?? 1_500,
      sessionTimeoutMs: options.sessionTimeoutMs ?? 10_000,
      hooks: options.hooks ?? {},
      now: options.now ?? (() => new Date()),
    };
  }

  isLeader(): boolean {
    return this.current.kind === 'leader';
  }

  state(): LeadershipState {
    return this.current;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.step;
    this.stepDown('stopped');
    await this.closeClient();
  }

  private schedule(delayMs: number): void {
    if (!this.running) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.step = this.step.then(() => (this.isLeader() ? this.check() : this.campaign()));
      void this.step.then(() => this.schedule(this.isLeader() ? this.options.checkMs : this.options.retryMs));
    }, delayMs);
    this.timer.unref();
  }

  /** One try to take the lock. */
  private async campaign(): Promise<void> {
    if (!this.running || Date.now() < this.holdOffUntil) return;
    try {
      const client = await this.connection();
      const result = await withTimeout(
        client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [this.options.lockKey.toString()]),
        this.options.checkTimeoutMs * 2,
      );
      if (result.rows[0]?.locked !== true || !this.running || this.client !== client) return;
      this.current = { kind: 'leader', since: this.options.now() };
      const replica = this.replica;
      notify(() => this.options.hooks.onElected?.({ replica }));
      this.emit(true);
    } catch (error) {
      const replica = this.replica;
      notify(() => this.options.hooks.onCandidateError?.({ replica, error }));
      await this.closeClient();
    }
  }

  /** The leader's check: its session must still answer. */
  private async check(): Promise<void> {
    const client = this.client;
    if (client === null) {
      this.stepDown('connection-lost');
      return;
    }
    try {
      await withTimeout(client.query('SELECT 1'), this.options.checkTimeoutMs);
    } catch (error) {
      if (this.client !== client) return; // already handled by the connection's events
      this.stepDown('check-failed', error);
      await this.closeClient();
    }
  }

  private async connection(): Promise<pg.Client> {
    if (this.client !== null) return this.client;
    const client = new pg.Client({
      connectionString: this.options.connectionString,
      connectionTimeoutMillis: this.options.checkTimeoutMs * 2,
      application_name: `meshcfg-leader ${this.replica}`.slice(0, 63),
      keepAlive: true,
    });
    const lost = (error?: unknown): void => {
      if (this.client !== client) return;
      this.client = null;
      // At once, not at the next check: the lock is gone with the session.
      this.stepDown('connection-lost', error);
      void client.end().catch(() => {});
    };
    client.on('error', (err) => lost(err));
    client.on('end', () => lost());
    this.client = client;
    try {
      await client.connect();
    } catch (err) {
      if (this.client === client) this.client = null;
      throw err;
    }
    // Older servers do not know the setting: they keep the session until TCP gives up on it.
    await client.query(`SET idle_session_timeout = ${Math.max(1, Math.round(this.options.sessionTimeoutMs))}`).catch(() => undefined);
    return client;
  }

  private stepDown(reason: StepDownReason, error?: unknown): void {
    if (this.current.kind !== 'leader') return;
    this.current = { kind: 'follower' };
    // A replica whose connection just failed is the worst candidate: the others get two tries first.
    if (reason !== 'stopped') this.holdOffUntil = Date.now() + 2 * this.options.retryMs;
    const replica = this.replica;
    notify(() => this.options.hooks.onDeposed?.({ replica, reason, ...(error === undefined ? {} : { error }) }));
    this.emit(false);
  }

  private async closeClient(): Promise<void> {
    const client = this.client;
    this.client = null;
    if (client === null) return;
    // Ending the session releases the lock; a hung connection is not waited for.
    await withTimeout(client.end(), this.options.checkTimeoutMs).catch(() => {});
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}
