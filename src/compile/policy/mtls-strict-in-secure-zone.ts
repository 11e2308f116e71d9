import type { Finding, PolicyContext, PolicyRule } from '../types.js';
import { field, isJsonObject, pointer } from './json.js';

/**
 * Agents whose `zone` label is listed in `policy.secureZones` must run mTLS STRICT.
 * PERMISSIVE accepts plaintext and DISABLE sends it, so either strips encryption
 * inside the zone. An absent `mtls` or `mode` is a violation too: unspecified leaves
 * the choice to the agent's default, which is not a guarantee of STRICT.
 */
export const mtlsStrictInSecureZone: PolicyRule = {
  id: 'mtls-strict-in-secure-zone',
  check({ labels, document, policy }: PolicyContext): readonly Finding[] {
    const zone = labels['zone'];
    const secureZones: readonly unknown[] = Array.isArray(policy.secureZones) ? policy.secureZones : [];
    if (typeof zone !== 'string' || !secureZones.includes(zone)) return [];

    const mtls = field(document, 'mtls');
    if (mtls !== undefined && !isJsonObject(mtls)) {
      return [{ path: pointer('mtls'), message: `zone "${zone}" is a secure zone: mtls must be a map with mode STRICT, or traffic may be plaintext` }];
    }
    const mode = field(mtls, 'mode');
    if (mode === 'STRICT') return [];
    const found = typeof mode === 'string' ? `mode ${mode}` : mode === undefined ? 'no mTLS mode' : 'an invalid mTLS mode';
    return [{
      path: pointer('mtls', 'mode'),
      message: `zone "${zone}" is a secure zone but the agent has ${found}: plaintext traffic would be accepted; set mtls.mode to STRICT`,
    }];
  },
};
