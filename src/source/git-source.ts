import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  deleteRef,
  expandOid,
  fetch as gitFetch,
  isDescendent,
  listBranches,
  readBlob,
  readCommit,
  readObject,
  readTag,
  readTree,
  resolveRef,
  writeRef,
  type FsClient,
  type HttpClient,
} from 'isomorphic-git';
import nodeHttp from 'isomorphic-git/http/node';
import type { VerifiedCommit, VerifiedTree } from '../domain/commit.js';
import { parseCommitSha } from '../domain/agent-id.js';
import { SourceError } from '../domain/errors.js';
import type { CommitSha } from '../domain/types.js';
import { abortableHttp } from './abortable-http.js';
import { createAtomicFs } from './atomic-fs.js';
import { describeFailure, isCodedError, isNotFound, safeCause, scrub } from './git-errors.js';
import { parseRepositoryLocation, urlSecrets, type RepositoryLocation } from './location.js';
import { findGitdir, isFile, prepareClone, type Store } from './repo-store.js';
import { parseRevision, type RevisionStep } from './revision.js';
import type { CommitReader } from './trust/index.js';
import { ConfigTreeReader, type GitObjectReader, type GitTreeEntry, type TreeCacheStats, type TreeReaderOptions } from './tree.js';
import { notify } from '../lib/index.js';

export interface GitSourceOptions {
  /** A local path (plain or bare repository), a `file://` URL, or an `http(s)://` URL (credentials may ride in its userinfo). */
  readonly repository: string | RepositoryLocation;
  /**
   * The branch to track, without `refs/heads/`. Omitted: the repository's `HEAD` (the
   * checked-out commit of a local repository, the default branch of a remote).
   */
  readonly branch?: string;
  /**
   * Remotes are cloned once into `<dataDir>/sources/<id>.git` and reused across restarts.
   * Without it a remote is cloned into a temporary directory that `close()` removes.
   * Unused for local repositories.
   */
  readonly dataDir?: string;
  /** Fetch every branch and tag of a remote, not only the tracked one (for `plan --rev/--base` against a URL). */
  readonly fetchAllRefs?: boolean;
  /**
   * Bound on the network part of one fetch (every request and response read is aborted
   * at the deadline). Default 60 s.
   */
  readonly fetchTimeoutMs?: number;
  /** Smart-HTTP client, e.g. one carrying a pinned `https.Agent`. Default: isomorphic-git's node client. */
  readonly http?: HttpClient;
  /** Limits and caches of `readTree`. */
  readonly tree?: TreeReaderOptions;
  readonly hooks?: SourceHooks;
  /** Clock for `fetchedAt`. */
  readonly now?: () => Date;
}

export interface SourceHead {
  readonly commit: CommitSha;
  /** When the last successful fetch confirmed this head. */
  readonly fetchedAt: Date;
}

export type FetchResult =
  | { readonly kind: 'updated'; readonly head: SourceHead; readonly previous: SourceHead | null }
  | { readonly kind: 'unchanged'; readonly head: SourceHead };

export type FetchEvent =
  | (FetchResult & { readonly durationMs: number })
  | { readonly kind: 'failed'; readonly error: SourceError; readonly consecutiveFailures: number; readonly durationMs: number };

/** Observers (metrics, logs, alerts). They must not throw; a throw is swallowed so it cannot fail a fetch. */
export interface SourceHooks {
  onFetch?(event: FetchEvent): void;
}

/** What a caller's retry/backoff policy and the admin API need to know. */
export interface SourceStatus {
  readonly head: SourceHead | null;
  readonly lastAttemptAt: Date | null;
  /** The last fetch's error; `null` once a fetch succeeds again. */
  readonly lastError: SourceError | null;
  readonly consecutiveFailures: number;
}

export interface PollOptions {
  readonly intervalMs: number;
  /** Delay before the next fetch, given the status after the last one (a backoff policy). Default: `intervalMs`. */
  readonly nextDelayMs?: (status: SourceStatus) => number;
}

interface Poller {
  stopped: boolean;
  timer: NodeJS.Timeout | undefined;
  wake: (() => void) | undefined;
  loop: Promise<void>;
}

const DEFAULT_FETCH_TIMEOUT_MS = 60_000;
/** A full object id: SHA-1, or SHA-256 for repositories in that object format. */
const OBJECT_ID_RE = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

