import {
  Composer,
  LineCounter,
  Parser,
  isMap,
  isPair,
  isScalar,
  isSeq,
  visit,
  type CST,
  type Document,
  type DocumentOptions,
  type ParseOptions,
  type SchemaOptions,
  type YAMLError,
} from 'yaml';

import type { JsonValue } from '../domain/types.js';
import { deepFreeze, hasLoneSurrogate } from '../lib/index.js';
import { appendPointer, parsePointer } from './pointer.js';

/**
 * YAML → JSON for config repository files.
 *
 * Repository content is signed, but signers make mistakes and a compromised signer key is in
 * the threat model, so parsing is defensive: a size cap before anything is decoded, fatal
 * UTF-8 decoding, a nesting-depth cap checked on the token stream before documents are built
 * (the `yaml` composer recurses per level: a 40 KB file of nested `[` overflows the stack,
 * and on V8 an overflow during a lazy regex compile aborts the whole process), duplicate keys
 * refused (YAML would silently keep the last one), an alias expansion budget against "billion
 * laughs", exactly one document per file, and only values JSON can carry (no timestamps,
 * binary, sets, non-finite numbers, lone surrogates or collection keys). Every problem is
 * reported with a 1-based line where YAML can tell.
 */

export interface YamlLimits {
  /** Files larger than this many bytes are refused before decoding. */
  readonly maxFileBytes: number;
  /** `yaml`'s alias budget: a bound on (alias uses × aliased node size). */
  readonly maxAliasCount: number;
  /** Deepest nesting of maps and lists accepted (capped at {@link MAX_SAFE_DEPTH}). */
  readonly maxDepth: number;
}

export interface YamlProblem {
  readonly line?: number;
  readonly message: string;
}

/** The outcome of parsing one file. An empty file (or one with only comments) is the document `null`. */
export type ParsedYaml =
  | { readonly kind: 'document'; readonly value: JsonValue }
  | { readonly kind: 'invalid'; readonly problems: readonly YamlProblem[] };

const PARSE_OPTIONS: ParseOptions & DocumentOptions & SchemaOptions = {
  uniqueKeys: true,
  // The compiler does no I/O: never let the parser print warnings; we report them instead.
  logLevel: 'silent',
  version: '1.2',
  schema: 'core',
};

/**
 * The deepest nesting ever composed, whatever the limits say: well below where the `yaml`
 * composer's recursion overflows the stack (about 1,000 levels on Node 20's default stack).
 */
export const MAX_SAFE_DEPTH = 256;

/** Keys that would change an object's prototype when assigned; never valid in config. */
const FORBIDDEN_KEYS = new Set(['__proto__']);

/**
 * Parses one file into a deep-frozen JSON value. The value may be shared by every caller that
 * parsed the same bytes (the compiler caches by blob id), hence frozen.
 */
export function parseYaml(bytes: Uint8Array, limits: YamlLimits): ParsedYaml {
  if (bytes.byteLength > limits.maxFileBytes) {
    return invalid([{ message: `file is ${bytes.byteLength} bytes; the limit is ${limits.maxFileBytes}` }]);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return invalid([{ message: 'file is not valid UTF-8' }]);
  }

  const maxDepth = Math.min(limits.maxDepth, MAX_SAFE_DEPTH);
  const stream = parseStream(text, maxDepth);
  if (stream.kind === 'too-deep') {
    return invalid([{ line: stream.line, message: `nesting is deeper than ${maxDepth} levels` }]);
  }
  const { docs, lines } = stream;
  const [doc, second] = docs;
  if (doc === undefined) {
    // An empty stream: nothing but comments and whitespace (or a stray `...`).
    const problems = stream.errors.map((error) => problemOf(error, lines));
    return problems.length > 0 ? invalid(problems) : { kind: 'document', value: null };
  }
  if (second !== undefined) {
    return invalid([
      { line: lineAt(lines, second.range[0]), message: 'expected a single YAML document, found another one (`---`)' },
    ]);
  }

  const syntax = [...doc.errors, ...doc.warnings].map((error) => problemOf(error, lines));
  if (syntax.length > 0) return invalid(syntax);

  const keyProblems = checkKeys(doc, lines);
  if (keyProblems.length > 0) return invalid(keyProblems);

  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: limits.maxAliasCount });
  } catch (err) {
    // Unresolved or excessive aliases; `yaml` throws a ReferenceError without a position.
    return invalid([{ message: err instanceof Error ? err.message : String(err) }]);
  }

  const valueProblems: YamlProblem[] = [];
  const json = toJsonValue(value, '', maxDepth, (pointer, message) => {
    const line = lineOfPointerIn(doc, lines, pointer);
    valueProblems.push({ ...(line === undefined ? {} : { line }), message: `${pointer || '/'}: ${message}` });
  });
  if (valueProblems.length > 0) return invalid(valueProblems);
  return { kind: 'document', value: deepFreeze(json) };
}

