import type { JsonObject, JsonValue } from '../domain/types.js';

/** Freezes a JSON value and everything under it. Already-frozen subtrees (shared with cached documents) are skipped. */
export function deepFreeze<T extends JsonValue>(value: T): T {
  if (value === null || typeof value !== 'object' || Object.isFrozen(value)) return value;
  Object.freeze(value);
  if (Array.isArray(value)) {
    for (const item of value) deepFreeze(item);
  } else {
    for (const key of Object.keys(value)) deepFreeze((value as JsonObject)[key] as JsonValue);
  }
  return value;
}
