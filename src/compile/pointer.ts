/**
 * RFC 6901 JSON pointers: the `path` of every violation and diff entry.
 * `''` is the whole document; `/routes/0/name` the `name` of the first route.
 */

/** Escapes one reference token (`~` → `~0`, `/` → `~1`; order matters). */
export function escapeToken(token: string): string {
  if (!token.includes('~') && !token.includes('/')) return token;
  return token.replaceAll('~', '~0').replaceAll('/', '~1');
}

/** Appends a key or array index to a pointer. */
export function appendPointer(pointer: string, token: string | number): string {
  return `${pointer}/${typeof token === 'number' ? String(token) : escapeToken(token)}`;
}

export function toPointer(tokens: readonly (string | number)[]): string {
  let pointer = '';
  for (const token of tokens) pointer = appendPointer(pointer, token);
  return pointer;
}

/** Splits a pointer into unescaped tokens. A pointer that does not start with `/` (other than `''`) has no tokens we can trust. */
export function parsePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw new RangeError(`not a JSON pointer: ${JSON.stringify(pointer)}`);
  return pointer
    .slice(1)
    .split('/')
    .map((token) => token.replaceAll('~1', '/').replaceAll('~0', '~'));
}
