import type { AckStatus, AgentId, CommitSha, Violation } from '../domain/types.js';
import type { TokenStore } from '../pki/index.js';
import type { FleetChangeFeed } from './changes.js';

export type { AckStatus };

/**
 * Everything the server knows that git does not, behind one interface: SQLite embedded
 * (`sqlite/`), PostgreSQL when replicas share a fleet, and memory for pure tests.
 *
 * Contracts shared by every implementation (the contract tests in test/fleet check them):
 * - Every method is asynchronous. SQLite does its work synchronously inside the call and
 *   returns a settled promise; PostgreSQL cannot, so a synchronous interface would either
 *   block on the network or need a cache that lies after another replica writes.
 * - Every method is one atomic unit: it commits entirely or not at all, and is durable when
 *   the promise resolves. There is deliberately no `transaction(fn)`: an async callback
 *   holding a SQLite write lock across awaits would stall every other writer. Where an
 *   effect and its record must not come apart, the method takes both (an ack and the agent
 *   update it causes; an operator action and its audit entry).
 * - Sends, acks and audit entries are append-only; nothing here deletes them.
 * - Values read back are fresh, frozen copies; Dates have millisecond precision.
 */
export interface FleetStore extends ServerStateStore, GenerationStore, AgentStore, DeliveryStore, RolloutStore, CredentialStore, AuditStore {
  /**
   * Changes committed by every process sharing this store (see changes.ts); null for a store
   * only this process writes (SQLite, memory), whose in-memory views are single-writer.
   */
  readonly changes: FleetChangeFeed | null;
  /** Releases the store (SQLite: checkpoints and closes the file); later calls fail with CLOSED. Idempotent. */
  close(): Promise<void>;
}

/*
 * The roles the store is composed of. A caller that needs one role takes that interface (or a
 * `Pick` of it); a second backend implements them all, and runs the same contract suite.
 */

/** The reconciler's durable state (replaces state.json). */
export interface ServerStateStore {
  serverState(): Promise<ServerState>;
  /**
   * Records the accepted commit and the highest generation signed. Refuses with CONFLICT a
   * generation below the stored one: forgetting a generation would let agents see two
   * bundles under one number, and a second replica must not rewind the first.
   */
  saveAccepted(state: AcceptedState): Promise<void>;
  /** The last commit refused (null clears it). Independent of the accepted commit. */
  saveRefusal(refusal: RefusalRecord | null): Promise<void>;
}

/**
 * Signed generations as the leader signed them, so every replica serves the same bytes: ECDSA
 * signatures are randomized, so a replica that signed its own would serve other bytes (and two
 * signatures under one generation number). Followers load the newest and compile its commits
 * themselves (compilation is deterministic); only the signature and the tree's leaves are stored.
 */
export interface GenerationStore {
  /**
   * Records a signed generation; the leader saves it before publishing it and before
   * `saveAccepted` names its number. CONFLICT when that generation is stored already (a number
   * is never signed twice). Only the newest `GENERATIONS_KEPT` are kept.
   */
  saveGeneration(record: GenerationRecord): Promise<void>;
  /** The newest stored generation, or null before the first. */
  latestGeneration(): Promise<GenerationRecord | null>;
}

/** The agents of the fleet. */
export interface AgentStore {
  getAgent(id: AgentId): Promise<AgentRecord | undefined>;
  /** Every agent, ordered by id. */
  listAgents(): Promise<readonly AgentRecord[]>;
  /**
   * Creates the agent if unknown (state DISCONNECTED, everything else null) and sets the
   * fields present in `patch`; absent fields keep their value, `null` clears one. With
   * `audit`, the entry is appended in the same transaction (approve, quarantine).
   */
  updateAgent(id: AgentId, patch: AgentPatch, audit?: AuditEntry): Promise<AgentRecord>;
  /** Many updates in one transaction (publishing desired versions to the whole fleet). */
  updateAgents(updates: readonly AgentUpdate[]): Promise<void>;
  /** Forgets agents (they left the inventory). Their sends, acks and audit entries stay. Returns how many existed. */
  removeAgents(ids: readonly AgentId[]): Promise<number>;
}

