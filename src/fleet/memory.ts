import type { AgentId, CommitSha } from '../domain/types.js';
import type { TokenRecord, TokenStore } from '../pki/index.js';
import { StoreError } from './errors.js';
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
  generationConflict,
  jsonText,
  pageOf,
  refusalText,
  reviveRefusal,
  revisionConflict,
  checkGenerationRecord,
  generationOf,
  generationTaken,
} from './records.js';
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
} from './store.js';
import { BATCH_ID_RETENTION_MS, GENERATIONS_KEPT } from './store.js';

/**
 * A FleetStore in memory, for pure tests of the server. Behaves as the SQLite store does
 * (the contract tests run against both) but keeps nothing across a restart. Records are
 * copied in and out as the database would, so a caller mutating its objects changes nothing.
 */
export class MemoryFleetStore implements FleetStore {
  /** Only this process writes it: no change feed. */
  readonly changes = null;
  readonly tokens: TokenStore;
  private closed = false;
  private state: { accepted: CommitSha | null; generation: number; seenAt: number | null; refusal: string | null } = {
    accepted: null,
    generation: 0,
    seenAt: null,
    refusal: null,
  };
  private readonly agents = new Map<AgentId, AgentRecord>();
  private readonly sends: StoredSend[] = [];
  private readonly acks: StoredAck[] = [];
  /** Recorded batch ids and when (see `BATCH_ID_RETENTION_MS`). */
  private readonly batchIds = new Map<string, number>();
  private rollout: { commit: CommitSha; text: string; at: Date; revision: number } | null = null;
  /** generation → the record's JSON texts (copies, as a database would keep them). */
  private readonly generations = new Map<number, { commit: CommitSha; statement: string; bundle: string; agents: string; at: number }>();
  private readonly revocations = new Map<string, RevocationRecord>();
  private readonly adminTokens = new Map<string, AdminTokenRecord>();
  private readonly certificates = new Map<AgentId, CurrentCertificate>();
  private readonly audit: Array<{ entry: AuditEntry; details: string; id: number }> = [];
  private readonly options: Required<FleetStoreOptions>;

  constructor(options: FleetStoreOptions = {}) {
    this.options = {
      now: options.now ?? (() => new Date()),
      tokenRetentionMs: options.tokenRetentionMs ?? DEFAULT_TOKEN_RETENTION_MS,
    };
    this.tokens = new MemoryTokens(() => this.assertOpen(), this.options);
  }

  async serverState(): Promise<ServerState> {
    this.assertOpen();
    const refusal = this.state.refusal === null ? null : reviveRefusal(JSON.parse(this.state.refusal) as Record<string, unknown>);
    const seenAt = this.state.seenAt === null ? {} : { seenAt: new Date(this.state.seenAt) };
    return Object.freeze({ accepted: this.state.accepted, generation: this.state.generation, ...seenAt, lastRefusal: refusal });
  }

  async saveAccepted(state: AcceptedState): Promise<void> {
    this.assertOpen();
    checkAccepted(state);
    if (state.generation < this.state.generation) throw generationConflict(state.generation, this.state.generation);
    this.state = { ...this.state, accepted: state.accepted, generation: state.generation, seenAt: state.seenAt?.getTime() ?? null };
  }

  async saveRefusal(refusal: RefusalRecord | null): Promise<void> {
    this.assertOpen();
    if (refusal !== null) checkRefusal(refusal);
    this.state = { ...this.state, refusal: refusal === null ? null : refusalText(refusal) };
  }

  async getAgent(id: AgentId): Promise<AgentRecord | undefined> {
    this.assertOpen();
    const record = this.agents.get(id);
    return record === undefined ? undefined : copyAgent(record);
  }

  async listAgents(): Promise<readonly AgentRecord[]> {
    this.assertOpen();
    return Object.freeze([...this.agents.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).map(copyAgent));
  }

