import { readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { isCommitSha } from '../domain/agent-id.js';
import { errorMessage } from '../domain/errors.js';
import { isErrnoCode, writeFileAtomic } from '../lib/index.js';
import type { CommitSha } from '../domain/types.js';
import type { ServerStateStore } from '../fleet/index.js';
import { ServerError } from './errors.js';

/**
 * What must survive a restart for the threat model to hold: the last accepted commit (the
 * fast-forward anchor — forgetting it would let a rewound branch through) and the highest
 * generation signed (reusing one would let agents see two bundles under one generation).
 */
export interface PersistedState {
  readonly accepted: CommitSha | null;
  readonly generation: number;
  /**
   * When the server first saw `accepted`; a restart re-verifies it with key validity judged
   * at this moment (`trust.keyValidity: now`). Null when not recorded (an older meshcfg).
   */
  readonly seenAt: Date | null;
}

/** Where the reconciler keeps its PersistedState. One role, so a SQLite store can take over. */
export interface StateStore {
  load(): Promise<PersistedState>;
  /** Durable when it resolves. */
  save(state: PersistedState): Promise<void>;
}

export const INITIAL_STATE: PersistedState = Object.freeze({ accepted: null, generation: 0, seenAt: null });

/** `<dataDir>/state.json`, rewritten atomically (temp file, fsync, rename, fsync directory). */
export class FileStateStore implements StateStore {
  constructor(readonly path: string) {}

  static inDataDir(dataDir: string): FileStateStore {
    return new FileStateStore(join(dataDir, 'state.json'));
  }

  /** A missing file is a first start. A corrupt one is an error, never a reset. */
  async load(): Promise<PersistedState> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if (isErrnoCode(err, 'ENOENT')) return INITIAL_STATE;
      throw new ServerError({ code: 'STATE_INVALID', message: `cannot read ${this.path}: ${errorMessage(err)}`, cause: err });
    }
    const invalid = (why: string, cause?: unknown): ServerError =>
      new ServerError({
        code: 'STATE_INVALID',
        message: `${this.path}: ${why}; restore it from a backup (deleting it forgets the rollback anchor)`,
        cause,
      });
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (cause) {
      throw invalid('not JSON', cause);
    }
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw invalid('expected an object');
    const { version, accepted, generation, seenAt } = doc as Record<string, unknown>;
    if (version !== 1) throw invalid(`unsupported version ${JSON.stringify(version)}`);
    if (accepted !== null && !isCommitSha(accepted)) throw invalid('accepted is not a commit id or null');
    if (typeof generation !== 'number' || !Number.isSafeInteger(generation) || generation < 0) {
      throw invalid('generation is not a non-negative integer');
    }
    const seen = typeof seenAt === 'string' ? new Date(seenAt) : null;
    if (seenAt !== undefined && seenAt !== null && (seen === null || Number.isNaN(seen.getTime()))) throw invalid('seenAt is not a time');
    return Object.freeze({ accepted, generation, seenAt: seen });
  }

  async save(state: PersistedState): Promise<void> {
    const seenAt = state.seenAt === null ? {} : { seenAt: state.seenAt.toISOString() };
    const text = `${JSON.stringify({ version: 1, accepted: state.accepted, generation: state.generation, ...seenAt }, null, 2)}\n`;
    await writeFileAtomic(this.path, text, 0o600);
  }
}

/** For tests and for embedding: state in memory only. */
export class MemoryStateStore implements StateStore {
  constructor(private state: PersistedState = INITIAL_STATE) {}
  async load(): Promise<PersistedState> {
    return this.state;
  }
  async save(state: PersistedState): Promise<void> {
    this.state = Object.freeze({ ...state });
  }
}

/** The reconciler's state in the fleet store (`<dataDir>/fleet.db`): accepted commit and generation. */
export class FleetStateStore implements StateStore {
  constructor(private readonly store: Pick<ServerStateStore, 'serverState' | 'saveAccepted'>) {}

  async load(): Promise<PersistedState> {
    const { accepted, generation, seenAt } = await this.store.serverState();
    return Object.freeze({ accepted, generation, seenAt: seenAt ?? null });
  }

  async save(state: PersistedState): Promise<void> {
    const seenAt = state.seenAt === null ? {} : { seenAt: state.seenAt };
    await this.store.saveAccepted({ accepted: state.accepted, generation: state.generation, ...seenAt });
  }
}

/**
 * Moves `<dataDir>/state.json` of an older meshcfg into the fleet store, once: only when the
 * store holds nothing yet, and the file is renamed to `state.json.imported` afterwards so it
 * is neither imported again nor mistaken for live state. Returns what was imported, or null.
 */
export async function importStateJson(
  dataDir: string,
  store: Pick<ServerStateStore, 'serverState' | 'saveAccepted'>,
): Promise<PersistedState | null> {
  const file = FileStateStore.inDataDir(dataDir);
  const legacy = await file.load();
  if (legacy.accepted === null && legacy.generation === 0) return null;
  const current = await store.serverState();
  if (current.accepted === null && current.generation === 0) {
    await store.saveAccepted({ accepted: legacy.accepted, generation: legacy.generation });
  }
  await rename(file.path, `${file.path}.imported`);
  return current.accepted === null && current.generation === 0 ? legacy : null;
}