/** Sends and acks (append-only), each with the agent update it causes. */
export interface DeliveryStore {
  /** Appends a send, and applies `agent` to the agent in the same transaction. Returns the send's id. */
  recordSend(send: SendRecord, agent?: AgentPatch): Promise<number>;
  /**
   * Appends an ack, and applies `agent` (active version, state, last seen) to the agent in
   * the same transaction, so a crash never keeps one without the other. Returns the ack's id;
   * when the promise resolves the ack survives a kill -9 and, with synchronous=FULL, a power cut.
   */
  recordAck(ack: AckRecord, agent?: AgentPatch): Promise<number>;
  /**
   * Applies `writes` in order, in one transaction: all or nothing. The server queues the
   * sends, acks and agent updates of one event-loop turn and hands them over here, so a
   * thousand acks cost one commit (one fsync with SQLite) instead of a thousand. Every entry
   * is checked before anything is written; an invalid one refuses the whole batch with
   * INVALID_RECORD. An empty batch writes nothing.
   *
   * `id` makes a retry safe: a batch whose id was recorded already (its commit landed, but the
   * answer was lost on the way back) writes nothing again. Ids are kept for
   * `BATCH_ID_RETENTION_MS`; a batch without one is written every time it is given.
   */
  recordBatch(writes: readonly DeliveryWrite[], options?: RecordBatchOptions): Promise<void>;
  /** The newest send to the agent (its nonce is the only one an ack may carry), or null. */
  lastSend(agentId: AgentId): Promise<StoredSend | null>;
  /** The agent's acks, newest first. */
  listAcks(agentId: AgentId, page?: PageRequest): Promise<readonly StoredAck[]>;
  /** Every digest the agent ever acked APPLIED (the revert fast path compares against it). */
  digestsApplied(agentId: AgentId): Promise<ReadonlySet<string>>;
  /** Was `digest` ever sent to this agent? (A digest it reports that was not is drift.) */
  wasIssued(agentId: AgentId, digest: string): Promise<boolean>;
}

/** The rollout controller's persisted document. */
export interface RolloutStore {
  /** The rollout controller's last saved document, or null before the first save. */
  loadRollout(): Promise<StoredRollout | null>;
  /**
   * Replaces the rollout document. With `ifRevision`, only if the stored revision still is
   * that one (null: nothing saved yet), else CONFLICT. Returns the new revision. With
   * `audit`, the entry is appended in the same transaction (pause, promote, abort, ...).
   */
  saveRollout(rollout: RolloutDocument, options?: SaveRolloutOptions): Promise<number>;
}

/** Credentials: enrollment tokens, revocations, admin API tokens, current agent certificates. */
export interface CredentialStore {
  // --- enrollment tokens (hashes only) ---
  /** The PKI's token store; `claim` is one atomic compare-and-set on the used mark. */
  readonly tokens: TokenStore;

  // --- revocations ---
  /** Revokes a certificate serial. Idempotent: revoking again keeps the first record and returns false. */
  revoke(revocation: RevocationRecord, audit?: AuditEntry): Promise<boolean>;
  isRevoked(serial: string): Promise<boolean>;
  listRevocations(): Promise<readonly RevocationRecord[]>;

  // --- named admin API tokens (hashes only) ---
  /**
   * Adds a named admin token. CONFLICT when a token of that name is still usable (neither
   * revoked nor expired at `createdAt`) or its hash exists; a dead one of that name is
   * replaced. With `audit`, the entry is appended in the same transaction.
   */
  insertAdminToken(record: AdminTokenRecord, audit?: AuditEntry): Promise<void>;
  /** The token whose secret hashes to `hash`, revoked and expired ones included (the caller decides), or undefined. */
  adminTokenByHash(hash: Buffer): Promise<AdminTokenRecord | undefined>;
  /** Every named admin token, revoked and expired ones included, ordered by name. */
  listAdminTokens(): Promise<readonly AdminTokenRecord[]>;
  /** Marks the token revoked at `at`. False when no token has that name or it is revoked already (then nothing is audited). */
  revokeAdminToken(name: string, at: Date, audit?: AuditEntry): Promise<boolean>;
  // --- agent certificates (one current certificate per agent identity) ---
  /**
   * Makes `serial` the agent's current certificate (enroll, renew, first seen), replacing the
   * one recorded before: the server accepts only an agent's current certificate, so a
   * replaced one is refused from then on.
   */
  setCurrentCertificate(record: CurrentCertificate): Promise<void>;
  /**
   * `setCurrentCertificate` for many agents in one transaction, in order (a later record for
   * the same agent wins); all or nothing. For the certificates a reconnecting fleet presents
   * after an upgrade (adopted), one fsync per batch instead of one per agent.
   */
  setCurrentCertificates(records: readonly CurrentCertificate[]): Promise<void>;
  /** Every agent's current certificate, ordered by agent id. */
  listCurrentCertificates(): Promise<readonly CurrentCertificate[]>;
}

