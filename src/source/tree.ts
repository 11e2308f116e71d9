import { LRUCache } from 'lru-cache';
import type { RepoFile, SkippedEntry, VerifiedCommit, VerifiedTree } from '../domain/commit.js';
import { SourceError } from '../domain/errors.js';

/** One entry of a git tree object, as isomorphic-git's `readTree` reports it. */
export interface GitTreeEntry {
  /** Octal mode: `100644`/`100755` file, `120000` symlink, `040000` tree, `160000` submodule. */
  readonly mode: string;
  /** The entry's name within its tree (no slashes). */
  readonly path: string;
  readonly oid: string;
  readonly type: 'blob' | 'tree' | 'commit';
}

/**
 * Object reads by id, the only access to a repository the tree reader needs
 * (GitSource implements it). Errors are already `SourceError`s.
 */
export interface GitObjectReader {
  readTreeEntries(treeOid: string): Promise<readonly GitTreeEntry[]>;
  readBlob(blobOid: string): Promise<Uint8Array>;
}

export interface TreeLimits {
  /** Largest single config file; a larger one fails the read with FILE_TOO_LARGE. */
  readonly maxFileBytes: number;
  /** Largest sum of config file sizes; beyond it TREE_TOO_LARGE. */
  readonly maxTotalBytes: number;
  /** Most config files; beyond it TREE_TOO_LARGE. */
  readonly maxFiles: number;
}

export interface TreeReaderOptions extends Partial<TreeLimits> {
  /** Bytes of blob content kept across reads, keyed by blob id. */
  readonly blobCacheBytes?: number;
  /** Tree listings kept across reads, keyed by tree id (unchanged directories are not re-listed). */
  readonly treeCacheEntries?: number;
  /** Blob reads in flight at once during a read. */
  readonly readConcurrency?: number;
}

export interface TreeCacheStats {
  readonly blobHits: number;
  readonly blobMisses: number;
  readonly cachedBlobs: number;
  readonly cachedBytes: number;
}

const MiB = 1024 * 1024;

/** Generous for a config repo (10,000 agents with a file each fit), small enough to bound memory. */
export const DEFAULT_TREE_LIMITS: Readonly<TreeLimits> = Object.freeze({
  maxFileBytes: 1 * MiB,
  maxTotalBytes: 128 * MiB,
  maxFiles: 20_000,
});

/** The config repository layout (docs/architecture.md): the root file and the directories read recursively. */
const ROOT_FILES: ReadonlySet<string> = new Set(['meshcfg.yaml']);
const CONFIG_DIRS: ReadonlySet<string> = new Set(['inventory', 'config', 'baseline']);

/**
 * Reads the config files of a verified commit by object id: `meshcfg.yaml` and every
 * `.yaml`/`.yml` file under `inventory/`, `config/` and `baseline/`. Other files,
 * symlinks (their blob is a path, not content, and following one could escape the
 * layout) and submodules are skipped; those two are reported in `skipped` when they sit
 * where config is read (named `meshcfg.yaml` or a config directory at the root, or anywhere
 * under a config directory), so callers can warn about them.
 *
 * Taking a `VerifiedCommit` is the point: content is read only after the trust gate
 * passed the commit. Nothing is checked out and no state is shared between reads but
 * the content-addressed caches, so any number of commits can be read side by side; a
 * commit that changed one file costs one blob read.
 *
 * Returned `bytes` are shared with the cache and with other trees: treat them as
 * immutable.
 */
export class ConfigTreeReader {
  private readonly limits: Readonly<TreeLimits>;
  private readonly readConcurrency: number;
  private readonly blobs: LRUCache<string, Uint8Array>;
  private readonly trees: LRUCache<string, readonly GitTreeEntry[]>;
  /** Concurrent reads of the same blob share one object read. */
  private readonly pendingBlobs = new Map<string, Promise<Uint8Array>>();
  private blobHits = 0;
  private blobMisses = 0;

