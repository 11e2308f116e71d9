import type { AgentId, CommitSha } from '../domain/types.js';
import { parseDuration } from '../domain/duration.js';
import { quarantineStaleAfterMs } from '../rollout/index.js';
import type { Inventory } from './backend.js';
import type { PublishedAgent } from './fleet.js';
import type { ReconcileHooks } from './reconcile.js';

/** The ack timeout when meshcfg.yaml sets no `rollout.ackTimeout`. */
export const DEFAULT_ACK_TIMEOUT_MS = 120_000;

/** The agents of the served commit's inventory; replaced on every publication. */
export class PublishedInventory implements Inventory {
  private agents: ReadonlySet<AgentId> = new Set();

  set(agents: Iterable<AgentId>): void {
    this.agents = new Set(agents);
  }

  has(agentId: AgentId): boolean {
    return this.agents.has(agentId);
  }
}

/** The ports a publication updates, declared here. */
export interface PublishedHooksOptions {
  readonly inventory: PublishedInventory;
  readonly fleet: { setAckTimeout(ms: number): void; setDesired(agents: readonly PublishedAgent[]): void };
  readonly quarantine: { setStaleAfter(ms: number | null): void };
  /** The commit the rollout gives an agent (an agent held back runs an older one). */
  readonly rollout: { desiredCommit(agentId: AgentId): CommitSha | null };
  /** gRPC health: SERVING once a commit is published. */
  readonly serving: { setServing(serving: boolean): void };
}

/**
 * What follows a publication: the inventory, the fleet's desired versions and ack timeout,
 * the quarantine's stale-after setting, and readiness.
 */
export function publishedHooks(options: PublishedHooksOptions): ReconcileHooks {
  return {
    onPublished: ({ snapshot, compilation }) => {
      options.inventory.set(compilation.agents.map((a) => a.id));
      const ackTimeout = compilation.settings?.rollout['ackTimeout'];
      options.fleet.setAckTimeout((typeof ackTimeout === 'string' ? parseDuration(ackTimeout) : undefined) ?? DEFAULT_ACK_TIMEOUT_MS);
      options.quarantine.setStaleAfter(quarantineStaleAfterMs(compilation.settings));
      options.fleet.setDesired(
        compilation.agents.map((a) => {
          const d = snapshot.deliveries.get(a.id);
          return {
            id: a.id,
            labels: a.labels,
            wave: a.wave,
            // A generation names one commit; an agent held back by the rollout runs an older one.
            desired:
              d === undefined
                ? null
                : {
                    commit: (d.baseline ? null : options.rollout.desiredCommit(a.id)) ?? d.commit,
                    digest: d.digest,
                    generation: d.generation,
                    baseline: d.baseline,
                  },
          };
        }),
      );
      options.serving.setServing(true);
    },
  };
}
