import { timingSafeEqual } from 'node:crypto';
import { isAgentId } from '../domain/agent-id.js';
import { PkiError } from '../domain/errors.js';
import { isObject, writeFileAtomic } from '../lib/index.js';
import { readSecretFile } from './secret-file.js';
import type { TokenRecord, TokenStore } from './tokens.js';

export interface FileTokenStoreOptions {
  readonly now?: () => Date;
  /**
   * How long a spent or expired record is kept, so a late reuse is reported as TOKEN_USED or
   * TOKEN_EXPIRED rather than TOKEN_UNKNOWN. Default 30 days.
   */
  readonly retentionMs?: number;
}

interface StoredRecord {
  readonly hash: string;
  readonly agentId: string;
  readonly expiresAt: string;
  readonly usedAt?: string;
}

interface StoredFile {
  readonly version: 1;
  readonly tokens: readonly StoredRecord[];
}

/**
 * A `TokenStore` in one JSON file (0600) holding only token hashes. Stands in until the SQLite
 * fleet store takes over.
 *
 * Contract: one process owns the file. Operations are serialized in memory and every change
 * rewrites the file atomically before it takes effect, so a claim that returned is durable
 * and a crash never leaves a torn file.
 */
export class FileTokenStore implements TokenStore {
  private records: readonly TokenRecord[];
  private queue: Promise<unknown> = Promise.resolve();
  private readonly options: Required<FileTokenStoreOptions>;

  private constructor(
    readonly path: string,
    records: readonly TokenRecord[],
    options: FileTokenStoreOptions,
  ) {
    this.records = records;
    this.options = {
      now: options.now ?? (() => new Date()),
      retentionMs: options.retentionMs ?? 30 * 24 * 60 * 60_000,
    };
  }

  /** Opens the store at `path`; a missing file is an empty store (created on first insert). */
  static async open(path: string, options: FileTokenStoreOptions = {}): Promise<FileTokenStore> {
    const text = await readSecretFile(path);
    return new FileTokenStore(path, text === undefined ? [] : parseStoreFile(path, text), options);
  }

  insert(record: TokenRecord): Promise<void> {
    return this.serialized(async () => {
      const horizon = this.options.now().getTime() - this.options.retentionMs;
      const kept = this.records.filter((r) => r.expiresAt.getTime() > horizon);
      await this.commit([...kept, record]);
    });
  }

  claim(hash: Buffer, at: Date): Promise<TokenRecord | undefined> {
    return this.serialized(async () => {
      const index = findByHash(this.records, hash);
      const before = index < 0 ? undefined : this.records[index];
      if (before === undefined || before.usedAt !== undefined || before.expiresAt.getTime() <= at.getTime()) return before;
      await this.commit(this.records.map((r, i) => (i === index ? { ...r, usedAt: at } : r)));
      return before;
    });
  }

  /** Writes first, then swaps memory: a failed write leaves the store as it was. */
  private async commit(records: readonly TokenRecord[]): Promise<void> {
    const file: StoredFile = {
      version: 1,
      tokens: records.map((r) => ({
        hash: r.hash.toString('hex'),
        agentId: r.agentId,
        expiresAt: r.expiresAt.toISOString(),
        ...(r.usedAt === undefined ? {} : { usedAt: r.usedAt.toISOString() }),
      })),
    };
    await writeFileAtomic(this.path, `${JSON.stringify(file, null, 2)}\n`);
    this.records = records;
  }

  private serialized<T>(operation: () => Promise<T>): Promise<T> {
    const result = this.queue.then(operation);
    // The queue must survive a failed operation; the caller still sees the failure.
    this.queue = result.catch(() => undefined);
    return result;
  }
}

/**
 * Compares against every record with no early exit, so response time says nothing about
 * how much of a hash matched. (An index lookup by hash would leak timing only about the
 * hash, which preimage resistance makes worthless; this store does not rely on that.)
 */
function findByHash(records: readonly TokenRecord[], hash: Buffer): number {
  let found = -1;
  records.forEach((r, i) => {
    if (r.hash.length === hash.length && timingSafeEqual(r.hash, hash)) found = i;
  });
  return found;
}

function parseStoreFile(path: string, text: string): TokenRecord[] {
  const invalid = (why: string, cause?: unknown): PkiError =>
    new PkiError({ code: 'TOKEN_STORE_INVALID', message: `${path}: ${why}`, cause });
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (cause) {
    throw invalid('not JSON', cause);
  }
  if (!isObject(doc) || doc['version'] !== 1 || !Array.isArray(doc['tokens'])) throw invalid('expected {"version": 1, "tokens": [...]}');
  return doc['tokens'].map((entry: unknown, i: number): TokenRecord => {
    if (!isObject(entry)) throw invalid(`tokens[${i}] is not an object`);
    const { hash, agentId, expiresAt, usedAt } = entry;
    if (typeof hash !== 'string' || !/^[0-9a-f]{64}$/.test(hash)) throw invalid(`tokens[${i}].hash is not 64 hex digits`);
    if (!isAgentId(agentId)) throw invalid(`tokens[${i}].agentId is not an agent id`);
    const expires = parseDate(expiresAt);
    if (expires === undefined) throw invalid(`tokens[${i}].expiresAt is not a date`);
    const used = usedAt === undefined ? undefined : parseDate(usedAt);
    if (usedAt !== undefined && used === undefined) throw invalid(`tokens[${i}].usedAt is not a date`);
    return { hash: Buffer.from(hash, 'hex'), agentId, expiresAt: expires, ...(used === undefined ? {} : { usedAt: used }) };
  });
}

function parseDate(value: unknown): Date | undefined {
  if (typeof value !== 'string') return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date;
}
