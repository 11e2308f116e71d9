import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export interface WriteFileAtomicOptions {
  /**
   * Default true: fsync the file before the rename and the directory after it, so the new
   * file survives a power loss. False keeps the write atomic for readers and for a process
   * crash, not for a power loss: only for what can be fetched again (the git object store,
   * where an fsync per object would slow every fetch).
   */
  readonly durable?: boolean;
}

/**
 * Writes `data` to `path` so that a reader (or a crash) sees the old file or the whole new
 * one, never a torn one: a sibling temporary file (`.<name>.<random>.tmp`, created
 * exclusively), fsync, rename over the target, fsync the directory so the rename itself
 * survives a power loss. `mode` defaults to 0600: the temporary file is never wider than
 * the target, not even for a moment. A failed write removes the temporary file and rethrows
 * the error unchanged (callers branch on its errno code).
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600, options: WriteFileAtomicOptions = {}): Promise<void> {
  const durable = options.durable ?? true;
  const temporary = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const handle = await open(temporary, 'wx', mode);
    try {
      await handle.writeFile(data);
      if (durable) await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
  } catch (err) {
    await rm(temporary, { force: true });
    throw err;
  }
  if (durable) await syncDirectory(dirname(path));
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Reads a text file; undefined when it does not exist. */
export async function readOptionalFile(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if (isErrnoCode(err, 'ENOENT')) return undefined;
    throw err;
  }
}

/** Whether `err` is a Node.js system error (or any error) with this `code`, e.g. `ENOENT`. */
export function isErrnoCode(err: unknown, code: string): boolean {
  return errnoCode(err) === code;
}

/** The string `code` of a Node.js system error (or any coded error); undefined for anything else. */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null || !('code' in err)) return undefined;
  const { code } = err as { code: unknown };
  return typeof code === 'string' ? code : undefined;
}
