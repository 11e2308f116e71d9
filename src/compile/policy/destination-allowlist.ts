import type { Finding, PolicyContext, PolicyRule } from '../types.js';
import { compileDestinationGlobs, hostOf } from './glob.js';
import { field, pointer } from './json.js';

/**
 * Routes may only point at destinations matching a glob of `policy.allowedDestinations`
 * (semantics in glob.ts), so a config change cannot send mesh traffic, with its
 * identity and headers, to an unapproved host. The rule is off while the list is
 * absent; an empty list allows no destination at all.
 */
export const destinationAllowlist: PolicyRule = {
  id: 'destination-allowlist',
  check({ document, policy }: PolicyContext): readonly Finding[] {
    const allowed: unknown = policy.allowedDestinations;
    if (!Array.isArray(allowed)) return [];
    const routes = field(document, 'routes');
    if (!Array.isArray(routes)) return [];
    const matchers = compileDestinationGlobs(allowed);
    const findings: Finding[] = [];
    routes.forEach((route, i) => {
      const destination = field(route, 'destination');
      if (typeof destination !== 'string' || matchers.some((m) => m.matches(destination))) return;
      const host = hostOf(destination);
      // Echo the host only when it looks like one: the value is repository content
      // and could be anything (`user:pass@host`), and messages get logged.
      const shown = /^[A-Za-z0-9._-]{1,253}$/.test(host) ? ` "${host}"` : '';
      findings.push({
        path: pointer('routes', i, 'destination'),
        message: `destination${shown} is not in policy.allowedDestinations: the route would send traffic to an unapproved host`,
      });
    });
    return findings;
  },
};
