import type { JsonObject, JsonValue } from '../../domain/types.js';
import { isJsonObject } from '../merge.js';
import { toPointer } from '../pointer.js';

/**
 * Helpers for reading documents of unknown shape. Rules run on whatever arrives,
 * including documents that failed the schema, so every read narrows first.
 */

export { isJsonObject };

/** `value[key]` for a plain object, else undefined; own keys only, so `__proto__` reads nothing. */
export function field(value: JsonValue | undefined, key: string): JsonValue | undefined {
  return isJsonObject(value) && Object.hasOwn(value, key) ? value[key] : undefined;
}

export function isFiniteNumber(value: JsonValue | undefined): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

/** A JSON pointer from unescaped tokens, e.g. `pointer('routes', 0, 'name')` → `/routes/0/name`. */
export function pointer(...tokens: readonly (string | number)[]): string {
  return toPointer(tokens);
}

/** One value met by `walk`. Its pointer is built only on request (`pointerOf`): most values are never reported. */
export interface WalkNode {
  readonly value: JsonValue;
  /** The nearest object key above `value`: its own key, or for a list item the list's key. */
  readonly key: string | undefined;
  /** Whether `value` is a list item (so `key` names the list, not the value). */
  readonly inArray: boolean;
  readonly token: string | number | undefined;
  readonly parent: WalkNode | undefined;
}

/**
 * Calls `visit` for every value of a document in document order (pre-order, keys in
 * insertion order). Iterative, so a deeply nested document cannot overflow the stack;
 * each container is entered once, so a YAML alias cycle cannot loop forever. Runs for
 * every agent, so it allocates one small node per value and builds no path strings.
 */
export function walk(root: JsonValue, visit: (node: WalkNode) => void): void {
  const seen = new WeakSet<object>();
  const stack: WalkNode[] = [{ value: root, key: undefined, inArray: false, token: undefined, parent: undefined }];
  for (let node = stack.pop(); node !== undefined; node = stack.pop()) {
    visit(node);
    const { value } = node;
    if (typeof value !== 'object' || value === null || seen.has(value)) continue;
    seen.add(value);
    if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i--) {
        stack.push({ value: value[i]!, key: node.key, inArray: true, token: i, parent: node });
      }
    } else {
      const keys = Object.keys(value);
      for (let i = keys.length - 1; i >= 0; i--) {
        const k = keys[i]!;
        stack.push({ value: value[k]!, key: k, inArray: false, token: k, parent: node });
      }
    }
  }
}

/** The JSON pointer of a node met by `walk`. */
export function pointerOf(node: WalkNode): string {
  const tokens: (string | number)[] = [];
  for (let n: WalkNode | undefined = node; n?.token !== undefined; n = n.parent) tokens.push(n.token);
  return pointer(...tokens.reverse());
}

/**
 * Orders JSON pointers segment by segment, numeric segments numerically, so
 * `/routes/2` sorts before `/routes/10` and findings read in document order.
 */
export function comparePointers(a: string, b: string): number {
  const as = a.split('/');
  const bs = b.split('/');
  for (let i = 0; i < Math.min(as.length, bs.length); i++) {
    const x = as[i]!;
    const y = bs[i]!;
    if (x === y) continue;
    const nx = /^\d+$/.test(x) ? Number(x) : NaN;
    const ny = /^\d+$/.test(y) ? Number(y) : NaN;
    if (!Number.isNaN(nx) && !Number.isNaN(ny)) return nx - ny;
    return x < y ? -1 : 1;
  }
  return as.length - bs.length;
}