  constructor(
    private readonly objects: GitObjectReader,
    options: TreeReaderOptions = {},
  ) {
    this.limits = {
      maxFileBytes: options.maxFileBytes ?? DEFAULT_TREE_LIMITS.maxFileBytes,
      maxTotalBytes: options.maxTotalBytes ?? DEFAULT_TREE_LIMITS.maxTotalBytes,
      maxFiles: options.maxFiles ?? DEFAULT_TREE_LIMITS.maxFiles,
    };
    this.readConcurrency = Math.max(1, options.readConcurrency ?? 16);
    this.blobs = new LRUCache<string, Uint8Array>({
      maxSize: options.blobCacheBytes ?? 64 * MiB,
      sizeCalculation: (bytes) => Math.max(1, bytes.byteLength),
    });
    this.trees = new LRUCache<string, readonly GitTreeEntry[]>({ max: options.treeCacheEntries ?? 4096 });
  }

  async read(commit: VerifiedCommit): Promise<VerifiedTree> {
    const wanted: Array<{ path: string; oid: string }> = [];
    const skipped: SkippedEntry[] = [];
    for (const entry of await this.listTree(commit.tree)) {
      if (ROOT_FILES.has(entry.path) && isRegularFile(entry)) this.select(wanted, entry.path, entry.oid);
      else if (CONFIG_DIRS.has(entry.path) && entry.type === 'tree') await this.collect(entry.oid, `${entry.path}/`, wanted, skipped);
      else if (ROOT_FILES.has(entry.path) || CONFIG_DIRS.has(entry.path)) noteSkipped(skipped, entry, entry.path);
    }
    // Code-unit order: the same on every replica, independent of git's tree ordering.
    wanted.sort(byPath);
    skipped.sort(byPath);

    const contents = await this.readBlobs(wanted);

    // Checked in path order over what was read, so the error names the same file on every run.
    const files: RepoFile[] = [];
    let totalBytes = 0;
    for (const [i, { path, oid }] of wanted.entries()) {
      const bytes = contents[i];
      // readBlobs reads every file up to the first violation, which throws below first.
      if (bytes === undefined) throw new Error(`invariant: ${path} was not read`);
      if (bytes.byteLength > this.limits.maxFileBytes) {
        throw new SourceError({
          code: 'FILE_TOO_LARGE',
          message: `${path} is ${formatBytes(bytes.byteLength)}, above the ${formatBytes(this.limits.maxFileBytes)} limit per file (commit ${commit.sha})`,
        });
      }
      totalBytes += bytes.byteLength;
      if (totalBytes > this.limits.maxTotalBytes) {
        throw new SourceError({
          code: 'TREE_TOO_LARGE',
          message: `config files of commit ${commit.sha} exceed the ${formatBytes(this.limits.maxTotalBytes)} total limit (at ${path})`,
        });
      }
      files.push(Object.freeze({ path, oid, bytes }));
    }
    return Object.freeze({ commit, files: Object.freeze(files), skipped: Object.freeze(skipped.map((e) => Object.freeze(e))) });
  }

