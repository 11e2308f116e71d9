import type { JsonValue } from '../../../src/domain/types.js';
import type { Finding, PolicyContext, PolicyRule } from '../../../src/compile/types.js';
import { aid } from '../../helpers/ids.js';

/** A policy context for one agent; only what a test names differs from the defaults. */
export function context(
  document: JsonValue,
  { labels = {}, secureZones = [], allowedDestinations }: { labels?: Record<string, string>; secureZones?: string[]; allowedDestinations?: string[] } = {},
): PolicyContext {
  return {
    agentId: aid('edge-1'),
    labels,
    document,
    policy: allowedDestinations === undefined ? { secureZones } : { secureZones, allowedDestinations },
  };
}

/** The JSON pointers a rule reports, in order: what most assertions are about. */
export function paths(rule: PolicyRule, ctx: PolicyContext): string[] {
  return rule.check(ctx).map((f: Finding) => f.path);
}
