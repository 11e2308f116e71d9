import { isCommitSha } from '../domain/agent-id.js';
import type { CommitSha } from '../domain/types.js';
import type { TokenRecord } from '../pki/index.js';
import { StoreError } from './errors.js';
import {
  ADMIN_ROLES,
  AGENT_STATES,
  CURRENT_CERTIFICATE_KINDS,
  DEFAULT_PAGE_SIZE,
  MAX_PAGE_SIZE,
  type AcceptedState,
  type AckRecord,
  type AdminTokenRecord,
  type AgentPatch,
  type AgentUpdate,
  type AuditEntry,
  type CurrentCertificate,
  type GenerationAgent,
  type GenerationRecord,
  type DeliveryWrite,
  type PageRequest,
  type RefusalRecord,
  type RevocationRecord,
  type SendRecord,
} from './store.js';

export const DEFAULT_TOKEN_RETENTION_MS = 30 * 24 * 60 * 60_000;

/**
 * Input checks shared by every FleetStore implementation, so they refuse the same things
 * with the same code. They guard the store's invariants, not the callers' business rules.
 */

function invalid(message: string, cause?: unknown): StoreError {
  return new StoreError({ code: 'INVALID_RECORD', message, cause });
}

export function checkDate(value: Date, what: string): number {
  const ms = value instanceof Date ? value.getTime() : Number.NaN;
  if (!Number.isFinite(ms)) throw invalid(`${what} is not a valid Date`);
  return ms;
}

export function checkGeneration(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) throw invalid(`${what} must be a non-negative integer, got ${String(value)}`);
}

function checkString(value: string, what: string): void {
  if (typeof value !== 'string') throw invalid(`${what} must be a string`);
}

function checkNonEmpty(value: string, what: string): void {
  if (typeof value !== 'string' || value === '') throw invalid(`${what} must be a non-empty string`);
}

/** JSON text for a value the caller promised is JSON-serialisable. */
export function jsonText(value: unknown, what: string): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (cause) {
    throw invalid(`${what} is not JSON-serialisable`, cause);
  }
  if (text === undefined) throw invalid(`${what} is not JSON-serialisable`);
  return text;
}

export function checkAccepted(state: AcceptedState): void {
  if (state.accepted !== null) checkNonEmpty(state.accepted, 'accepted');
  checkGeneration(state.generation, 'generation');
  if (state.seenAt !== undefined) checkDate(state.seenAt, 'seenAt');
}

export function checkRefusal(refusal: RefusalRecord): void {
  checkNonEmpty(refusal.commit, 'refusal.commit');
  checkNonEmpty(refusal.code, 'refusal.code');
  checkString(refusal.message, 'refusal.message');
  checkDate(refusal.at, 'refusal.at');
  if (!Array.isArray(refusal.violations)) throw invalid('refusal.violations must be an array');
}

export function checkAgentId(id: string): void {
  checkNonEmpty(id, 'agent id');
}

export function checkPatch(patch: AgentPatch): void {
  const { desired, active, state, certSerial, certExpiry, lastSeen, quarantine } = patch;
  if (desired) {
    checkNonEmpty(desired.commit, 'desired.commit');
    checkNonEmpty(desired.digest, 'desired.digest');
    checkGeneration(desired.generation, 'desired.generation');
  }
  if (active) {
    checkString(active.commit, 'active.commit');
    checkNonEmpty(active.digest, 'active.digest');
    checkGeneration(active.generation, 'active.generation');
    checkDate(active.at, 'active.at');
  }
  if (state !== undefined && !AGENT_STATES.includes(state)) throw invalid(`unknown agent state ${JSON.stringify(state)}`);
  if (certSerial) checkNonEmpty(certSerial, 'certSerial');
  if (certExpiry) checkDate(certExpiry, 'certExpiry');
  if (lastSeen) checkDate(lastSeen, 'lastSeen');
  if (quarantine) {
    checkDate(quarantine.since, 'quarantine.since');
    checkString(quarantine.reason, 'quarantine.reason');
    checkNonEmpty(quarantine.by, 'quarantine.by');
  }
}

export function checkSend(send: SendRecord): void {
  checkAgentId(send.agentId);
  checkNonEmpty(send.commit, 'send.commit');
  checkNonEmpty(send.digest, 'send.digest');
  checkGeneration(send.generation, 'send.generation');
  checkString(send.nonce, 'send.nonce');
  checkDate(send.at, 'send.at');
}

