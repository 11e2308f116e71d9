import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isCommitSha } from '../domain/agent-id.js';
import { AgentError } from '../domain/errors.js';
import type { CommitSha, Digest } from '../domain/types.js';
import { isErrnoCode, writeFileAtomic } from '../lib/index.js';

/** state.json: what the agent runs, as last applied. Its generation is the floor for the next delivery. */
export interface AppliedState {
  readonly commit: CommitSha;
  readonly digest: Digest;
  readonly generation: number;
  /** RFC 3339. */
  readonly appliedAt: string;
}

/** Public files the agent writes (the config file, state.json, certificates). */
export const PUBLIC_FILE_MODE = 0o644;

/** Reads state.json; null when there is none yet (first start). Throws AgentError STATE_INVALID. */
export async function readState(path: string): Promise<AppliedState | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    if (isErrnoCode(cause, 'ENOENT')) return null;
    throw new AgentError({ code: 'STATE_INVALID', message: `cannot read ${path}`, cause });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new AgentError({ code: 'STATE_INVALID', message: `${path} is not JSON`, cause });
  }
  const doc = (typeof value === 'object' && value !== null ? value : {}) as Partial<Record<keyof AppliedState, unknown>>;
  if (
    !isCommitSha(doc.commit) ||
    typeof doc.digest !== 'string' ||
    !doc.digest.startsWith('sha256:') ||
    typeof doc.generation !== 'number' ||
    !Number.isSafeInteger(doc.generation) ||
    doc.generation < 0 ||
    typeof doc.appliedAt !== 'string'
  ) {
    throw new AgentError({ code: 'STATE_INVALID', message: `${path} is not {commit, digest, generation, appliedAt}` });
  }
  return { commit: doc.commit, digest: doc.digest as Digest, generation: doc.generation, appliedAt: doc.appliedAt };
}

export async function writeState(path: string, state: AppliedState): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(state, null, 2)}\n`, PUBLIC_FILE_MODE);
}

/** `sha256:<hex>` of a file's bytes, streamed; null when the file does not exist. */
export async function hashFile(path: string): Promise<Digest | null> {
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  } catch (cause) {
    if (isErrnoCode(cause, 'ENOENT')) return null;
    throw cause;
  }
  return `sha256:${hash.digest('hex')}`;
}