/**
 * Tracks one branch of a config repository with isomorphic-git: fetches on demand or on
 * an interval (one code path; fetches never overlap), reports the head, resolves
 * revisions, and reads commits, ancestry and config trees by object id.
 *
 * It implements the trust gate's `CommitReader` (`readCommitObject`, `isDescendant`).
 *
 * Contracts:
 * - A ref this class publishes (the tracked branch of a clone) moves only after the
 *   objects it names are on disk, and every file write is atomic, so reads may run
 *   concurrently with a fetch.
 * - One isomorphic-git `cache` is shared by all reads (packs are parsed once, and held
 *   whole in memory) and replaced when a fetch moves the head, so packs parsed for old
 *   reads are released.
 * - Credentials in a remote URL reach the transport only; messages, causes, the clone's
 *   config and its directory name use the redacted form.
 */
export class GitSource implements CommitReader, GitObjectReader {
  /** The repository as safe to show (credentials removed). */
  readonly location: string;
  /** The tracked branch, or `HEAD`. */
  readonly branch: string;
  /** The git directory read from (the local repository's, or the clone's); for diagnostics. */
  readonly gitdir: string;

  private readonly store: Store;
  private readonly trackedRef: string;
  private readonly fs: FsClient;
  private readonly http: HttpClient;
  private readonly fetchTimeoutMs: number;
  private readonly fetchAllRefs: boolean;
  private readonly hooks: SourceHooks;
  private readonly now: () => Date;
  private readonly secrets: readonly string[];
  private readonly trees: ConfigTreeReader;

  private cache: object = {};
  private current: SourceHead | null = null;
  private lastAttemptAt: Date | null = null;
  private lastError: SourceError | null = null;
  private consecutiveFailures = 0;
  /** Settles when the last scheduled fetch has; each fetch starts only after it. */
  private fetchTail: Promise<void> = Promise.resolve();
  /** A fetch scheduled but not started yet; every caller until it starts shares it. */
  private pendingFetch: Promise<FetchResult> | undefined;
  private poller: Poller | undefined;
  private closed = false;

  private constructor(location: RepositoryLocation, store: Store, fs: FsClient, options: GitSourceOptions) {
    this.location = location.display;
    this.branch = options.branch ?? 'HEAD';
    this.trackedRef = options.branch === undefined ? 'HEAD' : `refs/heads/${options.branch}`;
    this.store = store;
    this.gitdir = store.gitdir;
    this.fs = fs;
    this.http = options.http ?? nodeHttp;
    this.fetchTimeoutMs = options.fetchTimeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS;
    this.fetchAllRefs = options.fetchAllRefs ?? false;
    this.hooks = options.hooks ?? {};
    this.now = options.now ?? (() => new Date());
    this.secrets = location.kind === 'remote' ? urlSecrets(location.url) : [];
    this.trees = new ConfigTreeReader(this, options.tree);
  }

  /**
   * Opens the repository without touching the network: checks a local repository, or
   * prepares (or reuses) the clone directory of a remote. Call `fetch()` for a head.
   *
   * @throws SourceError REPO_UNREADABLE (not a repository, unsupported location),
   *         REVISION_NOT_FOUND (malformed branch name)
   */
  static async open(options: GitSourceOptions): Promise<GitSource> {
    const location =
      typeof options.repository === 'string' ? parseRepositoryLocation(options.repository) : options.repository;
    if (options.branch !== undefined) {
      const spec = parseRevision(options.branch);
      if (spec.steps.length > 0 || spec.name === 'HEAD' || spec.name.startsWith('refs/')) {
        throw new SourceError({ code: 'REVISION_NOT_FOUND', message: `invalid branch name ${JSON.stringify(options.branch)}` });
      }
    }
    const fs = createAtomicFs();
    const store: Store =
      location.kind === 'local'
        ? { kind: 'local', gitdir: await findGitdir(location.path) }
        : await prepareClone(fs, location, options);
    return new GitSource(location, store, fs, options);
  }

  /** The head as of the last successful fetch; `null` before the first. */
  head(): SourceHead | null {
    return this.current;
  }

  status(): SourceStatus {
    return {
      head: this.current,
      lastAttemptAt: this.lastAttemptAt,
      lastError: this.lastError,
      consecutiveFailures: this.consecutiveFailures,
    };
  }

