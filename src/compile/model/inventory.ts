import { isAgentId } from '../../domain/agent-id.js';
import type { AgentId, JsonValue, Labels } from '../../domain/types.js';
import { isJsonObject } from '../merge.js';
import { appendPointer } from '../pointer.js';
import { readLabels, selectorKey } from '../selector.js';
import { describeValue, unknownKeys, type StructuralProblem } from './read.js';

/** One agent as an inventory file declares it. */
export interface InventoryEntry {
  readonly id: AgentId;
  readonly labels: Labels;
  /** Content key of `labels`: agents with equal keys select the same overlays. */
  readonly labelKey: string;
  /** Where in its file the entry is (`/agents/3`), for cross-file violations such as duplicates. */
  readonly pointer: string;
}

export { isAgentId };

/**
 * Reads `inventory/*.yaml`: `agents: [{id, labels}]`. Reading is partial: a bad entry is
 * reported and left out, the good ones are kept, so one typo does not hide every other
 * problem in a `plan`. An empty file declares no agents.
 */
export function readInventory(doc: JsonValue): { agents: readonly InventoryEntry[]; problems: readonly StructuralProblem[] } {
  if (doc === null) return { agents: [], problems: [] };
  if (!isJsonObject(doc)) {
    return { agents: [], problems: [{ path: '', message: `an inventory file must be a map with \`agents:\`, not ${describeValue(doc)}` }] };
  }
  const problems: StructuralProblem[] = unknownKeys(doc, ['agents'], '');
  const list = doc['agents'];
  if (list === undefined || list === null) return { agents: [], problems };
  if (!Array.isArray(list)) {
    problems.push({ path: '/agents', message: `\`agents\` must be a list, not ${describeValue(list)}` });
    return { agents: [], problems };
  }

  const agents: InventoryEntry[] = [];
  list.forEach((item, index) => {
    const pointer = appendPointer('/agents', index);
    if (!isJsonObject(item)) {
      problems.push({ path: pointer, message: `an agent must be a map with \`id\` and \`labels\`, not ${describeValue(item)}` });
      return;
    }
    const before = problems.length;
    problems.push(...unknownKeys(item, ['id', 'labels'], pointer));
    const id = item['id'];
    if (typeof id !== 'string' || !isAgentId(id)) {
      problems.push({
        path: appendPointer(pointer, 'id'),
        message: `agent id ${JSON.stringify(id ?? null)} is not a DNS label (lowercase letters, digits and '-', at most 63 characters)`,
      });
    }
    const labels = readLabels(item['labels'], appendPointer(pointer, 'labels'));
    if (labels.kind === 'invalid') problems.push(...labels.problems);
    if (problems.length > before || !isAgentId(id) || labels.kind !== 'ok') return;
    agents.push(Object.freeze({ id, labels: labels.value, labelKey: selectorKey(labels.value), pointer }));
  });
  return { agents, problems };
}
