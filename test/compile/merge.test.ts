import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { deepFreeze } from '../../src/lib/index.js';
import { mergeLayer, mergeLayers } from '../../src/compile/merge.js';
import { mergeWithProvenance, type SourcedLayer } from '../../src/compile/provenance.js';
import type { JsonObject } from '../../src/domain/types.js';

describe('mergeLayers', () => {
  const cases: ReadonlyArray<{ name: string; layers: JsonObject[]; expected: JsonObject }> = [
    {
      name: 'merges maps deeply, keeping keys the upper layer does not mention',
      layers: [{ mtls: { mode: 'STRICT', minTlsVersion: '1.2' } }, { mtls: { mode: 'PERMISSIVE' } }],
      expected: { mtls: { mode: 'PERMISSIVE', minTlsVersion: '1.2' } },
    },
    {
      name: 'replaces lists whole (no concatenation, no per-index merge)',
      layers: [{ routes: [{ name: 'a', timeoutMs: 100 }, { name: 'b' }] }, { routes: [{ name: 'c' }] }],
      expected: { routes: [{ name: 'c' }] },
    },
    {
      name: 'replaces scalars',
      layers: [{ telemetry: { accessLog: true } }, { telemetry: { accessLog: false } }],
      expected: { telemetry: { accessLog: false } },
    },
    {
      name: 'replaces a map with a scalar and a scalar with a map',
      layers: [{ a: { x: 1 }, b: 'text' }, { a: 'flat', b: { y: 2 } }],
      expected: { a: 'flat', b: { y: 2 } },
    },
    {
      name: 'deletes a key set to null',
      layers: [{ mtls: { mode: 'STRICT', minTlsVersion: '1.2' }, telemetry: { accessLog: true } }, { mtls: { minTlsVersion: null }, telemetry: null }],
      expected: { mtls: { mode: 'STRICT' } },
    },
    {
      name: 'treats null at a key that does not exist as a no-op (never a null value)',
      layers: [{ mtls: { mode: 'STRICT' } }, { telemetry: null, mtls: { minTlsVersion: null } }],
      expected: { mtls: { mode: 'STRICT' } },
    },
    {
      name: 'drops null members inside a newly introduced map',
      layers: [{}, { telemetry: { accessLog: null, metrics: { enabled: true, port: null } } }],
      expected: { telemetry: { metrics: { enabled: true } } },
    },
    {
      name: 'keeps null inside lists (lists are values)',
      layers: [{ extensions: { xs: [1, null] } }],
      expected: { extensions: { xs: [1, null] } },
    },
    {
      name: 'lets a later layer re-add a deleted key',
      layers: [{ a: { x: 1 } }, { a: null }, { a: { y: 2 } }],
      expected: { a: { y: 2 } },
    },
    {
      name: 'applies layers in order (last wins)',
      layers: [{ v: 1 }, { v: 2 }, { v: 3 }],
      expected: { v: 3 },
    },
  ];

  for (const { name, layers, expected } of cases) {
    it(name, () => {
      assert.deepEqual(mergeLayers(layers.map((layer) => deepFreeze(layer))), expected);
    });
  }

  it('never mutates its inputs and shares untouched subtrees by reference', () => {
    const base = deepFreeze<JsonObject>({ routes: [{ name: 'a' }], mtls: { mode: 'STRICT' } });
    const upper = deepFreeze<JsonObject>({ mtls: { mode: 'PERMISSIVE' } });
    const merged = mergeLayer(base, upper);
    assert.deepEqual(base, { routes: [{ name: 'a' }], mtls: { mode: 'STRICT' } });
    assert.equal(merged['routes'], base['routes']);
  });
});

describe('mergeWithProvenance', () => {
  const layers: ReadonlyArray<SourcedLayer<string>> = [
    { source: 'config/base/00.yaml', document: { mtls: { mode: 'STRICT', minTlsVersion: '1.2' }, routes: [{ name: 'a' }] } },
    { source: 'config/overlays/10-pci.yaml', document: { mtls: { mode: 'PERMISSIVE' }, telemetry: { accessLog: true } } },
    { source: 'config/agents/web-1.yaml', document: { routes: [{ name: 'b', timeoutMs: 5 }], telemetry: null } },
  ];

  it('produces the same document as the plain merge', () => {
    const { document } = mergeWithProvenance(layers);
    assert.deepEqual(document, mergeLayers(layers.map((layer) => layer.document)));
  });

  const origins: ReadonlyArray<readonly [pointer: string, source: string | undefined, at?: string]> = [
    ['/mtls/mode', 'config/overlays/10-pci.yaml', '/mtls/mode'],
    // The base introduced the whole `mtls` map, so it owns every member nobody overrode.
    ['/mtls/minTlsVersion', 'config/base/00.yaml', '/mtls'],
    // A map several layers merged into belongs to the layer that introduced it.
    ['/mtls', 'config/base/00.yaml', '/mtls'],
    // Inside a list: the layer that set the list.
    ['/routes/0/timeoutMs', 'config/agents/web-1.yaml', '/routes'],
    // A missing member: the nearest value above it.
    ['/mtls/maxTlsVersion', 'config/base/00.yaml', '/mtls'],
    // Deleted by null: nobody.
    ['/telemetry/accessLog', undefined],
    ['', undefined],
  ];
  for (const [pointer, source, at] of origins) {
    it(`attributes ${pointer || "''"} to ${source ?? 'no layer'}`, () => {
      const origin = mergeWithProvenance(layers).provenance.originOf(pointer);
      assert.equal(origin?.source, source);
      assert.equal(origin?.pointer, at);
    });
  }

  it('attributes a key with `/` or `~` through its escaped pointer', () => {
    const { provenance } = mergeWithProvenance([{ source: 'x.yaml', document: { extensions: { 'a/b~c': 1 } } }, { source: 'y.yaml', document: { extensions: { 'a/b~c': 2 } } }]);
    assert.equal(provenance.originOf('/extensions/a~1b~0c')?.source, 'y.yaml');
  });
});