  /**
   * Reads blobs a few at a time (each isomorphic-git read waits on file system calls;
   * overlapping them halves a cold read) and stops scheduling once a limit is crossed.
   * Files are handed out in order, so every file before the first violation is read.
   */
  private async readBlobs(wanted: ReadonlyArray<{ oid: string }>): Promise<Array<Uint8Array | undefined>> {
    const contents: Array<Uint8Array | undefined> = new Array<Uint8Array | undefined>(wanted.length);
    let next = 0;
    let total = 0;
    let stop = false;
    const worker = async (): Promise<void> => {
      while (!stop && next < wanted.length) {
        const index = next;
        next += 1;
        const entry = wanted[index];
        if (entry === undefined) return;
        let bytes: Uint8Array;
        try {
          bytes = await this.blob(entry.oid);
        } catch (err) {
          stop = true;
          throw err;
        }
        contents[index] = bytes;
        total += bytes.byteLength;
        if (bytes.byteLength > this.limits.maxFileBytes || total > this.limits.maxTotalBytes) stop = true;
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.readConcurrency, wanted.length) }, worker));
    return contents;
  }

  cacheStats(): TreeCacheStats {
    return {
      blobHits: this.blobHits,
      blobMisses: this.blobMisses,
      cachedBlobs: this.blobs.size,
      cachedBytes: this.blobs.calculatedSize,
    };
  }

  private async collect(treeOid: string, prefix: string, wanted: Array<{ path: string; oid: string }>, skipped: SkippedEntry[]): Promise<void> {
    for (const entry of await this.listTree(treeOid)) {
      const path = `${prefix}${entry.path}`;
      if (entry.type === 'tree') await this.collect(entry.oid, `${path}/`, wanted, skipped);
      else if (isRegularFile(entry) && /\.ya?ml$/.test(entry.path)) this.select(wanted, path, entry.oid);
      else noteSkipped(skipped, entry, path);
    }
  }

  /** Counts before any blob is read, so a tree with a million files fails fast. */
  private select(wanted: Array<{ path: string; oid: string }>, path: string, oid: string): void {
    wanted.push({ path, oid });
    if (wanted.length > this.limits.maxFiles) {
      throw new SourceError({
        code: 'TREE_TOO_LARGE',
        message: `more than ${this.limits.maxFiles} config files (at ${path})`,
      });
    }
  }

  private async listTree(oid: string): Promise<readonly GitTreeEntry[]> {
    const cached = this.trees.get(oid);
    if (cached) return cached;
    const entries = await this.objects.readTreeEntries(oid);
    this.trees.set(oid, entries);
    return entries;
  }

  private async blob(oid: string): Promise<Uint8Array> {
    const cached = this.blobs.get(oid);
    if (cached) {
      this.blobHits += 1;
      return cached;
    }
    const pending = this.pendingBlobs.get(oid);
    if (pending) return pending;
    this.blobMisses += 1;
    const read = this.objects.readBlob(oid).then((bytes) => {
      // Oversized blobs fail the read; keeping them would only evict useful entries.
      if (bytes.byteLength <= this.limits.maxFileBytes) this.blobs.set(oid, bytes);
      return bytes;
    });
    this.pendingBlobs.set(oid, read);
    try {
      return await read;
    } finally {
      this.pendingBlobs.delete(oid);
    }
  }
}

/** The warning every surface (plan, server log, source status) shows for a skipped entry. */
export function describeSkipped(entry: SkippedEntry): string {
  switch (entry.kind) {
    case 'symlink':
      return `${entry.path} is a symlink and was skipped: meshcfg never follows symlinks (commit the file itself)`;
    case 'submodule':
      return `${entry.path} is a submodule and was skipped: meshcfg never reads submodules (commit the files themselves)`;
    default: {
      const never: never = entry.kind;
      throw new Error(`unexpected skipped entry kind ${String(never)}`);
    }
  }
}

/** Bounded like the files: a tree of a million symlinks must not grow the list without end. */
const MAX_SKIPPED = 1_000;

function noteSkipped(skipped: SkippedEntry[], entry: GitTreeEntry, path: string): void {
  if (skipped.length >= MAX_SKIPPED) return;
  if (entry.mode === '120000') skipped.push({ path, kind: 'symlink' });
  else if (entry.type === 'commit' || entry.mode === '160000') skipped.push({ path, kind: 'submodule' });
}

function byPath(a: { readonly path: string }, b: { readonly path: string }): number {
  return a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
}

function isRegularFile(entry: GitTreeEntry): boolean {
  return entry.type === 'blob' && (entry.mode === '100644' || entry.mode === '100755');
}

function formatBytes(n: number): string {
  if (n >= MiB) return `${(n / MiB).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}
