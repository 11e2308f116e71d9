/**
 * Health reported as conditions, like Kubernetes/flux status: one per aspect, each saying
 * whether it holds, a machine-readable reason and a human message.
 */
export type ConditionType = 'SourceFetched' | 'SourceVerified' | 'Compiled' | 'Ready';

export interface Condition {
  readonly type: ConditionType;
  readonly status: 'True' | 'False' | 'Unknown';
  /** CamelCase, stable: alerting may match on it. */
  readonly reason: string;
  readonly message: string;
  /** When `status` last changed. */
  readonly lastTransitionTime: string;
}
