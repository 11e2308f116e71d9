/** A plain JSON-like object: not null, not an array. Parsed input is attacker- or user-controlled; check before reading keys. */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The default branch of an exhaustive `switch`: the compiler proves it unreachable; a value that entered through a cast throws. */
export function assertNever(value: never): never {
  throw new TypeError(`unhandled case ${JSON.stringify(value)}`);
}
