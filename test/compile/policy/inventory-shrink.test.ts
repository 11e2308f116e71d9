import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Compiler } from '../../../src/compile/compiler.js';
import { inventoryShrink } from '../../../src/compile/policy/index.js';
import type { Compilation } from '../../../src/compile/types.js';
import { BASE_CONFIG, inventory, treeOf } from '../fixtures.js';
import { aids } from '../../helpers/ids.js';

const ids = (n: number): string[] => Array.from({ length: n }, (_, i) => `edge-${i + 1}`);

/** A compiled commit whose inventory is `agents`, with `policy` lines under meshcfg.yaml's `policy:`. */
function commitWith(agents: readonly string[], policy: readonly string[] = []): Compilation {
  const settings = ['trustDomain: mesh.example.org', ...(policy.length > 0 ? ['policy:', ...policy.map((l) => `  ${l}`)] : []), ''].join('\n');
  const inv = agents.length === 0 ? 'agents: []\n' : inventory(Object.fromEntries(agents.map((id) => [id, {}])));
  const compilation = new Compiler().compile(treeOf({ 'meshcfg.yaml': settings, 'inventory/all.yaml': inv, 'config/base/00.yaml': BASE_CONFIG }));
  assert.deepEqual(compilation.violations, [], 'the fixture itself is clean');
  return compilation;
}

const rulesOf = (c: { violations: readonly { rule: string }[] }) => c.violations.map((v) => v.rule);

describe('inventory-shrink', () => {
  describe('when the new inventory is empty', () => {
    it('refuses it without a previous commit', () => {
      assert.deepEqual(rulesOf(inventoryShrink(null, commitWith([]))), ['inventory-shrink']);
    });

    it('refuses it even when every removed agent is listed in policy.allowInventoryRemoval', () => {
      const result = inventoryShrink(aids(ids(3)), commitWith([], ['allowInventoryRemoval: [edge-1, edge-2, edge-3]']));
      assert.deepEqual(rulesOf(result), ['inventory-shrink']);
      assert.deepEqual(result.removed, ['edge-1', 'edge-2', 'edge-3']);
    });
  });

  describe('compared with the previous commit', () => {
    const cases: ReadonlyArray<{ name: string; before: number; after: number; policy?: string[]; refused: boolean }> = [
      { name: 'no agent removed', before: 10, after: 10, refused: false },
      { name: 'agents added', before: 10, after: 12, refused: false },
      { name: '1 of 10 removed (10%, the default limit)', before: 10, after: 9, refused: false },
      { name: '2 of 10 removed (20%)', before: 10, after: 8, refused: true },
      { name: '1 of 3 removed (33%)', before: 3, after: 2, refused: true },
      { name: '2 of 10 removed under maxInventoryRemoval: 0.25', before: 10, after: 8, policy: ['maxInventoryRemoval: 0.25'], refused: false },
      { name: '1 of 10 removed under maxInventoryRemoval: 0', before: 10, after: 9, policy: ['maxInventoryRemoval: 0'], refused: true },
      { name: '9 of 10 removed under maxInventoryRemoval: 1', before: 10, after: 1, policy: ['maxInventoryRemoval: 1'], refused: false },
    ];
    for (const c of cases) {
      it(`${c.refused ? 'refuses' : 'accepts'} ${c.name}`, () => {
        const result = inventoryShrink(aids(ids(c.before)), commitWith(ids(c.after), c.policy));
        assert.deepEqual(rulesOf(result), c.refused ? ['inventory-shrink'] : []);
      });
    }

    it('names every removed agent in the violation', () => {
      const result = inventoryShrink(aids(ids(4)), commitWith(['edge-2', 'edge-4']));
      assert.deepEqual(result.removed, ['edge-1', 'edge-3']);
      assert.equal(result.violations.length, 1);
      assert.match(result.violations[0]?.message ?? '', /edge-1, edge-3/);
    });

    it('does not count agents listed in policy.allowInventoryRemoval (a deliberate decommission)', () => {
      const result = inventoryShrink(aids(ids(4)), commitWith(['edge-2', 'edge-4'], ['allowInventoryRemoval: [edge-1, edge-3]']));
      assert.deepEqual(result.violations, []);
      assert.deepEqual(result.allowed, ['edge-1', 'edge-3']);
    });

    it('counts removed agents the list does not name', () => {
      const result = inventoryShrink(aids(ids(4)), commitWith(['edge-4'], ['allowInventoryRemoval: [edge-1, edge-3]']));
      assert.deepEqual(rulesOf(result), ['inventory-shrink']);
      assert.match(result.violations[0]?.message ?? '', /: edge-2;/);
    });

    it('ignores list entries for agents that were already gone', () => {
      const result = inventoryShrink(aids(ids(3)), commitWith(ids(3), ['allowInventoryRemoval: [edge-9]']));
      assert.deepEqual(result.violations, []);
    });
  });

  describe('when policy.allowInventoryRemoval names an agent that is in the inventory', () => {
    it('refuses, naming the agent and the list entry, so a stale entry cannot stay on', () => {
      const result = inventoryShrink(aids(ids(3)), commitWith(ids(3), ['allowInventoryRemoval: [edge-9, edge-2]']));
      assert.deepEqual(
        result.violations.map((v) => [v.rule, v.agent, v.file, v.path]),
        [['inventory-shrink', 'edge-2', 'meshcfg.yaml', '/policy/allowInventoryRemoval/1']],
      );
    });
  });
});

describe('meshcfg.yaml policy settings for inventory-shrink', () => {
  it('refuses maxInventoryRemoval outside 0..1 as a schema violation', () => {
    const compilation = new Compiler().compile(
      treeOf({ 'meshcfg.yaml': 'trustDomain: mesh.example.org\npolicy:\n  maxInventoryRemoval: 10\n', 'inventory/all.yaml': inventory({ 'edge-1': {} }) }),
    );
    assert.ok(compilation.violations.some((v) => v.rule === 'schema' && v.path === '/policy/maxInventoryRemoval'), JSON.stringify(compilation.violations));
  });
});
