import { readFile, rm, stat } from 'node:fs/promises';
import { type AgentErrorCode, errorMessage, SigningError, type SigningErrorCode } from '../domain/errors.js';
import type { AgentId } from '../domain/types.js';
import { isErrnoCode, writeFileAtomic } from '../lib/index.js';
import type { BundleVerifier, RunningConfig, VerifiedDelivery } from '../signing/index.js';
import type { AckMsg, BundleMsg } from '../transport/index.js';
import { type AgentLogger, silentLogger } from './logger.js';
import type { Reloader } from './reload.js';
import { type AppliedState, hashFile, PUBLIC_FILE_MODE, readState, writeState } from './state.js';

/** What applying needs, injected so the core runs without a server or a real reload. */
export interface ApplyContext {
  readonly verifier: Pick<BundleVerifier, 'verify'>;
  /** From the agent's own certificate; the message's claim is never used. */
  readonly agentId: AgentId;
  /** The config file (`--out`). */
  readonly file: string;
  readonly stateFile: string;
  readonly reload?: Reloader;
  readonly now?: () => Date;
  readonly logger?: AgentLogger;
}

/** The message fields applying reads; a proto `Bundle` fits. */
export type IncomingBundle = Pick<BundleMsg, 'commit' | 'digest' | 'generation' | 'bytes' | 'signature' | 'nonce' | 'baseline'>;

export type RejectCode = SigningErrorCode | Extract<AgentErrorCode, 'BUNDLE_MISMATCH' | 'RELOAD_FAILED' | 'APPLY_FAILED' | 'STATE_INVALID'>;

export type ApplyResult =
  | { readonly kind: 'applied'; readonly ack: AckMsg; readonly state: AppliedState; readonly changed: boolean }
  | { readonly kind: 'rejected'; readonly ack: AckMsg; readonly code: RejectCode; readonly error: string };

/**
 * Verifies one delivery and, if it holds, puts its bytes in place and reloads:
 *
 * 1. verify the signed delivery against the pinned key, this agent's id, the received bytes
 *    and the generation floor from state.json — any refusal leaves the file untouched;
 * 2. write the file atomically with exactly the bundle bytes;
 * 3. run the reload command; if it fails, put the previous file back (or remove the new one
 *    when there was none) — the running config never silently changes;
 * 4. record state.json, after the file, so a crash in between errs towards re-applying.
 *
 * Returns the ack to send either way, and never throws: a local failure (state.json that does
 * not read, a write, fsync or rename that fails because the disk is full or the output
 * directory vanished) is answered REJECTED with APPLY_FAILED (or STATE_INVALID) and the error,
 * so the server sees it and a rollout halts instead of waiting for an ack that never comes.
 * The previous file stays (or is put back when the failure came after the write).
 */
