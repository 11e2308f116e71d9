import { randomBytes } from 'node:crypto';
import { open, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { AgentError, errorMessage } from '../domain/errors.js';
import { isErrnoCode } from '../lib/index.js';

function invalid(message: string, cause?: unknown): AgentError {
  return new AgentError({ code: 'OUTPUT_INVALID', message, cause });
}

/**
 * Checks, before the agent connects, that it can write its config file the way it will for
 * every bundle: the directory exists, is a directory, and takes a new file (probed by creating
 * and removing a temporary sibling, which is what the atomic write does — a permission check
 * alone says yes to root on a read-only file system). An agent that cannot write would receive
 * bundles it can only refuse; better to say so at once. Throws AgentError OUTPUT_INVALID
 * naming the path.
 */
export async function checkOutputFile(file: string): Promise<void> {
  const dir = dirname(file);
  let info;
  try {
    info = await stat(dir);
  } catch (cause) {
    if (isErrnoCode(cause, 'ENOENT')) throw invalid(`the directory of --out ${file} does not exist: create ${dir} first`, cause);
    throw invalid(`the directory of --out ${file} cannot be used: ${errorMessage(cause)}`, cause);
  }
  if (!info.isDirectory()) throw invalid(`the directory of --out ${file} is not a directory: ${dir}`);
  try {
    if ((await stat(file)).isDirectory()) throw invalid(`--out ${file} is a directory; name a file`);
  } catch (cause) {
    if (cause instanceof AgentError) throw cause;
    if (!isErrnoCode(cause, 'ENOENT')) throw invalid(`--out ${file} cannot be used: ${errorMessage(cause)}`, cause);
  }
  const probe = join(dir, `.${basename(file)}.${randomBytes(6).toString('hex')}.probe`);
  try {
    const handle = await open(probe, 'wx', 0o600);
    await handle.close();
  } catch (cause) {
    throw invalid(`cannot create files in ${dir}, the directory of --out ${file}: ${errorMessage(cause)}`, cause);
  }
  await rm(probe, { force: true });
}
