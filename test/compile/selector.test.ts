import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { matchesSelector, readLabels, readSelector } from '../../src/compile/selector.js';
import type { Selector } from '../../src/compile/types.js';
import type { JsonValue } from '../../src/domain/types.js';

describe('matchesSelector', () => {
  const labels = { zone: 'pci', env: 'prod', service: 'payments' };
  const cases: ReadonlyArray<readonly [description: string, selector: Selector, expected: boolean]> = [
    ['a string value equal to the label', { zone: 'pci' }, true],
    ['a string value different from the label', { zone: 'dmz' }, false],
    ['a list containing the label (any-of)', { env: ['staging', 'prod'] }, true],
    ['a list not containing the label', { env: ['staging', 'dev'] }, false],
    ['several keys that all match', { zone: 'pci', env: ['prod'], service: 'payments' }, true],
    ['several keys, one of which does not match', { zone: 'pci', env: 'dev' }, false],
    ['a label the agent does not have', { ring: 'canary' }, false],
    ['a label the agent does not have, in a list', { ring: ['canary', 'main'] }, false],
    ['the empty selector', {}, true],
  ];
  for (const [description, selector, expected] of cases) {
    it(`${expected ? 'selects' : 'does not select'} with ${description}`, () => {
      assert.equal(matchesSelector(selector, labels), expected);
    });
  }

  it('compares values exactly (case-sensitive, no globbing)', () => {
    assert.equal(matchesSelector({ zone: 'PCI' }, labels), false);
    assert.equal(matchesSelector({ zone: 'p*' }, labels), false);
  });
});

describe('readSelector', () => {
  it('accepts strings and non-empty lists of strings', () => {
    assert.deepEqual(readSelector({ zone: 'pci', env: ['a', 'b'] }, '/match'), { kind: 'ok', value: { zone: 'pci', env: ['a', 'b'] } });
  });

  const invalid: ReadonlyArray<readonly [string, JsonValue, string]> = [
    ['a number value (must be quoted)', { ring: 1 }, '/match/ring'],
    ['an empty list', { env: [] }, '/match/env'],
    ['a list with a non-string', { env: ['a', true] }, '/match/env'],
    ['a bad label key', { 'bad key': 'x' }, '/match/bad key'],
    ['a list instead of a map', ['zone'], '/match'],
  ];
  for (const [description, value, path] of invalid) {
    it(`refuses ${description}, pointing at ${path}`, () => {
      const result = readSelector(value, '/match');
      assert.equal(result.kind, 'invalid');
      assert.equal(result.kind === 'invalid' ? result.problems[0]?.path : undefined, path);
    });
  }
});

describe('readLabels', () => {
  it('requires string values so `ring: 1` and `ring: "1"` cannot silently differ', () => {
    assert.equal(readLabels({ ring: 1 }, '/labels').kind, 'invalid');
    assert.deepEqual(readLabels({ ring: '1' }, '/labels'), { kind: 'ok', value: { ring: '1' } });
    assert.deepEqual(readLabels(undefined, '/labels'), { kind: 'ok', value: {} });
  });
});