/**
 * The 1-based line of the node at `pointer` in a file, for reporting structural problems found
 * after parsing (the parse cache keeps values, not syntax trees, so this parses again — only
 * ever on the error path). `undefined` when the pointer does not lead to a node.
 */
export function lineOfPointer(bytes: Uint8Array, pointer: string): number | undefined {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
  const stream = parseStream(text, MAX_SAFE_DEPTH);
  const doc = stream.kind === 'documents' ? stream.docs[0] : undefined;
  return stream.kind === 'documents' && doc !== undefined ? lineOfPointerIn(doc, stream.lines, pointer) : undefined;
}

type Stream =
  | {
      readonly kind: 'documents';
      readonly docs: readonly Document.Parsed[];
      /** Stream-level errors, reported when there is no document to carry them. */
      readonly errors: readonly YAMLError[];
      readonly lines: LineCounter;
    }
  | { readonly kind: 'too-deep'; readonly line: number };

/**
 * Tokenizes (iteratively, so any depth is safe), checks the nesting depth, and only then
 * composes documents (recursively). Equivalent to `parseAllDocuments` without `prettyErrors`:
 * lines come from the LineCounter instead.
 */
function parseStream(text: string, maxDepth: number): Stream {
  const lines = new LineCounter();
  const tokens = Array.from(new Parser(lines.addNewLine).parse(text));
  const deep = firstTooDeep(tokens, maxDepth);
  if (deep !== undefined) return { kind: 'too-deep', line: lineAt(lines, deep) };
  const composer = new Composer(PARSE_OPTIONS);
  const docs = Array.from(composer.compose(tokens));
  return { kind: 'documents', docs, errors: docs.length === 0 ? composer.streamInfo().errors : [], lines };
}

/** The offset of the first collection nested deeper than `maxDepth`, walking the token tree with an explicit stack. */
function firstTooDeep(tokens: readonly CST.Token[], maxDepth: number): number | undefined {
  const stack: Array<[CST.Token, number]> = tokens.map((token) => [token, 0]);
  for (let entry = stack.pop(); entry !== undefined; entry = stack.pop()) {
    const [token, depth] = entry;
    switch (token.type) {
      case 'document':
        if (token.value !== undefined) stack.push([token.value, depth]);
        break;
      case 'block-map':
      case 'block-seq':
      case 'flow-collection': {
        if (depth + 1 > maxDepth) return token.offset;
        for (const item of token.items as readonly CST.CollectionItem[]) {
          if (item.key) stack.push([item.key, depth + 1]);
          if (item.value) stack.push([item.value, depth + 1]);
        }
        break;
      }
      default:
        break;
    }
  }
  return undefined;
}

