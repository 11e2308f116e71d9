import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rename, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getConfig, init, setConfig, type FsClient } from 'isomorphic-git';
import { SourceError } from '../domain/errors.js';
import { isCodedError, safeCause } from './git-errors.js';
import { urlSecrets, type RepositoryLocation } from './location.js';

/**
 * How objects are reached. A local repository is read in place through its git
 * directory (isomorphic-git has no file transport to clone from): reads are by object
 * id only, so its working tree, index and checkout never matter, and its new commits
 * are seen by re-reading the branch ref. A remote is cloned into a bare repository of
 * our own.
 */
export type Store =
  | { readonly kind: 'local'; readonly gitdir: string }
  | { readonly kind: 'remote'; readonly gitdir: string; readonly url: string; readonly temporaryRoot: string | null };


/** Where isomorphic-git writes fetched refs. Scratch only: it updates them before the pack is on disk. */
const FETCH_REFSPEC = '+refs/heads/*:refs/remotes/origin/*';

/**
 * The git directory of a local repository: `<path>/.git` of a plain one, `<path>` itself
 * of a bare one. Linked worktrees and submodules (a `.git` *file*) are refused: their
 * refs and objects live elsewhere and isomorphic-git does not follow them.
 */
export async function findGitdir(path: string): Promise<string> {
  const notARepo = (why: string, cause?: unknown): SourceError =>
    new SourceError({ code: 'REPO_UNREADABLE', message: `${path} is not a readable git repository: ${why}`, cause });
  const kind = async (p: string): Promise<'dir' | 'file' | 'none'> => {
    try {
      const s = await stat(p);
      return s.isDirectory() ? 'dir' : 'file';
    } catch (err) {
      if (isCodedError(err) && (err.code === 'ENOENT' || err.code === 'ENOTDIR')) return 'none';
      throw notARepo('cannot stat it', err);
    }
  };
  if ((await kind(path)) !== 'dir') throw notARepo('no such directory');
  const dotGit = join(path, '.git');
  const dotGitKind = await kind(dotGit);
  if (dotGitKind === 'file') throw notARepo('.git is a file (linked worktree or submodule); use the main repository');
  const gitdir = dotGitKind === 'dir' ? dotGit : path;
  if ((await kind(join(gitdir, 'HEAD'))) !== 'file' || (await kind(join(gitdir, 'objects'))) !== 'dir') {
    throw notARepo('no HEAD or objects directory');
  }
  return gitdir;
}

/**
 * The bare clone of a remote: reused when present (restarts do not re-clone), else
 * created in a staging directory and renamed into place, so a crash never leaves a
 * half-initialized clone under the final name. The first fetch fills it. One process
 * owns a clone directory at a time (replicas elect a leader for the tracker; isomorphic-git's
 * ref locks are per process).
 */
export async function prepareClone(
  fs: FsClient,
  location: Extract<RepositoryLocation, { kind: 'remote' }>,
  options: { readonly dataDir?: string | undefined; readonly branch?: string | undefined },
): Promise<Extract<Store, { kind: 'remote' }>> {
  try {
    let root: string;
    let temporaryRoot: string | null = null;
    if (options.dataDir === undefined) {
      root = await mkdtemp(join(tmpdir(), 'meshcfg-source-'));
      temporaryRoot = root;
    } else {
      root = join(options.dataDir, 'sources');
      await mkdir(root, { recursive: true });
    }
    // Keyed by the redacted URL: rotating a token in the URL keeps the clone.
    const id = createHash('sha256').update(`${location.display}\n${options.branch ?? 'HEAD'}`).digest('hex').slice(0, 24);
    const gitdir = join(root, `${id}.git`);
    const existing = await getConfig({ fs, gitdir, path: 'remote.origin.fetch' }).catch(() => undefined);
    if (existing !== FETCH_REFSPEC) {
      await rm(gitdir, { recursive: true, force: true });
      const staging = `${gitdir}.${randomBytes(6).toString('hex')}.tmp`;
      await init({ fs, gitdir: staging, bare: true, defaultBranch: options.branch ?? 'main' });
      await setConfig({ fs, gitdir: staging, path: 'remote.origin.url', value: location.display });
      await setConfig({ fs, gitdir: staging, path: 'remote.origin.fetch', value: FETCH_REFSPEC });
      await rename(staging, gitdir);
    }
    return { kind: 'remote', gitdir, url: location.url, temporaryRoot };
  } catch (cause) {
    throw new SourceError({
      code: 'REPO_UNREADABLE',
      message: `cannot prepare a clone of ${location.display}`,
      cause: safeCause(cause, urlSecrets(location.url)),
    });
  }
}

export async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}
