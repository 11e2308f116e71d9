import type { AgentId, CommitSha } from '../domain/types.js';
import { StoreError } from './errors.js';
import { generationOf, reviveRefusal } from './records.js';
import {
  ADMIN_ROLES,
  AGENT_STATES,
  type AdminRole,
  type AdminTokenRecord,
  type AgentRecord,
  type AgentState,
  type GenerationRecord,
  type ServerState,
  type StoredAck,
  type StoredAuditEntry,
  type StoredRollout,
  type StoredSend,
} from './store.js';

/*
 * Rows as a SQL backend keeps them — snake_case columns, times as INTEGER epoch milliseconds,
 * JSON as text — and their mapping to the store's records. Shared by every SQL backend
 * (SQLite today; PostgreSQL reads the same columns), so a record means the same thing
 * whichever backend returned it. A row that no valid write could have produced is CORRUPT.
 */

// Row types name ids by their domain types: the store writes only `AgentId` (branded) and
// `CommitSha` values (its methods accept nothing else), so what it reads back is one of them.
export interface AgentRow {
  id: AgentId;
  desired_commit: CommitSha | null;
  desired_digest: string | null;
  desired_generation: number | null;
  active_commit: CommitSha | null;
  active_digest: string | null;
  active_generation: number | null;
  active_at: number | null;
  state: string;
  cert_serial: string | null;
  cert_expiry: number | null;
  last_seen: number | null;
  quarantine_since: number | null;
  quarantine_reason: string | null;
  quarantine_by: string | null;
}

export interface SendRow {
  id: number;
  agent_id: AgentId;
  commit_sha: CommitSha;
  digest: string;
  generation: number;
  nonce: string;
  at: number;
}

export interface AckRow extends SendRow {
  status: string;
  error: string;
}

export interface ServerStateRow {
  accepted: CommitSha | null;
  generation: number;
  refusal: string | null;
  accepted_seen_at: number | null;
}

export interface RolloutRow {
  commit_sha: CommitSha;
  document: string;
  at: number;
  revision: number;
}

export interface AuditRow {
  id: number;
  at: number;
  actor: string;
  action: string;
  target: string;
  reason: string;
  details: string;
}

export interface AdminTokenRow {
  name: string;
  role: string;
  hash: Buffer;
  created_at: number;
  created_by: string;
  expires_at: number | null;
  revoked_at: number | null;
}

export interface TokenRow {
  hash: Buffer;
  agent_id: AgentId;
  expires_at: number;
  used_at: number | null;
}

export function parseJson(text: string, what: string): Record<string, unknown> {
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (cause) {
    throw new StoreError({ code: 'CORRUPT', message: `${what} is not JSON`, cause });
  }
}

export function date(ms: number | null): Date | null {
  return ms === null ? null : new Date(ms);
}

/** The server_state row (`where` names the store for the message when it is missing: CORRUPT). */
export function serverStateOf(row: ServerStateRow | undefined, where: string): ServerState {
  if (row === undefined) throw new StoreError({ code: 'CORRUPT', message: `${where}: the server_state row is missing` });
  return Object.freeze({
    accepted: row.accepted,
    generation: row.generation,
    ...(row.accepted_seen_at === null ? {} : { seenAt: new Date(row.accepted_seen_at) }),
    lastRefusal: row.refusal === null ? null : reviveRefusal(parseJson(row.refusal, 'the last refusal')),
  });
}

export function rolloutOf(row: RolloutRow): StoredRollout {
  return Object.freeze({ commit: row.commit_sha, document: parseJson(row.document, 'the rollout document'), at: new Date(row.at), revision: row.revision });
}

export function auditOf(row: AuditRow): StoredAuditEntry {
  return Object.freeze({ id: row.id, at: new Date(row.at), actor: row.actor, action: row.action, target: row.target, reason: row.reason, details: parseJson(row.details, 'audit details') });
}

