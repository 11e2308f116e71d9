/**
 * SSH wire-format values (RFC 4251 §5): `uint32`, `string` (uint32 length + bytes) and
 * `mpint` (a two's-complement big-endian integer in a string).
 *
 * Everything read here may come from an attacker (a signature in a commit), so every read
 * is bounds-checked against the buffer: a forged length field fails instead of reading
 * past the end or allocating what it claims.
 */

/** Reports why a read failed; never returns. Callers turn it into their layer's error code. */
export type WireFail = (reason: string) => never;

const utf8 = new TextDecoder('utf-8', { fatal: true });

export class SshReader {
  private offset = 0;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly fail: WireFail,
  ) {}

  get remaining(): number {
    return this.bytes.length - this.offset;
  }

  /** Takes exactly `length` raw bytes (a view, not a copy). */
  raw(length: number, what: string): Uint8Array {
    if (length > this.remaining) this.fail(`${what} is truncated`);
    const out = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return out;
  }

  uint32(what: string): number {
    const b = this.raw(4, what);
    // Indexes are in range: raw() returned exactly 4 bytes.
    return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
  }

  /** A length-prefixed byte string. The length is checked before anything is taken. */
  string(what: string): Uint8Array {
    const length = this.uint32(`${what} length`);
    return this.raw(length, what);
  }

  /** A length-prefixed UTF-8 text (names such as key types and namespaces). */
  text(what: string): string {
    const bytes = this.string(what);
    try {
      return utf8.decode(bytes);
    } catch {
      return this.fail(`${what} is not valid UTF-8`);
    }
  }

  /**
   * A non-negative mpint, returned as its magnitude without leading zero bytes.
   * Negative values never occur in keys or signatures, so they are rejected.
   */
  unsignedMpint(what: string): Uint8Array {
    const bytes = this.string(what);
    if (bytes.length > 0 && (bytes[0]! & 0x80) !== 0) this.fail(`${what} is negative`);
    let start = 0;
    while (start < bytes.length && bytes[start] === 0) start++;
    return bytes.subarray(start);
  }

  /** Fails when bytes are left over: trailing data is a sign of a forged or confused encoding. */
  end(what: string): void {
    if (this.remaining !== 0) this.fail(`${what} is followed by ${this.remaining} unexpected byte(s)`);
  }
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const total = parts.reduce((sum, part) => sum + part.length, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Encodes an SSH `string`. Text is encoded as UTF-8. */
export function sshString(value: Uint8Array | string): Uint8Array {
  const bytes = typeof value === 'string' ? new TextEncoder().encode(value) : value;
  const out = new Uint8Array(4 + bytes.length);
  new DataView(out.buffer).setUint32(0, bytes.length);
  out.set(bytes, 4);
  return out;
}

/** Encodes a non-negative integer magnitude as a minimal SSH `mpint`. */
export function sshMpint(magnitude: Uint8Array): Uint8Array {
  let start = 0;
  while (start < magnitude.length && magnitude[start] === 0) start++;
  const trimmed = magnitude.subarray(start);
  // A set high bit would read as negative: prefix a zero byte.
  const needsPad = trimmed.length > 0 && (trimmed[0]! & 0x80) !== 0;
  return sshString(needsPad ? concatBytes([new Uint8Array([0]), trimmed]) : trimmed);
}

/** Left-pads a big-endian magnitude to `size` bytes; undefined when it does not fit. */
export function leftPad(magnitude: Uint8Array, size: number): Uint8Array | undefined {
  if (magnitude.length > size) return undefined;
  const out = new Uint8Array(size);
  out.set(magnitude, size - magnitude.length);
  return out;
}
