import { inspect } from 'node:util';

/**
 * A value that never shows when its holder is logged, inspected or serialized: key material
 * kept in a class field. TypeScript's `private` (our convention, docs/architecture.md) is a
 * compile-time promise only, so a field holding a private key wraps it here. The value lives in
 * a closure, not in a property, so no enumeration reaches it; `open()` hands it out.
 */
export class Sealed<T> {
  readonly open: () => T;

  constructor(value: T) {
    this.open = () => value;
  }

  toJSON(): string {
    return '[sealed]';
  }

  [inspect.custom](): string {
    return '[sealed]';
  }
}