export function agentOf(row: AgentRow): AgentRecord {
  if (!(AGENT_STATES as readonly string[]).includes(row.state)) throw new StoreError({ code: 'CORRUPT', message: `agent ${row.id} has an unknown state ${row.state}` });
  return Object.freeze({
    id: row.id,
    desired:
      row.desired_commit === null || row.desired_digest === null || row.desired_generation === null
        ? null
        : Object.freeze({ commit: row.desired_commit, digest: row.desired_digest, generation: row.desired_generation }),
    active:
      row.active_commit === null || row.active_digest === null || row.active_generation === null || row.active_at === null
        ? null
        : Object.freeze({ commit: row.active_commit, digest: row.active_digest, generation: row.active_generation, at: new Date(row.active_at) }),
    state: row.state as AgentState,
    certSerial: row.cert_serial,
    certExpiry: date(row.cert_expiry),
    lastSeen: date(row.last_seen),
    quarantine:
      row.quarantine_since === null || row.quarantine_by === null
        ? null
        : Object.freeze({ since: new Date(row.quarantine_since), reason: row.quarantine_reason ?? '', by: row.quarantine_by }),
  });
}

export function adminTokenOf(row: AdminTokenRow): AdminTokenRecord {
  if (!(ADMIN_ROLES as readonly string[]).includes(row.role)) throw new StoreError({ code: 'CORRUPT', message: `admin token ${row.name} has an unknown role ${row.role}` });
  return Object.freeze({
    name: row.name,
    role: row.role as AdminRole,
    hash: Buffer.from(row.hash),
    createdAt: new Date(row.created_at),
    createdBy: row.created_by,
    expiresAt: date(row.expires_at),
    revokedAt: date(row.revoked_at),
  });
}

export function sendOf(row: SendRow): StoredSend {
  return Object.freeze({ id: row.id, agentId: row.agent_id, commit: row.commit_sha, digest: row.digest, generation: row.generation, nonce: row.nonce, at: new Date(row.at) });
}

export function ackOf(row: AckRow): StoredAck {
  if (row.status !== 'APPLIED' && row.status !== 'REJECTED') throw new StoreError({ code: 'CORRUPT', message: `ack ${row.id} has an unknown status ${row.status}` });
  return Object.freeze({
    id: row.id,
    agentId: row.agent_id,
    commit: row.commit_sha,
    digest: row.digest,
    generation: row.generation,
    nonce: row.nonce,
    status: row.status,
    error: row.error,
    at: new Date(row.at),
  });
}

/** A row of `generations`, as both SQL backends store it (JSON text columns, BIGINT ms). */
export interface GenerationRow {
  readonly generation: number;
  readonly commit_sha: CommitSha;
  readonly statement: string;
  readonly bundle: string;
  readonly agents: string;
  readonly at: number;
}

export function generationRowOf(row: GenerationRow): GenerationRecord {
  let agents: unknown;
  try {
    agents = JSON.parse(row.agents);
  } catch {
    throw new StoreError({ code: 'CORRUPT', message: `generation ${row.generation}: its agents column is not JSON` });
  }
  if (!Array.isArray(agents)) throw new StoreError({ code: 'CORRUPT', message: `generation ${row.generation}: its agents column is not a list` });
  return generationOf({
    generation: row.generation,
    commit: row.commit_sha,
    statement: parseJson(row.statement, 'a generation statement'),
    bundle: parseJson(row.bundle, 'a generation bundle'),
    agents,
    at: row.at,
  });
}

/**
 * One table of a SQL fleet store as stored, for moving a fleet between backends
 * (`importFleet`): its column names and its rows, each a value per column in that order
 * (numbers, text, `Buffer` for blobs, null). The rows are read lazily: a fleet's sends and
 * acks may not fit in memory at once.
 */
export interface TableRows {
  readonly name: string;
  readonly columns: readonly string[];
  readonly count: number;
  rows(): Iterable<readonly unknown[]>;
}