/** An ack is evidence: only its shape is checked, never whether it names something real. */
export function checkAck(ack: AckRecord): void {
  checkAgentId(ack.agentId);
  checkString(ack.commit, 'ack.commit');
  checkString(ack.digest, 'ack.digest');
  if (!Number.isSafeInteger(ack.generation)) throw invalid(`ack.generation must be an integer, got ${String(ack.generation)}`);
  checkString(ack.nonce, 'ack.nonce');
  if (ack.status !== 'APPLIED' && ack.status !== 'REJECTED') throw invalid(`unknown ack status ${JSON.stringify(ack.status)}`);
  checkString(ack.error, 'ack.error');
  checkDate(ack.at, 'ack.at');
}

/** One entry of a `recordBatch`; a kind it does not know is INVALID_RECORD (the batch may come from outside TypeScript). */
export function checkDeliveryWrite(write: DeliveryWrite): void {
  switch (write.kind) {
    case 'send':
      checkSend(write.send);
      if (write.agent !== undefined) checkPatch(write.agent);
      return;
    case 'ack':
      checkAck(write.ack);
      if (write.agent !== undefined) checkPatch(write.agent);
      return;
    case 'agent':
      checkAgentId(write.id);
      checkPatch(write.patch);
      return;
    default: {
      const never: never = write;
      throw invalid(`unknown batch entry ${JSON.stringify((never as { kind?: unknown }).kind)}`);
    }
  }
}

export function checkRevocation(revocation: RevocationRecord): void {
  checkNonEmpty(revocation.serial, 'serial');
  checkAgentId(revocation.agentId);
  checkDate(revocation.at, 'revocation.at');
  checkNonEmpty(revocation.by, 'revocation.by');
}

export function checkCurrentCertificate(record: CurrentCertificate): void {
  checkAgentId(record.agentId);
  checkNonEmpty(record.serial, 'serial');
  if (!CURRENT_CERTIFICATE_KINDS.includes(record.kind)) throw invalid(`unknown certificate kind ${JSON.stringify(record.kind)}`);
  checkDate(record.at, 'certificate.at');
}

/** Returns the details as JSON text (null when absent). */
export function checkAudit(entry: AuditEntry): string {
  checkDate(entry.at, 'audit.at');
  checkNonEmpty(entry.actor, 'audit.actor');
  checkNonEmpty(entry.action, 'audit.action');
  checkString(entry.target, 'audit.target');
  checkString(entry.reason, 'audit.reason');
  return jsonText(entry.details === undefined ? null : entry.details, 'audit.details');
}

export function pageOf(page: PageRequest = {}): { readonly limit: number; readonly beforeId: number } {
  const limit = page.limit ?? DEFAULT_PAGE_SIZE;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) throw invalid(`page limit must be between 1 and ${MAX_PAGE_SIZE}, got ${String(limit)}`);
  const beforeId = page.beforeId ?? Number.MAX_SAFE_INTEGER;
  if (!Number.isSafeInteger(beforeId)) throw invalid(`beforeId must be an integer, got ${String(beforeId)}`);
  return { limit, beforeId };
}

export function checkAdminToken(record: AdminTokenRecord): void {
  checkNonEmpty(record.name, 'admin token name');
  if (!(ADMIN_ROLES as readonly string[]).includes(record.role)) throw invalid(`admin token role must be one of ${ADMIN_ROLES.join(', ')}`);
  if (!Buffer.isBuffer(record.hash) || record.hash.length !== 32) throw invalid('admin token hash must be 32 bytes');
  checkDate(record.createdAt, 'admin token createdAt');
  checkNonEmpty(record.createdBy, 'admin token createdBy');
  if (record.expiresAt !== null) checkDate(record.expiresAt, 'admin token expiresAt');
  if (record.revokedAt !== null) checkDate(record.revokedAt, 'admin token revokedAt');
}

/** Still usable at `at`: neither revoked nor expired. A usable token's name cannot be taken again. */
export function adminTokenLive(record: AdminTokenRecord, at: Date): boolean {
  return record.revokedAt === null && (record.expiresAt === null || record.expiresAt.getTime() > at.getTime());
}

export function adminTokenTaken(name: string): StoreError {
  return new StoreError({ code: 'CONFLICT', message: `an admin token named ${name} exists (revoke it first), or the secret collides` });
}

export function checkToken(record: TokenRecord): void {
  if (!Buffer.isBuffer(record.hash) || record.hash.length !== 32) throw new StoreError({ code: 'INVALID_RECORD', message: 'token hash must be 32 bytes' });
  checkAgentId(record.agentId);
  checkDate(record.expiresAt, 'token expiresAt');
  if (record.usedAt !== undefined) checkDate(record.usedAt, 'token usedAt');
}

export function duplicateToken(): StoreError {
  return new StoreError({ code: 'CONFLICT', message: 'a token with this hash already exists' });
}

