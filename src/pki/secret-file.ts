import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { PkiError } from '../domain/errors.js';

/** Owner read/write only: private keys, tokens, the token store. */
export const SECRET_FILE_MODE = 0o600;

/**
 * Writes `data` to `path` so that a reader (or a crash) sees the old file or the whole new
 * one, never a torn one: a sibling temporary file created 0600 (never wider, not even for a
 * moment), fsync, rename over the target, fsync the directory so the rename itself survives
 * a power loss.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = SECRET_FILE_MODE): Promise<void> {
  const temporary = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const handle = await open(temporary, 'wx', mode);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
  } catch (err) {
    await rm(temporary, { force: true });
    throw err;
  }
  await syncDirectory(dirname(path));
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Reads a secret file, refusing one that group or others may read (as ssh does for keys):
 * a key someone else could have read is a key to rotate, not to use. Returns undefined when
 * the file does not exist.
 */
export async function readSecretFile(path: string): Promise<string | undefined> {
  let mode: number;
  try {
    mode = (await stat(path)).mode;
  } catch (err) {
    if (isErrnoCode(err, 'ENOENT')) return undefined;
    throw err;
  }
  if ((mode & 0o077) !== 0) {
    throw new PkiError({
      code: 'DATA_DIR_INVALID',
      message: `${path} is accessible to group or others (mode ${(mode & 0o777).toString(8)}); it must be 0600`,
    });
  }
  return readFile(path, 'utf8');
}

/** Reads a public file (certificate); undefined when it does not exist. */
export async function readOptionalFile(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if (isErrnoCode(err, 'ENOENT')) return undefined;
    throw err;
  }
}

export function isErrnoCode(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && 'code' in err && (err as { code: unknown }).code === code;
}
