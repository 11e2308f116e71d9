import type { Labels } from '../domain/types.js';
import type { Memo } from './cache.js';
import type { InventoryAgent, OverlayLayer } from './model/repository.js';
import { matchesSelector } from './selector.js';

/** Agents with identical labels: they select the same overlays, so selectors run once per group. */
export interface LabelGroup {
  readonly labels: Labels;
  readonly agents: readonly InventoryAgent[];
}

/**
 * Groups agents by label set, in order of first appearance (so group indices are a pure
 * function of the inventory). With `shareLabels` false every agent is its own group: the
 * naive, uncached baseline.
 */
export function groupAgents(agents: readonly InventoryAgent[], shareLabels: boolean): LabelGroup[] {
  if (!shareLabels) return agents.map((agent) => ({ labels: agent.labels, agents: [agent] }));
  const groups = new Map<string, { labels: Labels; agents: InventoryAgent[] }>();
  for (const agent of agents) {
    const group = groups.get(agent.labelKey);
    if (group === undefined) groups.set(agent.labelKey, { labels: agent.labels, agents: [agent] });
    else group.agents.push(agent);
  }
  return [...groups.values()];
}

/**
 * The overlays each group selects, in file-name order.
 *
 * The memo maps (inventory content, selector) → indices of the groups the selector matches.
 * Group indices depend only on the inventory, so the key is sound; an overlay whose `config`
 * changes keeps its selection, and only an overlay with a new `match` is evaluated again.
 * Building the per-group lists costs the number of matches, not groups × overlays.
 */
export function selectOverlays(
  overlays: readonly OverlayLayer[],
  groups: readonly LabelGroup[],
  inventoryKey: string,
  memo: Memo<Uint32Array>,
): OverlayLayer[][] {
  const selected: OverlayLayer[][] = groups.map(() => []);
  for (const overlay of overlays) {
    const matches = memo.get(`${inventoryKey}\u0000${overlay.selectorKey}`, () => {
      const indices: number[] = [];
      groups.forEach((group, index) => {
        if (matchesSelector(overlay.selector, group.labels)) indices.push(index);
      });
      return Uint32Array.from(indices);
    });
    for (const index of matches) selected[index]?.push(overlay);
  }
  return selected;
}
