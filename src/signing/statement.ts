import { isAgentId, isCommitSha } from '../domain/agent-id.js';
import { canonicalBytes } from '../lib/index.js';
import { SigningError } from '../domain/errors.js';
import type { AgentId, CommitSha, Digest } from '../domain/types.js';

/** `_type` of the statement signed once per generation. A format change gets a new URI. */
export const STATEMENT_TYPE = 'https://meshcfg.dev/statement/v1';

/** DSSE `payloadType` of the statement envelope; covered by the signature (DSSE PAE). */
export const STATEMENT_PAYLOAD_TYPE = 'application/vnd.meshcfg.statement+json';

/** `_type` inside every Merkle leaf, so leaf bytes cannot be mistaken for any other document. */
export const LEAF_TYPE = 'https://meshcfg.dev/leaf/v1';

/**
 * What the server signs once per generation. Every agent's delivery in that generation is a
 * leaf under `rootHash`; the leaf carries the agent id and digest, the statement the rest.
 * Times are RFC 3339 UTC with milliseconds (`Date.prototype.toISOString`).
 */
export interface GenerationStatement {
  readonly _type: typeof STATEMENT_TYPE;
  readonly generation: number;
  readonly commit: CommitSha;
  readonly issuedAt: string;
  readonly expiresAt: string;
  readonly treeSize: number;
  /** Lowercase hex SHA-256 Merkle root (RFC 9162 hashing) over the generation's leaves. */
  readonly rootHash: string;
}

/** One agent's delivery in one generation: the content of a Merkle leaf. */
export interface LeafClaim {
  readonly agent: AgentId;
  readonly commit: CommitSha;
  readonly digest: Digest;
  readonly generation: number;
}

/** Leaf bytes: RFC 8785 canonical JSON, so the server and every agent derive the same bytes. */
export function leafBytes(claim: LeafClaim): Uint8Array {
  return canonicalBytes({
    _type: LEAF_TYPE,
    agent: claim.agent,
    commit: claim.commit,
    digest: claim.digest,
    generation: claim.generation,
  });
}

export function statementBytes(statement: GenerationStatement): Uint8Array {
  return canonicalBytes({ ...statement });
}

const DIGEST = /^sha256:[0-9a-f]{64}$/;
const ROOT_HASH = /^[0-9a-f]{64}$/;
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

export function isDigest(value: unknown): value is Digest {
  return typeof value === 'string' && DIGEST.test(value);
}

export { isAgentId, isCommitSha };

export function isGeneration(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** Milliseconds of an RFC 3339 time in exactly `toISOString` form, or undefined. */
export function parseIsoTime(value: unknown): number | undefined {
  if (typeof value !== 'string' || !ISO_UTC.test(value)) return undefined;
  const ms = Date.parse(value);
  return Number.isFinite(ms) && new Date(ms).toISOString() === value ? ms : undefined;
}

const STATEMENT_KEYS = ['_type', 'commit', 'expiresAt', 'generation', 'issuedAt', 'rootHash', 'treeSize'];

/**
 * Parses a statement payload. Call only on a payload whose signature has been verified: it is
 * then the server's, but still parsed defensively (a server bug must not become an agent bug).
 * Only the exact canonical encoding is accepted, so a statement has one byte form.
 */
export function parseStatement(payload: Uint8Array): GenerationStatement {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(payload).toString('utf8'));
  } catch (cause) {
    throw malformed('statement is not JSON', cause);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw malformed('statement is not an object');
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record).sort();
  if (keys.length !== STATEMENT_KEYS.length || keys.some((k, i) => k !== STATEMENT_KEYS[i])) {
    throw malformed('statement has missing or unknown fields');
  }
  const { _type, generation, commit, issuedAt, expiresAt, treeSize, rootHash } = record;
  if (_type !== STATEMENT_TYPE) throw malformed('statement _type is not meshcfg statement v1');
  if (!isGeneration(generation)) throw malformed('statement generation is not a non-negative integer');
  if (!isCommitSha(commit)) throw malformed('statement commit is not a commit id');
  if (typeof treeSize !== 'number' || !Number.isSafeInteger(treeSize) || treeSize < 1) {
    throw malformed('statement treeSize is not a positive integer');
  }
  if (typeof rootHash !== 'string' || !ROOT_HASH.test(rootHash)) throw malformed('statement rootHash is not hex SHA-256');
  const issued = parseIsoTime(issuedAt);
  const expires = parseIsoTime(expiresAt);
  if (issued === undefined || expires === undefined) throw malformed('statement times are not RFC 3339 UTC');
  if (expires <= issued) throw malformed('statement expires before it is issued');

  const statement: GenerationStatement = Object.freeze({
    _type: STATEMENT_TYPE,
    generation,
    commit,
    issuedAt: issuedAt as string,
    expiresAt: expiresAt as string,
    treeSize,
    rootHash,
  });
  if (!Buffer.from(statementBytes(statement)).equals(Buffer.from(payload))) {
    throw malformed('statement is not in canonical form');
  }
  return statement;
}

function malformed(message: string, cause?: unknown): SigningError {
  return new SigningError({ code: 'STATEMENT_MALFORMED', message, cause });
}
