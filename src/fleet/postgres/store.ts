import pg from 'pg';
import type { AgentId } from '../../domain/types.js';
import type { TokenRecord, TokenStore } from '../../pki/index.js';
import type { FleetChange } from '../changes.js';
import { StoreError } from '../errors.js';
import {
  DEFAULT_TOKEN_RETENTION_MS,
  adminTokenLive,
  adminTokenTaken,
  checkAccepted,
  checkAdminToken,
  checkAck,
  checkAgentId,
  checkAudit,
  checkCurrentCertificate,
  checkDeliveryWrite,
  checkDate,
  checkPatch,
  checkRefusal,
  checkRevocation,
  checkSend,
  checkToken,
  duplicateToken,
  batchAgentUpdates,
  generationConflict,
  jsonText,
  checkGenerationRecord,
  generationTaken,
  pageOf,
  refusalText,
  revisionConflict,
} from '../records.js';
import {
  agentOf,
  adminTokenOf,
  ackOf,
  auditOf,
  generationRowOf,
  rolloutOf,
  sendOf,
  serverStateOf,
  type AckRow,
  type AdminTokenRow,
  type AgentRow,
  type AuditRow,
  type GenerationRow,
  type RolloutRow,
  type SendRow,
  type ServerStateRow,
  type TableRows,
  type TokenRow,
} from '../rows.js';
import { checkSchemaVersion } from '../schema.js';
import type {
  AcceptedState,
  AckRecord,
  AdminTokenRecord,
  AgentPatch,
  AgentRecord,
  AgentUpdate,
  AuditEntry,
  CurrentCertificate,
  DeliveryWrite,
  CurrentCertificateKind,
  FleetStore,
  FleetStoreOptions,
  GenerationRecord,
  PageRequest,
  RecordBatchOptions,
  RefusalRecord,
  RevocationRecord,
  RolloutDocument,
  SaveRolloutOptions,
  SendRecord,
  ServerState,
  StoredAck,
  StoredAuditEntry,
  StoredRollout,
  StoredSend,
} from '../store.js';
import { BATCH_ID_RETENTION_MS, GENERATIONS_KEPT } from '../store.js';
import { checkPostgresUrl, clientConfig, isConnectionFailure, redactUrl, translate, type ConnectionSettings } from './connection.js';
import { PostgresChangeFeed, changePayloads, FLEET_CHANNEL, type PostgresFeedEvent } from './feed.js';
import { MIGRATION_LOCK, MIGRATIONS } from './migrations.js';

/** What the backend reports for logs and metrics (never with the password). */
export type PostgresStoreEvent =
  /** An idle pooled connection failed (PostgreSQL restarted, the network dropped); the pool replaces it on the next call. */
  | { readonly kind: 'pool-error'; readonly error: StoreError }
  | PostgresFeedEvent;

export interface PostgresFleetStoreOptions extends FleetStoreOptions {
  /** Connections in the pool. Default 10. */
  readonly poolSize?: number;
  /** How long to wait for a connection before STORE_UNAVAILABLE. Default 5 s. */
  readonly connectTimeoutMs?: number;
  /** How long one statement may take before STORE_UNAVAILABLE. Default 30 s. */
  readonly queryTimeoutMs?: number;
  /** The change feed's reconnect backoff, first and longest delay. Default 100 ms and 5 s. */
  readonly feedBackoffMs?: { readonly min: number; readonly max: number };
  /** How often the change feed checks its connection is alive (a silent network loss sends no error). Default 10 s. */
  readonly feedHeartbeatMs?: number;
  /** Observes connection trouble (for logs and metrics). */
  readonly onEvent?: (event: PostgresStoreEvent) => void;
  /** @internal Tests only: the migration list to run instead of the real one. */
  readonly migrations?: readonly string[];
}

type Queryable = Pick<pg.PoolClient, 'query'>;

/** Collects the changes a transaction makes; they are sent with pg_notify just before COMMIT. */
class Changes {
  readonly list: FleetChange[] = [];
  private readonly agentIds = new Set<AgentId>();
  private allAgents = false;

  add(change: FleetChange): void {
    if (change.kind === 'agents') {
      if (change.ids === 'all') this.allAgents = true;
      else for (const id of change.ids) this.agentIds.add(id);
      return;
    }
    if (!this.list.some((c) => c.kind === change.kind)) this.list.push(change);
    else if (change.kind === 'rollout') {
      // Several saves in one transaction cannot happen today; keep the last revision if they do.
      const index = this.list.findIndex((c) => c.kind === 'rollout');
      this.list[index] = change;
    }
  }

  agents(ids: Iterable<AgentId>): void {
    for (const id of ids) this.agentIds.add(id);
  }

  all(): readonly FleetChange[] {
    const agents: FleetChange[] = this.allAgents ? [{ kind: 'agents', ids: 'all' }] : this.agentIds.size > 0 ? [{ kind: 'agents', ids: [...this.agentIds] }] : [];
    return [...agents, ...this.list];
  }
}

