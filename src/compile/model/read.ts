import type { JsonObject, JsonValue } from '../../domain/types.js';
import { isJsonObject } from '../merge.js';
import { appendPointer } from '../pointer.js';

/**
 * Small helpers for reading repository files whose shape the compiler itself relies on
 * (inventory, overlays, settings). Problems are values: a bad file becomes `schema`
 * violations naming it, never an exception.
 */

export interface StructuralProblem {
  /** JSON pointer into the file. */
  readonly path: string;
  readonly message: string;
}

export type ReadResult<T> =
  | { readonly kind: 'ok'; readonly value: T }
  | { readonly kind: 'invalid'; readonly problems: readonly StructuralProblem[] };

export function ok<T>(value: T): ReadResult<T> {
  return { kind: 'ok', value };
}

export function invalid<T>(problems: readonly StructuralProblem[]): ReadResult<T> {
  return { kind: 'invalid', problems };
}

/** Reports keys outside `allowed` — misspelt keys must not pass silently. */
export function unknownKeys(map: JsonObject, allowed: readonly string[], pointer: string): StructuralProblem[] {
  return Object.keys(map)
    .filter((key) => !allowed.includes(key))
    .map((key) => ({
      path: appendPointer(pointer, key),
      message: `unknown key ${JSON.stringify(key)} (expected ${allowed.map((k) => JSON.stringify(k)).join(', ')})`,
    }));
}

export function describeValue(value: JsonValue | undefined): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return isJsonObject(value) ? 'a map' : `a ${typeof value}`;
}
