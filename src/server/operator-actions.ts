import type { AgentActionResult, AdminTokenRevocation, AdminTokenView } from '../admin/index.js';
import type { AgentId } from '../domain/types.js';
import type { AgentStatus, AuditStore } from '../fleet/index.js';
import { assertNever, notify } from '../lib/index.js';
import type { CreatedToken } from '../pki/index.js';
import type { ActionResult, OperatorAction, OperatorActionKind } from '../rollout/index.js';
import type { RevokeOutcome } from './certificates.js';
import type { QuarantineCause } from './quarantine.js';

/*
 * The ports the operator actions use, declared here (the parts that implement them are built
 * by the composition root): each is the narrow slice of one part the actions need.
 */
export interface ActionFleet {
  get(agentId: AgentId): AgentStatus | undefined;
}
export interface ActionQuarantine {
  approve(agentId: AgentId, actor: string, reason: string): Promise<boolean>;
  quarantine(agentId: AgentId, actor: string, cause: QuarantineCause): Promise<boolean>;
}
export interface ActionCertificates {
  revoke(agentId: AgentId, lastKnownSerial: string | null, actor: string, reason: string, at: Date): Promise<RevokeOutcome>;
}
/** Open gRPC streams: a revoked identity's streams end at once, not at their next delivery. */
export interface ActionStreams {
  recheckStreams(agentId: AgentId): void;
}
export interface ActionEnrollmentTokens {
  create(agentId: AgentId, ttlMs: number): Promise<CreatedToken>;
}
export interface ActionAdminTokens {
  create(
    name: string,
    role: string,
    ttlMs: number | null,
    actor: string,
  ): Promise<{ readonly token: string; readonly view: AdminTokenView }>;
  list(): Promise<readonly AdminTokenView[]>;
  revoke(name: string, actor: string, reason: string): Promise<AdminTokenRevocation>;
}
export interface ActionRollout {
  act(action: OperatorAction): Promise<ActionResult>;
}

/** Observers of what operators did (the server logs them). Must not throw; a throw is swallowed. */
export interface OperatorActionHooks {
  onTokenCreated?(event: { readonly agentId: AgentId; readonly actor: string; readonly expiresAt: Date }): void;
  onAgentRevoked?(event: { readonly agentId: AgentId; readonly actor: string; readonly serial: string }): void;
  onAdminTokenCreated?(event: { readonly name: string; readonly actor: string; readonly view: AdminTokenView }): void;
  onAdminTokenRevoked?(event: { readonly name: string; readonly actor: string }): void;
}

export interface OperatorActionsOptions {
  readonly fleet: ActionFleet;
  readonly quarantine: ActionQuarantine;
  readonly certificates: ActionCertificates;
  readonly streams: ActionStreams;
  readonly enrollmentTokens: ActionEnrollmentTokens;
  readonly adminTokens: ActionAdminTokens;
  readonly rollout: ActionRollout;
  readonly audit: Pick<AuditStore, 'appendAudit'>;
  readonly hooks?: OperatorActionHooks;
  readonly now?: () => Date;
}

/**
 * What an operator may do, as one service: approve, quarantine and revoke an agent, create
 * enrollment and admin tokens, revoke admin tokens, steer the rollout. The admin API calls it
 * (and through the API, the CLI); each action is audited by the part that carries it out, in
 * the same store transaction as its effect. `actor` always comes from the verified admin
 * token, never from a request field.
 */
export class OperatorActions {
  private readonly now: () => Date;

  constructor(private readonly options: OperatorActionsOptions) {
    this.now = options.now ?? (() => new Date());
  }

  /** Lifts a quarantine; the agent gets its desired bundle again. */
  async approve(agentId: AgentId, actor: string, reason: string): Promise<AgentActionResult> {
    const agent = this.options.fleet.get(agentId);
    if (agent === undefined) return unknownAgent(agentId);
    if (!(await this.options.quarantine.approve(agentId, actor, reason))) {
      return { kind: 'refused', code: 'NOT_QUARANTINED', message: `agent ${agentId} is not quarantined` };
    }
    return { kind: 'done', agent: this.options.fleet.get(agentId) ?? agent };
  }

