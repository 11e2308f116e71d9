import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * RFC 9162 (Certificate Transparency v2) Merkle tree hashing, §2.1.1:
 * leaf = SHA-256(0x00 ‖ leaf bytes), node = SHA-256(0x01 ‖ left ‖ right). The distinct
 * prefixes keep a leaf from ever being read as an inner node (second-preimage attacks).
 */
const LEAF_PREFIX = Buffer.from([0x00]);
const NODE_PREFIX = Buffer.from([0x01]);

/** Hash length in bytes (SHA-256). */
export const HASH_SIZE = 32;

/**
 * Longest audit path accepted from the wire: a tree of 2^63 leaves needs 63 hashes. It bounds
 * the work an attacker-controlled proof can cause.
 */
export const MAX_AUDIT_PATH = 63;

export function leafHash(leafBytes: Uint8Array): Buffer {
  return createHash('sha256').update(LEAF_PREFIX).update(leafBytes).digest();
}

export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  return createHash('sha256').update(NODE_PREFIX).update(left).update(right).digest();
}

/**
 * A Merkle tree over leaves in the order given, kept level by level so an audit path is
 * O(log n) lookups. Building level by level and carrying an unpaired last node up unchanged
 * yields exactly RFC 9162's MTH (split at the largest power of two below n), so proofs
 * verify with the RFC's algorithm ({@link verifyInclusion}).
 *
 * Immutable after construction (the hex cache is derived, filled once); `root()` and
 * `auditPath()` return copies.
 */
export class MerkleTree {
  /** levels[0] are the leaf hashes, the last level holds only the root. */
  private readonly levels: readonly (readonly Buffer[])[];
  /** Hex of every node, derived from `levels` on the first auditPathHex call. */
  private hexLevels: readonly (readonly string[])[] | undefined;

  constructor(leaves: readonly Uint8Array[]) {
    if (leaves.length === 0) throw new RangeError('a Merkle tree needs at least one leaf');
    const levels: Buffer[][] = [leaves.map(leafHash)];
    let level = levels[0] as Buffer[];
    while (level.length > 1) {
      const next: Buffer[] = [];
      for (let i = 0; i < level.length; i += 2) {
        const left = level[i] as Buffer;
        const right = level[i + 1];
        next.push(right === undefined ? left : nodeHash(left, right));
      }
      levels.push(next);
      level = next;
    }
    this.levels = levels;
  }

  get size(): number {
    return (this.levels[0] as readonly Buffer[]).length;
  }

  root(): Buffer {
    return Buffer.from((this.levels[this.levels.length - 1] as readonly Buffer[])[0] as Buffer);
  }

  /** RFC 9162 §2.1.3.1 inclusion path for the leaf at `index`, bottom-up. */
  auditPath(index: number): Buffer[] {
    return this.path(index, this.levels).map((hash) => Buffer.from(hash));
  }

  /**
   * {@link auditPath} as lowercase hex, the wire form. The hex of every node is computed once
   * (on first use), so cutting a proof per agent is only O(log n) lookups.
   */
  auditPathHex(index: number): string[] {
    this.hexLevels ??= this.levels.map((level) => level.map((hash) => hash.toString('hex')));
    return this.path(index, this.hexLevels);
  }

  private path<T>(index: number, levels: readonly (readonly T[])[]): T[] {
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.size) {
      throw new RangeError(`leaf index ${index} outside a tree of ${this.size}`);
    }
    const path: T[] = [];
    let i = index;
    for (let depth = 0; depth < levels.length - 1; depth++) {
      const level = levels[depth] as readonly T[];
      const sibling = i % 2 === 1 ? level[i - 1] : level[i + 1];
      // An unpaired last node is carried up unchanged: no hash at this level.
      if (sibling !== undefined) path.push(sibling);
      i = Math.floor(i / 2);
    }
    return path;
  }
}

/**
 * RFC 9162 §2.1.3.2: does `path` prove that the leaf hashing to `leaf` sits at `index` in
 * the tree of `treeSize` leaves whose root is `root`? The algorithm also refuses paths that
 * are too short or too long, so a proof can only be the one the tree produced.
 *
 * All inputs may be attacker-controlled; arithmetic avoids 32-bit bit operations so sizes
 * up to 2^53 behave.
 */
export function verifyInclusion(args: {
  leaf: Uint8Array;
  index: number;
  treeSize: number;
  path: readonly Uint8Array[];
  root: Uint8Array;
}): boolean {
  const { leaf, index, treeSize, path, root } = args;
  if (!Number.isSafeInteger(treeSize) || treeSize < 1) return false;
  if (!Number.isSafeInteger(index) || index < 0 || index >= treeSize) return false;
  if (path.length > MAX_AUDIT_PATH) return false;
  if (root.length !== HASH_SIZE || path.some((p) => p.length !== HASH_SIZE)) return false;

  let fn = index;
  let sn = treeSize - 1;
  let r: Uint8Array = leafHash(leaf);
  for (const p of path) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && timingSafeEqual(r, root);
}
