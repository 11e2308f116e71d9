import { createHash, randomBytes } from 'node:crypto';
import { PkiError } from '../domain/errors.js';
import type { AgentId } from '../domain/types.js';
import { assertAgentId } from './identity.js';

/** Recognisable in logs, configs and secret scanners; never part of the entropy. */
export const ENROLLMENT_TOKEN_PREFIX = 'mcet_';
/** 32 random bytes, base64url without padding. */
const TOKEN = /^mcet_[A-Za-z0-9_-]{43}$/;

export const DEFAULT_MAX_TOKEN_TTL_MS = 7 * 24 * 60 * 60_000;

/**
 * What a store keeps about a token. Never the token itself: a copy of the store (a backup, a
 * leaked file) must not be enough to enroll.
 */
export interface TokenRecord {
  /** sha256 of the whole token text, 32 bytes. */
  readonly hash: Buffer;
  readonly agentId: AgentId;
  readonly expiresAt: Date;
  readonly usedAt?: Date;
}

/**
 * Where enrollment tokens live. Two operations so a SQLite store can implement each as one
 * statement: `claim` is `UPDATE … SET used_at = ? WHERE hash = ? AND used_at IS NULL AND
 * expires_at > ?` plus a read of the row.
 */
export interface TokenStore {
  /** Adds a record for a fresh token. */
  insert(record: TokenRecord): Promise<void>;
  /**
   * Atomically: find the record whose hash equals `hash`; if it is unused and `at` is before
   * its expiry, mark it used at `at`. Returns the record as it was *before* the call (so the
   * caller can tell unknown, used, expired and claimed apart), or undefined if none matches.
   */
  claim(hash: Buffer, at: Date): Promise<TokenRecord | undefined>;
}

export interface EnrollmentTokensOptions {
  readonly store: TokenStore;
  readonly now?: () => Date;
  /** Upper bound for `create`'s ttl. Default 7 days. */
  readonly maxTtlMs?: number;
}

export interface CreatedToken {
  /** Shown once to the operator; not recoverable afterwards. */
  readonly token: string;
  readonly expiresAt: Date;
}

/** One-time, expiring enrollment tokens, each bound to one agent id. */
export class EnrollmentTokens {
  private readonly options: Required<EnrollmentTokensOptions>;

  constructor(options: EnrollmentTokensOptions) {
    this.options = {
      store: options.store,
      now: options.now ?? (() => new Date()),
      maxTtlMs: options.maxTtlMs ?? DEFAULT_MAX_TOKEN_TTL_MS,
    };
  }

  async create(agentId: AgentId, ttlMs: number): Promise<CreatedToken> {
    assertAgentId(agentId);
    if (!Number.isFinite(ttlMs) || ttlMs <= 0 || ttlMs > this.options.maxTtlMs) {
      throw new PkiError({ code: 'TOKEN_TTL_INVALID', message: `token ttl must be between 1 ms and ${this.options.maxTtlMs} ms, got ${ttlMs}` });
    }
    const token = `${ENROLLMENT_TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
    const expiresAt = new Date(this.options.now().getTime() + ttlMs);
    await this.options.store.insert({ hash: hashToken(token), agentId, expiresAt });
    return { token, expiresAt };
  }

  /**
   * Spends a token and returns the agent id it was created for. Throws TOKEN_UNKNOWN (also for
   * text that is not a token at all), TOKEN_USED or TOKEN_EXPIRED; the token text never
   * appears in an error.
   */
  async consume(token: string, now: Date = this.options.now()): Promise<AgentId> {
    if (!TOKEN.test(token)) throw new PkiError({ code: 'TOKEN_UNKNOWN', message: 'not an enrollment token' });
    const before = await this.options.store.claim(hashToken(token), now);
    if (before === undefined) throw new PkiError({ code: 'TOKEN_UNKNOWN', message: 'unknown enrollment token' });
    // A reuse is the more telling signal for an operator than an expiry, so it wins.
    if (before.usedAt !== undefined) {
      throw new PkiError({ code: 'TOKEN_USED', message: `the enrollment token for ${before.agentId} was already used at ${before.usedAt.toISOString()}` });
    }
    if (before.expiresAt.getTime() <= now.getTime()) {
      throw new PkiError({ code: 'TOKEN_EXPIRED', message: `the enrollment token for ${before.agentId} expired at ${before.expiresAt.toISOString()}` });
    }
    return before.agentId;
  }
}

export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}