const UPSERT_AGENT = `
  INSERT INTO agents AS a (id, desired_commit, desired_digest, desired_generation,
    active_commit, active_digest, active_generation, active_at, state,
    cert_serial, cert_expiry, last_seen, quarantine_since, quarantine_reason, quarantine_by)
  VALUES ($1::text, $3::text, $4::text, $5::bigint,
    $7::text, $8::text, $9::bigint, $10::bigint, coalesce($12::text, 'DISCONNECTED'),
    $14::text, $16::bigint, $18::bigint, $20::bigint, $21::text, $22::text)
  ON CONFLICT (id) DO UPDATE SET
    desired_commit     = CASE WHEN $2::boolean THEN excluded.desired_commit ELSE a.desired_commit END,
    desired_digest     = CASE WHEN $2::boolean THEN excluded.desired_digest ELSE a.desired_digest END,
    desired_generation = CASE WHEN $2::boolean THEN excluded.desired_generation ELSE a.desired_generation END,
    active_commit      = CASE WHEN $6::boolean THEN excluded.active_commit ELSE a.active_commit END,
    active_digest      = CASE WHEN $6::boolean THEN excluded.active_digest ELSE a.active_digest END,
    active_generation  = CASE WHEN $6::boolean THEN excluded.active_generation ELSE a.active_generation END,
    active_at          = CASE WHEN $6::boolean THEN excluded.active_at ELSE a.active_at END,
    state              = CASE WHEN $11::boolean THEN excluded.state ELSE a.state END,
    cert_serial        = CASE WHEN $13::boolean THEN excluded.cert_serial ELSE a.cert_serial END,
    cert_expiry        = CASE WHEN $15::boolean THEN excluded.cert_expiry ELSE a.cert_expiry END,
    last_seen          = CASE WHEN $17::boolean THEN excluded.last_seen ELSE a.last_seen END,
    quarantine_since   = CASE WHEN $19::boolean THEN excluded.quarantine_since ELSE a.quarantine_since END,
    quarantine_reason  = CASE WHEN $19::boolean THEN excluded.quarantine_reason ELSE a.quarantine_reason END,
    quarantine_by      = CASE WHEN $19::boolean THEN excluded.quarantine_by ELSE a.quarantine_by END
  RETURNING *`;

/**
 * The shared FleetStore: PostgreSQL through a `pg.Pool`, for several server replicas.
 *
 * Contract, beyond the FleetStore one: every write is one transaction on one pooled
 * connection (BEGIN … COMMIT, ROLLBACK on any error), and tells every process sharing the
 * database what it changed with `pg_notify` inside that transaction, so a notification is
 * delivered only if the write commits (`changes` is the listening side). Compare-and-set
 * writes never read-then-write without a lock: the condition sits in the UPDATE's WHERE clause
 * (generation, rollout revision, token claim) or the row is locked with SELECT … FOR UPDATE
 * (admin token names), so they hold across processes, not only across this pool. Reads that
 * are one statement run outside an explicit transaction (a statement is its own snapshot).
 * A lost connection, a refused one, a timeout: STORE_UNAVAILABLE, the pool retries on the
 * next call (nothing is cached here, so PostgreSQL coming back is all it takes).
 */
export class PostgresFleetStore implements FleetStore {
  /** The schema version this code writes. */
  static readonly SCHEMA_VERSION = MIGRATIONS.length;

  readonly changes: PostgresChangeFeed;
  readonly tokens: TokenStore;
  /** The URL with the password replaced by `***`, for logs. */
  readonly redactedUrl: string;
  private readonly options: Required<Omit<PostgresFleetStoreOptions, 'migrations' | 'onEvent'>> & Pick<PostgresFleetStoreOptions, 'onEvent'>;
  private closed = false;

  private constructor(
    private readonly url: string,
    private readonly pool: pg.Pool,
    options: PostgresFleetStoreOptions,
    settings: ConnectionSettings,
  ) {
    this.options = {
      now: options.now ?? (() => new Date()),
      tokenRetentionMs: options.tokenRetentionMs ?? DEFAULT_TOKEN_RETENTION_MS,
      poolSize: options.poolSize ?? 10,
      connectTimeoutMs: settings.connectTimeoutMs,
      queryTimeoutMs: settings.queryTimeoutMs,
      feedBackoffMs: options.feedBackoffMs ?? { min: 100, max: 5_000 },
      feedHeartbeatMs: options.feedHeartbeatMs ?? 10_000,
      onEvent: options.onEvent,
    };
    this.redactedUrl = redactUrl(url);
    this.tokens = new PostgresTokens(this);
    this.changes = new PostgresChangeFeed(settings, {
      backoffMs: this.options.feedBackoffMs,
      heartbeatMs: this.options.feedHeartbeatMs,
      ...(options.onEvent === undefined ? {} : { onEvent: options.onEvent }),
    });
  }

  /**
   * Connects to `url` and brings the schema up to date (under an advisory lock, so replicas
   * starting at once apply each migration once). Refuses with SCHEMA_TOO_NEW a database a
   * newer meshcfg migrated, with STORE_UNAVAILABLE one it cannot reach or log in to (the
   * message names the URL without its password).
   */
  static async open(url: string, options: PostgresFleetStoreOptions = {}): Promise<PostgresFleetStore> {
    checkPostgresUrl(url);
    const settings: ConnectionSettings = { url, connectTimeoutMs: options.connectTimeoutMs ?? 5_000, queryTimeoutMs: options.queryTimeoutMs ?? 30_000 };
    const pool = new pg.Pool({ ...clientConfig(settings), max: options.poolSize ?? 10 });
    // An idle client that loses its connection emits 'error' on the pool: unhandled, that
    // would crash the process. The pool drops the client; the next call opens a new one.
    pool.on('error', (err) => options.onEvent?.({ kind: 'pool-error', error: translate(err, `a pooled connection to ${redactUrl(url)} failed`, url) as StoreError }));
    // A checked-out client's connection can fail between two statements too.
    pool.on('connect', (client) => client.on('error', () => undefined));
    try {
      await migrate(pool, url, options.migrations ?? MIGRATIONS);
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw translate(err, `cannot open the fleet store at ${redactUrl(url)}`, url);
    }
    return new PostgresFleetStore(url, pool, options, settings);
  }

  /** The versions recorded in schema_migrations, ascending. */
  async schemaVersions(): Promise<readonly number[]> {
    const rows = await this.read<{ version: number }>('read the schema version', 'SELECT version FROM schema_migrations ORDER BY version');
    return rows.map((r) => r.version);
  }

  async serverState(): Promise<ServerState> {
    const [row] = await this.read<ServerStateRow>('read the server state', 'SELECT accepted, generation, refusal, accepted_seen_at FROM server_state WHERE id = 1');
    return serverStateOf(row, this.redactedUrl);
  }