  async updateAgent(id: AgentId, patch: AgentPatch, audit?: AuditEntry): Promise<AgentRecord> {
    this.assertOpen();
    checkAgentId(id);
    checkPatch(patch);
    const details = audit === undefined ? undefined : checkAudit(audit);
    const updated = this.patch(id, patch);
    if (audit !== undefined && details !== undefined) this.pushAudit(audit, details);
    return copyAgent(updated);
  }

  async updateAgents(updates: readonly AgentUpdate[]): Promise<void> {
    this.assertOpen();
    // Check everything first: a bad entry must leave the store as it was (all or nothing).
    for (const { id, patch } of updates) {
      checkAgentId(id);
      checkPatch(patch);
    }
    for (const { id, patch } of updates) this.patch(id, patch);
  }

  async removeAgents(ids: readonly AgentId[]): Promise<number> {
    this.assertOpen();
    let removed = 0;
    for (const id of new Set(ids)) if (this.agents.delete(id)) removed += 1;
    return removed;
  }

  async recordSend(send: SendRecord, agent?: AgentPatch): Promise<number> {
    this.assertOpen();
    checkSend(send);
    if (agent !== undefined) checkPatch(agent);
    const stored: StoredSend = Object.freeze({ ...pickSend(send), at: new Date(send.at), id: this.sends.length + 1 });
    this.sends.push(stored);
    if (agent !== undefined) this.patch(send.agentId, agent);
    return stored.id;
  }

  async recordAck(ack: AckRecord, agent?: AgentPatch): Promise<number> {
    this.assertOpen();
    checkAck(ack);
    if (agent !== undefined) checkPatch(agent);
    const stored: StoredAck = Object.freeze({ ...pickAck(ack), at: new Date(ack.at), id: this.acks.length + 1 });
    this.acks.push(stored);
    if (agent !== undefined) this.patch(ack.agentId, agent);
    return stored.id;
  }

  async recordBatch(writes: readonly DeliveryWrite[], options: RecordBatchOptions = {}): Promise<void> {
    this.assertOpen();
    for (const write of writes) checkDeliveryWrite(write);
    if (writes.length === 0) return;
    if (options.id !== undefined) {
      const now = this.options.now().getTime();
      // Kept in the order recorded: the expired ones come first.
      for (const [id, at] of this.batchIds) {
        if (at >= now - BATCH_ID_RETENTION_MS) break;
        this.batchIds.delete(id);
      }
      if (this.batchIds.has(options.id)) return; // recorded already
      this.batchIds.set(options.id, now);
    }
    for (const write of writes) {
      switch (write.kind) {
        case 'send':
          this.sends.push(Object.freeze({ ...pickSend(write.send), at: new Date(write.send.at), id: this.sends.length + 1 }));
          if (write.agent !== undefined) this.patch(write.send.agentId, write.agent);
          break;
        case 'ack':
          this.acks.push(Object.freeze({ ...pickAck(write.ack), at: new Date(write.ack.at), id: this.acks.length + 1 }));
          if (write.agent !== undefined) this.patch(write.ack.agentId, write.agent);
          break;
        case 'agent':
          this.patch(write.id, write.patch);
          break;
        default: {
          const never: never = write;
          throw new Error(`unexpected batch entry ${String(never)}`);
        }
      }
    }
  }

  async lastSend(agentId: AgentId): Promise<StoredSend | null> {
    this.assertOpen();
    for (let i = this.sends.length - 1; i >= 0; i -= 1) {
      const send = this.sends[i];
      if (send !== undefined && send.agentId === agentId) return copySend(send);
    }
    return null;
  }

  async listAcks(agentId: AgentId, page?: PageRequest): Promise<readonly StoredAck[]> {
    this.assertOpen();
    const { limit, beforeId } = pageOf(page);
    const out: StoredAck[] = [];
    for (let i = this.acks.length - 1; i >= 0 && out.length < limit; i -= 1) {
      const ack = this.acks[i];
      if (ack !== undefined && ack.agentId === agentId && ack.id < beforeId) out.push(Object.freeze({ ...ack, at: new Date(ack.at) }));
    }
    return Object.freeze(out);
  }

