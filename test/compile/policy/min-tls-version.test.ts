import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { minTlsVersion } from '../../../src/compile/policy/index.js';
import { parseTlsVersion } from '../../../src/compile/policy/min-tls-version.js';
import type { JsonValue } from '../../../src/domain/types.js';
import { context, paths } from './context.js';

describe('min-tls-version', () => {
  it('has the rule id the README and docs/architecture.md name', () => {
    assert.equal(minTlsVersion.id, 'min-tls-version');
  });

  describe('mtls.minTlsVersion', () => {
    const cases: { value: JsonValue; blocked: boolean; why?: string }[] = [
      { value: '1.0', blocked: true },
      { value: '1.1', blocked: true },
      { value: '1.2', blocked: false },
      { value: '1.3', blocked: false },
      { value: 1.1, blocked: true, why: 'an unquoted YAML number still names a version' },
      { value: 1, blocked: true, why: 'YAML reads 1.0 as the number 1' },
      { value: 1.3, blocked: false },
      { value: '1.10', blocked: false, why: 'versions compare numerically: 1.10 > 1.2, though "1.10" < "1.2" as strings' },
      { value: '2.0', blocked: false },
      { value: 'TLSv1_1', blocked: true },
      { value: 'TLSv1.2', blocked: false },
      { value: 'SSLv3', blocked: true, why: 'every SSL version is below every TLS version' },
      { value: 'auto', blocked: false, why: 'not a version this rule can judge; the schema reports it' },
      { value: null, blocked: false },
    ];
    for (const { value, blocked, why } of cases) {
      it(`${blocked ? 'blocks' : 'allows'} ${JSON.stringify(value)}${why ? ` (${why})` : ''}`, () => {
        const ctx = context({ mtls: { mode: 'STRICT', minTlsVersion: value } });
        assert.deepEqual(paths(minTlsVersion, ctx), blocked ? ['/mtls/minTlsVersion'] : []);
      });
    }
  });

  it('blocks a maxTlsVersion below 1.2 (a cap is a downgrade too)', () => {
    const ctx = context({ mtls: { minTlsVersion: '1.0', maxTlsVersion: '1.1' } });
    assert.deepEqual(paths(minTlsVersion, ctx), ['/mtls/minTlsVersion', '/mtls/maxTlsVersion']);
  });

  it('allows a document without any TLS version', () => {
    assert.deepEqual(paths(minTlsVersion, context({ mtls: { mode: 'STRICT' } })), []);
  });

  describe('TLS versions outside mtls (a downgrade cannot hide in extensions)', () => {
    const cases: { key: string; value: JsonValue }[] = [
      { key: 'tls_minimum_protocol_version', value: 'TLSv1_0' },
      { key: 'minTlsVersion', value: '1.1' },
      { key: 'min-tls-version', value: '1.0' },
      { key: 'TLS_MAX_VERSION', value: 'TLSv1_1' },
      { key: 'tlsVersion', value: '1.0' },
    ];
    for (const { key, value } of cases) {
      it(`blocks ${key}: ${JSON.stringify(value)}`, () => {
        const ctx = context({ extensions: { envoy: { [key]: value } } });
        assert.deepEqual(paths(minTlsVersion, ctx), [`/extensions/envoy/${key}`]);
      });
    }

    it('ignores keys that are not TLS versions', () => {
      const ctx = context({ extensions: { version: '1.0', apiVersion: '1.0', minVersion: '1.0', tls: { enabled: true } } });
      assert.deepEqual(paths(minTlsVersion, ctx), []);
    });
  });

  describe('parseTlsVersion', () => {
    it('reads the spellings agents and proxies use', () => {
      assert.deepEqual(parseTlsVersion('1.2'), { major: 1, minor: 2 });
      assert.deepEqual(parseTlsVersion('TLSv1_3'), { major: 1, minor: 3 });
      assert.deepEqual(parseTlsVersion('tls1.1'), { major: 1, minor: 1 });
      assert.deepEqual(parseTlsVersion('SSLv3'), { major: 0, minor: 3 });
      assert.equal(parseTlsVersion('TLS_AUTO'), undefined);
      assert.equal(parseTlsVersion({}), undefined);
    });
  });
});