  async saveAccepted(state: AcceptedState): Promise<void> {
    checkAccepted(state);
    await this.write('save the accepted commit', async (c, changes) => {
      // Compare-and-set in one statement: the row lock makes a concurrent save wait, and the
      // WHERE clause is re-checked against the row it committed.
      const updated = await c.query('UPDATE server_state SET accepted = $1, generation = $2, accepted_seen_at = $3 WHERE id = 1 AND generation <= $2', [
        state.accepted,
        state.generation,
        state.seenAt?.getTime() ?? null,
      ]);
      if (updated.rowCount === 0) {
        const stored = await c.query<{ generation: number }>('SELECT generation FROM server_state WHERE id = 1');
        throw generationConflict(state.generation, stored.rows[0]?.generation ?? 0);
      }
      changes.add({ kind: 'server-state' });
    });
  }

  async saveRefusal(refusal: RefusalRecord | null): Promise<void> {
    if (refusal !== null) checkRefusal(refusal);
    await this.write('save the refusal', async (c, changes) => {
      await c.query('UPDATE server_state SET refusal = $1 WHERE id = 1', [refusal === null ? null : refusalText(refusal)]);
      changes.add({ kind: 'server-state' });
    });
  }

  async getAgent(id: AgentId): Promise<AgentRecord | undefined> {
    const [row] = await this.read<AgentRow>('read an agent', 'SELECT * FROM agents WHERE id = $1', [id]);
    return row === undefined ? undefined : agentOf(row);
  }

  async listAgents(): Promise<readonly AgentRecord[]> {
    return Object.freeze((await this.read<AgentRow>('list agents', 'SELECT * FROM agents ORDER BY id')).map(agentOf));
  }

  async updateAgent(id: AgentId, patch: AgentPatch, audit?: AuditEntry): Promise<AgentRecord> {
    checkAgentId(id);
    checkPatch(patch);
    const details = audit === undefined ? undefined : checkAudit(audit);
    return this.write('update an agent', async (c, changes) => {
      const row = await upsert(c, id, patch);
      if (audit !== undefined && details !== undefined) await insertAudit(c, changes, audit, details);
      changes.agents([id]);
      return agentOf(row);
    });
  }

  async updateAgents(updates: readonly AgentUpdate[]): Promise<void> {
    for (const { id, patch } of updates) {
      checkAgentId(id);
      checkPatch(patch);
    }
    if (updates.length === 0) return this.run('update agents', async () => undefined);
    await this.write('update agents', async (c, changes) => {
      // A publish patches the whole fleet the same way: one statement per run of same-shaped
      // patches (ids unique within a run, so the runs in order equal the updates in order).
      for (const run of runsOf(updates)) await upsertMany(c, run);
      changes.agents(updates.map((u) => u.id));
    });
  }

  async removeAgents(ids: readonly AgentId[]): Promise<number> {
    if (ids.length === 0) return this.run('remove agents', async () => 0);
    return this.write('remove agents', async (c, changes) => {
      const deleted = await c.query<{ id: AgentId }>('DELETE FROM agents WHERE id = ANY($1::text[]) RETURNING id', [[...new Set(ids)]]);
      changes.agents(deleted.rows.map((r) => r.id));
      return deleted.rowCount ?? 0;
    });
  }

  async recordSend(send: SendRecord, agent?: AgentPatch): Promise<number> {
    checkSend(send);
    if (agent !== undefined) checkPatch(agent);
    return this.write('record a send', async (c, changes) => {
      const inserted = await c.query<{ id: number }>('INSERT INTO sends (agent_id, commit_sha, digest, generation, nonce, at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id', [
        send.agentId,
        send.commit,
        send.digest,
        send.generation,
        send.nonce,
        send.at.getTime(),
      ]);
      if (agent !== undefined) await upsert(c, send.agentId, agent);
      changes.agents([send.agentId]);
      return idOf(inserted.rows[0]);
    });
  }

  async recordAck(ack: AckRecord, agent?: AgentPatch): Promise<number> {
    checkAck(ack);
    if (agent !== undefined) checkPatch(agent);
    return this.write('record an ack', async (c, changes) => {
      const inserted = await c.query<{ id: number }>(
        'INSERT INTO acks (agent_id, commit_sha, digest, generation, nonce, status, error, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id',
        [ack.agentId, ack.commit, ack.digest, ack.generation, ack.nonce, ack.status, ack.error, ack.at.getTime()],
      );
      if (agent !== undefined) await upsert(c, ack.agentId, agent);
      changes.agents([ack.agentId]);
      return idOf(inserted.rows[0]);
    });
  }

