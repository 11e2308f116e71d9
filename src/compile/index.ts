/**
 * The compiler's public API: a verified tree in, one canonical, policy-checked bundle per
 * agent out. Everything here is pure (no I/O, no clock).
 */
export { Compiler } from './compiler.js';
export type { CompilerOptions } from './compiler.js';
export { CACHE_NAMES } from './cache.js';
export type { CacheCounters, CacheName, CacheStats } from './cache.js';

export { makeBundle } from './bundle.js';
export { mergeLayer, mergeLayers } from './merge.js';
export { matchesSelector } from './selector.js';
export { IMPLICIT_WAVE, assignWave, bucketOf } from './waves.js';
export { changeKey, diffDocuments, renderDiff, REDACTED } from './diff.js';
export type { DiffOp, RenderOptions } from './diff.js';

export { validateAgentDocument, validateSettingsDocument } from './schema.js';
export { builtinRules, DEFAULT_MAX_INVENTORY_REMOVAL, inventoryShrink } from './policy/index.js';
export type { InventoryShrink } from './policy/index.js';

export type {
  CompiledAgent,
  CompiledBundle,
  Compilation,
  Finding,
  MeshcfgSettings,
  PolicyContext,
  PolicyRule,
  PolicySettings,
  Selector,
  WaveSpec,
} from './types.js';