export async function applyBundle(bundle: IncomingBundle, context: ApplyContext): Promise<ApplyResult> {
  const logger = context.logger ?? silentLogger;
  const now = context.now ?? (() => new Date());
  const base = { nonce: bundle.nonce, agent_id: context.agentId };
  const reject = (code: RejectCode, message: string, labels: Pick<AckMsg, 'commit' | 'digest' | 'generation'>): ApplyResult => {
    const error = `${code}: ${message}`;
    logger.warn({ code, commit: labels.commit, digest: labels.digest, generation: labels.generation, nonce: bundle.nonce }, 'bundle rejected');
    return { kind: 'rejected', code, error, ack: { ...base, ...labels, status: 'REJECTED', error } };
  };
  const claimed = { commit: bundle.commit, digest: bundle.digest, generation: bundle.generation };

  let current: AppliedState | null;
  try {
    current = await readState(context.stateFile);
  } catch (err) {
    return reject('STATE_INVALID', errorMessage(err), claimed);
  }
  const checked = verifyIncoming(bundle, {
    verifier: context.verifier,
    agentId: context.agentId,
    current: current === null ? null : { generation: current.generation, digest: current.digest },
  });
  if (checked.kind === 'refused') return reject(checked.code, checked.message, claimed);
  const verified = checked.delivery;
  const labels = { commit: verified.commit, digest: verified.digest, generation: verified.generation };

  const applied = (state: AppliedState, changed: boolean): ApplyResult => ({
    kind: 'applied',
    state,
    changed,
    ack: { ...base, ...labels, status: 'APPLIED', error: '' },
  });

  /** Set once the new bytes are in place: a failure after that puts the previous file back. */
  let written: { readonly previous: PreviousFile | null } | undefined;
  const restored = async (): Promise<string> => {
    if (written === undefined) return '';
    return restore(context.file, written.previous).then(
      () => '; the previous file was put back',
      (err: unknown) => `; restoring the previous file failed too: ${errorMessage(err)}`,
    );
  };
  let step = `reading ${context.file}`;
  try {
    // A re-send of what already runs (a reconnect): nothing to write or reload.
    if (current !== null && current.generation === verified.generation && current.digest === verified.digest) {
      if ((await hashFile(context.file)) === verified.digest) {
        logger.debug({ ...labels }, 'bundle already applied');
        return applied(current, false);
      }
    }

    const previous = await readPrevious(context.file);
    step = `writing ${context.file}`;
    await writeFileAtomic(context.file, bundle.bytes, previous?.mode ?? PUBLIC_FILE_MODE);
    written = { previous };

    if (context.reload !== undefined) {
      step = 'running the reload command';
      const outcome = await context.reload(context.file);
      if (outcome.kind === 'failed') return reject('RELOAD_FAILED', `${outcome.error}${await restored()}`, labels);
    }

    step = `recording ${context.stateFile}`;
    const state: AppliedState = { ...labels, appliedAt: now().toISOString() };
    await writeState(context.stateFile, state);
    logger.info({ ...labels, baseline: bundle.baseline, bytes: bundle.bytes.byteLength }, 'bundle applied');
    return applied(state, true);
  } catch (err) {
    return reject('APPLY_FAILED', `${step} failed: ${errorMessage(err)}${await restored()}`, labels);
  }
}

export type VerifyIncomingResult =
  | { readonly kind: 'verified'; readonly delivery: VerifiedDelivery }
  | { readonly kind: 'refused'; readonly code: SigningErrorCode | 'BUNDLE_MISMATCH'; readonly message: string };

/**
 * Step 1 of {@link applyBundle} on its own: the signed delivery verified against the pinned key,
 * this agent's id, the received bytes and the running config's generation floor (signature,
 * identity, commit, digest, generation, expiry), then the message's unsigned labels checked
 * against what was verified. Pure: no file is read or written. The fleet benchmark's load
 * generator calls this so its simulated agents accept exactly what the reference agent accepts.
 */
export function verifyIncoming(
  bundle: IncomingBundle,
  context: Pick<ApplyContext, 'verifier' | 'agentId'> & { readonly current: RunningConfig | null },
): VerifyIncomingResult {
  let verified: VerifiedDelivery;
  try {
    verified = context.verifier.verify({ delivery: bundle.signature, bytes: bundle.bytes, agentId: context.agentId, current: context.current });
  } catch (err) {
    if (err instanceof SigningError) return { kind: 'refused', code: err.code, message: err.message };
    throw err;
  }
  // The unsigned labels must say what was verified: an ack names what the agent runs.
  if (bundle.commit !== verified.commit || bundle.digest !== verified.digest || bundle.generation !== verified.generation) {
    return { kind: 'refused', code: 'BUNDLE_MISMATCH', message: 'the bundle message names another commit, digest or generation than its signed delivery' };
  }
  return { kind: 'verified', delivery: verified };
}

interface PreviousFile {
  readonly bytes: Buffer;
  /** Permission bits, kept for the file's next version. */
  readonly mode: number;
}

async function readPrevious(path: string): Promise<PreviousFile | null> {
  try {
    const [bytes, info] = await Promise.all([readFile(path), stat(path)]);
    return { bytes, mode: info.mode & 0o777 };
  } catch (err) {
    if (isErrnoCode(err, 'ENOENT')) return null;
    throw err;
  }
}

async function restore(path: string, previous: PreviousFile | null): Promise<void> {
  if (previous === null) await rm(path, { force: true });
  else await writeFileAtomic(path, previous.bytes, previous.mode);
}

/** The digest the agent reports as active: of the file as it is on disk (a hand edit shows as drift). */
export async function activeConfig(file: string, stateFile: string): Promise<{ commit: string; digest: string; generation: number } | null> {
  const [digest, state] = await Promise.all([hashFile(file), readState(stateFile)]);
  if (digest === null && state === null) return null;
  return { commit: state?.commit ?? '', digest: digest ?? '', generation: state?.generation ?? 0 };
}
