import { randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import type { PromiseFsClient } from 'isomorphic-git';

/**
 * The node file system for isomorphic-git, except that every file write lands atomically
 * (write a sibling temporary file, then rename over the target).
 *
 * Why: readers run while a fetch writes. isomorphic-git writes a pack, then its `.idx`,
 * with plain `writeFile`; a reader that lists `objects/pack` mid-write would load a torn
 * index. Refs are written the same way. With rename, a reader sees the old file or the
 * whole new one, and a crash mid-fetch leaves no torn file behind. Temporary names never
 * end in `.idx` or `.pack`, so pack discovery ignores them.
 */
export function createAtomicFs(): PromiseFsClient {
  const writeFile = async (
    path: string,
    data: string | Uint8Array,
    options?: Parameters<typeof fsp.writeFile>[2],
  ): Promise<void> => {
    const temporary = `${path}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await fsp.writeFile(temporary, data, options);
      await fsp.rename(temporary, path);
    } catch (err) {
      await fsp.rm(temporary, { force: true });
      // isomorphic-git answers a failed write by creating the directory and retrying,
      // so ENOENT must come through unchanged.
      throw err;
    }
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
