import type { JsonObject, JsonValue } from '../domain/types.js';

/**
 * The layer merge (docs/architecture.md): maps merge deeply, lists and scalars replace, `null` deletes
 * a key. This is the hot path (one call per layer per distinct layer list), so it tracks no
 * provenance; `provenance.ts` implements the same rules with tracking, for the error path.
 *
 * Contracts:
 * - Inputs are never mutated. The result shares unchanged subtrees with its inputs by
 *   reference, so inputs must be immutable (parsed layers and cached documents are frozen).
 * - `null` inside a map always means "delete": a merged document never holds a `null` map
 *   member, even where a layer introduces a map the layers below did not have (so `null` at a
 *   key that does not exist is a no-op). `null` inside a list is a value: lists are taken whole.
 */
export function mergeLayer(base: JsonObject, layer: JsonObject): JsonObject {
  const out: JsonObject = { ...base };
  for (const key of Object.keys(layer)) {
    const value = layer[key] as JsonValue;
    if (value === null) {
      delete out[key];
    } else if (isJsonObject(value)) {
      const below = out[key];
      out[key] = below !== undefined && isJsonObject(below) ? mergeLayer(below, value) : withoutNullMembers(value);
    } else {
      out[key] = value;
    }
  }
  return out;
}

/** Merges layers in order onto an empty document. */
export function mergeLayers(layers: readonly JsonObject[]): JsonObject {
  let merged: JsonObject = {};
  for (const layer of layers) merged = mergeLayer(merged, layer);
  return merged;
}

/**
 * A map as it lands where nothing was below it: its `null` members deleted, recursively
 * (lists are values and left alone). Returns the same object when there is nothing to delete,
 * which is the common case and keeps cached documents sharing the parsed layers' structure.
 */
export function withoutNullMembers(map: JsonObject): JsonObject {
  let out: JsonObject | undefined;
  for (const key of Object.keys(map)) {
    const value = map[key] as JsonValue;
    let next: JsonValue | undefined = value;
    if (value === null) next = undefined;
    else if (isJsonObject(value)) next = withoutNullMembers(value);
    if (next === value) continue;
    out ??= { ...map };
    if (next === undefined) delete out[key];
    else out[key] = next;
  }
  return out ?? map;
}

export function isJsonObject(value: JsonValue | undefined): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