  async digestsApplied(agentId: AgentId): Promise<ReadonlySet<string>> {
    this.assertOpen();
    return new Set(this.acks.filter((a) => a.agentId === agentId && a.status === 'APPLIED').map((a) => a.digest));
  }

  async wasIssued(agentId: AgentId, digest: string): Promise<boolean> {
    this.assertOpen();
    return this.sends.some((s) => s.agentId === agentId && s.digest === digest);
  }

  async saveGeneration(record: GenerationRecord): Promise<void> {
    this.assertOpen();
    const texts = checkGenerationRecord(record);
    if (this.generations.has(record.generation)) throw generationTaken(record.generation);
    this.generations.set(record.generation, { commit: record.commit, ...texts });
    const kept = [...this.generations.keys()].sort((a, b) => b - a).slice(GENERATIONS_KEPT);
    for (const generation of kept) this.generations.delete(generation);
  }

  async latestGeneration(): Promise<GenerationRecord | null> {
    this.assertOpen();
    const newest = Math.max(...this.generations.keys());
    const row = this.generations.get(newest);
    if (row === undefined) return null;
    return generationOf({
      generation: newest,
      commit: row.commit,
      statement: JSON.parse(row.statement) as unknown,
      bundle: JSON.parse(row.bundle) as unknown,
      agents: JSON.parse(row.agents) as unknown,
      at: row.at,
    });
  }

  async loadRollout(): Promise<StoredRollout | null> {
    this.assertOpen();
    const r = this.rollout;
    return r === null ? null : Object.freeze({ commit: r.commit, document: JSON.parse(r.text) as unknown, at: new Date(r.at), revision: r.revision });
  }

  async saveRollout(rollout: RolloutDocument, options: SaveRolloutOptions = {}): Promise<number> {
    this.assertOpen();
    if (typeof rollout.commit !== 'string' || rollout.commit === '') throw new StoreError({ code: 'INVALID_RECORD', message: 'rollout.commit must be a non-empty string' });
    checkDate(rollout.at, 'rollout.at');
    const text = jsonText(rollout.document, 'rollout.document');
    const details = options.audit === undefined ? undefined : checkAudit(options.audit);
    const current = this.rollout?.revision ?? null;
    if (options.ifRevision !== undefined && options.ifRevision !== current) throw revisionConflict(options.ifRevision, current);
    const revision = (current ?? 0) + 1;
    this.rollout = { commit: rollout.commit, text, at: new Date(rollout.at), revision };
    if (options.audit !== undefined && details !== undefined) this.pushAudit(options.audit, details);
    return revision;
  }

  async revoke(revocation: RevocationRecord, audit?: AuditEntry): Promise<boolean> {
    this.assertOpen();
    checkRevocation(revocation);
    const details = audit === undefined ? undefined : checkAudit(audit);
    if (audit !== undefined && details !== undefined) this.pushAudit(audit, details);
    if (this.revocations.has(revocation.serial)) return false;
    this.revocations.set(revocation.serial, Object.freeze({ serial: revocation.serial, agentId: revocation.agentId, at: new Date(revocation.at), by: revocation.by }));
    return true;
  }

  async isRevoked(serial: string): Promise<boolean> {
    this.assertOpen();
    return this.revocations.has(serial);
  }

  async listRevocations(): Promise<readonly RevocationRecord[]> {
    this.assertOpen();
    return Object.freeze([...this.revocations.values()].map((r) => Object.freeze({ ...r, at: new Date(r.at) })));
  }