  /**
   * Fetches the tracked branch (a remote) or re-reads it (a local repository) and returns
   * the head. Fetches never overlap: a call while one runs schedules one behind it, and
   * every call until that one starts shares it — so a caller always gets a fetch that
   * started after its call (a push it knows of is seen), and a burst of calls costs at
   * most two fetches.
   *
   * Non-fast-forward moves (force-pushes) are reported as they are; judging them is the
   * trust gate's job.
   *
   * @throws SourceError FETCH_FAILED (transport, HTTP status, timeout), REVISION_NOT_FOUND
   *         (no such branch), REPO_UNREADABLE (local repository gone or corrupt)
   */
  fetch(): Promise<FetchResult> {
    if (this.closed) {
      return Promise.reject(new SourceError({ code: 'FETCH_FAILED', message: `source ${this.location} is closed` }));
    }
    if (this.pendingFetch) return this.pendingFetch;
    const scheduled: Promise<FetchResult> = this.fetchTail.then(() => {
      // Started: callers from now on need a later fetch.
      if (this.pendingFetch === scheduled) this.pendingFetch = undefined;
      return this.fetchOnce();
    });
    this.pendingFetch = scheduled;
    this.fetchTail = scheduled.then(noop, noop);
    return scheduled;
  }

  /** Fetches now and then every `intervalMs` (or `nextDelayMs(status)`) until `stop()`. Failures surface through hooks and `status()`. */
  start(options: PollOptions): void {
    if (this.poller || this.closed) return;
    const nextDelay = options.nextDelayMs ?? (() => options.intervalMs);
    const poller: Poller = { stopped: false, timer: undefined, wake: undefined, loop: Promise.resolve() };
    poller.loop = (async () => {
      while (!poller.stopped) {
        await this.fetch().catch(noop);
        if (poller.stopped) break;
        let delay = options.intervalMs;
        try {
          delay = nextDelay(this.status());
        } catch {
          // A broken policy must not stop polling; fall back to the plain interval.
        }
        delay = Math.max(0, delay);
        await new Promise<void>((resolve) => {
          poller.wake = resolve;
          poller.timer = setTimeout(resolve, delay);
          // The poller alone must not keep a process alive; servers have their listeners.
          poller.timer.unref();
        });
      }
    })();
    this.poller = poller;
  }

  /** Stops the poller and waits for a fetch it started. */
  async stop(): Promise<void> {
    const poller = this.poller;
    if (!poller) return;
    this.poller = undefined;
    poller.stopped = true;
    clearTimeout(poller.timer);
    poller.wake?.();
    await poller.loop;
  }

  /** Stops polling, waits for running fetches, and removes a temporary clone. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.stop();
    await this.fetchTail;
    if (this.store.kind === 'remote' && this.store.temporaryRoot !== null) {
      await rm(this.store.temporaryRoot, { recursive: true, force: true });
    }
  }

  /**
   * Resolves a revision to a commit id: branch and tag names (annotated tags peeled),
   * `HEAD`, full refs, full or short (≥ 4 hex) object ids, with `~n`/`^n` steps.
   * Names are looked up as git does — tags before branches — and, for a local
   * repository, remote-tracking refs (`origin/main`) too. For a remote, `HEAD` is the
   * tracked branch and only fetched refs exist.
   *
   * @throws SourceError REVISION_NOT_FOUND (unknown, ambiguous, not a commit, no such parent)
   */
  async resolve(revision: string): Promise<CommitSha> {
    const spec = parseRevision(revision);
    let oid = await this.peelToCommit(await this.resolveName(spec.name), revision);
    for (const step of spec.steps) oid = await this.walkStep(oid, step, revision);
    return oid;
  }

  /** The raw commit object (what `git cat-file commit` prints), for signature checks. */
  async readCommitObject(sha: CommitSha): Promise<Uint8Array> {
    assertSha(sha);
    const result = await this.readObjectContent(sha);
    if (result.type !== 'commit') {
      throw new SourceError({ code: 'REVISION_NOT_FOUND', message: `${sha} is a ${result.type}, not a commit` });
    }
    return result.bytes;
  }

