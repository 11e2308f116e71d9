import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Compiler } from '../../src/compile/compiler.js';
import type { Compilation, PolicyRule } from '../../src/compile/types.js';
import type { JsonValue } from '../../src/domain/types.js';
import { BASE_CONFIG, inventory, SETTINGS, treeOf, type Files } from './fixtures.js';

const compile = (files: Files, compiler = new Compiler()): Compilation => compiler.compile(treeOf(files));

function agent(result: Compilation, id: string) {
  const found = result.agents.find((a) => a.id === id);
  assert.ok(found, `agent ${id} compiled`);
  return found;
}

const fleet = inventory({
  'web-1': { zone: 'dmz', env: 'prod', service: 'web' },
  'web-2': { zone: 'dmz', env: 'staging', service: 'web' },
  'pay-1': { zone: 'pci', env: 'prod', service: 'payments' },
  'bare-1': {},
});

describe('Compiler', () => {
  describe('layering', () => {
    it('merges base files in file-name order, then overlays in file-name order, then the agent file', () => {
      const result = compile({
        'meshcfg.yaml': SETTINGS,
        'inventory/fleet.yaml': fleet,
        'config/base/10-b.yaml': 'extensions: {order: [base-b], base: b}\n',
        'config/base/00-a.yaml': 'extensions: {order: [base-a], base: a, only-a: true}\n',
        // Ordinal order: "10-" sorts before "9-".
        'config/overlays/9-late.yaml': 'match: {zone: dmz}\nconfig:\n  extensions: {order: [overlay-9], overlay: "9"}\n',
        'config/overlays/10-early.yaml': 'match: {zone: dmz}\nconfig:\n  extensions: {order: [overlay-10], overlay: "10"}\n',
        'config/agents/web-1.yaml': 'extensions: {order: [agent]}\n',
      });
      assert.deepEqual(result.violations, []);
      assert.deepEqual(agent(result, 'web-1').layers, [
        'config/base/00-a.yaml',
        'config/base/10-b.yaml',
        'config/overlays/10-early.yaml',
        'config/overlays/9-late.yaml',
        'config/agents/web-1.yaml',
      ]);
      assert.deepEqual(agent(result, 'web-1').bundle.document, { extensions: { order: ['agent'], base: 'b', 'only-a': true, overlay: '9' } });
      assert.deepEqual(agent(result, 'web-2').bundle.document, { extensions: { order: ['overlay-9'], base: 'b', 'only-a': true, overlay: '9' } });
      assert.deepEqual(agent(result, 'bare-1').bundle.document, { extensions: { order: ['base-b'], base: 'b', 'only-a': true } });
    });

    describe('applies an overlay to the agents its match selects', () => {
      const cases: ReadonlyArray<readonly [string, string, readonly string[]]> = [
        ['a string value', '{zone: dmz}', ['web-1', 'web-2']],
        ['a list value (any-of)', '{env: [prod, qa]}', ['pay-1', 'web-1']],
        ['several keys (all must match)', '{zone: dmz, env: prod}', ['web-1']],
        ['a label some agents lack', '{service: [web, payments]}', ['pay-1', 'web-1', 'web-2']],
        ['the empty selector', '{}', ['bare-1', 'pay-1', 'web-1', 'web-2']],
        ['a value no agent has', '{zone: moon}', []],
      ];
      for (const [description, match, expected] of cases) {
        it(`with ${description}: ${match}`, () => {
          const result = compile({
            'meshcfg.yaml': SETTINGS,
            'inventory/fleet.yaml': fleet,
            'config/overlays/10-x.yaml': `match: ${match}\nconfig:\n  telemetry: {accessLog: true}\n`,
          });
          const selected = result.agents.filter((a) => a.layers.includes('config/overlays/10-x.yaml')).map((a) => a.id);
          assert.deepEqual(selected, expected);
          for (const a of result.agents) {
            const expectedDoc: JsonValue = expected.includes(a.id) ? { telemetry: { accessLog: true } } : {};
            assert.deepEqual(a.bundle.document, expectedDoc, a.id);
          }
        });
      }
    });

    it('returns every agent, sorted by id, with its labels', () => {
      const result = compile({ 'meshcfg.yaml': SETTINGS, 'inventory/fleet.yaml': fleet });
      assert.deepEqual(result.agents.map((a) => a.id), ['bare-1', 'pay-1', 'web-1', 'web-2']);
      assert.deepEqual(agent(result, 'pay-1').labels, { zone: 'pci', env: 'prod', service: 'payments' });
    });
  });

  describe('waves', () => {
    it('assigns each agent the first wave that selects it, else the last', () => {
      const result = compile({
        'meshcfg.yaml': `${SETTINGS}rollout:\n  waves:\n    - name: pci\n      match: {zone: pci}\n    - name: staging\n      match: {env: staging}\n    - name: rest\n      match: {env: prod}\n`,
        'inventory/fleet.yaml': fleet,
      });
      assert.deepEqual(result.agents.map((a) => [a.id, a.wave]), [['bare-1', 'rest'], ['pay-1', 'pci'], ['web-1', 'rest'], ['web-2', 'staging']]);
    });

    it('puts every agent in the implicit wave "all" when no waves are configured', () => {
      const result = compile({ 'meshcfg.yaml': SETTINGS, 'inventory/fleet.yaml': fleet });
      assert.deepEqual(new Set(result.agents.map((a) => a.wave)), new Set(['all']));
    });
  });

  describe('digests', () => {
    const files: Files = {
      'meshcfg.yaml': SETTINGS,
      'inventory/fleet.yaml': fleet,
      'config/base/00.yaml': BASE_CONFIG,
      'config/overlays/10-dmz.yaml': 'match: {zone: dmz}\nconfig:\n  telemetry: {accessLog: true}\n',
      'config/overlays/20-pci.yaml': 'match: {zone: pci}\nconfig:\n  telemetry: {metrics: {enabled: true}}\n',
    };
    const digests = (result: Compilation) => Object.fromEntries(result.agents.map((a) => [a.id, a.bundle.digest]));

    it('are identical across two fresh compilers and across commits with the same files', () => {
      const a = new Compiler().compile(treeOf(files, 'a'.repeat(40)));
      const b = new Compiler().compile(treeOf(files, 'b'.repeat(40)));
      assert.deepEqual(digests(a), digests(b));
      assert.equal(a.baseline, null);
    });

    it('are the sha256 of the canonical JSON of the merged document', () => {
      const pay = agent(compile(files), 'pay-1');
      assert.equal(
        Buffer.from(pay.bundle.bytes).toString('utf8'),
        '{"identity":{"trustDomain":"mesh.example.org"},"mtls":{"minTlsVersion":"1.2","mode":"STRICT"},"telemetry":{"metrics":{"enabled":true}}}',
      );
    });

    it('do not change for agents a commit does not affect, nor for comments and formatting', () => {
      const before = digests(compile(files));
      const after = digests(
        compile({
          ...files,
          'config/overlays/10-dmz.yaml': 'match: {zone: dmz}\nconfig:\n  telemetry: {accessLog: false}\n',
          'config/overlays/20-pci.yaml': '# reformatted\nmatch:\n  zone: pci\nconfig:\n  telemetry:\n    metrics:\n      enabled: true\n',
        }),
      );
      assert.equal(after['pay-1'], before['pay-1']);
      assert.equal(after['bare-1'], before['bare-1']);
      assert.notEqual(after['web-1'], before['web-1']);
    });

    it('are equal for agents whose merged documents are equal, however they got there', () => {
      const result = compile({ ...files, 'config/agents/bare-1.yaml': 'telemetry: {accessLog: true}\n' });
      assert.equal(agent(result, 'bare-1').bundle.digest, agent(result, 'web-1').bundle.digest);
    });
  });

  describe('violations', () => {
    const secure: Files = {
      'meshcfg.yaml': `${SETTINGS}policy:\n  secureZones: [pci]\n`,
      'inventory/fleet.yaml': fleet,
      'config/base/00.yaml': BASE_CONFIG,
    };

    it('name rule, agent, the file that introduced the value, path and line: a base file', () => {
      const result = compile({ ...secure, 'config/base/00.yaml': BASE_CONFIG.replace('STRICT', 'PERMISSIVE') });
      assert.deepEqual(
        result.violations.map(({ message: _m, ...v }) => v),
        [{ rule: 'mtls-strict-in-secure-zone', agent: 'pay-1', file: 'config/base/00.yaml', path: '/mtls/mode', line: 2 }],
      );
    });

    it('… an overlay', () => {
      const result = compile({ ...secure, 'config/overlays/50-relax.yaml': 'match: {env: prod}\nconfig:\n  mtls:\n    mode: PERMISSIVE\n' });
      assert.deepEqual(
        result.violations.map(({ message: _m, ...v }) => v),
        [{ rule: 'mtls-strict-in-secure-zone', agent: 'pay-1', file: 'config/overlays/50-relax.yaml', path: '/mtls/mode', line: 4 }],
      );
    });

    it('… an agent file', () => {
      const result = compile({ ...secure, 'config/agents/pay-1.yaml': '# local override\nmtls:\n  mode: DISABLE\n' });
      assert.deepEqual(
        result.violations.map(({ message: _m, ...v }) => v),
        [{ rule: 'mtls-strict-in-secure-zone', agent: 'pay-1', file: 'config/agents/pay-1.yaml', path: '/mtls/mode', line: 3 }],
      );
    });

    it('report schema violations (a misspelt key) against the layer that wrote it', () => {
      const result = compile({ ...secure, 'config/overlays/10-web.yaml': 'match: {service: web}\nconfig:\n  telemetyr: {accessLog: true}\n' });
      assert.deepEqual(
        result.violations.map((v) => [v.rule, v.agent, v.file, v.path, v.line]),
        [
          ['schema', 'web-1', 'config/overlays/10-web.yaml', '/telemetyr', 3],
          ['schema', 'web-2', 'config/overlays/10-web.yaml', '/telemetyr', 3],
        ],
      );
    });

    it('point at the nearest value above a missing one', () => {
      const rule: PolicyRule = {
        id: 'retry-budget',
        check: ({ document }) =>
          typeof document === 'object' && document !== null && !Array.isArray(document) && document['routes'] !== undefined
            ? [{ path: '/routes/0/retries/attempts', message: 'missing' }]
            : [],
      };
      const result = compile(
        { ...secure, 'config/agents/web-1.yaml': 'routes:\n  - name: api\n    destination: api:443\n' },
        new Compiler({ rules: [rule] }),
      );
      assert.deepEqual(
        result.violations.map((v) => [v.rule, v.agent, v.file, v.path, v.line]),
        [['retry-budget', 'web-1', 'config/agents/web-1.yaml', '/routes/0/retries/attempts', 2]],
      );
    });

    it('list repository violations first, then agents by id, then the baseline', () => {
      const result = compile({
        ...secure,
        'config/agents/zzz.yaml': '{}\n',
        'config/agents/web-2.yaml': 'mtls: {mode: PERMISSIVE}\ntypo: 1\n',
        'config/agents/pay-1.yaml': 'mtls: {mode: PERMISSIVE}\n',
        'baseline/00.yaml': 'mtls: {mode: BOGUS}\n',
      });
      assert.deepEqual(
        result.violations.map((v) => [v.rule, v.agent ?? null, v.file]),
        [
          ['schema', null, 'config/agents/zzz.yaml'],
          ['mtls-strict-in-secure-zone', 'pay-1', 'config/agents/pay-1.yaml'],
          ['schema', 'web-2', 'config/agents/web-2.yaml'],
          ['schema', null, 'baseline/00.yaml'],
          ['mtls-strict-in-secure-zone', null, 'baseline/00.yaml'],
        ],
      );
    });
  });

  describe('baseline', () => {
    it('merges baseline/*.yaml in file-name order into one bundle', () => {
      const result = compile({
        'meshcfg.yaml': SETTINGS,
        'baseline/10-telemetry.yaml': 'telemetry: {accessLog: true}\nmtls: {minTlsVersion: "1.3"}\n',
        'baseline/00-mtls.yaml': BASE_CONFIG,
      });
      assert.deepEqual(result.violations, []);
      assert.deepEqual(result.baseline?.document, {
        mtls: { mode: 'STRICT', minTlsVersion: '1.3' },
        identity: { trustDomain: 'mesh.example.org' },
        telemetry: { accessLog: true },
      });
    });

    const SECURE = "trustDomain: mesh.example.org\npolicy: {secureZones: [pci], allowedDestinations: ['*.internal']}\n";
    const cases: Array<{ name: string; baseline: string; rule: string; path: string }> = [
      { name: 'a baseline that is not STRICT while a secure zone exists', baseline: 'mtls: {mode: PERMISSIVE}\n', rule: 'mtls-strict-in-secure-zone', path: '/mtls/mode' },
      { name: 'a baseline below TLS 1.2', baseline: 'mtls: {mode: STRICT, minTlsVersion: "1.0"}\n', rule: 'min-tls-version', path: '/mtls/minTlsVersion' },
      { name: 'a baseline with an embedded secret', baseline: 'mtls: {mode: STRICT}\nextensions: {password: hunter2}\n', rule: 'no-embedded-secrets', path: '/extensions/password' },
      { name: 'a baseline routing outside the allowlist', baseline: 'mtls: {mode: STRICT}\nroutes: [{name: x, destination: "evil.example.net:443"}]\n', rule: 'destination-allowlist', path: '/routes/0/destination' },
    ];
    for (const c of cases) {
      it(`blocks ${c.name}, naming the baseline file`, () => {
        const result = compile({ 'meshcfg.yaml': SECURE, 'baseline/00.yaml': c.baseline });
        assert.deepEqual(
          result.violations.map((v) => [v.rule, v.agent, v.file, v.path]),
          [[c.rule, undefined, 'baseline/00.yaml', c.path]],
        );
      });
    }
  });

  it('freezes the compilation', () => {
    const result = compile({ 'meshcfg.yaml': SETTINGS, 'inventory/fleet.yaml': fleet, 'config/base/00.yaml': BASE_CONFIG });
    const web = agent(result, 'web-1');
    for (const value of [result, result.agents, result.violations, web, web.labels, web.layers, web.bundle, web.bundle.document, web.bundle.document['mtls'], result.settings]) {
      assert.ok(Object.isFrozen(value));
    }
    assert.throws(() => {
      (web.bundle.document as Record<string, JsonValue>)['mtls'] = null;
    }, TypeError);
  });
});