/** The audit log (append-only). */
export interface AuditStore {
  appendAudit(entry: AuditEntry): Promise<number>;
  /** Newest first (by append order, not by `at`, so clock steps cannot reorder it). */
  listAudit(page?: PageRequest): Promise<readonly StoredAuditEntry[]>;
}

export type AgentState = 'SYNCED' | 'PENDING' | 'STALE' | 'NACKED' | 'QUARANTINED' | 'DISCONNECTED';
export const AGENT_STATES: readonly AgentState[] = Object.freeze(['SYNCED', 'PENDING', 'STALE', 'NACKED', 'QUARANTINED', 'DISCONNECTED']);

export interface AcceptedState {
  /** The fast-forward anchor: the last commit accepted, null before the first. */
  readonly accepted: CommitSha | null;
  /** The highest generation signed, 0 before the first. */
  readonly generation: number;
  /**
   * When the server first saw `accepted` (its key validity is judged at that moment when
   * re-verified after a restart). Absent when not recorded (saved by an older meshcfg).
   */
  readonly seenAt?: Date;
}

/** A refused commit, as the server's `Refusal` (its code is the reconciler's RefusalCode). */
export interface RefusalRecord {
  readonly commit: CommitSha;
  readonly code: string;
  readonly message: string;
  readonly at: Date;
  readonly violations: readonly Violation[];
}

export interface ServerState extends AcceptedState {
  readonly lastRefusal: RefusalRecord | null;
}

/** One agent's leaf in a signed generation, and where its bundle's bytes come from. */
export interface GenerationAgent {
  readonly agentId: AgentId;
  readonly digest: string;
  /** The commit whose compilation holds the bundle (an agent held back by the rollout runs an older one). */
  readonly commit: CommitSha;
  /** The bundle is that commit's baseline (quarantine), not the agent's own. */
  readonly baseline: boolean;
}

export interface GenerationRecord {
  readonly generation: number;
  /** The commit the statement names (the served one). */
  readonly commit: CommitSha;
  /** The signed statement as signed (JSON; the DSSE payload in `bundle` is its canonical bytes). */
  readonly statement: unknown;
  /** The Sigstore bundle JSON every agent of the generation receives. */
  readonly bundle: unknown;
  /** Every leaf, ordered by agent id (the Merkle tree is rebuilt from them). */
  readonly agents: readonly GenerationAgent[];
  readonly at: Date;
}

/** How many signed generations the store keeps (a follower only ever needs the newest). */
export const GENERATIONS_KEPT = 8;

export interface Version {
  readonly commit: CommitSha;
  readonly digest: string;
  readonly generation: number;
}

export interface ActiveVersion extends Omit<Version, 'commit'> {
  /**
   * The commit of the bundle it runs: the one the server issued with that digest, else the
   * agent's (checked) claim; `''` when there is neither (a file without the agent's state, a
   * digest the server never issued: drift).
   */
  readonly commit: CommitSha | '';
  /** When the agent first reported running it. */
  readonly at: Date;
}

export interface Quarantine {
  readonly since: Date;
  readonly reason: string;
  /** `system` for drift detection, else the operator. */
  readonly by: string;
}

export interface AgentRecord {
  readonly id: AgentId;
  readonly desired: Version | null;
  readonly active: ActiveVersion | null;
  readonly state: AgentState;
  /** Serial of the certificate it last connected with, lower-case hex as the CA writes it. */
  readonly certSerial: string | null;
  readonly certExpiry: Date | null;
  readonly lastSeen: Date | null;
  readonly quarantine: Quarantine | null;
}

/** Fields to set; `undefined`/absent keeps the stored value. */
export type AgentPatch = { readonly [K in Exclude<keyof AgentRecord, 'id'>]?: AgentRecord[K] };

export interface AgentUpdate {
  readonly id: AgentId;
  readonly patch: AgentPatch;
}

export interface SendRecord {
  readonly agentId: AgentId;
  readonly commit: CommitSha;
  readonly digest: string;
  readonly generation: number;
  readonly nonce: string;
  readonly at: Date;
}

export interface StoredSend extends SendRecord {
  readonly id: number;
}

/**
 * What an agent acked. The agent id is the authenticated identity of the stream; commit,
 * digest and generation are what the agent said, kept even when they name nothing the
 * server sent (that is the evidence for drift).
 */