  /**
   * Whether `ancestor` is reachable from `sha` through parents (whole history).
   * Strict, as isomorphic-git's `isDescendent`: a commit is not its own descendant, so
   * callers compare for equality first.
   */
  async isDescendant(sha: CommitSha, ancestor: CommitSha): Promise<boolean> {
    assertSha(sha);
    assertSha(ancestor);
    try {
      return await isDescendent({ fs: this.fs, gitdir: this.store.gitdir, oid: sha, ancestor, depth: -1, cache: this.cache });
    } catch (err) {
      if (isNotFound(err) || (isCodedError(err) && err.code === 'ObjectTypeError')) {
        throw new SourceError({ code: 'REVISION_NOT_FOUND', message: `cannot walk history of ${sha}: a commit is missing`, cause: err });
      }
      throw this.unreadable(`walking history of ${sha}`, err);
    }
  }

  /** The config files of a verified commit (see `ConfigTreeReader`). */
  readTree(commit: VerifiedCommit): Promise<VerifiedTree> {
    return this.trees.read(commit);
  }

  treeCacheStats(): TreeCacheStats {
    return this.trees.cacheStats();
  }

  /** @internal GitObjectReader for the tree reader. */
  async readTreeEntries(treeOid: string): Promise<readonly GitTreeEntry[]> {
    try {
      const { tree } = await readTree({ fs: this.fs, gitdir: this.store.gitdir, oid: treeOid, cache: this.cache });
      return tree;
    } catch (err) {
      throw this.unreadable(`reading tree ${treeOid}`, err);
    }
  }

  /** @internal GitObjectReader for the tree reader. */
  async readBlob(blobOid: string): Promise<Uint8Array> {
    try {
      const { blob } = await readBlob({ fs: this.fs, gitdir: this.store.gitdir, oid: blobOid, cache: this.cache });
      return blob;
    } catch (err) {
      throw this.unreadable(`reading blob ${blobOid}`, err);
    }
  }

  /** Call only from `fetch()`, which serializes. */
  private async fetchOnce(): Promise<FetchResult> {
    const started = performance.now();
    this.lastAttemptAt = this.now();
    const previous = this.current;
    try {
      const commit =
        this.store.kind === 'local' ? await this.readLocalHead(this.store) : await this.fetchRemote(this.store);
      // New content is read from the new head on; packs already parsed for the old one
      // would only pin memory. A no-op fetch changed nothing, so the warm cache stays.
      if (commit !== previous?.commit) this.cache = {};
      const head: SourceHead = { commit, fetchedAt: this.now() };
      this.current = head;
      this.lastError = null;
      this.consecutiveFailures = 0;
      const result: FetchResult =
        commit === previous?.commit ? { kind: 'unchanged', head } : { kind: 'updated', head, previous };
      this.emit({ ...result, durationMs: performance.now() - started });
      return result;
    } catch (err) {
      const error =
        err instanceof SourceError
          ? err
          : new SourceError({ code: 'FETCH_FAILED', message: `fetching ${this.location} failed`, cause: safeCause(err, this.secrets) });
      this.lastError = error;
      this.consecutiveFailures += 1;
      this.emit({ kind: 'failed', error, consecutiveFailures: this.consecutiveFailures, durationMs: performance.now() - started });
      throw error;
    }
  }

  private async readLocalHead(store: Extract<Store, { kind: 'local' }>): Promise<CommitSha> {
    let oid: string;
    try {
      oid = await resolveRef({ fs: this.fs, gitdir: store.gitdir, ref: this.trackedRef });
    } catch (err) {
      // A repository deleted under us also lacks the ref; that is not a missing branch.
      if (isNotFound(err) && (await isFile(join(store.gitdir, 'HEAD')))) {
        throw new SourceError({ code: 'REVISION_NOT_FOUND', message: `branch ${this.branch} not found in ${this.location}`, cause: err });
      }
      throw this.unreadable(`reading ${this.trackedRef}`, err);
    }
    return this.assertCommit(oid);
  }