  async recordBatch(writes: readonly DeliveryWrite[], options: RecordBatchOptions = {}): Promise<void> {
    for (const write of writes) checkDeliveryWrite(write);
    if (writes.length === 0) return;
    await this.write('record a batch of sends and acks', async (c, changes) => {
      if (options.id !== undefined) {
        const now = this.options.now().getTime();
        await c.query('DELETE FROM write_batches WHERE at < $1', [now - BATCH_ID_RETENTION_MS]);
        const inserted = await c.query('INSERT INTO write_batches (id, at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING', [options.id, now]);
        if (inserted.rowCount === 0) return; // recorded already
      }
      // Sends and acks each go in as one statement, in the batch's order (their ids follow it);
      // then each agent's patches folded into one, one statement per patch shape. One
      // transaction: how inserts and patches interleave inside it is invisible to readers.
      const sends = writes.flatMap((w) => (w.kind === 'send' ? [w.send] : []));
      const acks = writes.flatMap((w) => (w.kind === 'ack' ? [w.ack] : []));
      const patches = batchAgentUpdates(writes);
      if (sends.length > 0) {
        await c.query(
          `INSERT INTO sends (agent_id, commit_sha, digest, generation, nonce, at)
           SELECT a, c, d, g, n, t
           FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::bigint[]) WITH ORDINALITY AS r(a, c, d, g, n, t, o)
           ORDER BY o`,
          [sends.map((x) => x.agentId), sends.map((x) => x.commit), sends.map((x) => x.digest), sends.map((x) => x.generation), sends.map((x) => x.nonce), sends.map((x) => x.at.getTime())],
        );
      }
      if (acks.length > 0) {
        await c.query(
          `INSERT INTO acks (agent_id, commit_sha, digest, generation, nonce, status, error, at)
           SELECT a, c, d, g, n, s, e, t
           FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::bigint[]) WITH ORDINALITY AS r(a, c, d, g, n, s, e, t, o)
           ORDER BY o`,
          [
            acks.map((x) => x.agentId),
            acks.map((x) => x.commit),
            acks.map((x) => x.digest),
            acks.map((x) => x.generation),
            acks.map((x) => x.nonce),
            acks.map((x) => x.status),
            acks.map((x) => x.error),
            acks.map((x) => x.at.getTime()),
          ],
        );
      }
      for (const run of runsOf(byShape(patches))) await upsertMany(c, run);
      changes.agents([...new Set([...sends.map((x) => x.agentId), ...acks.map((x) => x.agentId), ...patches.map((x) => x.id)])]);
    });
  }

  async lastSend(agentId: AgentId): Promise<StoredSend | null> {
    const [row] = await this.read<SendRow>('read the last send', 'SELECT * FROM sends WHERE agent_id = $1 ORDER BY id DESC LIMIT 1', [agentId]);
    return row === undefined ? null : sendOf(row);
  }

  async listAcks(agentId: AgentId, page?: PageRequest): Promise<readonly StoredAck[]> {
    const { limit, beforeId } = pageOf(page);
    return Object.freeze((await this.read<AckRow>('list acks', 'SELECT * FROM acks WHERE agent_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3', [agentId, beforeId, limit])).map(ackOf));
  }

  async digestsApplied(agentId: AgentId): Promise<ReadonlySet<string>> {
    const rows = await this.read<{ digest: string }>('read applied digests', "SELECT DISTINCT digest FROM acks WHERE agent_id = $1 AND status = 'APPLIED'", [agentId]);
    return new Set(rows.map((r) => r.digest));
  }

  async wasIssued(agentId: AgentId, digest: string): Promise<boolean> {
    const [row] = await this.read<{ issued: boolean }>('look up a send', 'SELECT EXISTS (SELECT 1 FROM sends WHERE agent_id = $1 AND digest = $2) AS issued', [agentId, digest]);
    return row?.issued === true;
  }

  async saveGeneration(record: GenerationRecord): Promise<void> {
    const texts = checkGenerationRecord(record);
    // No change of its own: the leader's saveAccepted right after it announces `server-state`.
    await this.write('save a signed generation', async (c) => {
      const inserted = await c.query(
        'INSERT INTO generations (generation, commit_sha, statement, bundle, agents, at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (generation) DO NOTHING',
        [record.generation, record.commit, texts.statement, texts.bundle, texts.agents, texts.at],
      );
      if (inserted.rowCount !== 1) throw generationTaken(record.generation);
      await c.query('DELETE FROM generations WHERE generation NOT IN (SELECT generation FROM generations ORDER BY generation DESC LIMIT $1)', [GENERATIONS_KEPT]);
    });
  }

  async latestGeneration(): Promise<GenerationRecord | null> {
    const [row] = await this.read<GenerationRow>('load the newest signed generation', 'SELECT * FROM generations ORDER BY generation DESC LIMIT 1');
    return row === undefined ? null : generationRowOf(row);
  }

  async loadRollout(): Promise<StoredRollout | null> {
    const [row] = await this.read<RolloutRow>('load the rollout', 'SELECT commit_sha, document, at, revision FROM rollout WHERE id = 1');
    return row === undefined ? null : rolloutOf(row);
  }

  async saveRollout(rollout: RolloutDocument, options: SaveRolloutOptions = {}): Promise<number> {
    if (typeof rollout.commit !== 'string' || rollout.commit === '') throw new StoreError({ code: 'INVALID_RECORD', message: 'rollout.commit must be a non-empty string' });
    const at = checkDate(rollout.at, 'rollout.at');
    const text = jsonText(rollout.document, 'rollout.document');
    const details = options.audit === undefined ? undefined : checkAudit(options.audit);
    const values = [rollout.commit, text, at];
    return this.write('save the rollout', async (c, changes) => {
      // Each form is one statement whose condition PostgreSQL checks under the row lock (or
      // the primary key, for the first save), so two replicas saving against the same
      // revision cannot both win.
      let saved: pg.QueryResult<{ revision: number }>;
      if (options.ifRevision === undefined) {
        saved = await c.query(
          `INSERT INTO rollout AS r (id, commit_sha, document, at, revision) VALUES (1, $1, $2, $3, 1)
           ON CONFLICT (id) DO UPDATE SET commit_sha = excluded.commit_sha, document = excluded.document, at = excluded.at, revision = r.revision + 1
           RETURNING revision`,
          values,
        );
      } else if (options.ifRevision === null) {
        saved = await c.query('INSERT INTO rollout (id, commit_sha, document, at, revision) VALUES (1, $1, $2, $3, 1) ON CONFLICT (id) DO NOTHING RETURNING revision', values);
      } else {
        saved = await c.query('UPDATE rollout SET commit_sha = $1, document = $2, at = $3, revision = revision + 1 WHERE id = 1 AND revision = $4 RETURNING revision', [
          ...values,
          options.ifRevision,
        ]);
      }
      const revision = saved.rows[0]?.revision;
      if (revision === undefined) {
        const stored = await c.query<{ revision: number }>('SELECT revision FROM rollout WHERE id = 1');
        throw revisionConflict(options.ifRevision ?? null, stored.rows[0]?.revision ?? null);
      }
      if (options.audit !== undefined && details !== undefined) await insertAudit(c, changes, options.audit, details);
      changes.add({ kind: 'rollout', revision });
      return revision;
    });
  }

