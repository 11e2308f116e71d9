import type { JsonObject, JsonValue } from '../domain/types.js';
import { assertNever, canonicalJson } from '../lib/index.js';
import { isJsonObject } from './merge.js';
import { appendPointer } from './pointer.js';
import { isSecretKey } from './policy/no-embedded-secrets.js';

/**
 * Structural diff of two JSON documents, for `meshcfg plan --base` ("how does this agent's
 * config change?").
 */
export type DiffOp =
  | { readonly op: 'add'; readonly path: string; readonly after: JsonValue }
  | { readonly op: 'remove'; readonly path: string; readonly before: JsonValue }
  | { readonly op: 'replace'; readonly path: string; readonly before: JsonValue; readonly after: JsonValue };

/**
 * The differences between two documents, as JSON-pointer operations in a deterministic order
 * (object keys in code-unit order). Maps are compared key by key; lists item by item, with
 * items past the shorter list added (ascending) or removed (descending); anything else that
 * differs — including a map that became a list — is one `replace`. Applied in order, the ops
 * are a valid RFC 6902 JSON Patch from `before` to `after`. Subtrees the two documents share by
 * reference (as documents from one compiler often do) are skipped without being walked.
 */
export function diffDocuments(before: JsonValue, after: JsonValue): DiffOp[] {
  const ops: DiffOp[] = [];
  diffValue(before, after, '', ops);
  return ops;
}

function diffValue(before: JsonValue, after: JsonValue, path: string, ops: DiffOp[]): void {
  if (before === after) return;
  if (isJsonObject(before) && isJsonObject(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    for (const key of keys) {
      const child = appendPointer(path, key);
      const had = Object.hasOwn(before, key);
      const has = Object.hasOwn(after, key);
      if (had && has) diffValue(before[key] as JsonValue, after[key] as JsonValue, child, ops);
      else if (has) ops.push({ op: 'add', path: child, after: after[key] as JsonValue });
      else ops.push({ op: 'remove', path: child, before: before[key] as JsonValue });
    }
    return;
  }
  if (Array.isArray(before) && Array.isArray(after)) {
    const common = Math.min(before.length, after.length);
    for (let i = 0; i < common; i++) diffValue(before[i] as JsonValue, after[i] as JsonValue, appendPointer(path, i), ops);
    for (let i = common; i < after.length; i++) ops.push({ op: 'add', path: appendPointer(path, i), after: after[i] as JsonValue });
    for (let i = before.length - 1; i >= common; i--) ops.push({ op: 'remove', path: appendPointer(path, i), before: before[i] as JsonValue });
    return;
  }
  ops.push({ op: 'replace', path, before, after });
}

/**
 * A key identifying a change independently of which agent it happened to: agents whose diffs
 * have equal keys changed the same way, so `plan` can show one diff per distinct change.
 */
export function changeKey(ops: readonly DiffOp[]): string {
  return canonicalJson(
    ops.map((op): JsonObject => {
      switch (op.op) {
        case 'add':
          return { op: op.op, path: op.path, after: op.after };
        case 'remove':
          return { op: op.op, path: op.path, before: op.before };
        case 'replace':
          return { op: op.op, path: op.path, before: op.before, after: op.after };
        default:
          return assertNever(op);
      }
    }),
  );
}

export interface RenderOptions {
  /** Longest value shown before it is cut with `…`. Default 120 characters. */
  readonly maxValueLength?: number;
}

export const REDACTED = '<redacted>';

/**
 * Readable lines for a diff, one per op:
 *
 *     ~ /mtls/mode: "PERMISSIVE" → "STRICT"
 *     + /routes/2: {"destination":"api:443","name":"api"}
 *     - /telemetry/accessLog: true
 *
 * Plan output lands in CI logs, so strings that are or look like credentials (under a key
 * named like password/secret/token/api key/private key, or holding a private key, an AWS key
 * id or an HTTP credential) are shown as `<redacted>` — a commit adding one is blocked by
 * `no-embedded-secrets`, but its diff is printed too.
 */
export function renderDiff(ops: readonly DiffOp[], options: RenderOptions = {}): string[] {
  const max = options.maxValueLength ?? 120;
  const show = (value: JsonValue, path: string): string => truncate(canonicalJson(redact(value, lastKey(path))), max);
  return ops.map((op) => {
    switch (op.op) {
      case 'add':
        return `+ ${op.path || '/'}: ${show(op.after, op.path)}`;
      case 'remove':
        return `- ${op.path || '/'}: ${show(op.before, op.path)}`;
      case 'replace':
        return `~ ${op.path || '/'}: ${show(op.before, op.path)} → ${show(op.after, op.path)}`;
      default:
        return assertNever(op);
    }
  });
}

/** Broad on purpose: a false positive only hides a harmless value. */
const LOOKS_SECRET = /PRIVATE KEY|(?:AKIA|ASIA)[A-Z0-9]{16}|^\s*(?:bearer|basic)\s+\S/i;

function redact(value: JsonValue, key: string | undefined): JsonValue {
  if (typeof value === 'string') {
    return (key !== undefined && isSecretKey(key) && value.trim() !== '') || LOOKS_SECRET.test(value) ? REDACTED : value;
  }
  if (Array.isArray(value)) return value.map((item) => redact(item, key));
  if (isJsonObject(value)) {
    const out: { [key: string]: JsonValue } = {};
    for (const k of Object.keys(value)) out[LOOKS_SECRET.test(k) ? REDACTED : k] = redact(value[k] as JsonValue, k);
    return out;
  }
  return value;
}

/** The object key a pointer ends in; for a list item, the list's key. */
function lastKey(path: string): string | undefined {
  const tokens = path.split('/').slice(1);
  for (let i = tokens.length - 1; i >= 0; i--) {
    const token = tokens[i] as string;
    if (!/^(0|[1-9][0-9]*)$/.test(token)) return token.replaceAll('~1', '/').replaceAll('~0', '~');
  }
  return undefined;
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, Math.max(0, max - 1))}…`;
}