  async insertAdminToken(record: AdminTokenRecord, audit?: AuditEntry): Promise<void> {
    this.assertOpen();
    checkAdminToken(record);
    const details = audit === undefined ? undefined : checkAudit(audit);
    const existing = this.adminTokens.get(record.name);
    if (existing !== undefined && adminTokenLive(existing, record.createdAt)) throw adminTokenTaken(record.name);
    for (const other of this.adminTokens.values()) if (other.name !== record.name && other.hash.equals(record.hash)) throw adminTokenTaken(record.name);
    this.adminTokens.set(record.name, copyAdminToken(record));
    if (audit !== undefined && details !== undefined) this.pushAudit(audit, details);
  }

  async adminTokenByHash(hash: Buffer): Promise<AdminTokenRecord | undefined> {
    this.assertOpen();
    for (const record of this.adminTokens.values()) if (record.hash.equals(hash)) return copyAdminToken(record);
    return undefined;
  }

  async listAdminTokens(): Promise<readonly AdminTokenRecord[]> {
    this.assertOpen();
    return Object.freeze([...this.adminTokens.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).map(copyAdminToken));
  }

  async revokeAdminToken(name: string, at: Date, audit?: AuditEntry): Promise<boolean> {
    this.assertOpen();
    checkDate(at, 'revokedAt');
    const details = audit === undefined ? undefined : checkAudit(audit);
    const existing = this.adminTokens.get(name);
    if (existing === undefined || existing.revokedAt !== null) return false;
    this.adminTokens.set(name, copyAdminToken({ ...existing, revokedAt: at }));
    if (audit !== undefined && details !== undefined) this.pushAudit(audit, details);
    return true;
  }

  async setCurrentCertificate(record: CurrentCertificate): Promise<void> {
    this.assertOpen();
    checkCurrentCertificate(record);
    this.certificates.set(record.agentId, Object.freeze({ agentId: record.agentId, serial: record.serial, kind: record.kind, at: new Date(record.at) }));
  }

  async setCurrentCertificates(records: readonly CurrentCertificate[]): Promise<void> {
    this.assertOpen();
    for (const record of records) checkCurrentCertificate(record);
    for (const record of records) {
      this.certificates.set(record.agentId, Object.freeze({ agentId: record.agentId, serial: record.serial, kind: record.kind, at: new Date(record.at) }));
    }
  }

  async listCurrentCertificates(): Promise<readonly CurrentCertificate[]> {
    this.assertOpen();
    return Object.freeze(
      [...this.certificates.values()].sort((a, b) => (a.agentId < b.agentId ? -1 : a.agentId > b.agentId ? 1 : 0)).map((c) => Object.freeze({ ...c, at: new Date(c.at) })),
    );
  }

  async appendAudit(entry: AuditEntry): Promise<number> {
    this.assertOpen();
    return this.pushAudit(entry, checkAudit(entry));
  }

  async listAudit(page?: PageRequest): Promise<readonly StoredAuditEntry[]> {
    this.assertOpen();
    const { limit, beforeId } = pageOf(page);
    const out: StoredAuditEntry[] = [];
    for (let i = this.audit.length - 1; i >= 0 && out.length < limit; i -= 1) {
      const row = this.audit[i];
      if (row !== undefined && row.id < beforeId) {
        const { at, actor, action, target, reason } = row.entry;
        out.push(Object.freeze({ id: row.id, at: new Date(at), actor, action, target, reason, details: JSON.parse(row.details) as unknown }));
      }
    }
    return Object.freeze(out);
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private pushAudit(entry: AuditEntry, details: string): number {
    const id = this.audit.length + 1;
    const { at, actor, action, target, reason } = entry;
    this.audit.push({ id, details, entry: { at: new Date(at), actor, action, target, reason, details: null } });
    return id;
  }

  /** Call only after checkPatch. */
  private patch(id: AgentId, patch: AgentPatch): AgentRecord {
    const before: AgentRecord = this.agents.get(id) ?? { ...EMPTY_AGENT, id };
    const pick = <K extends keyof AgentPatch>(key: K): AgentRecord[K] => (patch[key] === undefined ? before[key] : (patch[key] as AgentRecord[K]));
    const next = copyAgent({
      id,
      desired: pick('desired'),
      active: pick('active'),
      state: pick('state'),
      certSerial: pick('certSerial'),
      certExpiry: pick('certExpiry'),
      lastSeen: pick('lastSeen'),
      quarantine: pick('quarantine'),
    });
    this.agents.set(id, next);
    return next;
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreError({ code: 'CLOSED', message: 'the fleet store is closed' });
  }
}

class MemoryTokens implements TokenStore {
  private readonly records = new Map<string, TokenRecord>();

