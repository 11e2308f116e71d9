import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { BaseError } from '../domain/errors.js';
import { ADMIN_ROLES, READ_THROUGH, StoreError, type AdminRole, type AdminTokenRecord, type CoherentCache, type FleetStore } from '../fleet/index.js';

export const ADMIN_TOKEN_ERROR_CODES = [
  /** A token name that is not 1-64 characters of [A-Za-z0-9._@+-], or a reserved one (`admin`, `system`). */
  'TOKEN_NAME_INVALID',
  /** A usable token already has that name (revoke it first). */
  'TOKEN_NAME_TAKEN',
  /** A role other than `viewer` or `operator`. */
  'ROLE_INVALID',
  /** A ttl that is not a positive duration. */
  'TOKEN_TTL_INVALID',
] as const;

export type AdminTokenErrorCode = (typeof ADMIN_TOKEN_ERROR_CODES)[number];

export class AdminTokenError extends BaseError<AdminTokenErrorCode> {}

/** Who made an admin request: the bootstrap token (`admin`, every right) or a named token. */
export interface AdminPrincipal {
  /** The audit log's actor. */
  readonly name: string;
  readonly role: AdminRole | 'admin';
}

/** Why a bearer token was not accepted (the metric label and the log's `reason`). */
export type AdminTokenRefusal = 'bad-token' | 'revoked-token' | 'expired-token';

export type AdminAuthentication =
  | { readonly kind: 'authenticated'; readonly principal: AdminPrincipal }
  | { readonly kind: 'refused'; readonly reason: AdminTokenRefusal };

/** A named token as the API shows it: never the secret or its hash. */
export interface AdminTokenView {
  readonly name: string;
  readonly role: AdminRole;
  readonly state: 'active' | 'revoked' | 'expired';
  readonly createdAt: Date;
  readonly createdBy: string;
  readonly expiresAt: Date | null;
  readonly revokedAt: Date | null;
}

export type AdminTokenRevocation =
  | { readonly kind: 'revoked'; readonly token: AdminTokenView }
  | { readonly kind: 'refused'; readonly code: 'UNKNOWN_TOKEN' | 'ALREADY_REVOKED'; readonly message: string };

/** The bootstrap token's name in the audit log. */
export const BOOTSTRAP_ACTOR = 'admin';
/** Recognisable like enrollment (`mcet_`) and bootstrap (`mcat_`) tokens; never part of the entropy. */
export const OPERATOR_TOKEN_PREFIX = 'mcot_';
const OPERATOR_TOKEN = /^mcot_[A-Za-z0-9_-]{43}$/;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$/;
/** `admin` is the bootstrap token's actor, `system` the server's own: a named token must not pass for either. */
const RESERVED_NAMES: readonly string[] = ['admin', 'system'];

export interface AdminTokensOptions {
  readonly store: FleetStore;
  /** The contents of `<dataDir>/admin-token`, trimmed. */
  readonly bootstrapToken: string;
  readonly now?: () => Date;
}

/**
 * Admin API credentials: the bootstrap token from the data directory (every right) and named
 * tokens with a role, kept in the fleet store as sha256 hashes only. A revoked or expired
 * named token is refused on its next request: every request looks it up again.
 */
export class AdminTokens implements CoherentCache {
  /** Read-through: every request looks its token up in the store, so another writer's revocation counts at once. */
  readonly coherence = READ_THROUGH;
  private readonly bootstrapHash: Buffer;
  private readonly store: FleetStore;
  private readonly now: () => Date;

  constructor(options: AdminTokensOptions) {
    this.bootstrapHash = sha256(options.bootstrapToken);
    this.store = options.store;
    this.now = options.now ?? (() => new Date());
  }

