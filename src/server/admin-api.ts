import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { AdminServer, AdminTokens, type AdminApi, type AdminRefusalReason, type AlertView, type SourceView } from '../admin/index.js';
import type { AgentId } from '../domain/types.js';
import type { AgentStatus, AuditStore, FleetStore } from '../fleet/index.js';
import type { DataDir } from '../pki/index.js';
import type { RolloutStatus } from '../rollout/index.js';
import { describeSkipped } from '../source/index.js';
import { loadAdminTls, warnBeyondLoopback } from './admin-tls.js';
import type { ServerConfig } from './config.js';
import type { ReplicaInfo } from '../admin/index.js';
import { adminLogHooks, operatorActionLogHooks } from './logging.js';
import { OperatorActions, type OperatorActionsOptions } from './operator-actions.js';
import type { Reconciler } from './reconcile.js';

/** The ports the admin API reads; declared here, implemented by the server's parts. */
export interface ServerAdminApiOptions {
  /** Every action an operator may take. */
  readonly actions: OperatorActions;
  /** Agents of the served commit's inventory. */
  readonly inventory: { has(agentId: AgentId): boolean };
  readonly fleet: { list(): readonly AgentStatus[] };
  readonly audit: Pick<AuditStore, 'listAudit'>;
  readonly alerts: { recent(limit: number): readonly AlertView[] };
  readonly reconciler: Pick<Reconciler, 'status' | 'served' | 'seenAt'>;
  /** The tracked branch. */
  readonly branch: string;
  readonly rollout: { status(): RolloutStatus };
  readonly ready: () => boolean;
  /** This replica's id and whether it leads. */
  readonly replica: () => ReplicaInfo;
  readonly metrics: { text(): Promise<{ readonly contentType: string; readonly body: string }> };
}

/** The server's `AdminApi`: views of its parts, and the operator actions. Holds no state of its own. */
export class ServerAdminApi implements AdminApi {
  constructor(private readonly options: ServerAdminApiOptions) {}

  isKnownAgent(agentId: AgentId): boolean {
    return this.options.inventory.has(agentId);
  }

  createToken(agentId: AgentId, ttlMs: number, actor: string): Promise<{ readonly token: string; readonly expiresAt: Date }> {
    return this.options.actions.createToken(agentId, ttlMs, actor);
  }

  agents(): readonly AgentStatus[] {
    return this.options.fleet.list();
  }

  audit(limit: number): ReturnType<AdminApi['audit']> {
    return this.options.audit.listAudit({ limit });
  }

  alerts(limit: number): readonly AlertView[] {
    return this.options.alerts.recent(limit);
  }

  approve(agentId: AgentId, actor: string, reason: string): ReturnType<AdminApi['approve']> {
    return this.options.actions.approve(agentId, actor, reason);
  }

  quarantine(agentId: AgentId, actor: string, reason: string): ReturnType<AdminApi['quarantine']> {
    return this.options.actions.quarantine(agentId, actor, reason);
  }

  revoke(agentId: AgentId, actor: string, reason: string): ReturnType<AdminApi['revoke']> {
    return this.options.actions.revoke(agentId, actor, reason);
  }

  source(): SourceView {
    const { reconciler } = this.options;
    const s = reconciler.status();
    const served = reconciler.served()?.compilation;
    const warnings = (served?.skipped ?? []).map((entry) => ({ kind: entry.kind, path: entry.path, message: describeSkipped(entry) }));
    const commit = served?.commit;
    const acceptedCommit =
      commit === undefined
        ? null
        : {
            sha: commit.sha,
            signer: commit.trust.kind === 'verified' ? commit.trust.signer : null,
            subject: commit.message.split('\n', 1)[0] ?? '',
            committedAt: commit.committedAt,
            seenAt: reconciler.seenAt(commit.sha) ?? null,
          };
    return {
      branch: this.options.branch,
      head: s.head,
      accepted: s.serving,
      acceptedCommit,
      generation: s.generation,
      refused: s.refused,
      conditions: s.conditions,
      warnings,
      replica: this.options.replica(),
    };
  }

  rollout(): RolloutStatus {
    return this.options.rollout.status();
  }

  rolloutAction(...args: Parameters<AdminApi['rolloutAction']>): ReturnType<AdminApi['rolloutAction']> {
    return this.options.actions.rolloutAction(...args);
  }

  createAdminToken(...args: Parameters<AdminApi['createAdminToken']>): ReturnType<AdminApi['createAdminToken']> {
    return this.options.actions.createAdminToken(...args);
  }

  listAdminTokens(): ReturnType<AdminApi['listAdminTokens']> {
    return this.options.actions.listAdminTokens();
  }

  revokeAdminToken(...args: Parameters<AdminApi['revokeAdminToken']>): ReturnType<AdminApi['revokeAdminToken']> {
    return this.options.actions.revokeAdminToken(...args);
  }

  ready(): boolean {
    return this.options.ready();
  }

  replica(): ReplicaInfo {
    return this.options.replica();
  }

  metrics(): ReturnType<AdminApi['metrics']> {
    return this.options.metrics.text();
  }
}

export interface StartAdminApiOptions extends Omit<ServerAdminApiOptions, 'actions' | 'audit'> {
  readonly config: Pick<ServerConfig, 'listen' | 'adminTls'>;
  readonly dataDir: DataDir;
  /** Named admin tokens and the audit log. */
  readonly store: FleetStore;
  /** The parts the operator actions drive (tokens, audit and log hooks are added here). */
  readonly actions: Omit<OperatorActionsOptions, 'adminTokens' | 'audit' | 'hooks' | 'now'>;
  /** A refused request (metrics count them). */
  readonly onRefused: (reason: AdminRefusalReason) => void;
  readonly logger: Logger;
  readonly now: () => Date;
}

/** The admin side of the server: credentials (bootstrap and named tokens), operator actions, the API, TLS, the listener. */
export async function startAdminApi(options: StartAdminApiOptions): Promise<AdminServer> {
  const { config, dataDir, store, logger, now } = options;
  const bootstrapToken = (await readFile(dataDir.paths.adminToken, 'utf8')).trim();
  const adminTokens = new AdminTokens({ store, bootstrapToken, now });
  const actions = new OperatorActions({ ...options.actions, adminTokens, audit: store, hooks: operatorActionLogHooks(logger), now });
  const api = new ServerAdminApi({ ...options, actions, audit: store });
  const tls = await loadAdminTls(config.adminTls, dataDir);
  warnBeyondLoopback(logger, config.listen.admin.host, tls !== undefined);
  return AdminServer.start({
    host: config.listen.admin.host,
    port: config.listen.admin.port,
    credentials: adminTokens,
    ...(tls === undefined ? {} : { tls }),
    api,
    hooks: adminLogHooks(logger, options.onRefused),
  });
}