  async revoke(revocation: RevocationRecord, audit?: AuditEntry): Promise<boolean> {
    checkRevocation(revocation);
    const details = audit === undefined ? undefined : checkAudit(audit);
    return this.write('revoke a certificate', async (c, changes) => {
      const inserted = await c.query('INSERT INTO revocations (serial, agent_id, at, revoked_by) VALUES ($1, $2, $3, $4) ON CONFLICT (serial) DO NOTHING', [
        revocation.serial,
        revocation.agentId,
        revocation.at.getTime(),
        revocation.by,
      ]);
      if (audit !== undefined && details !== undefined) await insertAudit(c, changes, audit, details);
      if (inserted.rowCount === 1) changes.add({ kind: 'credentials' });
      return inserted.rowCount === 1;
    });
  }

  async isRevoked(serial: string): Promise<boolean> {
    const [row] = await this.read<{ revoked: boolean }>('look up a revocation', 'SELECT EXISTS (SELECT 1 FROM revocations WHERE serial = $1) AS revoked', [serial]);
    return row?.revoked === true;
  }

  async listRevocations(): Promise<readonly RevocationRecord[]> {
    const rows = await this.read<{ serial: string; agent_id: AgentId; at: number; revoked_by: string }>('list revocations', 'SELECT * FROM revocations ORDER BY at, serial');
    return Object.freeze(rows.map((r) => Object.freeze({ serial: r.serial, agentId: r.agent_id, at: new Date(r.at), by: r.revoked_by })));
  }

