import { createHash } from 'node:crypto';

import type { Digest } from '../domain/types.js';

/** `sha256:<hex>` of some bytes: the digest of a canonical bundle (docs/architecture.md, "Same inputs, same bytes"). */
export function sha256Digest(bytes: Uint8Array): Digest {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}
