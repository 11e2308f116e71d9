import type { Finding, PolicyContext, PolicyRule } from '../types.js';
import { field, isFiniteNumber, pointer } from './json.js';

/**
 * A route's retries must fit inside its timeout: the first try plus `attempts`
 * retries, each allowed `perTryTimeoutMs`, must not exceed `timeoutMs`. Otherwise the
 * configured retries can never all run, and under a slow upstream every request
 * waits out the whole route timeout: a latency spike exactly when the upstream is
 * struggling. Checked only when all three numbers are present; the schema owns their
 * shape.
 */
export const retryBudget: PolicyRule = {
  id: 'retry-budget',
  check({ document }: PolicyContext): readonly Finding[] {
    const routes = field(document, 'routes');
    if (!Array.isArray(routes)) return [];
    const findings: Finding[] = [];
    routes.forEach((route, i) => {
      const timeoutMs = field(route, 'timeoutMs');
      const retries = field(route, 'retries');
      const attempts = field(retries, 'attempts');
      const perTryTimeoutMs = field(retries, 'perTryTimeoutMs');
      if (!isFiniteNumber(timeoutMs) || !isFiniteNumber(attempts) || !isFiniteNumber(perTryTimeoutMs)) return;
      const worstCaseMs = (attempts + 1) * perTryTimeoutMs;
      if (worstCaseMs <= timeoutMs) return;
      const name = field(route, 'name');
      findings.push({
        path: pointer('routes', i, 'retries'),
        message:
          `${typeof name === 'string' ? `route "${name}"` : 'route'}: (${attempts} retries + 1) × ${perTryTimeoutMs}ms per try = ${worstCaseMs}ms ` +
          `exceeds timeoutMs ${timeoutMs}ms: retries cannot finish and slow upstreams cause latency spikes; lower attempts or perTryTimeoutMs, or raise timeoutMs`,
      });
    });
    return findings;
  },
};
