import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mtlsStrictInSecureZone } from '../../../src/compile/policy/index.js';
import type { JsonValue } from '../../../src/domain/types.js';
import { context, paths } from './context.js';

const secure = { labels: { zone: 'pci' }, secureZones: ['pci', 'vault'] };

describe('mtls-strict-in-secure-zone', () => {
  it('has the rule id the README and docs/architecture.md name', () => {
    assert.equal(mtlsStrictInSecureZone.id, 'mtls-strict-in-secure-zone');
  });

  describe('for an agent whose zone is listed in policy.secureZones', () => {
    it('accepts mode STRICT', () => {
      assert.deepEqual(paths(mtlsStrictInSecureZone, context({ mtls: { mode: 'STRICT' } }, secure)), []);
    });

    const violations: { name: string; document: JsonValue; path: string }[] = [
      { name: 'PERMISSIVE (accepts plaintext)', document: { mtls: { mode: 'PERMISSIVE' } }, path: '/mtls/mode' },
      { name: 'DISABLE (sends plaintext)', document: { mtls: { mode: 'DISABLE' } }, path: '/mtls/mode' },
      { name: 'no mtls section (unspecified is not strict)', document: { routes: [] }, path: '/mtls/mode' },
      { name: 'mtls without a mode', document: { mtls: { minTlsVersion: '1.3' } }, path: '/mtls/mode' },
      { name: 'a lower-case "strict" (not the STRICT mode)', document: { mtls: { mode: 'strict' } }, path: '/mtls/mode' },
      { name: 'a non-string mode', document: { mtls: { mode: true } }, path: '/mtls/mode' },
      { name: 'mtls that is not a map', document: { mtls: 'STRICT' }, path: '/mtls' },
      { name: 'a document that is not a map', document: null, path: '/mtls/mode' },
    ];
    for (const { name, document, path } of violations) {
      it(`reports ${name} at ${path}`, () => {
        const findings = mtlsStrictInSecureZone.check(context(document, secure));
        assert.deepEqual(findings.map((f) => f.path), [path]);
      });
    }

    it('checks every listed zone, not only the first', () => {
      const ctx = context({ mtls: { mode: 'DISABLE' } }, { ...secure, labels: { zone: 'vault' } });
      assert.deepEqual(paths(mtlsStrictInSecureZone, ctx), ['/mtls/mode']);
    });
  });

  describe('for an agent outside the secure zones', () => {
    const cases: { name: string; labels: Record<string, string>; secureZones: string[] }[] = [
      { name: 'a zone not in the list', labels: { zone: 'dev' }, secureZones: ['pci'] },
      { name: 'no zone label', labels: { env: 'prod' }, secureZones: ['pci'] },
      { name: 'a secure-zone name under another label', labels: { env: 'pci' }, secureZones: ['pci'] },
      { name: 'an empty secureZones list', labels: { zone: 'pci' }, secureZones: [] },
    ];
    for (const { name, labels, secureZones } of cases) {
      it(`accepts DISABLE with ${name}`, () => {
        assert.deepEqual(paths(mtlsStrictInSecureZone, context({ mtls: { mode: 'DISABLE' } }, { labels, secureZones })), []);
      });
    }
  });
});