  async insertAdminToken(record: AdminTokenRecord, audit?: AuditEntry): Promise<void> {
    checkAdminToken(record);
    const details = audit === undefined ? undefined : checkAudit(audit);
    await this.write('insert an admin token', async (c, changes) => {
      // The row lock makes a concurrent insert of the same name wait; when neither finds a row,
      // the primary key refuses the second (23505: CONFLICT, below).
      const existing = await c.query<AdminTokenRow>('SELECT * FROM admin_tokens WHERE name = $1 FOR UPDATE', [record.name]);
      const row = existing.rows[0];
      if (row !== undefined) {
        if (adminTokenLive(adminTokenOf(row), record.createdAt)) throw adminTokenTaken(record.name);
        await c.query('DELETE FROM admin_tokens WHERE name = $1', [record.name]);
      }
      try {
        await c.query('INSERT INTO admin_tokens (name, role, hash, created_at, created_by, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
          record.name,
          record.role,
          record.hash,
          record.createdAt.getTime(),
          record.createdBy,
          record.expiresAt?.getTime() ?? null,
          record.revokedAt?.getTime() ?? null,
        ]);
      } catch (err) {
        if (err instanceof pg.DatabaseError && err.code === '23505') throw adminTokenTaken(record.name);
        throw err;
      }
      if (audit !== undefined && details !== undefined) await insertAudit(c, changes, audit, details);
      changes.add({ kind: 'credentials' });
    });
  }

  async adminTokenByHash(hash: Buffer): Promise<AdminTokenRecord | undefined> {
    const [row] = await this.read<AdminTokenRow>('look up an admin token', 'SELECT * FROM admin_tokens WHERE hash = $1', [hash]);
    return row === undefined ? undefined : adminTokenOf(row);
  }

  async listAdminTokens(): Promise<readonly AdminTokenRecord[]> {
    return Object.freeze((await this.read<AdminTokenRow>('list admin tokens', 'SELECT * FROM admin_tokens ORDER BY name')).map(adminTokenOf));
  }

  async revokeAdminToken(name: string, at: Date, audit?: AuditEntry): Promise<boolean> {
    const ms = checkDate(at, 'revokedAt');
    const details = audit === undefined ? undefined : checkAudit(audit);
    return this.write('revoke an admin token', async (c, changes) => {
      const updated = await c.query('UPDATE admin_tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL', [ms, name]);
      if (updated.rowCount !== 1) return false;
      if (audit !== undefined && details !== undefined) await insertAudit(c, changes, audit, details);
      changes.add({ kind: 'credentials' });
      return true;
    });
  }

  async setCurrentCertificate(record: CurrentCertificate): Promise<void> {
    checkCurrentCertificate(record);
    await this.write('record a current certificate', async (c, changes) => {
      await c.query(
        `INSERT INTO agent_certificates (agent_id, serial, kind, at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (agent_id) DO UPDATE SET serial = excluded.serial, kind = excluded.kind, at = excluded.at`,
        [record.agentId, record.serial, record.kind, record.at.getTime()],
      );
      changes.add({ kind: 'credentials' });
    });
  }

  async setCurrentCertificates(records: readonly CurrentCertificate[]): Promise<void> {
    for (const record of records) checkCurrentCertificate(record);
    if (records.length === 0) return;
    await this.write('record current certificates', async (c, changes) => {
      // Later records of one agent win, as with one call each: keep the last per agent.
      const last = new Map(records.map((r) => [r.agentId, r] as const));
      const rows = [...last.values()];
      await c.query(
        `INSERT INTO agent_certificates (agent_id, serial, kind, at)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])
         ON CONFLICT (agent_id) DO UPDATE SET serial = excluded.serial, kind = excluded.kind, at = excluded.at`,
        [rows.map((r) => r.agentId), rows.map((r) => r.serial), rows.map((r) => r.kind), rows.map((r) => r.at.getTime())],
      );
      changes.add({ kind: 'credentials' });
    });
  }

  async listCurrentCertificates(): Promise<readonly CurrentCertificate[]> {
    const rows = await this.read<{ agent_id: AgentId; serial: string; kind: string; at: number }>('list current certificates', 'SELECT * FROM agent_certificates ORDER BY agent_id');
    return Object.freeze(rows.map((r) => Object.freeze({ agentId: r.agent_id, serial: r.serial, kind: r.kind as CurrentCertificateKind, at: new Date(r.at) })));
  }

  async appendAudit(entry: AuditEntry): Promise<number> {
    const details = checkAudit(entry);
    return this.write('append to the audit log', (c, changes) => insertAudit(c, changes, entry, details));
  }

  async listAudit(page?: PageRequest): Promise<readonly StoredAuditEntry[]> {
    const { limit, beforeId } = pageOf(page);
    const rows = await this.read<AuditRow>('list the audit log', 'SELECT * FROM audit WHERE id < $1 ORDER BY id DESC LIMIT $2', [beforeId, limit]);
    return Object.freeze(rows.map(auditOf));
  }

  /** Ends the change feed and the pool (waiting for the calls in flight). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.changes.close();
    await this.pool.end();
  }

  /** @internal For PostgresTokens. */
  async tokenInsert(record: TokenRecord): Promise<void> {
    checkToken(record);
    const horizon = this.options.now().getTime() - this.options.tokenRetentionMs;
    await this.write('insert a token', async (c, changes) => {
      await c.query('DELETE FROM tokens WHERE expires_at <= $1', [horizon]);
      const inserted = await c.query('INSERT INTO tokens (hash, agent_id, expires_at, used_at) VALUES ($1, $2, $3, $4) ON CONFLICT (hash) DO NOTHING', [
        record.hash,
        record.agentId,
        record.expiresAt.getTime(),
        record.usedAt?.getTime() ?? null,
      ]);
      if (inserted.rowCount !== 1) throw duplicateToken();
      changes.add({ kind: 'credentials' });
    });
  }

  /** @internal For PostgresTokens. */
  async tokenClaim(hash: Buffer, at: Date): Promise<TokenRecord | undefined> {
    const ms = checkDate(at, 'claim time');
    return this.write('claim a token', async (c, changes) => {
      // FOR UPDATE: a second claimant waits for this transaction and then reads the row as it
      // committed (used), so exactly one claim sees it unused.
      const found = await c.query<TokenRow>('SELECT * FROM tokens WHERE hash = $1 FOR UPDATE', [hash]);
      const row = found.rows[0];
      if (row === undefined) return undefined;
      const claimed = await c.query('UPDATE tokens SET used_at = $1 WHERE hash = $2 AND used_at IS NULL AND expires_at > $1', [ms, hash]);
      if (claimed.rowCount === 1) changes.add({ kind: 'credentials' });
      return Object.freeze({
        hash: Buffer.from(row.hash),
        agentId: row.agent_id,
        expiresAt: new Date(row.expires_at),
        ...(row.used_at === null ? {} : { usedAt: new Date(row.used_at) }),
      });
    });
  }

  /** One statement outside an explicit transaction. */
  private read<R extends pg.QueryResultRow>(what: string, sql: string, params: unknown[] = []): Promise<R[]> {
    return this.run(what, async () => (await this.pool.query<R>(sql, params)).rows);
  }

  /**
   * One transaction on one pooled connection: BEGIN, `body`, a pg_notify per change it made,
   * COMMIT; ROLLBACK on any error. A connection that failed is discarded, not returned to the pool.
   */
  /**
   * Fills this database, which must hold no fleet state yet, with another SQL fleet store's
   * tables as stored (`importFleet`): the same tables and columns, ids kept (and the identity
   * sequences moved past them), in one transaction holding every table locked, so it lands
   * whole or not at all and no replica writes meanwhile. CONFLICT when the database holds
   * state already; CORRUPT when the two schemas differ. Every replica listening re-reads.
   */
  async importTables(tables: readonly TableRows[], onTable: (name: string, rows: number) => void = () => undefined): Promise<void> {
    await this.write('import the fleet state', async (c, changes) => {
      const ours = await c.query<{ table_name: string; column_name: string; is_identity: string }>(
        `SELECT table_name, column_name, is_identity FROM information_schema.columns
          WHERE table_schema = current_schema() AND table_name <> 'schema_migrations' ORDER BY table_name, ordinal_position`,
      );
      const columnsOf = new Map<string, string[]>();
      for (const row of ours.rows) columnsOf.set(row.table_name, [...(columnsOf.get(row.table_name) ?? []), row.column_name]);
      const differ = (a: readonly string[], b: readonly string[]): boolean => a.length !== b.length || [...a].sort().some((x, i) => x !== [...b].sort()[i]);
      if (differ([...columnsOf.keys()], tables.map((t) => t.name))) {
        throw new StoreError({ code: 'CORRUPT', message: `the tables differ: here ${[...columnsOf.keys()].join(', ')}; imported ${tables.map((t) => t.name).join(', ')}` });
      }
      for (const table of tables) {
        if (differ(columnsOf.get(table.name) ?? [], table.columns)) {
          throw new StoreError({ code: 'CORRUPT', message: `the columns of ${table.name} differ: here ${columnsOf.get(table.name)?.join(', ')}; imported ${table.columns.join(', ')}` });
        }
      }
      await c.query(`LOCK TABLE ${[...columnsOf.keys()].map((t) => `"${t}"`).join(', ')} IN ACCESS EXCLUSIVE MODE`);
      const [state] = (await c.query<{ accepted: string | null; generation: number; refusal: string | null }>('SELECT accepted, generation, refusal FROM server_state WHERE id = 1')).rows;
      const held = state === undefined || state.accepted !== null || state.generation !== 0 || state.refusal !== null ? ['server_state'] : [];
      for (const name of columnsOf.keys()) {
        if (name !== 'server_state' && (await c.query(`SELECT 1 FROM "${name}" LIMIT 1`)).rowCount !== 0) held.push(name);
      }
      if (held.length > 0) {
        throw new StoreError({ code: 'CONFLICT', message: `the database holds fleet state already (${held.join(', ')}): import only into a database no replica has written to` });
      }
      for (const table of tables) {
        const columns = table.columns.map((name) => `"${name}"`);
        let imported = 0;
        if (table.name === 'server_state') {
          for (const row of table.rows()) {
            await c.query(`UPDATE server_state SET ${columns.map((name, i) => `${name} = $${i + 1}`).join(', ')} WHERE id = 1`, [...row]);
            imported += 1;
          }
        } else {
          const insert = async (chunk: (readonly unknown[])[]): Promise<void> => {
            const values = chunk.map((_, r) => `(${columns.map((__, i) => `$${r * columns.length + i + 1}`).join(', ')})`);
            await c.query(`INSERT INTO "${table.name}" (${columns.join(', ')}) OVERRIDING SYSTEM VALUE VALUES ${values.join(', ')}`, chunk.flat());
            imported += chunk.length;
          };
          let chunk: (readonly unknown[])[] = [];
          for (const row of table.rows()) {
            chunk.push(row);
            if (chunk.length === IMPORT_CHUNK_ROWS) await insert(chunk.splice(0));
          }
          if (chunk.length > 0) await insert(chunk);
          chunk = [];
        }
        onTable(table.name, imported);
      }
      for (const { table_name: table, column_name: column } of ours.rows.filter((r) => r.is_identity === 'YES')) {
        await c.query(`SELECT setval(pg_get_serial_sequence($1, $2), coalesce((SELECT max("${column}") FROM "${table}"), 0) + 1, false)`, [table, column]);
      }
      changes.add({ kind: 'agents', ids: 'all' });
      for (const kind of ['server-state', 'credentials', 'audit'] as const) changes.add({ kind });
      const [rollout] = (await c.query<{ revision: number }>('SELECT revision FROM rollout LIMIT 1')).rows;
      if (rollout !== undefined) changes.add({ kind: 'rollout', revision: rollout.revision });
    });
  }

  private write<T>(what: string, body: (client: Queryable, changes: Changes) => Promise<T>): Promise<T> {
    return this.run(what, async () => {
      const client = await this.pool.connect();
      let failure: unknown;
      try {
        await client.query('BEGIN');
        const changes = new Changes();
        const result = await body(client, changes);
        for (const payload of changePayloads(changes.all())) await client.query('SELECT pg_notify($1, $2)', [FLEET_CHANNEL, payload]);
        await client.query('COMMIT');
        return result;
      } catch (err) {
        failure = err;
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.release(failure !== undefined && isConnectionFailure(failure));
      }
    });
  }

  private async run<T>(what: string, body: () => Promise<T>): Promise<T> {
    if (this.closed) throw new StoreError({ code: 'CLOSED', message: `cannot ${what}: the fleet store is closed` });
    try {
      return await body();
    } catch (err) {
      throw translate(err, `cannot ${what} in PostgreSQL at ${this.redactedUrl}`, this.url);
    }
  }
}