  constructor(
    private readonly assertOpen: () => void,
    private readonly options: Required<FleetStoreOptions>,
  ) {}

  async insert(record: TokenRecord): Promise<void> {
    this.assertOpen();
    checkToken(record);
    const horizon = this.options.now().getTime() - this.options.tokenRetentionMs;
    for (const [key, r] of this.records) if (r.expiresAt.getTime() <= horizon) this.records.delete(key);
    const key = record.hash.toString('hex');
    if (this.records.has(key)) throw duplicateToken();
    this.records.set(key, copyToken(record));
  }

  async claim(hash: Buffer, at: Date): Promise<TokenRecord | undefined> {
    this.assertOpen();
    checkDate(at, 'claim time');
    const key = hash.toString('hex');
    const before = this.records.get(key);
    if (before === undefined) return undefined;
    if (before.usedAt === undefined && before.expiresAt.getTime() > at.getTime()) this.records.set(key, { ...before, usedAt: new Date(at) });
    return copyToken(before);
  }
}

const EMPTY_AGENT: Omit<AgentRecord, 'id'> = Object.freeze({
  desired: null,
  active: null,
  state: 'DISCONNECTED',
  certSerial: null,
  certExpiry: null,
  lastSeen: null,
  quarantine: null,
});

function copyDate(d: Date | null): Date | null {
  return d === null ? null : new Date(d);
}

function copyAgent(a: AgentRecord): AgentRecord {
  return Object.freeze({
    id: a.id,
    desired: a.desired === null ? null : Object.freeze({ commit: a.desired.commit, digest: a.desired.digest, generation: a.desired.generation }),
    active: a.active === null ? null : Object.freeze({ commit: a.active.commit, digest: a.active.digest, generation: a.active.generation, at: new Date(a.active.at) }),
    state: a.state,
    certSerial: a.certSerial,
    certExpiry: copyDate(a.certExpiry),
    lastSeen: copyDate(a.lastSeen),
    quarantine: a.quarantine === null ? null : Object.freeze({ since: new Date(a.quarantine.since), reason: a.quarantine.reason, by: a.quarantine.by }),
  });
}

function pickSend(s: SendRecord): SendRecord {
  return { agentId: s.agentId, commit: s.commit, digest: s.digest, generation: s.generation, nonce: s.nonce, at: s.at };
}

function copySend(s: StoredSend): StoredSend {
  return Object.freeze({ ...s, at: new Date(s.at) });
}

function pickAck(a: AckRecord): AckRecord {
  return { agentId: a.agentId, commit: a.commit, digest: a.digest, generation: a.generation, nonce: a.nonce, status: a.status, error: a.error, at: a.at };
}

function copyAdminToken(r: AdminTokenRecord): AdminTokenRecord {
  return Object.freeze({
    name: r.name,
    role: r.role,
    hash: Buffer.from(r.hash),
    createdAt: new Date(r.createdAt),
    createdBy: r.createdBy,
    expiresAt: copyDate(r.expiresAt),
    revokedAt: copyDate(r.revokedAt),
  });
}

function copyToken(r: TokenRecord): TokenRecord {
  return Object.freeze({
    hash: Buffer.from(r.hash),
    agentId: r.agentId,
    expiresAt: new Date(r.expiresAt),
    ...(r.usedAt === undefined ? {} : { usedAt: new Date(r.usedAt) }),
  });
}
