import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { changeKey, diffDocuments, REDACTED, renderDiff, type DiffOp } from '../../src/compile/diff.js';
import { parsePointer } from '../../src/compile/pointer.js';
import type { JsonObject, JsonValue } from '../../src/domain/types.js';

/** A minimal RFC 6902 applier (add/remove/replace), to check the ops form a valid patch. */
function applyPatch(document: JsonValue, ops: readonly DiffOp[]): JsonValue {
  let root = structuredClone(document);
  for (const op of ops) {
    const tokens = parsePointer(op.path);
    const last = tokens.pop();
    if (last === undefined) {
      root = op.op === 'remove' ? null : structuredClone(op.after);
      continue;
    }
    let parent = root as JsonObject | JsonValue[];
    for (const token of tokens) parent = (Array.isArray(parent) ? parent[Number(token)] : parent[token]) as JsonObject | JsonValue[];
    if (Array.isArray(parent)) {
      const index = Number(last);
      if (op.op === 'add') parent.splice(index, 0, structuredClone(op.after));
      else if (op.op === 'remove') parent.splice(index, 1);
      else parent[index] = structuredClone(op.after);
    } else if (op.op === 'remove') {
      delete parent[last];
    } else {
      parent[last] = structuredClone(op.after);
    }
  }
  return root;
}

describe('diffDocuments', () => {
  const cases: ReadonlyArray<{ name: string; before: JsonValue; after: JsonValue; ops: DiffOp[] }> = [
    { name: 'nothing for equal documents', before: { a: { b: [1, 2] } }, after: { a: { b: [1, 2] } }, ops: [] },
    {
      name: 'a replace for a changed scalar, at its path',
      before: { mtls: { mode: 'PERMISSIVE' } },
      after: { mtls: { mode: 'STRICT' } },
      ops: [{ op: 'replace', path: '/mtls/mode', before: 'PERMISSIVE', after: 'STRICT' }],
    },
    {
      name: 'add and remove for keys, in key order',
      before: { b: 1, c: { x: true } },
      after: { a: 2, b: 1 },
      ops: [
        { op: 'add', path: '/a', after: 2 },
        { op: 'remove', path: '/c', before: { x: true } },
      ],
    },
    {
      name: 'per-item ops for lists, appends ascending',
      before: { r: [{ n: 'a' }, { n: 'b' }] },
      after: { r: [{ n: 'a' }, { n: 'B' }, { n: 'c' }, { n: 'd' }] },
      ops: [
        { op: 'replace', path: '/r/1/n', before: 'b', after: 'B' },
        { op: 'add', path: '/r/2', after: { n: 'c' } },
        { op: 'add', path: '/r/3', after: { n: 'd' } },
      ],
    },
    {
      name: 'removals from the end of a list descending',
      before: [1, 2, 3, 4],
      after: [1],
      ops: [
        { op: 'remove', path: '/3', before: 4 },
        { op: 'remove', path: '/2', before: 3 },
        { op: 'remove', path: '/1', before: 2 },
      ],
    },
    {
      name: 'one replace when the type changes',
      before: { x: { a: 1 } },
      after: { x: [1] },
      ops: [{ op: 'replace', path: '/x', before: { a: 1 }, after: [1] }],
    },
    {
      name: 'escaped pointers for keys with / and ~',
      before: { headers: { 'a/b': '1', 'c~d': '1' } },
      after: { headers: { 'a/b': '2', 'c~d': '2' } },
      ops: [
        { op: 'replace', path: '/headers/a~1b', before: '1', after: '2' },
        { op: 'replace', path: '/headers/c~0d', before: '1', after: '2' },
      ],
    },
    { name: 'a root replace for different scalars', before: 1, after: 'one', ops: [{ op: 'replace', path: '', before: 1, after: 'one' }] },
  ];

  for (const { name, before, after, ops } of cases) {
    it(`gives ${name}`, () => {
      assert.deepEqual(diffDocuments(before, after), ops);
    });
    it(`gives ${name} — and the ops patch before into after (RFC 6902)`, () => {
      assert.deepEqual(applyPatch(before, diffDocuments(before, after)), after);
    });
  }
});

describe('renderDiff', () => {
  it('writes one line per op: ~ replace, + add, - remove', () => {
    const ops = diffDocuments(
      { mtls: { mode: 'PERMISSIVE' }, telemetry: { accessLog: true } },
      { mtls: { mode: 'STRICT' }, routes: [{ name: 'api', destination: 'api:443' }] },
    );
    assert.deepEqual(renderDiff(ops), [
      '~ /mtls/mode: "PERMISSIVE" → "STRICT"',
      '+ /routes: [{"destination":"api:443","name":"api"}]',
      '- /telemetry: {"accessLog":true}',
    ]);
  });

  it('cuts long values', () => {
    const [line] = renderDiff([{ op: 'add', path: '/x', after: 'y'.repeat(500) }], { maxValueLength: 10 });
    assert.equal(line, `+ /x: "yyyyyyyy…`);
  });

  it('never prints credentials: values under secret-named keys, private keys, AWS key ids', () => {
    const lines = renderDiff(
      diffDocuments(
        { extensions: { dbPassword: 'old' } },
        {
          extensions: {
            dbPassword: 'hunter2',
            vault: { apiToken: 'abc', tokenTtl: 60 },
            cert: '-----BEGIN PRIVATE KEY-----\nMII…',
            aws: ['AKIAIOSFODNN7EXAMPLE'],
          },
        },
      ),
    );
    const text = lines.join('\n');
    for (const secret of ['old', 'hunter2', 'abc', 'MII', 'AKIAIOSFODNN7EXAMPLE']) assert.ok(!text.includes(secret), `${secret} leaked: ${text}`);
    assert.ok(text.includes(REDACTED));
    assert.ok(text.includes('"tokenTtl":60'), 'non-secret values stay visible');
  });
});

describe('changeKey', () => {
  it('is equal for equal changes, whatever the key order of the values', () => {
    const a = diffDocuments({ x: 1 }, { x: 1, y: { p: 1, q: 2 } });
    const b = diffDocuments({ z: 0 }, { z: 0, y: { q: 2, p: 1 } });
    assert.equal(changeKey(a), changeKey(b));
    assert.notEqual(changeKey(a), changeKey(diffDocuments({}, { y: 1 })));
  });
});
