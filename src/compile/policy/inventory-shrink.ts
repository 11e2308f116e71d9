import { isAgentId } from '../../domain/agent-id.js';
import type { AgentId, Violation } from '../../domain/types.js';
import { appendPointer } from '../pointer.js';
import type { Compilation } from '../types.js';

/** `policy.maxInventoryRemoval` when meshcfg.yaml does not set it. */
export const DEFAULT_MAX_INVENTORY_REMOVAL = 0.1;

/** Ratios are compared with this slack, so 1 of 10 is not "more than 0.1" by rounding. */
const EPSILON = 1e-9;

/** What one commit does to the inventory, compared with the previous accepted commit. */
export interface InventoryShrink {
  /** Agents of the previous commit the new one no longer has, sorted. */
  readonly removed: readonly AgentId[];
  /** Of those, the ones `policy.allowInventoryRemoval` names: they do not count. */
  readonly allowed: readonly AgentId[];
  /** The previous inventory's size (0 without a previous commit). */
  readonly before: number;
  readonly violations: readonly Violation[];
}

/**
 * Rule `inventory-shrink`: one signed commit must not cut off a large part of the fleet (every
 * agent not in the served inventory is refused on its next fetch). Unlike the per-document
 * rules it compares two commits, so it runs where both are known: the server compares a head
 * with the commit it serves, `plan` with `--base`. Pure.
 *
 * - An empty inventory is refused always, with or without a previous commit.
 * - With a previous commit: the agents removed and NOT listed in `policy.allowInventoryRemoval`
 *   may be at most `policy.maxInventoryRemoval` (a ratio, default 0.1) of the previous
 *   inventory.
 * - An agent listed in `policy.allowInventoryRemoval` that is (still, or again) in the
 *   inventory is refused: the list must name exactly agents that are gone, so a stale entry
 *   cannot silently authorize removing an agent that is added back later.
 */
export function inventoryShrink(previous: readonly AgentId[] | null, next: Compilation): InventoryShrink {
  const policy = next.settings?.policy;
  const max = policy?.maxInventoryRemoval ?? DEFAULT_MAX_INVENTORY_REMOVAL;
  const allowList = policy?.allowInventoryRemoval ?? [];
  const current = new Set(next.agents.map((a) => a.id));
  const violations: Violation[] = [];

  if (next.agents.length === 0) {
    violations.push({
      rule: 'inventory-shrink',
      message: 'the inventory is empty: every agent would be refused on its next fetch (an empty inventory is never accepted)',
    });
  }
  allowList.forEach((id, index) => {
    if (!isAgentId(id) || !current.has(id)) return;
    violations.push({
      rule: 'inventory-shrink',
      agent: id,
      file: 'meshcfg.yaml',
      path: appendPointer('/policy/allowInventoryRemoval', index),
      message: `${id} is listed in policy.allowInventoryRemoval but is in the inventory: remove the entry (a stale entry would let a later commit remove it unreviewed)`,
    });
  });

  const removed = previous === null ? [] : [...new Set(previous)].filter((id) => !current.has(id)).sort();
  const allowedSet = new Set(allowList);
  const allowed = removed.filter((id) => allowedSet.has(id));
  const counted = removed.filter((id) => !allowedSet.has(id));
  const before = previous === null ? 0 : new Set(previous).size;
  if (counted.length > 0 && next.agents.length > 0 && counted.length / before > max + EPSILON) {
    violations.push({
      rule: 'inventory-shrink',
      message:
        `removes ${counted.length} of ${before} agents (${percent(counted.length / before)}), more than policy.maxInventoryRemoval ` +
        `${percent(max)}: ${counted.join(', ')}; to decommission them deliberately, list them in policy.allowInventoryRemoval`,
    });
  }
  return { removed, allowed, before, violations };
}

function percent(ratio: number): string {
  return `${Math.round(ratio * 1000) / 10}%`;
}
