import type { AgentId, CommitSha } from '../domain/types.js';
import type { FetchEvent } from '../source/index.js';
import type { BackendHooks } from './backend.js';
import type { Reconciler, ReconcileResult, ReconcileStatus } from './reconcile.js';

/*
 * The server's parts form two cycles: the source, the rollout service, quarantine and metrics
 * are built before the reconciler (it takes their policy and trees) yet call it; the backend
 * is built before the gRPC transport (it serves it) yet ends its streams. Each cycle is closed
 * by one link, bound once by the composition root, with a stated answer before it is bound.
 */

/** The reconciler as the parts built before it see it. */
export class ReconcilerLink {
  private target: Reconciler | undefined;

  bind(reconciler: Reconciler): void {
    this.target = reconciler;
  }

  /** The GitSource `onFetch` hook; before binding no fetch runs (the source starts last). */
  readonly onFetch = (event: FetchEvent): void => this.target?.onFetch(event);

  /** Signs and publishes again; nothing is published before binding, so nothing to do. */
  republish(): Promise<ReconcileResult | null> {
    return this.target?.republish() ?? Promise.resolve(null);
  }

  seenAt(commit: CommitSha): Date | undefined {
    return this.target?.seenAt(commit);
  }

  /** The commit being served, '' before any. */
  servingCommit(): string {
    return this.target?.served()?.snapshot.commit ?? '';
  }

  /** Ready: a commit is served. */
  ready(): boolean {
    return this.target?.served() != null;
  }

  /** See `Reconciler.bundleCommit`; null before binding. */
  bundleCommit(agentId: AgentId, digest: string): CommitSha | null {
    return this.target?.bundleCommit(agentId, digest) ?? null;
  }

  status(): ReconcileStatus | null {
    return this.target?.status() ?? null;
  }

  served(): ReturnType<Reconciler['served']> {
    return this.target?.served() ?? null;
  }
}

/** What the server needs from the gRPC transport (GrpcServer satisfies it). */
export interface TransportHandle {
  readonly port: number;
  setServing(serving: boolean): void;
  /** Ends the agent's open streams whose certificate is no longer accepted (revoked, replaced). */
  recheckStreams(agentId: AgentId): void;
  shutdown(deadlineMs?: number): Promise<void>;
}

/**
 * The transport as the parts built before it see it: calls before binding do nothing (no stream
 * is open yet). The metrics, built before the backend, count its sessions through it too.
 */
export class TransportLink {
  private target: TransportHandle | undefined;
  private sessions: { connectedCount(): number } | undefined;

  bind(transport: TransportHandle): void {
    this.target = transport;
  }

  /** The backend, bound as soon as it is built (before the transport starts). */
  bindSessions(sessions: { connectedCount(): number }): void {
    this.sessions = sessions;
  }

  /** Agents with an open stream; 0 before the backend is bound. */
  connectedCount(): number {
    return this.sessions?.connectedCount() ?? 0;
  }

  setServing(serving: boolean): void {
    this.target?.setServing(serving);
  }

  recheckStreams(agentId: AgentId): void {
    this.target?.recheckStreams(agentId);
  }
}

/**
 * A renewed or re-enrolled agent's older certificate is refused from now on; its open streams
 * end too: at once after an enrollment, after `graceMs` after a renewal (the agent moves its
 * stream onto the new certificate itself, and should not be counted as refused).
 */
export function replacedCertificateStreams(streams: { recheckStreams(agentId: AgentId): void }, graceMs: number): BackendHooks {
  return {
    onCertificateIssued: ({ agentId, kind }) => {
      if (kind === 'enroll') {
        streams.recheckStreams(agentId);
        return;
      }
      const timer = setTimeout(() => streams.recheckStreams(agentId), graceMs);
      timer.unref();
    },
  };
}
