import type { PolicyRule } from '../types.js';
import { destinationAllowlist } from './destination-allowlist.js';
import { minTlsVersion } from './min-tls-version.js';
import { mtlsStrictInSecureZone } from './mtls-strict-in-secure-zone.js';
import { noEmbeddedSecrets } from './no-embedded-secrets.js';
import { retryBudget } from './retry-budget.js';

export { destinationAllowlist, minTlsVersion, mtlsStrictInSecureZone, noEmbeddedSecrets, retryBudget };
export { compileDestinationGlob } from './glob.js';
export { DEFAULT_MAX_INVENTORY_REMOVAL, inventoryShrink } from './inventory-shrink.js';
export type { InventoryShrink } from './inventory-shrink.js';
export type { DestinationMatcher } from './glob.js';

/**
 * Every built-in rule, in the order docs/architecture.md lists them. Each is pure and never
 * throws, whatever shape the document has, so callers can run all of them on
 * documents that failed the schema and report everything in one pass.
 */
export const builtinRules: readonly PolicyRule[] = Object.freeze([
  mtlsStrictInSecureZone,
  minTlsVersion,
  noEmbeddedSecrets,
  retryBudget,
  destinationAllowlist,
]);
