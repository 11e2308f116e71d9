import type { AgentId, CommitSha, Labels } from '../domain/types.js';
import type { ActiveVersion, AgentState, Quarantine } from './store.js';

/**
 * The fleet as the server's live view (`FleetCache`, src/server/fleet.ts) shows it to the
 * admin API, the dashboard and metrics: declared here, next to the records it is made of, so
 * that `admin/` reads it without importing `server/`.
 */
export interface DesiredVersion {
  readonly commit: CommitSha;
  readonly digest: string;
  readonly generation: number;
  /** The repository's baseline (the agent is quarantined), not the agent's own bundle. */
  readonly baseline?: boolean;
}

/** The agent's last rejection of a delivery, kept until it applies that bundle or one of a newer commit (accepted after the rejected one). */
export interface LastRejection {
  /** The commit whose bundle it rejected (an agent held back by the rollout runs an older commit than the generation's). */
  readonly commit: string;
  readonly digest: string;
  /** The agent's error, as it sent it. */
  readonly error: string;
  readonly at: Date;
}

/** One agent as the admin API shows it. */
export interface AgentStatus {
  readonly id: AgentId;
  readonly labels: Labels;
  /** Its rollout wave in the served commit ('' when unknown). */
  readonly wave: string;
  readonly state: AgentState;
  readonly desired: DesiredVersion | null;
  readonly active: ActiveVersion | null;
  readonly certSerial: string | null;
  readonly certExpiry: Date | null;
  readonly lastSeen: Date | null;
  readonly connected: boolean;
  /** The error of the last REJECTED ack for the desired digest, if it is NACKED. */
  readonly lastError: string | null;
  readonly quarantine: Quarantine | null;
  /** Stays visible after the agent went back to its previous config (or was offered the bundle again). */
  readonly lastRejection: LastRejection | null;
}
