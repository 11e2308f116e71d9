import type { JsonObject, JsonValue } from '../../domain/types.js';
import { isJsonObject } from '../merge.js';
import { readSelector, selectorKey } from '../selector.js';
import type { Selector } from '../types.js';
import { describeValue, invalid, ok, unknownKeys, type ReadResult } from './read.js';

/** An overlay file: the layer `config`, applied to the agents `match` selects. */
export interface Overlay {
  readonly selector: Selector;
  /** Content key of the selector: overlays whose `config` changes but whose `match` does not keep their selection cached. */
  readonly selectorKey: string;
  readonly config: JsonObject;
}

/**
 * Reads a plain layer (base, agent file, baseline): a map, merged as is. An empty file is an
 * empty layer, which lets a team keep a placeholder file.
 */
export function readDocumentLayer(doc: JsonValue): ReadResult<JsonObject> {
  if (doc === null) return ok(Object.freeze({}));
  if (!isJsonObject(doc)) return invalid([{ path: '', message: `a config layer must be a map, not ${describeValue(doc)}` }]);
  return ok(doc);
}

/**
 * Reads `config/overlays/*.yaml`: `{match, config}`. Both are required: an overlay without
 * `match` would silently apply to nobody or everybody depending on a guess, and one without
 * `config` is most likely a misspelt key. `match: {}` deliberately selects every agent.
 */
export function readOverlay(doc: JsonValue): ReadResult<Overlay> {
  if (!isJsonObject(doc)) {
    return invalid([{ path: '', message: `an overlay must be a map with \`match\` and \`config\`, not ${describeValue(doc)}` }]);
  }
  const problems = unknownKeys(doc, ['match', 'config'], '');
  const match = doc['match'];
  const selector =
    match === undefined
      ? invalid<Selector>([{ path: '', message: 'an overlay needs `match:` (use `match: {}` to select every agent)' }])
      : readSelector(match, '/match');
  if (selector.kind === 'invalid') problems.push(...selector.problems);
  const config = doc['config'];
  if (config === undefined) problems.push({ path: '', message: 'an overlay needs `config:`' });
  else if (!isJsonObject(config)) problems.push({ path: '/config', message: `\`config\` must be a map, not ${describeValue(config)}` });

  if (problems.length > 0 || selector.kind !== 'ok' || config === undefined || !isJsonObject(config)) return invalid(problems);
  return ok(Object.freeze({ selector: selector.value, selectorKey: selectorKey(selector.value), config }));
}
