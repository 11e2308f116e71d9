import { readFile, stat } from 'node:fs/promises';
import { PkiError } from '../domain/errors.js';
import { isErrnoCode } from '../lib/index.js';

/** Owner read/write only: private keys, tokens, the token store. */
export const SECRET_FILE_MODE = 0o600;

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
