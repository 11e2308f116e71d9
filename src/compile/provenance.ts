import type { JsonObject, JsonValue } from '../domain/types.js';
import { isJsonObject, withoutNullMembers } from './merge.js';
import { appendPointer, parsePointer } from './pointer.js';

/** One layer as provenance needs it: the document and where it came from. */
export interface SourcedLayer<Source> {
  readonly source: Source;
  readonly document: JsonObject;
}

/** Where a value of a merged document came from: the layer that last set it, or set the nearest map above it. */
export interface Origin<Source> {
  readonly source: Source;
  /** The JSON pointer (into the merged document) of the value that layer set. */
  readonly pointer: string;
}

interface Node<Source> {
  /** The layer that set this value, when a layer set it as a whole (a scalar, a list, or a map that was new). */
  source?: Source;
  children?: Map<string, Node<Source>>;
}

/**
 * Which layer introduced each value of a merged document.
 *
 * Recording mirrors `mergeLayer` exactly: a layer that replaces a value (or introduces a map)
 * owns that path and everything under it until a later layer overrides a part of it; a layer
 * merging into an existing map owns only the members it sets; `null` forgets the path.
 */
export class Provenance<Source> {
  private readonly root: Node<Source>;

  /** @internal built by {@link mergeWithProvenance} */
  constructor(root: Node<Source>) {
    this.root = root;
  }

  /**
   * The origin of the value at `pointer`, or of the nearest value above it that a single
   * layer set (a violation may point at a member that is missing, or inside a list).
   * `undefined` for the document root and for paths no layer set.
   */
  originOf(pointer: string): Origin<Source> | undefined {
    let tokens: string[];
    try {
      tokens = parsePointer(pointer);
    } catch {
      return undefined;
    }
    let node: Node<Source> | undefined = this.root;
    let path = '';
    let found: Origin<Source> | undefined;
    for (const token of tokens) {
      node = node.children?.get(token);
      if (node === undefined) break;
      path = appendPointer(path, token);
      if (node.source !== undefined) found = { source: node.source, pointer: path };
    }
    return found;
  }
}

/**
 * `mergeLayers` with provenance. Slower than the plain merge (it builds a tree as large as
 * the document), so the compiler calls it only for agents that have violations.
 */
export function mergeWithProvenance<Source>(
  layers: readonly SourcedLayer<Source>[],
): { document: JsonObject; provenance: Provenance<Source> } {
  const root: Node<Source> = {};
  let document: JsonObject = {};
  for (const layer of layers) document = mergeTracked(document, layer.document, root, layer.source);
  return { document, provenance: new Provenance(root) };
}

function mergeTracked<Source>(base: JsonObject, layer: JsonObject, node: Node<Source>, source: Source): JsonObject {
  const out: JsonObject = { ...base };
  for (const key of Object.keys(layer)) {
    const value = layer[key] as JsonValue;
    if (value === null) {
      delete out[key];
      node.children?.delete(key);
      continue;
    }
    node.children ??= new Map();
    const below = out[key];
    if (isJsonObject(value) && below !== undefined && isJsonObject(below)) {
      let child = node.children.get(key);
      if (child === undefined) {
        child = {};
        node.children.set(key, child);
      }
      out[key] = mergeTracked(below, value, child, source);
    } else {
      // Replaced or newly introduced: this layer owns the whole subtree.
      node.children.set(key, { source });
      out[key] = isJsonObject(value) ? withoutNullMembers(value) : value;
    }
  }
  return out;
}