/** Rows per INSERT when importing (at most 15 columns: well under PostgreSQL's 65,535 parameters). */
const IMPORT_CHUNK_ROWS = 500;

/** The PKI's view: the same pool and transactions as the rest of the store. */
class PostgresTokens implements TokenStore {
  constructor(private readonly store: PostgresFleetStore) {}

  insert(record: TokenRecord): Promise<void> {
    return this.store.tokenInsert(record);
  }

  claim(hash: Buffer, at: Date): Promise<TokenRecord | undefined> {
    return this.store.tokenClaim(hash, at);
  }
}

function idOf(row: { id: number } | undefined): number {
  if (row === undefined || !Number.isSafeInteger(row.id)) throw new StoreError({ code: 'CORRUPT', message: 'an insert returned no id' });
  return row.id;
}

/** Call only inside a write transaction. */
async function upsert(c: Queryable, id: AgentId, patch: AgentPatch): Promise<AgentRow> {
  const { desired, active, state, certSerial, certExpiry, lastSeen, quarantine } = patch;
  const params = [
    id,
    desired !== undefined,
    desired?.commit ?? null,
    desired?.digest ?? null,
    desired?.generation ?? null,
    active !== undefined,
    active?.commit ?? null,
    active?.digest ?? null,
    active?.generation ?? null,
    active?.at.getTime() ?? null,
    state !== undefined,
    state ?? null,
    certSerial !== undefined,
    certSerial ?? null,
    certExpiry !== undefined,
    certExpiry?.getTime() ?? null,
    lastSeen !== undefined,
    lastSeen?.getTime() ?? null,
    quarantine !== undefined,
    quarantine?.since.getTime() ?? null,
    quarantine?.reason ?? null,
    quarantine?.by ?? null,
  ];
  const result = await c.query<AgentRow>(UPSERT_AGENT, params);
  const row = result.rows[0];
  if (row === undefined) throw new StoreError({ code: 'CORRUPT', message: `upserting agent ${id} returned no row` });
  return row;
}

/** The columns each patch field sets, in `agents`. */
const PATCH_COLUMNS: ReadonlyArray<readonly [keyof AgentPatch, readonly string[]]> = [
  ['desired', ['desired_commit', 'desired_digest', 'desired_generation']],
  ['active', ['active_commit', 'active_digest', 'active_generation', 'active_at']],
  ['state', ['state']],
  ['certSerial', ['cert_serial']],
  ['certExpiry', ['cert_expiry']],
  ['lastSeen', ['last_seen']],
  ['quarantine', ['quarantine_since', 'quarantine_reason', 'quarantine_by']],
];

const RECORD_COLUMNS =
  'id text, desired_commit text, desired_digest text, desired_generation bigint, active_commit text, active_digest text, active_generation bigint, active_at bigint, ' +
  'state text, cert_serial text, cert_expiry bigint, last_seen bigint, quarantine_since bigint, quarantine_reason text, quarantine_by text';

