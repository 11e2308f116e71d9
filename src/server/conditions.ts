import type { Condition, ConditionType } from '../domain/condition.js';

export type { Condition, ConditionType };

const ORDER: readonly ConditionType[] = ['SourceFetched', 'SourceVerified', 'Compiled', 'Ready'];

/** A set of conditions that keeps transition times stable while the status does not change. */
export class Conditions {
  private readonly byType = new Map<ConditionType, Condition>();

  constructor(private readonly now: () => Date) {
    for (const type of ORDER) this.set(type, 'Unknown', 'Pending', 'not evaluated yet');
  }

  set(type: ConditionType, status: Condition['status'], reason: string, message: string): void {
    const previous = this.byType.get(type);
    const lastTransitionTime =
      previous !== undefined && previous.status === status ? previous.lastTransitionTime : this.now().toISOString();
    this.byType.set(type, Object.freeze({ type, status, reason, message, lastTransitionTime }));
  }

  get(type: ConditionType): Condition {
    return this.byType.get(type) as Condition;
  }

  list(): readonly Condition[] {
    return ORDER.map((t) => this.get(t));
  }
}

/** `NOT_FAST_FORWARD` → `NotFastForward`. */
export function reasonOf(code: string): string {
  return code
    .toLowerCase()
    .split(/[_-]/)
    .map((w) => (w === '' ? '' : w[0]?.toUpperCase() + w.slice(1)))
    .join('');
}
