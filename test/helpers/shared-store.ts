import type { AgentId } from '../../src/domain/types.js';
import type { FleetChange, FleetChangeEvent, FleetChangeFeed, FleetStore } from '../../src/fleet/index.js';

/**
 * One real fleet store (SQLite) shared by several servers in one test process, with the change
 * feed a shared PostgreSQL store gives them: every committed write is announced to every
 * subscriber, the writer's own included, after it committed — the same contract as
 * `pg_notify` inside the write transaction. `resync()` plays a lost-connection recovery.
 */
export interface SharedStore {
  readonly store: FleetStore;
  /** Announces `resync` (as after the listening connection came back). */
  resync(): void;
  /** Every change announced so far, in order. */
  readonly announced: FleetChangeEvent[];
}

export function shareStore(inner: FleetStore): SharedStore {
  const listeners = new Set<(event: FleetChangeEvent) => void>();
  const announced: FleetChangeEvent[] = [];
  const announce = (event: FleetChangeEvent): void => {
    announced.push(event);
    for (const listener of [...listeners]) {
      try {
        listener(event);
      } catch {
        // A throwing listener is not retried (FleetChangeFeed contract).
      }
    }
  };
  const changes: FleetChangeFeed = {
    subscribe: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
  const after =
    <A extends unknown[], R>(call: (...args: A) => Promise<R>, change: (args: A, result: R) => FleetChange | null) =>
    async (...args: A): Promise<R> => {
      const result = await call(...args);
      const event = change(args, result);
      if (event !== null) announce(event);
      return result;
    };
  const agents = (ids: readonly AgentId[]): FleetChange => ({ kind: 'agents', ids });
  const credentials = (): FleetChange => ({ kind: 'credentials' });
  const store: FleetStore = {
    changes,
    close: () => inner.close(),
    serverState: () => inner.serverState(),
    saveAccepted: after(inner.saveAccepted.bind(inner), () => ({ kind: 'server-state' })),
    saveRefusal: after(inner.saveRefusal.bind(inner), () => ({ kind: 'server-state' })),
    saveGeneration: (record) => inner.saveGeneration(record),
    latestGeneration: () => inner.latestGeneration(),
    getAgent: (id) => inner.getAgent(id),
    listAgents: () => inner.listAgents(),
    updateAgent: after(inner.updateAgent.bind(inner), ([id]) => agents([id])),
    updateAgents: after(inner.updateAgents.bind(inner), ([updates]) => (updates.length === 0 ? null : agents(updates.map((u) => u.id)))),
    removeAgents: after(inner.removeAgents.bind(inner), ([ids]) => agents(ids)),
    recordSend: after(inner.recordSend.bind(inner), ([send]) => agents([send.agentId])),
    recordAck: after(inner.recordAck.bind(inner), ([ack]) => agents([ack.agentId])),
    recordBatch: after(inner.recordBatch.bind(inner), ([writes]) =>
      writes.length === 0 ? null : agents(writes.map((w) => (w.kind === 'send' ? w.send.agentId : w.kind === 'ack' ? w.ack.agentId : w.id))),
    ),
    lastSend: (id) => inner.lastSend(id),
    listAcks: (id, page) => inner.listAcks(id, page),
    digestsApplied: (id) => inner.digestsApplied(id),
    wasIssued: (id, digest) => inner.wasIssued(id, digest),
    loadRollout: () => inner.loadRollout(),
    saveRollout: after(inner.saveRollout.bind(inner), (_args, revision) => ({ kind: 'rollout', revision })),
    tokens: inner.tokens,
    revoke: after(inner.revoke.bind(inner), credentials),
    isRevoked: (serial) => inner.isRevoked(serial),
    listRevocations: () => inner.listRevocations(),
    insertAdminToken: after(inner.insertAdminToken.bind(inner), credentials),
    adminTokenByHash: (hash) => inner.adminTokenByHash(hash),
    listAdminTokens: () => inner.listAdminTokens(),
    revokeAdminToken: after(inner.revokeAdminToken.bind(inner), credentials),
    setCurrentCertificate: after(inner.setCurrentCertificate.bind(inner), credentials),
    setCurrentCertificates: after(inner.setCurrentCertificates.bind(inner), ([records]) => (records.length === 0 ? null : credentials())),
    listCurrentCertificates: () => inner.listCurrentCertificates(),
    appendAudit: after(inner.appendAudit.bind(inner), () => ({ kind: 'audit' })),
    listAudit: (page) => inner.listAudit(page),
  };
  return { store, resync: () => announce({ kind: 'resync' }), announced };
}