  async authenticate(secret: string): Promise<AdminAuthentication> {
    const hash = sha256(secret);
    if (timingSafeEqual(hash, this.bootstrapHash)) return { kind: 'authenticated', principal: { name: BOOTSTRAP_ACTOR, role: 'admin' } };
    if (!OPERATOR_TOKEN.test(secret)) return { kind: 'refused', reason: 'bad-token' };
    const record = await this.store.adminTokenByHash(hash);
    if (record === undefined) return { kind: 'refused', reason: 'bad-token' };
    const state = stateOf(record, this.now());
    if (state !== 'active') return { kind: 'refused', reason: state === 'revoked' ? 'revoked-token' : 'expired-token' };
    return { kind: 'authenticated', principal: { name: record.name, role: record.role } };
  }

  /** Creates a named token (audited); the secret is returned once and kept nowhere. */
  async create(name: string, role: string, ttlMs: number | null, actor: string): Promise<{ readonly token: string; readonly view: AdminTokenView }> {
    if (!NAME.test(name) || RESERVED_NAMES.includes(name.toLowerCase())) {
      throw new AdminTokenError({ code: 'TOKEN_NAME_INVALID', message: `a token name is 1-64 characters of [A-Za-z0-9._@+-], not ${RESERVED_NAMES.join(' or ')}` });
    }
    if (!(ADMIN_ROLES as readonly string[]).includes(role)) throw new AdminTokenError({ code: 'ROLE_INVALID', message: `role must be one of ${ADMIN_ROLES.join(', ')}` });
    if (ttlMs !== null && !(Number.isFinite(ttlMs) && ttlMs > 0)) throw new AdminTokenError({ code: 'TOKEN_TTL_INVALID', message: 'ttl must be a positive duration' });
    const token = `${OPERATOR_TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
    const now = this.now();
    const record: AdminTokenRecord = {
      name,
      role: role as AdminRole,
      hash: sha256(token),
      createdAt: now,
      createdBy: actor,
      expiresAt: ttlMs === null ? null : new Date(now.getTime() + ttlMs),
      revokedAt: null,
    };
    try {
      await this.store.insertAdminToken(record, {
        at: now,
        actor,
        action: 'admin-token.create',
        target: name,
        reason: '',
        details: { role, expiresAt: record.expiresAt?.toISOString() ?? null },
      });
    } catch (err) {
      if (err instanceof StoreError && err.code === 'CONFLICT') {
        throw new AdminTokenError({ code: 'TOKEN_NAME_TAKEN', message: `an admin token named ${name} exists; revoke it first`, cause: err });
      }
      throw err;
    }
    return { token, view: viewOf(record, now) };
  }

  async list(): Promise<readonly AdminTokenView[]> {
    const now = this.now();
    return (await this.store.listAdminTokens()).map((r) => viewOf(r, now));
  }

  /** Revokes a named token (audited): refused from its next request on. */
  async revoke(name: string, actor: string, reason: string): Promise<AdminTokenRevocation> {
    const now = this.now();
    const revoked = await this.store.revokeAdminToken(name, now, { at: now, actor, action: 'admin-token.revoke', target: name, reason, details: null });
    if (!revoked) {
      const known = (await this.store.listAdminTokens()).some((r) => r.name === name);
      return known
        ? { kind: 'refused', code: 'ALREADY_REVOKED', message: `the admin token ${name} is already revoked` }
        : { kind: 'refused', code: 'UNKNOWN_TOKEN', message: `no admin token is named ${name}` };
    }
    const record = (await this.store.listAdminTokens()).find((r) => r.name === name);
    if (record === undefined) throw new Error(`admin token ${name} vanished after its revocation`);
    return { kind: 'revoked', token: viewOf(record, now) };
  }
}

function stateOf(record: AdminTokenRecord, now: Date): AdminTokenView['state'] {
  if (record.revokedAt !== null) return 'revoked';
  if (record.expiresAt !== null && record.expiresAt.getTime() <= now.getTime()) return 'expired';
  return 'active';
}

function viewOf(record: AdminTokenRecord, now: Date): AdminTokenView {
  return {
    name: record.name,
    role: record.role,
    state: stateOf(record, now),
    createdAt: record.createdAt,
    createdBy: record.createdBy,
    expiresAt: record.expiresAt,
    revokedAt: record.revokedAt,
  };
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}
