import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { builtinRules } from '../../../src/compile/policy/index.js';
import type { JsonValue } from '../../../src/domain/types.js';
import { context } from './context.js';

const policy = { labels: { zone: 'pci' }, secureZones: ['pci'], allowedDestinations: ['*.internal'] };

describe('builtinRules', () => {
  it('holds every built-in policy rule once, in the documented order', () => {
    assert.deepEqual(
      builtinRules.map((r) => r.id),
      ['mtls-strict-in-secure-zone', 'min-tls-version', 'no-embedded-secrets', 'retry-budget', 'destination-allowlist'],
    );
  });

  it('cannot be changed by a caller', () => {
    assert.ok(Object.isFrozen(builtinRules));
  });

  describe('on documents that fail the schema, every rule returns findings and never throws', () => {
    const deep: JsonValue = { extensions: {} };
    let cursor = deep.extensions as Record<string, JsonValue>;
    for (let i = 0; i < 50_000; i++) cursor = (cursor['n'] = {}) as Record<string, JsonValue>;
    cursor['password'] = 'x';

    const cyclic: Record<string, JsonValue> = { mtls: { mode: 'STRICT' } };
    cyclic['self'] = cyclic; // YAML aliases can produce shared (even cyclic) nodes

    const shapes: { name: string; document: JsonValue }[] = [
      { name: 'null', document: null },
      { name: 'a number', document: 42 },
      { name: 'a string', document: 'mtls: STRICT' },
      { name: 'a list', document: [{ mtls: { mode: 'STRICT' } }] },
      { name: 'routes as a map', document: { routes: { a: { destination: 'x:1' } } } },
      { name: 'routes with junk items', document: { routes: [null, 1, 'a', [], { retries: 'x', destination: 7, timeoutMs: 'fast' }] } },
      { name: 'mtls as a list', document: { mtls: ['STRICT'] } },
      { name: 'a 50,000-level deep document', document: deep },
      { name: 'a cyclic document', document: cyclic as JsonValue },
      {
        name: 'keys named like Object.prototype members',
        document: JSON.parse('{"constructor": 1, "__proto__": {"mtls": {"mode": "STRICT"}}, "toString": "x"}') as JsonValue,
      },
    ];
    for (const { name, document } of shapes) {
      it(`for ${name}`, () => {
        for (const rule of builtinRules) {
          const findings = rule.check(context(document, policy));
          assert.ok(Array.isArray(findings), rule.id);
          for (const f of findings) assert.equal(typeof f.path, 'string', rule.id);
        }
      });
    }

    it('still finds the secret at the bottom of the deep document', () => {
      const secrets = builtinRules.find((r) => r.id === 'no-embedded-secrets')!;
      const [finding] = secrets.check(context(deep, policy));
      assert.ok(finding?.path.endsWith('/n/password'));
    });
  });

  it('are pure: the same context gives the same findings', () => {
    const document: JsonValue = {
      mtls: { mode: 'PERMISSIVE', minTlsVersion: '1.0' },
      routes: [{ name: 'a', destination: 'evil.com:443', timeoutMs: 10, retries: { attempts: 3, perTryTimeoutMs: 10 }, headers: { token: 't' } }],
    };
    for (const rule of builtinRules) {
      const ctx = context(document, policy);
      assert.deepEqual(rule.check(ctx), rule.check(ctx), rule.id);
      assert.equal(rule.check(ctx).length, 1, `${rule.id} should fire once on this document`);
    }
  });
});
