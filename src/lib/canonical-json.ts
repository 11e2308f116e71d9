import type { JsonValue } from '../domain/types.js';

const UTF8 = new TextEncoder();

/**
 * RFC 8785 JSON Canonicalization Scheme (JCS).
 *
 * The bundle digest is computed over these bytes, so every replica and every run must
 * produce the same string for the same value:
 * - object members sorted by their keys' UTF-16 code units (JavaScript's default string
 *   comparison, which is exactly what RFC 8785 §3.2.3 asks for — not locale order);
 * - numbers in ECMAScript `Number.prototype.toString` form (RFC 8785 §3.2.2.3), which is
 *   what `JSON.stringify` emits for finite numbers, with `-0` written as `0`;
 * - strings escaped as `JSON.stringify` does (RFC 8785 §3.2.2.2 adopts ECMAScript's
 *   rules: `\b \t \n \f \r \" \\`, other controls as lowercase `\u00xx`, all else literal);
 * - no whitespace.
 * Non-finite numbers have no JSON form and strings with lone surrogates are not I-JSON
 * (RFC 8785 §3.1 requires I-JSON input): both are rejected with a `RangeError` rather than
 * silently becoming `null` or U+FFFD. The YAML loader already refuses both, with a line.
 */
export function canonicalJson(value: JsonValue): string {
  const out: string[] = [];
  write(value, out);
  return out.join('');
}

/** UTF-8 bytes of {@link canonicalJson}, in their own ArrayBuffer (unlike a pooled `Buffer.from`). */
export function canonicalBytes(value: JsonValue): Uint8Array {
  return UTF8.encode(canonicalJson(value));
}

function write(value: JsonValue, out: string[]): void {
  if (value === null) {
    out.push('null');
    return;
  }
  switch (typeof value) {
    case 'boolean':
      out.push(value ? 'true' : 'false');
      return;
    case 'number':
      if (!Number.isFinite(value)) throw new RangeError(`canonical JSON cannot represent ${String(value)}`);
      // JSON.stringify(-0) is "0", as RFC 8785 requires.
      out.push(JSON.stringify(value));
      return;
    case 'string':
      writeString(value, out);
      return;
    case 'object':
      break;
    default:
      // Unreachable for well-typed input; guards values that entered through a cast.
      throw new TypeError(`canonical JSON cannot represent a ${typeof value}`);
  }
  if (Array.isArray(value)) {
    out.push('[');
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out.push(',');
      write(value[i] as JsonValue, out);
    }
    out.push(']');
    return;
  }
  // Default sort compares UTF-16 code units, the order RFC 8785 specifies.
  const keys = Object.keys(value).sort();
  out.push('{');
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string;
    if (i > 0) out.push(',');
    writeString(key, out);
    out.push(':');
    write(value[key] as JsonValue, out);
  }
  out.push('}');
}

/** In a `u` regex a surrogate class matches only unpaired surrogates. */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

export function hasLoneSurrogate(text: string): boolean {
  return LONE_SURROGATE.test(text);
}

function writeString(text: string, out: string[]): void {
  if (hasLoneSurrogate(text)) throw new RangeError('canonical JSON cannot represent a string with a lone surrogate');
  out.push(JSON.stringify(text));
}