export function generationConflict(asked: number, stored: number): StoreError {
  return new StoreError({ code: 'CONFLICT', message: `generation ${asked} is below the stored generation ${stored}; generations never go down` });
}

/** Checks a signed generation and returns its JSON texts (statement, bundle, agents). */
export function checkGenerationRecord(record: GenerationRecord): { readonly statement: string; readonly bundle: string; readonly agents: string; readonly at: number } {
  checkGeneration(record.generation, 'generation');
  if (record.generation === 0) throw invalid('generation must be at least 1');
  checkNonEmpty(record.commit, 'generation commit');
  const at = checkDate(record.at, 'generation at');
  if (!Array.isArray(record.agents)) throw invalid('generation agents must be an array');
  for (const agent of record.agents) {
    checkAgentId(agent.agentId);
    checkNonEmpty(agent.digest, 'generation agent digest');
    checkNonEmpty(agent.commit, 'generation agent commit');
    if (typeof agent.baseline !== 'boolean') throw invalid('generation agent baseline must be a boolean');
  }
  const agents = record.agents.map((a) => ({ agentId: a.agentId, digest: a.digest, commit: a.commit, baseline: a.baseline }));
  return { statement: jsonText(record.statement, 'generation statement'), bundle: jsonText(record.bundle, 'generation bundle'), agents: jsonText(agents, 'generation agents'), at };
}

export function generationTaken(generation: number): StoreError {
  return new StoreError({ code: 'CONFLICT', message: `generation ${generation} is stored already; a generation is never signed twice` });
}

/** A stored generation read back (frozen). */
export function generationOf(row: { generation: number; commit: CommitSha; statement: unknown; bundle: unknown; agents: unknown; at: number }): GenerationRecord {
  const agents = (row.agents as GenerationAgent[]).map((a) => Object.freeze({ ...a }));
  return Object.freeze({ generation: row.generation, commit: row.commit, statement: row.statement, bundle: row.bundle, agents: Object.freeze(agents), at: new Date(row.at) });
}

export function revisionConflict(asked: number | null, stored: number | null): StoreError {
  return new StoreError({ code: 'CONFLICT', message: `the rollout was saved meanwhile: expected revision ${String(asked)}, stored ${String(stored)}` });
}

/** The refusal as stored: JSON with the date as an ISO string. */
export function refusalText(refusal: RefusalRecord): string {
  return jsonText({ commit: refusal.commit, code: refusal.code, message: refusal.message, at: refusal.at.toISOString(), violations: refusal.violations }, 'refusal');
}

/** Throws CORRUPT when the stored refusal is not what refusalText writes. */
export function reviveRefusal(doc: Record<string, unknown>): RefusalRecord {
  const { commit, code, message, at, violations } = doc;
  const date = typeof at === 'string' ? new Date(at) : new Date(Number.NaN);
  if (!isCommitSha(commit) || typeof code !== 'string' || typeof message !== 'string' || Number.isNaN(date.getTime()) || !Array.isArray(violations)) {
    throw new StoreError({ code: 'CORRUPT', message: 'the stored last refusal does not parse' });
  }
  return Object.freeze({ commit, code, message, at: date, violations: Object.freeze(violations as RefusalRecord['violations']) });
}


/**
 * A batch's agent patches folded into one per agent, in the order each agent first appears; a
 * later patch's fields win over an earlier one's (a field it leaves undefined keeps the earlier
 * value). Written in one transaction, the rows are the same as writing each patch in turn.
 */
/** Every agent patch of a batch (`recordBatch`), folded per agent (`foldAgentUpdates`). */
export function batchAgentUpdates(writes: readonly DeliveryWrite[]): AgentUpdate[] {
  return foldAgentUpdates(
    writes.flatMap((write): AgentUpdate[] => {
      switch (write.kind) {
        case 'send':
          return write.agent === undefined ? [] : [{ id: write.send.agentId, patch: write.agent }];
        case 'ack':
          return write.agent === undefined ? [] : [{ id: write.ack.agentId, patch: write.agent }];
        case 'agent':
          return [{ id: write.id, patch: write.patch }];
        default: {
          const never: never = write;
          throw new Error(`unexpected batch entry ${String(never)}`);
        }
      }
    }),
  );
}

export function foldAgentUpdates(updates: Iterable<AgentUpdate>): AgentUpdate[] {
  const folded = new Map<AgentUpdate['id'], Record<string, unknown>>();
  for (const { id, patch } of updates) {
    const into = folded.get(id) ?? {};
    for (const [field, value] of Object.entries(patch)) if (value !== undefined) into[field] = value;
    folded.set(id, into);
  }
  return [...folded].map(([id, patch]) => ({ id, patch: patch as AgentPatch }));
}
