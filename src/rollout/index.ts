/**
 * The rollout layer's public API: pure decisions about which commit each agent should have
 * now (waves, windows, gates, halt, revert fast path, operator actions). No I/O, no clock.
 */
export { RolloutController } from './controller.js';
export type { RolloutControllerOptions } from './controller.js';
export { ROLLOUT_DEFAULTS, quarantineStaleAfterMs, rolloutCommitOf, rolloutSettings } from './settings.js';
export type { RolloutCommit, RolloutSettings } from './settings.js';
export { Windows, windowStatus } from './windows.js';
export type { WindowSpec, WindowStatus, WindowsOptions } from './windows.js';
export { ROLLOUT_DOCUMENT_VERSION } from './types.js';
export { RolloutError } from './errors.js';
export type { RolloutErrorCode } from './errors.js';
export type {
  AckStatus,
  ActionRefusalCode,
  ActionResult,
  AgentDeliveryState,
  AgentRolloutStatus,
  AppliedHistory,
  DesiredChange,
  OperatorAction,
  OperatorActionKind,
  RolloutChanges,
  RolloutDocumentV1,
  RolloutEvent,
  RevertedRevision,
  RolloutPath,
  RolloutState,
  RolloutStatus,
  StagedReason,
  WaveState,
  WaveStatus,
} from './types.js';
