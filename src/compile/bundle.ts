import type { JsonObject } from '../domain/types.js';
import { canonicalBytes, deepFreeze, sha256Digest } from '../lib/index.js';
import type { CompiledBundle } from './types.js';

/**
 * Seals a merged document into a bundle: RFC 8785 bytes and their digest.
 *
 * The document is deep-frozen in place, so callers must hand over a document nobody else
 * mutates (the merge functions return fresh or already-frozen structure). `bytes` cannot be
 * frozen (typed arrays refuse it): bundles are shared through caches, so consumers must treat
 * `bytes` as read-only.
 */
export function makeBundle(document: JsonObject): CompiledBundle {
  const bytes = canonicalBytes(document);
  return Object.freeze({ digest: sha256Digest(bytes), bytes, document: deepFreeze(document) });
}