/** At most this many agents per statement (one JSON parameter). */
const MAX_RUN = 5_000;

/** Which patch fields an update sets, as a key (`runsOf` cuts a run where it changes). */
function shapeOf(update: AgentUpdate): string {
  return PATCH_COLUMNS.map(([field]) => (update.patch[field] === undefined ? '0' : '1')).join('');
}

/** Updates of distinct agents (they commute) ordered by shape, so each shape is one run. */
function byShape(updates: readonly AgentUpdate[]): AgentUpdate[] {
  const groups = new Map<string, AgentUpdate[]>();
  for (const update of updates) {
    const shape = shapeOf(update);
    const group = groups.get(shape);
    if (group === undefined) groups.set(shape, [update]);
    else group.push(update);
  }
  return [...groups.values()].flat();
}

/** Consecutive updates with the same patch fields and distinct ids (one statement may not touch a row twice). */
function* runsOf(updates: readonly AgentUpdate[]): Generator<readonly AgentUpdate[]> {
  let run: AgentUpdate[] = [];
  let shape = '';
  let ids = new Set<AgentId>();
  for (const update of updates) {
    const next = shapeOf(update);
    if (run.length > 0 && (next !== shape || ids.has(update.id) || run.length >= MAX_RUN)) {
      yield run;
      run = [];
      ids = new Set();
    }
    shape = next;
    run.push(update);
    ids.add(update.id);
  }
  if (run.length > 0) yield run;
}

/** Upserts a run (same patch fields, distinct ids) in one statement, with the same effect as `upsert` of each in turn. */
async function upsertMany(c: Queryable, run: readonly AgentUpdate[]): Promise<void> {
  const first = run[0];
  if (first === undefined) return;
  const set = PATCH_COLUMNS.filter(([field]) => first.patch[field] !== undefined).flatMap(([, columns]) => columns);
  const rows = run.map(({ id, patch: { desired, active, state, certSerial, certExpiry, lastSeen, quarantine } }) => ({
    id,
    desired_commit: desired?.commit ?? null,
    desired_digest: desired?.digest ?? null,
    desired_generation: desired?.generation ?? null,
    active_commit: active?.commit ?? null,
    active_digest: active?.digest ?? null,
    active_generation: active?.generation ?? null,
    active_at: active?.at.getTime() ?? null,
    state: state ?? null,
    cert_serial: certSerial ?? null,
    cert_expiry: certExpiry?.getTime() ?? null,
    last_seen: lastSeen?.getTime() ?? null,
    quarantine_since: quarantine?.since.getTime() ?? null,
    quarantine_reason: quarantine?.reason ?? null,
    quarantine_by: quarantine?.by ?? null,
  }));
  await c.query(
    `INSERT INTO agents (id, desired_commit, desired_digest, desired_generation, active_commit, active_digest, active_generation, active_at, state,
       cert_serial, cert_expiry, last_seen, quarantine_since, quarantine_reason, quarantine_by)
     SELECT r.id, r.desired_commit, r.desired_digest, r.desired_generation, r.active_commit, r.active_digest, r.active_generation, r.active_at,
       coalesce(r.state, 'DISCONNECTED'), r.cert_serial, r.cert_expiry, r.last_seen, r.quarantine_since, r.quarantine_reason, r.quarantine_by
     FROM jsonb_to_recordset($1::jsonb) AS r(${RECORD_COLUMNS})
     ON CONFLICT (id) DO ${set.length === 0 ? 'NOTHING' : `UPDATE SET ${set.map((column) => `${column} = excluded.${column}`).join(', ')}`}`,
    [JSON.stringify(rows)],
  );
}

async function insertAudit(c: Queryable, changes: Changes, entry: AuditEntry, details: string): Promise<number> {
  const inserted = await c.query<{ id: number }>('INSERT INTO audit (at, actor, action, target, reason, details) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id', [
    entry.at.getTime(),
    entry.actor,
    entry.action,
    entry.target,
    entry.reason,
    details,
  ]);
  changes.add({ kind: 'audit' });
  return idOf(inserted.rows[0]);
}

/**
 * Applies the migrations the database has not run. Each runs in its own transaction holding
 * `pg_advisory_xact_lock(MIGRATION_LOCK)` and re-reads the version inside it, so replicas
 * starting at once on an empty database apply each migration exactly once (the others wait
 * for the lock, then find it applied). The lock is released by COMMIT or ROLLBACK.
 */
async function migrate(pool: pg.Pool, url: string, migrations: readonly string[]): Promise<void> {
  const client = await pool.connect();
  let failure: unknown;
  const inLockedTransaction = async <T>(body: () => Promise<T>): Promise<T> => {
    await client.query('BEGIN');
    try {
      await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [MIGRATION_LOCK]);
      const result = await body();
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  };
  const version = async (): Promise<number> => (await client.query<{ version: number | null }>('SELECT max(version) AS version FROM schema_migrations')).rows[0]?.version ?? 0;
  try {
    const found = await inLockedTransaction(async () => {
      await client.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)');
      return version();
    });
    checkSchemaVersion(found, migrations.length, `the PostgreSQL database at ${redactUrl(url)}`);
    for (let target = found + 1; target <= migrations.length; target += 1) {
      const sql = migrations[target - 1] ?? '';
      try {
        await inLockedTransaction(async () => {
          if ((await version()) >= target) return;
          await client.query(sql);
          await client.query('INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)', [target, Date.now()]);
        });
      } catch (err) {
        throw translate(err, `${redactUrl(url)}: migration ${target} failed and was rolled back`, url);
      }
    }
  } catch (err) {
    failure = err;
    throw err;
  } finally {
    client.release(failure !== undefined && isConnectionFailure(failure));
  }
}