export interface AckRecord {
  readonly agentId: AgentId;
  readonly commit: CommitSha;
  readonly digest: string;
  readonly generation: number;
  readonly nonce: string;
  readonly status: AckStatus;
  /** The agent's error for REJECTED; '' for APPLIED. */
  readonly error: string;
  readonly at: Date;
}

/** One entry of `recordBatch`: what `recordSend`, `recordAck` and `updateAgent` (without audit) write. */
export interface RecordBatchOptions {
  /** Unique per batch (a UUID), the same on each retry of it. */
  readonly id?: string;
}

/** How long a recorded batch id is remembered (a retry after a longer outage may write twice). */
export const BATCH_ID_RETENTION_MS = 3_600_000;

export type DeliveryWrite =
  | { readonly kind: 'send'; readonly send: SendRecord; readonly agent?: AgentPatch }
  | { readonly kind: 'ack'; readonly ack: AckRecord; readonly agent?: AgentPatch }
  | { readonly kind: 'agent'; readonly id: AgentId; readonly patch: AgentPatch };

export interface StoredAck extends AckRecord {
  readonly id: number;
}

export interface RolloutDocument {
  /** The commit the rollout is for; the document is only meaningful with it. */
  readonly commit: CommitSha;
  /** The controller's `toJSON()`; stored as JSON text, handed back parsed (validate it on load). */
  readonly document: unknown;
  readonly at: Date;
}

export interface StoredRollout extends RolloutDocument {
  /** 1 for the first save, +1 per save. */
  readonly revision: number;
}

export interface SaveRolloutOptions {
  readonly ifRevision?: number | null;
  readonly audit?: AuditEntry;
}

export interface RevocationRecord {
  readonly serial: string;
  readonly agentId: AgentId;
  readonly at: Date;
  readonly by: string;
}

/** What a named admin token may do: `viewer` reads, `operator` also steers rollouts and quarantine. */
export type AdminRole = 'viewer' | 'operator';
export const ADMIN_ROLES: readonly AdminRole[] = Object.freeze(['viewer', 'operator']);

/** A named admin API token; the secret itself is never stored, only its sha256. */
export interface AdminTokenRecord {
  /** Unique; the audit log's actor for everything done with the token. */
  readonly name: string;
  readonly role: AdminRole;
  /** sha256 of the secret, 32 bytes. */
  readonly hash: Buffer;
  readonly createdAt: Date;
  readonly createdBy: string;
  /** null: never expires. */
  readonly expiresAt: Date | null;
  readonly revokedAt: Date | null;
}

/** How a certificate became its agent's current one. */
export type CurrentCertificateKind = 'enroll' | 'renew' | 'adopted';
export const CURRENT_CERTIFICATE_KINDS: readonly CurrentCertificateKind[] = Object.freeze(['enroll', 'renew', 'adopted']);

/**
 * The one certificate an agent identity may use now. `adopted`: recorded from the first
 * certificate seen (or the last one recorded) for an agent enrolled before meshcfg kept this.
 */
export interface CurrentCertificate {
  readonly agentId: AgentId;
  /** Lower-case hex without leading zero bytes, as the CA writes it. */
  readonly serial: string;
  readonly kind: CurrentCertificateKind;
  readonly at: Date;
}

export interface AuditEntry {
  readonly at: Date;
  /** Who: an operator name from the admin API, or `system`. */
  readonly actor: string;
  /** What, as a stable verb: `rollout.pause`, `agent.approve`, `agent.revoke`, `token.create`, ... */
  readonly action: string;
  /** On what: an agent id, a commit, a serial; '' when the action has no target. */
  readonly target: string;
  readonly reason: string;
  /** Anything JSON-serialisable; null when there is nothing more to say. */
  readonly details: unknown;
}

export interface StoredAuditEntry extends AuditEntry {
  readonly id: number;
}

/** Keyset paging: `limit` rows (default 100, at most 1000) with id below `beforeId`. */
export interface PageRequest {
  readonly limit?: number;
  readonly beforeId?: number;
}

export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;

export interface FleetStoreOptions {
  /** Used only to prune old token records. */
  readonly now?: () => Date;
  /**
   * How long a spent or expired token record is kept, so a late reuse is reported as
   * TOKEN_USED or TOKEN_EXPIRED rather than TOKEN_UNKNOWN. Default 30 days.
   */
  readonly tokenRetentionMs?: number;
}
