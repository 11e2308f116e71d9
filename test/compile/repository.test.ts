import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Compiler } from '../../src/compile/compiler.js';
import type { Compilation } from '../../src/compile/types.js';
import { CompileError } from '../../src/domain/errors.js';
import type { Violation } from '../../src/domain/types.js';
import { BASE_CONFIG, inventory, SETTINGS, treeOf, type Files } from './fixtures.js';

const compile = (files: Files): Compilation => new Compiler().compile(treeOf(files));

const valid: Files = {
  'meshcfg.yaml': SETTINGS,
  'inventory/fleet.yaml': inventory({ 'web-1': { zone: 'dmz' } }),
  'config/base/00.yaml': BASE_CONFIG,
};

/** The violations without their messages (tests never assert message text, except where noted). */
function shapes(violations: readonly Violation[]): Array<Omit<Violation, 'message'>> {
  return violations.map(({ message: _message, ...rest }) => rest);
}

describe('Compiler › the repository model', () => {
  describe('when meshcfg.yaml is missing', () => {
    it('refuses the tree with INVALID_REPOSITORY (it is not a meshcfg repository)', () => {
      const { 'meshcfg.yaml': _settings, ...rest } = valid;
      assert.throws(() => compile(rest), (err: unknown) => err instanceof CompileError && err.code === 'INVALID_REPOSITORY');
    });
  });

  describe('when meshcfg.yaml is invalid', () => {
    it('reports schema violations for it, with settings null', () => {
      const result = compile({ ...valid, 'meshcfg.yaml': 'trustDomain: mesh.example.org\npolicy:\n  secureZone: [pci]\n' });
      assert.equal(result.settings, null);
      assert.deepEqual(shapes(result.violations), [{ rule: 'schema', file: 'meshcfg.yaml', path: '/policy/secureZone', line: 3 }]);
    });

    it('still compiles every agent, in the implicit wave, so one plan shows every problem', () => {
      const result = compile({ ...valid, 'meshcfg.yaml': 'trustDomain: [oops\n' });
      assert.deepEqual(shapes(result.violations), [{ rule: 'parse', file: 'meshcfg.yaml', line: 2 }]);
      assert.deepEqual(result.agents.map((agent) => [agent.id, agent.wave]), [['web-1', 'all']]);
    });
  });

  it('reads settings: trust domain, policy and waves, passing other rollout keys through', () => {
    const result = compile({
      ...valid,
      'meshcfg.yaml': [
        'trustDomain: mesh.example.org',
        'policy:',
        '  secureZones: [pci]',
        '  allowedDestinations: ["*.svc:443"]',
        'rollout:',
        '  maxNackRatio: 0.1',
        '  waves:',
        '    - name: canary',
        '      match: {ring: canary}',
        '    - name: rest',
        '      percent: 100',
        '',
      ].join('\n'),
    });
    assert.deepEqual(result.violations, []);
    assert.deepEqual(result.settings, {
      trustDomain: 'mesh.example.org',
      policy: { secureZones: ['pci'], allowedDestinations: ['*.svc:443'] },
      rollout: { maxNackRatio: 0.1, waves: [{ name: 'canary', match: { ring: 'canary' } }, { name: 'rest', percent: 100 }] },
    });
  });

  describe('inventory', () => {
    const idCases: ReadonlyArray<readonly [id: string, ok: boolean]> = [
      ['web-1', true],
      ['a', true],
      ['a'.repeat(63), true],
      ['a'.repeat(64), false],
      ['Web-1', false],
      ['web_1', false],
      ['-web', false],
      ['web-', false],
      ['web.1', false],
      ['"1"', true],
    ];
    for (const [id, ok] of idCases) {
      it(`${ok ? 'accepts' : 'refuses'} the agent id ${id.length > 20 ? `${id.slice(0, 4)}… (${id.length} chars)` : id}`, () => {
        const result = compile({ ...valid, 'inventory/fleet.yaml': `agents:\n  - id: web-0\n  - id: ${id}\n` });
        if (ok) {
          assert.deepEqual(result.violations, []);
          assert.equal(result.agents.length, 2);
        } else {
          assert.deepEqual(shapes(result.violations), [{ rule: 'schema', file: 'inventory/fleet.yaml', path: '/agents/1/id', line: 3 }]);
          assert.deepEqual(result.agents.map((agent) => agent.id), ['web-0']);
        }
      });
    }

    it('refuses an id declared twice across files, keeping the first definition (file-name order)', () => {
      const result = compile({
        ...valid,
        'inventory/a.yaml': inventory({ 'web-1': { zone: 'a' } }),
        'inventory/b.yaml': inventory({ 'web-2': {}, 'web-1': { zone: 'b' } }),
        'inventory/fleet.yaml': '',
      });
      assert.deepEqual(shapes(result.violations), [{ rule: 'schema', file: 'inventory/b.yaml', path: '/agents/1/id', line: 4 }]);
      assert.match(result.violations[0]?.message ?? '', /inventory\/a\.yaml/, 'names where the first definition is');
      assert.deepEqual(result.agents.map((agent) => [agent.id, agent.labels]), [['web-1', { zone: 'a' }], ['web-2', {}]]);
    });

    const shapeCases: ReadonlyArray<readonly [string, string, string]> = [
      ['a misspelt top-level key', 'agent:\n  - id: web-1\n', '/agent'],
      ['agents that are not a list', 'agents: {id: web-1}\n', '/agents'],
      ['an entry with an unknown key', 'agents:\n  - id: web-1\n    lables: {zone: a}\n', '/agents/0/lables'],
      ['a label value that is not a string', 'agents:\n  - id: web-1\n    labels: {ring: 1}\n', '/agents/0/labels/ring'],
      ['an entry without an id', 'agents:\n  - labels: {zone: a}\n', '/agents/0/id'],
    ];
    for (const [description, text, path] of shapeCases) {
      it(`refuses ${description} (${path})`, () => {
        const result = compile({ ...valid, 'inventory/fleet.yaml': text });
        assert.deepEqual(
          result.violations.map((v) => [v.rule, v.file, v.path]),
          [['schema', 'inventory/fleet.yaml', path]],
        );
        assert.deepEqual(result.agents, []);
      });
    }
  });

  describe('agent files', () => {
    it('refuses a file for an agent that is not in the inventory', () => {
      const result = compile({ ...valid, 'config/agents/ghost.yaml': 'telemetry: {accessLog: true}\n' });
      assert.deepEqual(shapes(result.violations), [{ rule: 'schema', file: 'config/agents/ghost.yaml' }]);
    });
  });

  describe('overlays', () => {
    const cases: ReadonlyArray<readonly [string, string, string]> = [
      ['one without match', 'config:\n  telemetry: {accessLog: true}\n', ''],
      ['one without config', 'match: {zone: dmz}\n', ''],
      ['one with a misspelt key', 'match: {zone: dmz}\nconfig: {}\nconfg: {}\n', '/confg'],
      ['one whose config is not a map', 'match: {zone: dmz}\nconfig: [1]\n', '/config'],
      ['one with a bad selector', 'match: {zone: []}\nconfig: {}\n', '/match/zone'],
    ];
    for (const [description, text, path] of cases) {
      it(`refuses ${description} and leaves it out of every agent`, () => {
        const result = compile({ ...valid, 'config/overlays/10-x.yaml': text });
        assert.deepEqual(result.violations.map((v) => [v.rule, v.file, v.path]), [['schema', 'config/overlays/10-x.yaml', path]]);
        assert.deepEqual(result.agents[0]?.layers, ['config/base/00.yaml']);
      });
    }

    it('reports a YAML syntax error as a parse violation with file and line', () => {
      const result = compile({ ...valid, 'config/overlays/10-x.yaml': 'match: {zone: dmz}\nconfig:\n  mtls: {mode: STRICT\n' });
      assert.deepEqual(shapes(result.violations), [{ rule: 'parse', file: 'config/overlays/10-x.yaml', line: 4 }]);
    });
  });

  it('refuses a base layer that is not a map, and accepts an empty one', () => {
    const result = compile({ ...valid, 'config/base/10-list.yaml': '- a\n- b\n', 'config/base/20-empty.yaml': '# later\n' });
    assert.deepEqual(shapes(result.violations), [{ rule: 'schema', file: 'config/base/10-list.yaml', path: '', line: 1 }]);
    assert.deepEqual(result.agents[0]?.layers, ['config/base/00.yaml', 'config/base/20-empty.yaml']);
  });

  describe('file layout', () => {
    it('reports files in config directories that would silently not be read', () => {
      const result = compile({
        ...valid,
        'config/overlays/10-x.yml': 'match: {}\nconfig: {}\n',
        'config/overlays/team/10-x.yaml': 'match: {}\nconfig: {}\n',
        'inventory/extra.json': '{}',
      });
      assert.deepEqual(
        result.violations.map((v) => [v.rule, v.file]),
        [
          ['schema', 'config/overlays/10-x.yml'],
          ['schema', 'config/overlays/team/10-x.yaml'],
          ['schema', 'inventory/extra.json'],
        ],
      );
    });

    it('ignores dotfiles, Markdown notes and files outside the config directories', () => {
      const result = compile({
        ...valid,
        'config/overlays/.gitkeep': '',
        'config/overlays/README.md': '# overlays',
        'README.md': '# repo',
        'scripts/check.sh': 'echo',
      });
      assert.deepEqual(result.violations, []);
    });
  });
});
