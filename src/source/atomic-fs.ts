import * as fsp from 'node:fs/promises';
import type { PromiseFsClient } from 'isomorphic-git';
import { writeFileAtomic } from '../lib/index.js';

/**
 * The node file system for isomorphic-git, except that every file write lands atomically
 * (`writeFileAtomic`: write a sibling temporary file, then rename over the target).
 *
 * Why: readers run while a fetch writes. isomorphic-git writes a pack, then its `.idx`,
 * with plain `writeFile`; a reader that lists `objects/pack` mid-write would load a torn
 * index. Refs are written the same way. With rename, a reader sees the old file or the
 * whole new one, and a crash mid-fetch leaves no torn file behind. Temporary names never
 * end in `.idx` or `.pack`, so pack discovery ignores them.
 */
export function createAtomicFs(): PromiseFsClient {
  // Not durable (no fsync), as before: a power loss may lose an object, which the next fetch
  // brings again; a reader or a crashed process never sees a torn one. The temporary file is created with the default mode (0666 less the
  // umask), as isomorphic-git's own writes are.
  const writeFile = async (path: string, data: string | Uint8Array, options?: { readonly mode?: number } | string): Promise<void> => {
    const mode = typeof options === 'object' && typeof options.mode === 'number' ? options.mode : 0o666;
    // isomorphic-git answers a failed write by creating the directory and retrying, so
    // writeFileAtomic rethrows ENOENT unchanged.
    await writeFileAtomic(path, data, mode, { durable: false });
  };
  // `rm` is beyond the typed contract; isomorphic-git uses it when present.
  const promises = {
    readFile: fsp.readFile,
    writeFile,
    unlink: fsp.unlink,
    readdir: fsp.readdir,
    mkdir: fsp.mkdir,
    rmdir: fsp.rmdir,
    rm: fsp.rm,
    stat: fsp.stat,
    lstat: fsp.lstat,
    readlink: fsp.readlink,
    symlink: fsp.symlink,
    chmod: fsp.chmod,
  };
  return { promises };
}
