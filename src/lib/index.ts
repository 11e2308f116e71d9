/**
 * Shared building blocks with no domain knowledge: every module may import them, they import
 * nothing from `src/` but `domain` types (docs/architecture.md, "Module map").
 */
export { canonicalBytes, canonicalJson, hasLoneSurrogate } from './canonical-json.js';
export { sha256Digest } from './digest.js';
export { deepFreeze } from './freeze.js';
export { errnoCode, isErrnoCode, readOptionalFile, writeFileAtomic } from './fs.js';
export type { WriteFileAtomicOptions } from './fs.js';
export { assertNever, isObject } from './guards.js';
export { combineHooks, notify } from './observe.js';
export { Sealed } from './sealed.js';
