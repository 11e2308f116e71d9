import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { retryBudget } from '../../../src/compile/policy/index.js';
import type { JsonValue } from '../../../src/domain/types.js';
import { context, paths } from './context.js';

const route = (timeoutMs: JsonValue | undefined, retries: JsonValue | undefined): JsonValue => {
  const r: Record<string, JsonValue> = { name: 'api', destination: 'api.internal:443' };
  if (timeoutMs !== undefined) r['timeoutMs'] = timeoutMs;
  if (retries !== undefined) r['retries'] = retries;
  return r;
};

describe('retry-budget', () => {
  it('has the rule id the README and docs/architecture.md name', () => {
    assert.equal(retryBudget.id, 'retry-budget');
  });

  describe('(attempts + 1) × perTryTimeoutMs against timeoutMs', () => {
    const cases: { name: string; timeoutMs: number; attempts: number; perTryTimeoutMs: number; blocked: boolean }[] = [
      { name: '3 tries of 500ms in 1000ms', timeoutMs: 1000, attempts: 2, perTryTimeoutMs: 500, blocked: true },
      { name: '3 tries of 500ms in exactly 1500ms', timeoutMs: 1500, attempts: 2, perTryTimeoutMs: 500, blocked: false },
      { name: '3 tries of 500ms in 1501ms', timeoutMs: 1501, attempts: 2, perTryTimeoutMs: 500, blocked: false },
      { name: 'the first try alone (attempts 0) over the timeout', timeoutMs: 999, attempts: 0, perTryTimeoutMs: 1000, blocked: true },
      { name: 'the first try alone within the timeout', timeoutMs: 1000, attempts: 0, perTryTimeoutMs: 1000, blocked: false },
      { name: 'attempts × perTry that fits but forgets the first try', timeoutMs: 1000, attempts: 4, perTryTimeoutMs: 250, blocked: true },
    ];
    for (const { name, timeoutMs, attempts, perTryTimeoutMs, blocked } of cases) {
      it(`${blocked ? 'blocks' : 'allows'} ${name}`, () => {
        const ctx = context({ routes: [route(timeoutMs, { attempts, perTryTimeoutMs })] });
        assert.deepEqual(paths(retryBudget, ctx), blocked ? ['/routes/0/retries'] : []);
      });
    }
  });

  it('reports each offending route at its own index', () => {
    const ctx = context({
      routes: [route(5000, { attempts: 1, perTryTimeoutMs: 1000 }), route(100, { attempts: 3, perTryTimeoutMs: 50 }), route(10, { attempts: 1, perTryTimeoutMs: 10 })],
    });
    assert.deepEqual(paths(retryBudget, ctx), ['/routes/1/retries', '/routes/2/retries']);
  });

  describe('skips routes without all three numbers (the schema owns their shape)', () => {
    const cases: { name: string; route: JsonValue }[] = [
      { name: 'no timeoutMs', route: route(undefined, { attempts: 5, perTryTimeoutMs: 1000 }) },
      { name: 'no retries', route: route(10, undefined) },
      { name: 'no perTryTimeoutMs', route: route(10, { attempts: 5 }) },
      { name: 'no attempts', route: route(10, { perTryTimeoutMs: 1000 }) },
      { name: 'a string timeout', route: route('10', { attempts: 5, perTryTimeoutMs: 1000 }) },
      { name: 'retries that are not a map', route: route(10, [5, 1000]) },
      { name: 'a route that is not a map', route: 'api' },
    ];
    for (const { name, route: r } of cases) {
      it(`with ${name}`, () => {
        assert.deepEqual(paths(retryBudget, context({ routes: [r] })), []);
      });
    }

    it('when routes is not a list', () => {
      assert.deepEqual(paths(retryBudget, context({ routes: { api: route(10, { attempts: 5, perTryTimeoutMs: 1000 }) } })), []);
    });
  });
});
