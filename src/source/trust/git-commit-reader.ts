import { Errors, isDescendent, readObject, type FsClient } from 'isomorphic-git';
import { SourceError, errorMessage } from '../../domain/errors.js';
import type { CommitSha } from '../../domain/types.js';
import type { CommitReader } from './gate.js';

export interface GitCommitReaderOptions {
  readonly fs: FsClient;
  readonly dir?: string;
  readonly gitdir?: string;
  /**
   * isomorphic-git's object cache, shared with every other read of this repository:
   * without it each read reloads and re-hashes the pack files. Drop it after a fetch.
   */
  readonly cache: object;
}

/**
 * A CommitReader over a repository on disk, through isomorphic-git (no git CLI). Reads
 * objects by id, never the working tree. Missing commits fail with SourceError
 * REVISION_NOT_FOUND, anything else isomorphic-git reports with REPO_UNREADABLE.
 */
export function createGitCommitReader({ fs, dir, gitdir, cache }: GitCommitReaderOptions): CommitReader {
  const repo = { fs, cache, ...(dir === undefined ? {} : { dir }), ...(gitdir === undefined ? {} : { gitdir }) };
  return {
    async readCommitObject(sha) {
      const result = await translate(sha, () => readObject({ ...repo, oid: sha, format: 'content' }));
      if (result.format !== 'content' || result.type !== 'commit') {
        throw new SourceError({ code: 'REVISION_NOT_FOUND', message: `${sha} is a ${result.type}, not a commit` });
      }
      return result.object;
    },
    async isDescendant(sha, ancestor) {
      // depth -1: walk the whole history; a rewritten branch may be arbitrarily far back.
      return translate(sha, () => isDescendent({ ...repo, oid: sha, ancestor, depth: -1 }));
    },
  };
}

async function translate<T>(sha: CommitSha, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (err) {
    if (err instanceof Errors.NotFoundError) {
      throw new SourceError({ code: 'REVISION_NOT_FOUND', message: `commit ${sha} not found: ${err.message}`, cause: err });
    }
    throw new SourceError({ code: 'REPO_UNREADABLE', message: `cannot read commit ${sha}: ${errorMessage(err)}`, cause: err });
  }
}
