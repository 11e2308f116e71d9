import { createHash } from 'node:crypto';

import { LRUCache } from 'lru-cache';

/**
 * The compiler's content-keyed caches. Every key is derived from content (blob ids, selector
 * text, digests), never from commit ids or time, so a commit that changes one overlay misses
 * only where that overlay's content flows, and two commits with the same files share everything.
 */

/** The caches, in pipeline order. */
export const CACHE_NAMES = [
  /** blob id → parsed YAML. Consulted only when `file` misses. */
  'parse',
  /** path + blob id → the file read as its role (inventory, overlay, settings, document layer). */
  'file',
  /** inventory content + selector → the label groups an overlay selects. */
  'selection',
  /** ordered base + overlay layers → merged document (before the agent's own file). */
  'prefix',
  /** ordered layer list → bundle. One lookup per agent and one for the baseline. */
  'bundle',
  /** digest → schema findings. */
  'schema',
  /** digest + policy settings + secure-zone membership → policy findings. */
  'policy',
  /** ordered layer paths + blob ids → provenance. Consulted only for documents with findings. */
  'provenance',
  /** blob id + JSON pointer → line in that file. Consulted only for findings. */
  'location',
  /** agent id → rollout bucket. */
  'bucket',
] as const;

export type CacheName = (typeof CACHE_NAMES)[number];

export interface CacheCounters {
  readonly hits: number;
  readonly misses: number;
}

/** Lookups since the compiler was made (or since `resetStats`), per cache. */
export type CacheStats = Readonly<Record<CacheName, CacheCounters>>;

/** Get-or-compute. Implementations count every call as exactly one hit or one miss. */
export interface Memo<V> {
  get(key: string, compute: () => V): V;
}

interface MutableCounters {
  hits: number;
  misses: number;
}

class LruMemo<V extends object | number> implements Memo<V> {
  private readonly lru: LRUCache<string, V>;
  private readonly counters: MutableCounters;

  constructor(max: number, counters: MutableCounters) {
    this.lru = new LRUCache<string, V>({ max });
    this.counters = counters;
  }

  get(key: string, compute: () => V): V {
    const cached = this.lru.get(key);
    if (cached !== undefined) {
      this.counters.hits++;
      return cached;
    }
    this.counters.misses++;
    const value = compute();
    this.lru.set(key, value);
    return value;
  }
}

/** `cache: false`: every lookup computes (the benchmark's baseline; also a debugging aid). */
class NoMemo<V> implements Memo<V> {
  private readonly counters: MutableCounters;

  constructor(counters: MutableCounters) {
    this.counters = counters;
  }

  get(_key: string, compute: () => V): V {
    this.counters.misses++;
    return compute();
  }
}

/** One set of caches per `Compiler` (never module-level: two compilers must not share state). */
export class CompileCaches {
  readonly enabled: boolean;
  private readonly counters: Record<CacheName, MutableCounters>;
  private readonly maxEntries: number;

  constructor({ enabled, maxEntries }: { enabled: boolean; maxEntries: number }) {
    this.enabled = enabled;
    this.maxEntries = maxEntries;
    this.counters = Object.fromEntries(CACHE_NAMES.map((name) => [name, { hits: 0, misses: 0 }])) as Record<
      CacheName,
      MutableCounters
    >;
  }

  /** Makes the memo for one cache; each name is meant to be used once. */
  memo<V extends object | number>(name: CacheName): Memo<V> {
    const counters = this.counters[name];
    return this.enabled ? new LruMemo<V>(this.maxEntries, counters) : new NoMemo<V>(counters);
  }

  stats(): CacheStats {
    return Object.freeze(
      Object.fromEntries(CACHE_NAMES.map((name) => [name, Object.freeze({ ...this.counters[name] })])),
    ) as CacheStats;
  }

  resetStats(): void {
    for (const name of CACHE_NAMES) {
      this.counters[name].hits = 0;
      this.counters[name].misses = 0;
    }
  }
}

/**
 * A short, collision-resistant key for an ordered list of strings (sha256, base64url). Keys
 * built from long lists (a group's 40 layer keys) stay cheap to hash and compare per agent.
 * Parts are joined with NUL, which paths, blob ids and canonical JSON never contain; callers
 * that put NUL-joined tuples in a part use one fixed tuple shape per key space.
 */
export function contentKey(parts: readonly string[]): string {
  // One update call: native calls dominate when hashing many short parts.
  return createHash('sha256').update(parts.join('\u0000')).digest('base64url');
}
