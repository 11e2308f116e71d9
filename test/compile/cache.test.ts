import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { CACHE_NAMES, type CacheName, type CacheStats } from '../../src/compile/cache.js';
import { Compiler } from '../../src/compile/compiler.js';
import type { Compilation } from '../../src/compile/types.js';
import { BASE_CONFIG, inventory, SETTINGS, treeOf, type Files } from './fixtures.js';

/** Twelve agents, each with its own label set, so each is its own selection group. */
const agents = Object.fromEntries(
  Array.from({ length: 12 }, (_, i) => [
    `agent-${i}`,
    { zone: i % 3 === 0 ? 'pci' : 'dmz', env: i % 2 === 0 ? 'prod' : 'staging', ring: String(i) },
  ]),
);

const files: Files = {
  'meshcfg.yaml': `${SETTINGS}policy:\n  secureZones: [pci]\nrollout:\n  waves:\n    - name: canary\n      percent: 10\n    - name: rest\n      percent: 100\n`,
  'inventory/fleet.yaml': inventory(agents),
  'config/base/00.yaml': BASE_CONFIG,
  'config/overlays/10-pci.yaml': 'match: {zone: pci}\nconfig:\n  telemetry: {accessLog: true}\n',
  'config/overlays/20-staging.yaml': 'match: {env: staging}\nconfig:\n  telemetry: {metrics: {enabled: true}}\n',
  'config/overlays/30-ring.yaml': 'match: {ring: ["1", "2"]}\nconfig:\n  extensions: {ring: low}\n',
  'config/agents/agent-4.yaml': 'extensions: {pinned: true}\n',
  'baseline/00.yaml': BASE_CONFIG,
};

/** The agents the pci overlay selects. */
const PCI_AGENTS = ['agent-0', 'agent-3', 'agent-6', 'agent-9'];

function delta(after: CacheStats, before: CacheStats): Record<CacheName, { hits: number; misses: number }> {
  return Object.fromEntries(
    CACHE_NAMES.map((name) => [name, { hits: after[name].hits - before[name].hits, misses: after[name].misses - before[name].misses }]),
  ) as Record<CacheName, { hits: number; misses: number }>;
}

function observable(result: Compilation) {
  return {
    agents: result.agents.map((a) => ({ id: a.id, wave: a.wave, digest: a.bundle.digest, layers: a.layers, document: a.bundle.document })),
    baseline: result.baseline?.digest,
    violations: result.violations,
    settings: result.settings,
  };
}

describe('Compiler caches', () => {
  it('serve a second compile of the same tree entirely from cache', () => {
    const compiler = new Compiler();
    const first = compiler.compile(treeOf(files));
    const before = compiler.stats();
    const second = compiler.compile(treeOf(files, 'e'.repeat(40)));
    const used = delta(compiler.stats(), before);
    for (const name of CACHE_NAMES) assert.equal(used[name].misses, 0, `${name} misses`);
    assert.equal(used.bundle.hits, 12 + 1, 'one bundle lookup per agent and one for the baseline');
    assert.deepEqual(observable(second), observable(first));
  });

  describe('when a commit touches one overlay', () => {
    const touched: Files = { ...files, 'config/overlays/10-pci.yaml': 'match: {zone: pci}\nconfig:\n  telemetry: {accessLog: false}\n' };

    it('recompiles only the agents that overlay selects', () => {
      const compiler = new Compiler();
      const first = compiler.compile(treeOf(files));
      const before = compiler.stats();
      const second = compiler.compile(treeOf(touched));
      const used = delta(compiler.stats(), before);

      assert.deepEqual(used.file, { hits: Object.keys(files).length - 1, misses: 1 });
      assert.deepEqual(used.parse, { hits: 0, misses: 1 });
      assert.deepEqual(used.selection, { hits: 3, misses: 0 }, 'its match did not change: no selector re-evaluated');
      // Bundles are keyed by the layer list, not the agent: the four pci agents have two distinct
      // layer lists (prod: base + pci; staging: base + pci + staging), so two merges.
      const layerLists = new Set(second.agents.filter((a) => PCI_AGENTS.includes(a.id)).map((a) => a.layers.join('|')));
      assert.equal(layerLists.size, 2);
      assert.deepEqual(used.bundle, { hits: 12 - layerLists.size + 1, misses: layerLists.size });
      assert.deepEqual(used.prefix, { hits: 0, misses: layerLists.size });
      assert.deepEqual(used.schema, { hits: 12 - layerLists.size + 1, misses: layerLists.size });
      // Policy verdicts are per document and label set: every pci agent has its own labels
      // (the unchanged baseline is one more hit).
      assert.deepEqual(used.policy, { hits: 12 - PCI_AGENTS.length + 1, misses: PCI_AGENTS.length });

      const changed = second.agents.filter((a, i) => a.bundle.digest !== first.agents[i]?.bundle.digest).map((a) => a.id);
      assert.deepEqual(changed, PCI_AGENTS);
    });

    it('re-evaluates only that overlay’s selector when its match changes', () => {
      const compiler = new Compiler();
      const first = compiler.compile(treeOf(files));
      compiler.resetStats();
      const second = compiler.compile(treeOf({ ...files, 'config/overlays/30-ring.yaml': 'match: {ring: ["1", "5"]}\nconfig:\n  extensions: {ring: low}\n' }));
      const stats = compiler.stats();
      assert.deepEqual(stats.selection, { hits: 2, misses: 1 });
      const changed = second.agents.filter((a, i) => a.bundle.digest !== first.agents[i]?.bundle.digest).map((a) => a.id);
      assert.deepEqual(changed, ['agent-2', 'agent-5'], 'agent-2 left the overlay, agent-5 joined it');
      // Both now have layer lists other agents already had (agent-8's and agent-1's): nothing to merge.
      assert.deepEqual(stats.bundle, { hits: 12 + 1, misses: 0 });
    });

    it('gives the same result as a fresh compiler', () => {
      const warm = new Compiler();
      warm.compile(treeOf(files));
      assert.deepEqual(observable(warm.compile(treeOf(touched))), observable(new Compiler().compile(treeOf(touched))));
    });
  });

  it('share work between agents with equal labels within one compile', () => {
    const twins = inventory(Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`web-${i}`, { zone: 'pci', env: 'prod' }])));
    const compiler = new Compiler();
    compiler.compile(treeOf({ ...files, 'inventory/fleet.yaml': twins }));
    const stats = compiler.stats();
    assert.deepEqual(stats.bundle, { hits: 49, misses: 1 + 1 }, 'one merge for 50 agents, one for the baseline');
    assert.deepEqual(stats.policy, { hits: 49, misses: 1 + 1 }, 'one verdict for 50 agents, one for the baseline');
  });

  it('produce exactly the output of a compile without caches (cache: false)', () => {
    const cached = new Compiler();
    const uncached = new Compiler({ cache: false });
    for (const tree of [files, { ...files, 'config/agents/agent-7.yaml': 'mtls: {mode: PERMISSIVE}\n' }]) {
      assert.deepEqual(observable(cached.compile(treeOf(tree))), observable(uncached.compile(treeOf(tree))));
    }
    const stats = uncached.stats();
    for (const name of CACHE_NAMES) assert.equal(stats[name].hits, 0, `${name} hits`);
  });

  it('stay correct when far too small (every lookup evicts)', () => {
    const tiny = new Compiler({ cacheEntries: 1 });
    tiny.compile(treeOf(files));
    assert.deepEqual(observable(tiny.compile(treeOf(files))), observable(new Compiler().compile(treeOf(files))));
  });
});
