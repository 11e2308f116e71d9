import { chmodSync, closeSync, fstatSync, openSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { AgentId } from '../../domain/types.js';
import type { TokenRecord, TokenStore } from '../../pki/index.js';
import { StoreError } from '../errors.js';
import {
  DEFAULT_TOKEN_RETENTION_MS,
  adminTokenLive,
  adminTokenTaken,
  checkAccepted,
  checkAdminToken,
  checkAck,
  checkDeliveryWrite,
  checkAgentId,
  checkAudit,
  checkCurrentCertificate,
  checkDate,
  checkPatch,
  checkRefusal,
  checkRevocation,
  checkSend,
  checkToken,
  duplicateToken,
  batchAgentUpdates,
  generationConflict,
  checkGenerationRecord,
  generationTaken,
  jsonText,
  pageOf,
  refusalText,
  revisionConflict,
} from '../records.js';
import {
  BATCH_ID_RETENTION_MS,
  GENERATIONS_KEPT,
  type AcceptedState,
  type AckRecord,
  type AdminTokenRecord,
  type AgentPatch,
  type AgentRecord,
  type AgentUpdate,
  type AuditEntry,
  type CurrentCertificate,
  type CurrentCertificateKind,
  type DeliveryWrite,
  type FleetStore,
  type FleetStoreOptions,
  type GenerationRecord,
  type PageRequest,
  type RecordBatchOptions,
  type RefusalRecord,
  type RevocationRecord,
  type RolloutDocument,
  type SaveRolloutOptions,
  type SendRecord,
  type ServerState,
  type StoredAck,
  type StoredAuditEntry,
  type StoredRollout,
  type StoredSend,
} from '../store.js';
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
import { MIGRATIONS } from './migrations.js';

export interface SqliteFleetStoreOptions extends FleetStoreOptions {
  /**
   * FULL (default): a commit is fsynced to the WAL before the call returns, so it survives a
   * power cut as well as a kill -9. NORMAL survives kill -9 (the WAL write reached the
   * kernel) but may lose the last commits on power loss; it is ~10x faster per commit.
   */
  readonly synchronous?: 'FULL' | 'NORMAL';
  /** How long a write waits for another connection's lock before STORE_UNAVAILABLE. Default 5 s. */
  readonly busyTimeoutMs?: number;
  /** @internal Tests only: the migration list to run instead of the real one. */
  readonly migrations?: readonly string[];
}

type Bind = Database.BindValue;

// One statement for every patch shape: a `set_*` flag of 0 keeps the column. On insert the
// unset values are NULL, which is what a new agent has.
const UPSERT_AGENT = `
  INSERT INTO agents (id, desired_commit, desired_digest, desired_generation,
    active_commit, active_digest, active_generation, active_at, state,
    cert_serial, cert_expiry, last_seen, quarantine_since, quarantine_reason, quarantine_by)
  VALUES (@id, @desired_commit, @desired_digest, @desired_generation,
    @active_commit, @active_digest, @active_generation, @active_at, coalesce(@state, 'DISCONNECTED'),
    @cert_serial, @cert_expiry, @last_seen, @quarantine_since, @quarantine_reason, @quarantine_by)
  ON CONFLICT (id) DO UPDATE SET
    desired_commit     = CASE WHEN @set_desired THEN excluded.desired_commit ELSE desired_commit END,
    desired_digest     = CASE WHEN @set_desired THEN excluded.desired_digest ELSE desired_digest END,
    desired_generation = CASE WHEN @set_desired THEN excluded.desired_generation ELSE desired_generation END,
    active_commit      = CASE WHEN @set_active THEN excluded.active_commit ELSE active_commit END,
    active_digest      = CASE WHEN @set_active THEN excluded.active_digest ELSE active_digest END,
    active_generation  = CASE WHEN @set_active THEN excluded.active_generation ELSE active_generation END,
    active_at          = CASE WHEN @set_active THEN excluded.active_at ELSE active_at END,
    state              = CASE WHEN @set_state THEN excluded.state ELSE state END,
    cert_serial        = CASE WHEN @set_cert_serial THEN excluded.cert_serial ELSE cert_serial END,
    cert_expiry        = CASE WHEN @set_cert_expiry THEN excluded.cert_expiry ELSE cert_expiry END,
    last_seen          = CASE WHEN @set_last_seen THEN excluded.last_seen ELSE last_seen END,
    quarantine_since   = CASE WHEN @set_quarantine THEN excluded.quarantine_since ELSE quarantine_since END,
    quarantine_reason  = CASE WHEN @set_quarantine THEN excluded.quarantine_reason ELSE quarantine_reason END,
    quarantine_by      = CASE WHEN @set_quarantine THEN excluded.quarantine_by ELSE quarantine_by END`;

/** The named parameters of `UPSERT_AGENT` for one patch. */
function upsertParams(id: AgentId, patch: AgentPatch): Record<string, Bind> {
  const { desired, active, state, certSerial, certExpiry, lastSeen, quarantine } = patch;
  return {
    id,
    set_desired: desired === undefined ? 0 : 1,
    desired_commit: desired?.commit ?? null,
    desired_digest: desired?.digest ?? null,
    desired_generation: desired?.generation ?? null,
    set_active: active === undefined ? 0 : 1,
    active_commit: active?.commit ?? null,
    active_digest: active?.digest ?? null,
    active_generation: active?.generation ?? null,
    active_at: active?.at.getTime() ?? null,
    set_state: state === undefined ? 0 : 1,
    state: state ?? null,
    set_cert_serial: certSerial === undefined ? 0 : 1,
    cert_serial: certSerial ?? null,
    set_cert_expiry: certExpiry === undefined ? 0 : 1,
    cert_expiry: certExpiry?.getTime() ?? null,
    set_last_seen: lastSeen === undefined ? 0 : 1,
    last_seen: lastSeen?.getTime() ?? null,
    set_quarantine: quarantine === undefined ? 0 : 1,
    quarantine_since: quarantine?.since.getTime() ?? null,
    quarantine_reason: quarantine?.reason ?? null,
    quarantine_by: quarantine?.by ?? null,
  };
}

/** Every statement the store runs, prepared once per connection. */
function prepare(db: Database) {
  return {
    serverState: db.prepare<ServerStateRow>(
      'SELECT accepted, generation, refusal, accepted_seen_at FROM server_state WHERE id = 1',
    ),
    saveAccepted: db.prepare('UPDATE server_state SET accepted = ?, generation = ?, accepted_seen_at = ? WHERE id = 1 AND generation <= ?'),
    saveRefusal: db.prepare('UPDATE server_state SET refusal = ? WHERE id = 1'),

    getAgent: db.prepare<AgentRow>('SELECT * FROM agents WHERE id = ?'),
    listAgents: db.prepare<AgentRow>('SELECT * FROM agents ORDER BY id'),
    upsertAgent: db.prepare<AgentRow>(`${UPSERT_AGENT} RETURNING *`),
    // The same without reading the row back (a batch's patches).
    patchAgent: db.prepare(UPSERT_AGENT),
    removeAgent: db.prepare('DELETE FROM agents WHERE id = ?'),

    insertBatchId: db.prepare('INSERT INTO write_batches (id, at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING'),
    pruneBatchIds: db.prepare('DELETE FROM write_batches WHERE at < ?'),
    insertSend: db.prepare('INSERT INTO sends (agent_id, commit_sha, digest, generation, nonce, at) VALUES (?, ?, ?, ?, ?, ?)'),
    insertAck: db.prepare('INSERT INTO acks (agent_id, commit_sha, digest, generation, nonce, status, error, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'),
    lastSend: db.prepare<SendRow>('SELECT * FROM sends WHERE agent_id = ? ORDER BY id DESC LIMIT 1'),
    listAcks: db.prepare<AckRow>('SELECT * FROM acks WHERE agent_id = ? AND id < ? ORDER BY id DESC LIMIT ?'),
    digestsApplied: db.prepare<{ digest: string }>("SELECT DISTINCT digest FROM acks WHERE agent_id = ? AND status = 'APPLIED'"),
    wasIssued: db.prepare<{ issued: number }>('SELECT EXISTS (SELECT 1 FROM sends WHERE agent_id = ? AND digest = ?) AS issued'),

    insertGeneration: db.prepare('INSERT INTO generations (generation, commit_sha, statement, bundle, agents, at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (generation) DO NOTHING'),
    pruneGenerations: db.prepare(`DELETE FROM generations WHERE generation NOT IN (SELECT generation FROM generations ORDER BY generation DESC LIMIT ${GENERATIONS_KEPT})`),
    latestGeneration: db.prepare<GenerationRow>('SELECT * FROM generations ORDER BY generation DESC LIMIT 1'),
    loadRollout: db.prepare<RolloutRow>('SELECT commit_sha, document, at, revision FROM rollout WHERE id = 1'),
    saveRollout: db.prepare(`
      INSERT INTO rollout (id, commit_sha, document, at, revision) VALUES (1, ?, ?, ?, ?)
      ON CONFLICT (id) DO UPDATE SET commit_sha = excluded.commit_sha, document = excluded.document, at = excluded.at, revision = excluded.revision`),

    pruneTokens: db.prepare('DELETE FROM tokens WHERE expires_at <= ?'),
    insertToken: db.prepare('INSERT INTO tokens (hash, agent_id, expires_at, used_at) VALUES (?, ?, ?, ?)'),
    getToken: db.prepare<TokenRow>('SELECT * FROM tokens WHERE hash = ?'),
    // The whole compare-and-set in the WHERE clause: a second claimant finds used_at set.
    claimToken: db.prepare('UPDATE tokens SET used_at = ? WHERE hash = ? AND used_at IS NULL AND expires_at > ?'),

    revoke: db.prepare('INSERT INTO revocations (serial, agent_id, at, revoked_by) VALUES (?, ?, ?, ?) ON CONFLICT (serial) DO NOTHING'),
    isRevoked: db.prepare<{ revoked: number }>('SELECT EXISTS (SELECT 1 FROM revocations WHERE serial = ?) AS revoked'),
    listRevocations: db.prepare<{ serial: string; agent_id: AgentId; at: number; revoked_by: string }>('SELECT * FROM revocations ORDER BY at, serial'),

    getAdminToken: db.prepare<AdminTokenRow>('SELECT * FROM admin_tokens WHERE name = ?'),
    adminTokenByHash: db.prepare<AdminTokenRow>('SELECT * FROM admin_tokens WHERE hash = ?'),
    listAdminTokens: db.prepare<AdminTokenRow>('SELECT * FROM admin_tokens ORDER BY name'),
    deleteAdminToken: db.prepare('DELETE FROM admin_tokens WHERE name = ?'),
    insertAdminToken: db.prepare('INSERT INTO admin_tokens (name, role, hash, created_at, created_by, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?)'),
    revokeAdminToken: db.prepare('UPDATE admin_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL'),
    setCurrentCertificate: db.prepare(`
      INSERT INTO agent_certificates (agent_id, serial, kind, at) VALUES (?, ?, ?, ?)
      ON CONFLICT (agent_id) DO UPDATE SET serial = excluded.serial, kind = excluded.kind, at = excluded.at`),
    listCurrentCertificates: db.prepare<{ agent_id: AgentId; serial: string; kind: string; at: number }>('SELECT * FROM agent_certificates ORDER BY agent_id'),

    appendAudit: db.prepare('INSERT INTO audit (at, actor, action, target, reason, details) VALUES (?, ?, ?, ?, ?, ?)'),
    listAudit: db.prepare<AuditRow>('SELECT * FROM audit WHERE id < ? ORDER BY id DESC LIMIT ?'),
  };
}

type Statements = ReturnType<typeof prepare>;

/**
 * The embedded FleetStore: one SQLite file in the data dir (mode 0600), WAL journal.
 *
 * Contract: work happens synchronously inside each call (better-sqlite3), so calls on one
 * instance never interleave; every write is one IMMEDIATE transaction, so other processes
 * on the same file (the CLI reading status, a second server by mistake) serialise on the
 * file lock and wait up to the busy timeout instead of failing half-way.
 */
export class SqliteFleetStore implements FleetStore {
  /** The schema version this code writes. */
  static readonly SCHEMA_VERSION = MIGRATIONS.length;

  /** Only this process writes it: no change feed. */
  readonly changes = null;
  readonly tokens: TokenStore;
  private readonly statements: Statements;
  private readonly options: Required<Omit<SqliteFleetStoreOptions, 'migrations'>>;

  private constructor(
    readonly path: string,
    private readonly db: Database,
    options: SqliteFleetStoreOptions,
  ) {
    this.options = {
      now: options.now ?? (() => new Date()),
      tokenRetentionMs: options.tokenRetentionMs ?? DEFAULT_TOKEN_RETENTION_MS,
      synchronous: options.synchronous ?? 'FULL',
      busyTimeoutMs: options.busyTimeoutMs ?? 5_000,
    };
    this.statements = prepare(db);
    this.tokens = new SqliteTokens(this);
  }

  /**
   * Opens (creating if missing) the database at `path` and brings its schema up to date.
   * Refuses with SCHEMA_TOO_NEW a database a newer meshcfg migrated (downgrading would drop
   * what it knows), with CORRUPT a file that is not a database, with STORE_UNAVAILABLE one
   * it cannot open or lock.
   */
  static async open(path: string, options: SqliteFleetStoreOptions = {}): Promise<SqliteFleetStore> {
    createPrivate(path);
    let db: Database;
    try {
      db = new Database(path, { timeout: options.busyTimeoutMs ?? 5_000 });
    } catch (err) {
      throw translate(err, `cannot open ${path}`);
    }
    try {
      const mode = db.pragma('journal_mode = WAL', { simple: true });
      if (mode !== 'wal') throw new StoreError({ code: 'STORE_UNAVAILABLE', message: `${path}: cannot switch to WAL mode (journal_mode is ${String(mode)})` });
      db.pragma(`synchronous = ${options.synchronous ?? 'FULL'}`);
      db.pragma('foreign_keys = ON');
      // A schema from a tampered file must not run SQL functions on our behalf.
      db.pragma('trusted_schema = OFF');
      migrate(db, path, options.migrations ?? MIGRATIONS);
      return new SqliteFleetStore(path, db, options);
    } catch (err) {
      db.close();
      throw translate(err, `cannot open ${path}`);
    }
  }

  /** The versions recorded in schema_migrations, ascending. */
  schemaVersions(): readonly number[] {
    return this.run('read the schema version', () => this.db.prepare<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version').all().map((r) => r.version));
  }

  /** The connection's durability settings as SQLite reports them (for logs and tests). */
  settings(): Readonly<{ journalMode: string; synchronous: 'FULL' | 'NORMAL' | 'OTHER'; foreignKeys: boolean; busyTimeoutMs: number }> {
    return this.run('read settings', () => {
      const synchronous = this.db.pragma('synchronous', { simple: true });
      return Object.freeze({
        journalMode: String(this.db.pragma('journal_mode', { simple: true })),
        synchronous: synchronous === 2 ? 'FULL' : synchronous === 1 ? 'NORMAL' : 'OTHER',
        foreignKeys: this.db.pragma('foreign_keys', { simple: true }) === 1,
        busyTimeoutMs: Number(this.db.pragma('busy_timeout', { simple: true })),
      });
    });
  }

  /** `PRAGMA integrity_check`: ['ok'] for a sound file, else SQLite's list of problems. */
  integrityCheck(): readonly string[] {
    return this.run('check integrity', () => this.db.prepare<{ integrity_check: string }>('PRAGMA integrity_check').all().map((r) => r.integrity_check));
  }

  async serverState(): Promise<ServerState> {
    return this.run('read the server state', () => {
      return serverStateOf(this.statements.serverState.get(), this.path);
    });
  }

  async saveAccepted(state: AcceptedState): Promise<void> {
    checkAccepted(state);
    this.run('save the accepted commit', () => {
      // Compare-and-set in one statement: the generation never goes down, whoever writes.
      const { changes } = this.statements.saveAccepted.run(state.accepted, state.generation, state.seenAt?.getTime() ?? null, state.generation);
      if (changes === 0) throw generationConflict(state.generation, this.statements.serverState.get()?.generation ?? 0);
    });
  }

  async saveRefusal(refusal: RefusalRecord | null): Promise<void> {
    if (refusal !== null) checkRefusal(refusal);
    this.run('save the refusal', () => this.statements.saveRefusal.run(refusal === null ? null : refusalText(refusal)));
  }

  async getAgent(id: AgentId): Promise<AgentRecord | undefined> {
    return this.run('read an agent', () => {
      const row = this.statements.getAgent.get(id);
      return row === undefined ? undefined : agentOf(row);
    });
  }

  async listAgents(): Promise<readonly AgentRecord[]> {
    return this.run('list agents', () => Object.freeze(this.statements.listAgents.all().map(agentOf)));
  }

  async updateAgent(id: AgentId, patch: AgentPatch, audit?: AuditEntry): Promise<AgentRecord> {
    checkAgentId(id);
    checkPatch(patch);
    const details = audit === undefined ? undefined : checkAudit(audit);
    return this.write('update an agent', () => {
      const row = this.upsert(id, patch);
      if (audit !== undefined && details !== undefined) this.insertAudit(audit, details);
      return agentOf(row);
    });
  }

  async updateAgents(updates: readonly AgentUpdate[]): Promise<void> {
    for (const { id, patch } of updates) {
      checkAgentId(id);
      checkPatch(patch);
    }
    this.write('update agents', () => {
      for (const { id, patch } of updates) this.upsert(id, patch);
    });
  }

  async removeAgents(ids: readonly AgentId[]): Promise<number> {
    return this.write('remove agents', () => {
      let removed = 0;
      for (const id of new Set(ids)) removed += this.statements.removeAgent.run(id).changes;
      return removed;
    });
  }

  async recordSend(send: SendRecord, agent?: AgentPatch): Promise<number> {
    checkSend(send);
    if (agent !== undefined) checkPatch(agent);
    return this.write('record a send', () => {
      const { lastInsertRowid } = this.statements.insertSend.run(send.agentId, send.commit, send.digest, send.generation, send.nonce, send.at.getTime());
      if (agent !== undefined) this.upsert(send.agentId, agent);
      return Number(lastInsertRowid);
    });
  }

  async recordAck(ack: AckRecord, agent?: AgentPatch): Promise<number> {
    checkAck(ack);
    if (agent !== undefined) checkPatch(agent);
    return this.write('record an ack', () => {
      const { lastInsertRowid } = this.statements.insertAck.run(ack.agentId, ack.commit, ack.digest, ack.generation, ack.nonce, ack.status, ack.error, ack.at.getTime());
      if (agent !== undefined) this.upsert(ack.agentId, agent);
      return Number(lastInsertRowid);
    });
  }

  async recordBatch(writes: readonly DeliveryWrite[], options: RecordBatchOptions = {}): Promise<void> {
    for (const write of writes) checkDeliveryWrite(write);
    if (writes.length === 0) return;
    this.write('record a batch of sends and acks', () => {
      if (options.id !== undefined) {
        const now = this.options.now().getTime();
        this.statements.pruneBatchIds.run(now - BATCH_ID_RETENTION_MS);
        if (this.statements.insertBatchId.run(options.id, now).changes === 0) return; // recorded already
      }
      // Sends and acks in the batch's order; each agent's patches folded into one upsert.
      for (const write of writes) {
        if (write.kind === 'send') {
          const { agentId, commit, digest, generation, nonce, at } = write.send;
          this.statements.insertSend.run(agentId, commit, digest, generation, nonce, at.getTime());
        } else if (write.kind === 'ack') {
          const { agentId, commit, digest, generation, nonce, status, error, at } = write.ack;
          this.statements.insertAck.run(agentId, commit, digest, generation, nonce, status, error, at.getTime());
        }
      }
      for (const { id, patch } of batchAgentUpdates(writes)) this.statements.patchAgent.run(upsertParams(id, patch));
    });
  }

  async lastSend(agentId: AgentId): Promise<StoredSend | null> {
    return this.run('read the last send', () => {
      const row = this.statements.lastSend.get(agentId);
      return row === undefined ? null : sendOf(row);
    });
  }

  async listAcks(agentId: AgentId, page?: PageRequest): Promise<readonly StoredAck[]> {
    const { limit, beforeId } = pageOf(page);
    return this.run('list acks', () => Object.freeze(this.statements.listAcks.all(agentId, beforeId, limit).map(ackOf)));
  }

  async digestsApplied(agentId: AgentId): Promise<ReadonlySet<string>> {
    return this.run('read applied digests', () => new Set(this.statements.digestsApplied.all(agentId).map((r) => r.digest)));
  }

  async wasIssued(agentId: AgentId, digest: string): Promise<boolean> {
    return this.run('look up a send', () => this.statements.wasIssued.get(agentId, digest)?.issued === 1);
  }

  async saveGeneration(record: GenerationRecord): Promise<void> {
    const texts = checkGenerationRecord(record);
    this.write('save a signed generation', () => {
      const { changes } = this.statements.insertGeneration.run(record.generation, record.commit, texts.statement, texts.bundle, texts.agents, texts.at);
      if (changes !== 1) throw generationTaken(record.generation);
      this.statements.pruneGenerations.run();
    });
  }

  async latestGeneration(): Promise<GenerationRecord | null> {
    return this.run('load the newest signed generation', () => {
      const row = this.statements.latestGeneration.get();
      return row === undefined ? null : generationRowOf(row);
    });
  }

  async loadRollout(): Promise<StoredRollout | null> {
    return this.run('load the rollout', () => {
      const row = this.statements.loadRollout.get();
      return row === undefined ? null : rolloutOf(row);
    });
  }

  async saveRollout(rollout: RolloutDocument, options: SaveRolloutOptions = {}): Promise<number> {
    if (typeof rollout.commit !== 'string' || rollout.commit === '') throw new StoreError({ code: 'INVALID_RECORD', message: 'rollout.commit must be a non-empty string' });
    const at = checkDate(rollout.at, 'rollout.at');
    const text = jsonText(rollout.document, 'rollout.document');
    const details = options.audit === undefined ? undefined : checkAudit(options.audit);
    return this.write('save the rollout', () => {
      const current = this.statements.loadRollout.get()?.revision ?? null;
      if (options.ifRevision !== undefined && options.ifRevision !== current) throw revisionConflict(options.ifRevision, current);
      const revision = (current ?? 0) + 1;
      this.statements.saveRollout.run(rollout.commit, text, at, revision);
      if (options.audit !== undefined && details !== undefined) this.insertAudit(options.audit, details);
      return revision;
    });
  }

  async revoke(revocation: RevocationRecord, audit?: AuditEntry): Promise<boolean> {
    checkRevocation(revocation);
    const details = audit === undefined ? undefined : checkAudit(audit);
    return this.write('revoke a certificate', () => {
      const { changes } = this.statements.revoke.run(revocation.serial, revocation.agentId, revocation.at.getTime(), revocation.by);
      if (audit !== undefined && details !== undefined) this.insertAudit(audit, details);
      return changes === 1;
    });
  }

  async isRevoked(serial: string): Promise<boolean> {
    return this.run('look up a revocation', () => this.statements.isRevoked.get(serial)?.revoked === 1);
  }

  async listRevocations(): Promise<readonly RevocationRecord[]> {
    return this.run('list revocations', () =>
      Object.freeze(this.statements.listRevocations.all().map((r) => Object.freeze({ serial: r.serial, agentId: r.agent_id, at: new Date(r.at), by: r.revoked_by }))),
    );
  }

  async insertAdminToken(record: AdminTokenRecord, audit?: AuditEntry): Promise<void> {
    checkAdminToken(record);
    const details = audit === undefined ? undefined : checkAudit(audit);
    this.write('insert an admin token', () => {
      const existing = this.statements.getAdminToken.get(record.name);
      if (existing !== undefined) {
        if (adminTokenLive(adminTokenOf(existing), record.createdAt)) throw adminTokenTaken(record.name);
        this.statements.deleteAdminToken.run(record.name);
      }
      try {
        this.statements.insertAdminToken.run(
          record.name,
          record.role,
          record.hash,
          record.createdAt.getTime(),
          record.createdBy,
          record.expiresAt?.getTime() ?? null,
          record.revokedAt?.getTime() ?? null,
        );
      } catch (err) {
        if (err instanceof Database.SqliteError && err.code.startsWith('SQLITE_CONSTRAINT_')) throw adminTokenTaken(record.name);
        throw err;
      }
      if (audit !== undefined && details !== undefined) this.insertAudit(audit, details);
    });
  }

  async adminTokenByHash(hash: Buffer): Promise<AdminTokenRecord | undefined> {
    return this.run('look up an admin token', () => {
      const row = this.statements.adminTokenByHash.get(hash);
      return row === undefined ? undefined : adminTokenOf(row);
    });
  }

  async listAdminTokens(): Promise<readonly AdminTokenRecord[]> {
    return this.run('list admin tokens', () => Object.freeze(this.statements.listAdminTokens.all().map(adminTokenOf)));
  }

  async revokeAdminToken(name: string, at: Date, audit?: AuditEntry): Promise<boolean> {
    const ms = checkDate(at, 'revokedAt');
    const details = audit === undefined ? undefined : checkAudit(audit);
    return this.write('revoke an admin token', () => {
      const { changes } = this.statements.revokeAdminToken.run(ms, name);
      if (changes !== 1) return false;
      if (audit !== undefined && details !== undefined) this.insertAudit(audit, details);
      return true;
    });
  }

  async setCurrentCertificate(record: CurrentCertificate): Promise<void> {
    checkCurrentCertificate(record);
    this.write('record a current certificate', () => {
      this.statements.setCurrentCertificate.run(record.agentId, record.serial, record.kind, record.at.getTime());
    });
  }

  async setCurrentCertificates(records: readonly CurrentCertificate[]): Promise<void> {
    for (const record of records) checkCurrentCertificate(record);
    if (records.length === 0) return;
    this.write('record current certificates', () => {
      for (const record of records) this.statements.setCurrentCertificate.run(record.agentId, record.serial, record.kind, record.at.getTime());
    });
  }

  async listCurrentCertificates(): Promise<readonly CurrentCertificate[]> {
    return this.run('list current certificates', () =>
      Object.freeze(
        this.statements.listCurrentCertificates
          .all()
          .map((r) => Object.freeze({ agentId: r.agent_id, serial: r.serial, kind: r.kind as CurrentCertificateKind, at: new Date(r.at) })),
      ),
    );
  }

  async appendAudit(entry: AuditEntry): Promise<number> {
    const details = checkAudit(entry);
    return this.run('append to the audit log', () => this.insertAudit(entry, details));
  }

  async listAudit(page?: PageRequest): Promise<readonly StoredAuditEntry[]> {
    const { limit, beforeId } = pageOf(page);
    return this.run('list the audit log', () =>
      Object.freeze(
        this.statements.listAudit.all(beforeId, limit).map(auditOf),
      ),
    );
  }

  /**
   * Every table's rows as stored (`schema_migrations` and SQLite's own tables aside: each
   * backend numbers its own migrations), for `importFleet`. Read from one snapshot: the
   * caller iterates inside `exportSnapshot`.
   */
  tables(): readonly TableRows[] {
    return this.run('list the tables', () => {
      const names = this.db
        .prepare<{ name: string }>("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> 'schema_migrations' ORDER BY name")
        .all()
        .map((r) => r.name);
      return names.map((name): TableRows => {
        const columns = (this.db.pragma(`table_info("${name}")`) as Array<{ name: string }>).map((c) => c.name);
        const count = this.db.prepare<{ n: number }>(`SELECT count(*) AS n FROM "${name}"`).get()?.n ?? 0;
        const select = this.db.prepare(`SELECT ${columns.map((c) => `"${c}"`).join(', ')} FROM "${name}"`).raw(true);
        return { name, columns, count, rows: () => select.iterate() };
      });
    });
  }

  /** Runs `body` in one read transaction, so `tables()` read there is one consistent snapshot. */
  async exportSnapshot<T>(body: () => Promise<T>): Promise<T> {
    this.run('begin a read', () => this.db.exec('BEGIN'));
    try {
      return await body();
    } finally {
      if (this.db.open) this.db.exec('COMMIT');
    }
  }

  async close(): Promise<void> {
    // The last connection to close checkpoints the WAL into the main file and removes it.
    if (this.db.open) this.db.close();
  }

  /** @internal For SqliteTokens. */
  tokenInsert(record: TokenRecord): void {
    checkToken(record);
    const horizon = this.options.now().getTime() - this.options.tokenRetentionMs;
    this.write('insert a token', () => {
      this.statements.pruneTokens.run(horizon);
      try {
        this.statements.insertToken.run(record.hash, record.agentId, record.expiresAt.getTime(), record.usedAt?.getTime() ?? null);
      } catch (err) {
        if (err instanceof Database.SqliteError && err.code === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw duplicateToken();
        throw err;
      }
    });
  }

  /** @internal For SqliteTokens. */
  tokenClaim(hash: Buffer, at: Date): TokenRecord | undefined {
    const ms = checkDate(at, 'claim time');
    return this.write('claim a token', () => {
      const row = this.statements.getToken.get(hash);
      if (row === undefined) return undefined;
      this.statements.claimToken.run(ms, hash, ms);
      return Object.freeze({
        hash: Buffer.from(row.hash),
        agentId: row.agent_id,
        expiresAt: new Date(row.expires_at),
        ...(row.used_at === null ? {} : { usedAt: new Date(row.used_at) }),
      });
    });
  }

  /** Call only inside a write transaction. */
  private upsert(id: AgentId, patch: AgentPatch): AgentRow {
    const params = upsertParams(id, patch);
    const row = this.statements.upsertAgent.get(params);
    if (row === undefined) throw new StoreError({ code: 'CORRUPT', message: `${this.path}: upserting agent ${id} returned no row` });
    return row;
  }

  private insertAudit(entry: AuditEntry, details: string): number {
    const { lastInsertRowid } = this.statements.appendAudit.run(entry.at.getTime(), entry.actor, entry.action, entry.target, entry.reason, details);
    return Number(lastInsertRowid);
  }

  /** One IMMEDIATE transaction: the write lock is taken up front, so it never fails half-way on a lock upgrade. */
  private write<T>(what: string, body: () => T): T {
    return this.run(what, () => this.db.transaction(body).immediate());
  }

  private run<T>(what: string, body: () => T): T {
    if (!this.db.open) throw new StoreError({ code: 'CLOSED', message: `cannot ${what}: the fleet store is closed` });
    try {
      return body();
    } catch (err) {
      throw translate(err, `cannot ${what} in ${this.path}`);
    }
  }
}

/** The PKI's view: the same connection and transactions as the rest of the store. */
class SqliteTokens implements TokenStore {
  constructor(private readonly store: SqliteFleetStore) {}

  async insert(record: TokenRecord): Promise<void> {
    this.store.tokenInsert(record);
  }

  async claim(hash: Buffer, at: Date): Promise<TokenRecord | undefined> {
    return this.store.tokenClaim(hash, at);
  }
}

/**
 * Applies the migrations `db` has not run, each in its own IMMEDIATE transaction with its
 * schema_migrations row, re-reading the version inside it so two processes opening the same
 * new file cannot both apply one.
 */
function migrate(db: Database, path: string, migrations: readonly string[]): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT');
  const current = db.prepare<{ version: number | null }>('SELECT max(version) AS version FROM schema_migrations');
  const record = db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)');
  const version = (): number => current.get()?.version ?? 0;
  const found = version();
  checkSchemaVersion(found, migrations.length, path);
  for (let target = found + 1; target <= migrations.length; target += 1) {
    const sql = migrations[target - 1] ?? '';
    try {
      db.transaction(() => {
        if (version() >= target) return;
        db.exec(sql);
        record.run(target, Date.now());
      }).immediate();
    } catch (err) {
      throw translate(err, `${path}: migration ${target} failed and was rolled back`);
    }
  }
}

/** Creates the file 0600 before SQLite does (it would use the umask); tightens a looser existing one. */
function createPrivate(path: string): void {
  let fd: number;
  try {
    fd = openSync(path, 'a', 0o600);
  } catch (err) {
    throw new StoreError({ code: 'STORE_UNAVAILABLE', message: `cannot create ${path}`, cause: err });
  }
  try {
    if ((fstatSync(fd).mode & 0o077) !== 0) chmodSync(path, 0o600);
  } finally {
    closeSync(fd);
  }
}

/** Maps SQLite's result codes onto the store's; StoreErrors pass through. */
function translate(err: unknown, context: string): unknown {
  if (err instanceof StoreError) return err;
  if (!(err instanceof Database.SqliteError)) return err;
  const code = err.code;
  const message = `${context}: ${err.message} (${code})`;
  if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB' || code === 'SQLITE_ERROR') {
    // SQLITE_ERROR from statements this code prepared means the schema is not what the
    // migrations made (a table dropped by hand): stall for an operator, do not retry.
    return new StoreError({ code: 'CORRUPT', message, cause: err });
  }
  if (code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE') return new StoreError({ code: 'CONFLICT', message, cause: err });
  if (code.startsWith('SQLITE_CONSTRAINT')) return new StoreError({ code: 'INVALID_RECORD', message, cause: err });
  return new StoreError({ code: 'STORE_UNAVAILABLE', message, cause: err });
}