  private async fetchRemote(store: Extract<Store, { kind: 'remote' }>): Promise<CommitSha> {
    const remoteRef = this.branch === 'HEAD' ? 'HEAD' : `refs/heads/${this.branch}`;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.fetchTimeoutMs);
    let fetched: Awaited<ReturnType<typeof gitFetch>>;
    try {
      fetched = await gitFetch({
        fs: this.fs,
        http: abortableHttp(this.http, controller.signal),
        gitdir: store.gitdir,
        url: store.url,
        remote: 'origin',
        ref: this.branch,
        remoteRef,
        singleBranch: !this.fetchAllRefs,
        tags: this.fetchAllRefs,
        prune: this.fetchAllRefs,
        cache: this.cache,
      });
    } catch (err) {
      if (controller.signal.aborted) {
        throw new SourceError({
          code: 'FETCH_FAILED',
          message: `fetching ${this.location} timed out after ${this.fetchTimeoutMs} ms`,
          cause: safeCause(err, this.secrets),
        });
      }
      if (isNotFound(err, remoteRef)) {
        throw new SourceError({
          code: 'REVISION_NOT_FOUND',
          message: `branch ${this.branch} not found in ${this.location}`,
          cause: safeCause(err, this.secrets),
        });
      }
      throw new SourceError({
        code: 'FETCH_FAILED',
        message: `fetching ${this.location} failed: ${describeFailure(err, this.secrets)}`,
        cause: safeCause(err, this.secrets),
      });
    } finally {
      clearTimeout(timer);
    }
    const oid = fetched.fetchHead;
    if (oid === null) {
      throw new SourceError({ code: 'REVISION_NOT_FOUND', message: `${this.location} is empty: no branch ${this.branch}` });
    }
    // Publish the head only once its objects are readable (isomorphic-git moved its own
    // remote-tracking refs before writing the pack). Pack discovery lists the pack
    // directory on every read, so the current cache sees a new pack.
    const sha = await this.assertCommit(oid);
    try {
      await writeRef({ fs: this.fs, gitdir: store.gitdir, ref: this.trackedRef, value: sha, force: true });
      if (this.fetchAllRefs) await this.mirrorRemoteBranches(store.gitdir);
    } catch (err) {
      throw this.unreadable('updating refs of the clone', err);
    }
    return sha;
  }

  /** With `fetchAllRefs`, makes `refs/heads/*` of the clone mirror the remote's branches. */
  private async mirrorRemoteBranches(gitdir: string): Promise<void> {
    const remote = (await listBranches({ fs: this.fs, gitdir, remote: 'origin' })).filter((b) => b !== 'HEAD');
    for (const branch of remote) {
      const value = await resolveRef({ fs: this.fs, gitdir, ref: `refs/remotes/origin/${branch}` });
      await writeRef({ fs: this.fs, gitdir, ref: `refs/heads/${branch}`, value, force: true });
    }
    const keep = new Set(remote);
    for (const branch of await listBranches({ fs: this.fs, gitdir })) {
      if (!keep.has(branch) && `refs/heads/${branch}` !== this.trackedRef) {
        await deleteRef({ fs: this.fs, gitdir, ref: `refs/heads/${branch}` });
      }
    }
  }

  /** The branch head as a `CommitSha`, once it is known to name a commit object. */
  private async assertCommit(oid: string): Promise<CommitSha> {
    let type: string;
    try {
      ({ type } = await readObject({ fs: this.fs, gitdir: this.store.gitdir, oid, format: 'content', cache: this.cache }));
    } catch (err) {
      throw this.unreadable(`reading head commit ${oid}`, err);
    }
    if (type !== 'commit') {
      throw new SourceError({ code: 'REVISION_NOT_FOUND', message: `${this.branch} points at a ${type}, not a commit` });
    }
    return this.commitSha(oid);
  }

  /** isomorphic-git hands out object ids as plain strings: a commit's becomes a `CommitSha` here. */
  private commitSha(oid: string): CommitSha {
    const sha = parseCommitSha(oid);
    if (sha === undefined) throw new SourceError({ code: 'REVISION_NOT_FOUND', message: `${JSON.stringify(oid)} is not a commit id` });
    return sha;
  }

  private async resolveName(name: string): Promise<string> {
    const gitdir = this.store.gitdir;
    const candidates =
      name === 'HEAD' || name.startsWith('refs/')
        ? [name]
        : [
            `refs/tags/${name}`,
            `refs/heads/${name}`,
            // A clone's refs/remotes is isomorphic-git's scratch space (see FETCH_REFSPEC).
            ...(this.store.kind === 'local' ? [`refs/remotes/${name}`, `refs/remotes/${name}/HEAD`] : []),
          ];
    for (const ref of candidates) {
      try {
        return await resolveRef({ fs: this.fs, gitdir, ref });
      } catch (err) {
        if (!isNotFound(err)) throw this.unreadable(`resolving ${ref}`, err);
      }
    }
    if (/^[0-9a-f]{4,40}$/i.test(name)) {
      try {
        return await expandOid({ fs: this.fs, gitdir, oid: name.toLowerCase(), cache: this.cache });
      } catch (err) {
        if (isCodedError(err) && err.code === 'AmbiguousError') {
          throw new SourceError({ code: 'REVISION_NOT_FOUND', message: `revision ${name} is ambiguous`, cause: err });
        }
        if (!isNotFound(err)) throw this.unreadable(`expanding ${name}`, err);
      }
    }
    throw new SourceError({ code: 'REVISION_NOT_FOUND', message: `revision ${name} not found in ${this.location}` });
  }

  private async peelToCommit(oid: string, revision: string): Promise<CommitSha> {
    let current = oid;
    // Tags of tags exist; a cycle cannot (ids are hashes), but a bound costs nothing.
    for (let depth = 0; depth < 16; depth += 1) {
      const { type } = await this.readObjectContent(current, revision);
      if (type === 'commit') return this.commitSha(current);
      if (type !== 'tag') break;
      try {
        ({ tag: { object: current } } = await readTag({ fs: this.fs, gitdir: this.store.gitdir, oid: current, cache: this.cache }));
      } catch (err) {
        throw this.unreadable(`reading tag ${current}`, err);
      }
    }
    throw new SourceError({ code: 'REVISION_NOT_FOUND', message: `revision ${revision} does not name a commit` });
  }

  private async walkStep(oid: CommitSha, step: RevisionStep, revision: string): Promise<CommitSha> {
    const parentAt = async (commitOid: string, index: number): Promise<CommitSha> => {
      const { commit } = await readCommit({ fs: this.fs, gitdir: this.store.gitdir, oid: commitOid, cache: this.cache });
      const parent = commit.parent[index];
      if (parent === undefined) {
        throw new SourceError({ code: 'REVISION_NOT_FOUND', message: `revision ${revision}: ${commitOid} has no such parent` });
      }
      return this.commitSha(parent);
    };
    try {
      switch (step.kind) {
        case 'parent':
          return step.index === 0 ? oid : await parentAt(oid, step.index - 1);
        case 'ancestor': {
          let current = oid;
          for (let i = 0; i < step.count; i += 1) current = await parentAt(current, 0);
          return current;
        }
      }
    } catch (err) {
      if (err instanceof SourceError) throw err;
      if (isNotFound(err)) {
        throw new SourceError({ code: 'REVISION_NOT_FOUND', message: `revision ${revision}: a commit is missing`, cause: err });
      }
      throw this.unreadable(`resolving ${revision}`, err);
    }
  }

  private async readObjectContent(oid: string, revision: string = oid): Promise<{ type: string; bytes: Uint8Array }> {
    try {
      const result = await readObject({ fs: this.fs, gitdir: this.store.gitdir, oid, format: 'content', cache: this.cache });
      if (!(result.object instanceof Uint8Array)) throw new TypeError(`unexpected ${typeof result.object} object content`);
      return { type: result.type, bytes: result.object };
    } catch (err) {
      if (isNotFound(err)) {
        throw new SourceError({ code: 'REVISION_NOT_FOUND', message: `revision ${revision} not found in ${this.location}`, cause: err });
      }
      throw this.unreadable(`reading object ${oid}`, err);
    }
  }

  private unreadable(doing: string, err: unknown): SourceError {
    if (err instanceof SourceError) return err;
    const detail = err instanceof Error ? `: ${scrub(err.message, this.secrets)}` : '';
    return new SourceError({
      code: 'REPO_UNREADABLE',
      message: `${doing} in ${this.location} failed${detail}`,
      cause: safeCause(err, this.secrets),
    });
  }

  private emit(event: FetchEvent): void {
    // Observers must not fail a fetch (see SourceHooks).
    notify(() => this.hooks.onFetch?.(event));
  }
}

function assertSha(sha: string): void {
  if (!OBJECT_ID_RE.test(sha)) {
    throw new SourceError({ code: 'REVISION_NOT_FOUND', message: `not a full commit id: ${JSON.stringify(sha)}` });
  }
}

function noop(): void {}