function lineOfPointerIn(doc: Document, lines: LineCounter, pointer: string): number | undefined {
  let tokens: string[];
  try {
    tokens = parsePointer(pointer);
  } catch {
    return undefined;
  }
  let node: unknown = doc.contents;
  let offset = doc.contents?.range?.[0];
  for (const token of tokens) {
    if (isMap(node)) {
      const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === token);
      if (pair === undefined) return undefined;
      // Point at the key: it is on the line a reader looks for, even when the value is a block below it.
      offset = isScalar(pair.key) ? pair.key.range?.[0] : offset;
      node = pair.value;
    } else if (isSeq(node)) {
      const item: unknown = node.items[Number(token)];
      if (item === undefined || !/^(0|[1-9][0-9]*)$/.test(token)) return undefined;
      node = item;
      offset = isScalar(item) || isMap(item) || isSeq(item) ? item.range?.[0] : offset;
    } else {
      return undefined;
    }
  }
  return offset === undefined ? undefined : lineAt(lines, offset);
}

/** Collection keys and null keys have no faithful JSON form; `yaml` would stringify them. */
function checkKeys(doc: Document, lines: LineCounter): YamlProblem[] {
  const problems: YamlProblem[] = [];
  visit(doc, {
    Pair(_key, pair) {
      if (!isPair(pair)) return;
      const key = pair.key;
      const ok = isScalar(key) && (typeof key.value === 'string' || typeof key.value === 'number' || typeof key.value === 'boolean');
      if (!ok) {
        const offset = isScalar(key) || isMap(key) || isSeq(key) ? key.range?.[0] : undefined;
        problems.push({
          ...(offset === undefined ? {} : { line: lineAt(lines, offset) }),
          message: 'mapping keys must be strings',
        });
      }
    },
  });
  return problems;
}

/**
 * Checks that a `toJS` result is plain JSON, copying nothing: `yaml` builds plain objects and
 * arrays (defining `__proto__` as an own key, which we still refuse because later object
 * assignment would not). Depth is checked again because aliases can nest what the token
 * stream did not.
 */
function toJsonValue(value: unknown, pointer: string, depth: number, report: (pointer: string, message: string) => void): JsonValue {
  if (value === null) return null;
  switch (typeof value) {
    case 'boolean':
      return value;
    case 'number':
      if (!Number.isFinite(value)) report(pointer, `${String(value)} is not a JSON number`);
      return value;
    case 'string':
      if (hasLoneSurrogate(value)) report(pointer, 'string contains an unpaired surrogate escape');
      return value;
    case 'object':
      break;
    default:
      report(pointer, `a ${typeof value} is not a JSON value`);
      return null;
  }
  if (depth === 0) {
    report(pointer, 'nesting is too deep (through aliases)');
    return null;
  }
  if (Array.isArray(value)) {
    value.forEach((item: unknown, index) => toJsonValue(item, appendPointer(pointer, index), depth - 1, report));
    return value as JsonValue[];
  }
  if (Object.getPrototypeOf(value) !== Object.prototype) {
    // Dates, binary, sets and ordered maps from YAML 1.1 tags (reachable through a %YAML 1.1 directive).
    report(pointer, `${value.constructor.name} values are not JSON; quote the value or use plain YAML`);
    return null;
  }
  const object = value as Record<string, unknown>;
  for (const key of Object.keys(object)) {
    const child = appendPointer(pointer, key);
    if (FORBIDDEN_KEYS.has(key)) report(child, `the key ${JSON.stringify(key)} is not allowed`);
    if (hasLoneSurrogate(key)) report(child, 'key contains an unpaired surrogate escape');
    toJsonValue(object[key], child, depth - 1, report);
  }
  return object as JsonValue;
}

function problemOf(error: YAMLError, lines: LineCounter): YamlProblem {
  return { line: lineAt(lines, error.pos[0]), message: error.message };
}

function lineAt(lines: LineCounter, offset: number): number {
  return lines.linePos(offset).line;
}

function invalid(problems: readonly YamlProblem[]): ParsedYaml {
  return { kind: 'invalid', problems: Object.freeze(problems.map((p) => Object.freeze(p))) };
}