  /** Quarantines by hand; the agent gets the baseline. */
  async quarantine(agentId: AgentId, actor: string, reason: string): Promise<AgentActionResult> {
    const agent = this.options.fleet.get(agentId);
    if (agent === undefined) return unknownAgent(agentId);
    if (!(await this.options.quarantine.quarantine(agentId, actor, { kind: 'manual', reason }))) {
      return { kind: 'refused', code: 'ALREADY_QUARANTINED', message: `agent ${agentId} is already quarantined` };
    }
    return { kind: 'done', agent: this.options.fleet.get(agentId) ?? agent };
  }

  /** Revokes the agent's identity (its current certificate); its open streams end at once. */
  async revoke(agentId: AgentId, actor: string, reason: string): Promise<AgentActionResult> {
    const agent = this.options.fleet.get(agentId);
    if (agent === undefined) return unknownAgent(agentId);
    const outcome = await this.options.certificates.revoke(agentId, agent.certSerial, actor, reason, this.now());
    switch (outcome.kind) {
      case 'no-certificate':
        return {
          kind: 'refused',
          code: 'NO_CERTIFICATE',
          message: `no certificate of ${agentId} is known (it never enrolled or connected)`,
        };
      case 'already-revoked':
        return {
          kind: 'refused',
          code: 'ALREADY_REVOKED',
          message: `agent ${agentId} is already revoked (certificate ${outcome.serial}); it must enroll again with a new token`,
        };
      case 'revoked':
        this.options.streams.recheckStreams(agentId);
        notify(() => this.options.hooks?.onAgentRevoked?.({ agentId, actor, serial: outcome.serial }));
        return { kind: 'done', agent, serial: outcome.serial };
      default:
        return assertNever(outcome);
    }
  }

  /** A one-time enrollment token bound to `agentId` (audited). Throws PkiError TOKEN_TTL_INVALID for a ttl out of bounds. */
  async createToken(agentId: AgentId, ttlMs: number, actor: string): Promise<CreatedToken> {
    const created = await this.options.enrollmentTokens.create(agentId, ttlMs);
    const details = { expiresAt: created.expiresAt.toISOString() };
    await this.options.audit.appendAudit({ at: this.now(), actor, action: 'token.create', target: agentId, reason: '', details });
    notify(() => this.options.hooks?.onTokenCreated?.({ agentId, actor, expiresAt: created.expiresAt }));
    return created;
  }

  /** A named admin token (audited by AdminTokens). Throws AdminTokenError for a bad name, role or ttl, or a name in use. */
  async createAdminToken(
    name: string,
    role: string,
    ttlMs: number | null,
    actor: string,
  ): Promise<{ readonly token: string; readonly view: AdminTokenView }> {
    const created = await this.options.adminTokens.create(name, role, ttlMs, actor);
    notify(() => this.options.hooks?.onAdminTokenCreated?.({ name, actor, view: created.view }));
    return created;
  }

  listAdminTokens(): Promise<readonly AdminTokenView[]> {
    return this.options.adminTokens.list();
  }

  async revokeAdminToken(name: string, actor: string, reason: string): Promise<AdminTokenRevocation> {
    const result = await this.options.adminTokens.revoke(name, actor, reason);
    if (result.kind === 'revoked') notify(() => this.options.hooks?.onAdminTokenRevoked?.({ name, actor }));
    return result;
  }

  /** pause / resume / promote / abort (audited by the rollout service with actor and reason). */
  rolloutAction(kind: OperatorActionKind, actor: string, reason: string | undefined): Promise<ActionResult> {
    return this.options.rollout.act({ kind, actor, ...(reason === undefined ? {} : { reason }) });
  }
}

function unknownAgent(agentId: string): AgentActionResult {
  return { kind: 'refused', code: 'UNKNOWN_AGENT', message: `agent ${agentId} is not in the inventory of the served commit` };
}
