import pg from 'pg';
import type { AgentId } from '../../domain/types.js';
import type { FleetChange, FleetChangeEvent, FleetChangeFeed } from '../changes.js';
import { StoreError } from '../errors.js';
import { clientConfig, redactUrl, translate, type ConnectionSettings } from './connection.js';

/** The NOTIFY channel every write of the PostgreSQL fleet store signals on. */
export const FLEET_CHANNEL = 'meshcfg_fleet';

/**
 * PostgreSQL refuses a NOTIFY payload of 8000 bytes or more. Agent ids are listed while the
 * payload stays under this bound (with room to spare), else the change names `'all'`.
 */
export const MAX_PAYLOAD_BYTES = 7_900;

/** The payloads that tell listeners about `changes`: one JSON FleetChange each, always under the limit. */
export function changePayloads(changes: readonly FleetChange[]): string[] {
  return changes.map((change) => {
    const text = JSON.stringify(change);
    if (change.kind !== 'agents' || change.ids === 'all' || Buffer.byteLength(text) <= MAX_PAYLOAD_BYTES) return text;
    return JSON.stringify({ kind: 'agents', ids: 'all' } satisfies FleetChange);
  });
}

/** A payload from the channel, or null when it is not a FleetChange this code writes (the channel is open to any session). */
export function parseChange(payload: string | undefined): FleetChange | null {
  if (payload === undefined) return null;
  let value: unknown;
  try {
    value = JSON.parse(payload);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const change = value as Record<string, unknown>;
  switch (change.kind) {
    case 'server-state':
    case 'credentials':
    case 'audit':
      return { kind: change.kind };
    case 'rollout':
      return Number.isSafeInteger(change.revision) ? { kind: 'rollout', revision: change.revision as number } : null;
    case 'agents':
      if (change.ids === 'all') return { kind: 'agents', ids: 'all' };
      if (Array.isArray(change.ids) && change.ids.every((id) => typeof id === 'string' && id !== '')) return { kind: 'agents', ids: Object.freeze([...(change.ids as AgentId[])]) };
      return null;
    default:
      return null;
  }
}

/** What the feed reports about its connection (for logs and metrics). */
export type PostgresFeedEvent =
  /** The listening connection failed or could not be made; it is retried after `retryInMs`. */
  | { readonly kind: 'feed-disconnected'; readonly error: StoreError; readonly retryInMs: number }
  /** LISTEN is in place again; a `resync` was emitted. */
  | { readonly kind: 'feed-listening'; readonly reconnects: number }
  /** A payload on the channel that is not a FleetChange was ignored. */
  | { readonly kind: 'feed-malformed'; readonly malformed: number };

export interface PostgresChangeFeedOptions {
  readonly backoffMs: { readonly min: number; readonly max: number };
  readonly heartbeatMs: number;
  readonly onEvent?: (event: PostgresFeedEvent) => void;
}

export interface PostgresChangeFeedStats {
  /** Is LISTEN in place now? */
  readonly listening: boolean;
  /** How many times LISTEN was established after the first time. */
  readonly reconnects: number;
  /** Payloads ignored because they were not a FleetChange. */
  readonly malformed: number;
  /** Changes delivered to listeners. */
  readonly delivered: number;
}

/**
 * The listening side of the PostgreSQL store's change notifications: one dedicated
 * `pg.Client` (LISTEN holds its connection, so it cannot come from the pool) doing
 * `LISTEN meshcfg_fleet`.
 *
 * Contract: it connects on the first `subscribe`. Every time LISTEN is in place — the first
 * time included, since anything committed before it was not heard — it emits `{kind:'resync'}`,
 * so a listener re-reads what it caches. When the connection drops (PostgreSQL restarted, the
 * backend terminated, the network lost; a heartbeat query finds a silent loss) it reconnects
 * with exponential backoff, forever, until `close()`. Notifications sent while it was down are
 * lost; the resync after the reconnect covers them.
 */
export class PostgresChangeFeed implements FleetChangeFeed {
  private readonly listeners = new Set<(event: FleetChangeEvent) => void>();
  private client: pg.Client | null = null;
  private started = false;
  private closed = false;
  private listening = false;
  private attempts = 0;
  private listens = 0;
  private malformed = 0;
  private delivered = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private readyWaiters: Array<() => void> = [];

  constructor(
    private readonly settings: ConnectionSettings,
    private readonly options: PostgresChangeFeedOptions,
  ) {}

  subscribe(listener: (event: FleetChangeEvent) => void): () => void {
    this.listeners.add(listener);
    if (!this.started && !this.closed) {
      this.started = true;
      void this.connect();
    }
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** Resolves once LISTEN is in place (after a `subscribe`); for tests and start-up ordering. */
  ready(): Promise<void> {
    if (this.listening) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  stats(): PostgresChangeFeedStats {
    return Object.freeze({ listening: this.listening, reconnects: Math.max(0, this.listens - 1), malformed: this.malformed, delivered: this.delivered });
  }

  /** The backend pid of the listening connection (tests terminate it), or null when not listening. */
  backendPid(): number | null {
    const pid = (this.client as unknown as { processID?: number } | null)?.processID;
    return this.listening && typeof pid === 'number' ? pid : null;
  }

  /** Ends the listening connection and stops reconnecting. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.listening = false;
    this.clearTimers();
    const client = this.client;
    this.client = null;
    if (client !== null) await client.end().catch(() => undefined);
    for (const resolve of this.readyWaiters.splice(0)) resolve();
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    // A heartbeat that does not answer within its own period means the connection is gone.
    const client = new pg.Client(clientConfig({ ...this.settings, queryTimeoutMs: Math.min(this.settings.queryTimeoutMs, this.options.heartbeatMs) }));
    this.client = client;
    let lost = false;
    const onLost = (err: unknown): void => {
      if (lost || this.client !== client) return;
      lost = true;
      this.dropped(client, err);
    };
    client.on('error', onLost);
    client.on('end', () => onLost(new Error('the listening connection ended')));
    client.on('notification', (message) => {
      if (message.channel === FLEET_CHANNEL) this.receive(message.payload);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${FLEET_CHANNEL}`);
    } catch (err) {
      onLost(err);
      return;
    }
    if (this.closed || this.client !== client || lost) return;
    this.attempts = 0;
    this.listening = true;
    this.listens += 1;
    this.options.onEvent?.({ kind: 'feed-listening', reconnects: this.listens - 1 });
    this.heartbeatTimer = setInterval(() => {
      client.query('SELECT 1').catch(onLost);
    }, this.options.heartbeatMs);
    this.heartbeatTimer.unref();
    for (const resolve of this.readyWaiters.splice(0)) resolve();
    this.emit({ kind: 'resync' });
  }

  private dropped(client: pg.Client, err: unknown): void {
    this.listening = false;
    this.clearTimers();
    this.client = null;
    client.end().catch(() => undefined);
    if (this.closed) return;
    const delay = Math.min(this.options.backoffMs.max, this.options.backoffMs.min * 2 ** this.attempts);
    this.attempts += 1;
    const error = translate(err, `the change feed lost its connection to ${redactUrl(this.settings.url)}`, this.settings.url);
    this.options.onEvent?.({
      kind: 'feed-disconnected',
      error: error instanceof StoreError ? error : new StoreError({ code: 'STORE_UNAVAILABLE', message: `the change feed lost its connection to ${redactUrl(this.settings.url)}` }),
      retryInMs: delay,
    });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.connect();
    }, delay);
    this.retryTimer.unref();
  }

  private receive(payload: string | undefined): void {
    const change = parseChange(payload);
    if (change === null) {
      this.malformed += 1;
      this.options.onEvent?.({ kind: 'feed-malformed', malformed: this.malformed });
      return;
    }
    this.delivered += 1;
    this.emit(change);
  }

  private emit(event: FleetChangeEvent): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(event);
      } catch {
        // A throwing listener is not retried and does not stop the others (changes.ts).
      }
    }
  }

  private clearTimers(): void {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    if (this.heartbeatTimer !== null) clearInterval(this.heartbeatTimer);
    this.retryTimer = null;
    this.heartbeatTimer = null;
  }
}
