import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';

import { makeBundle } from '../../src/compile/bundle.js';
import { canonicalBytes, canonicalJson } from '../../src/lib/index.js';
import type { JsonValue } from '../../src/domain/types.js';

/** A double from its IEEE 754 bit pattern, as RFC 8785 Appendix B lists them. */
function double(hex: string): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setBigUint64(0, BigInt(`0x${hex}`));
  return view.getFloat64(0);
}

describe('canonicalJson (RFC 8785 JCS)', () => {
  it('serializes the §3.2.2 example: sorted keys, ECMAScript numbers, minimal escapes, no whitespace', () => {
    const input = JSON.parse(
      '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],' +
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",' +
        ' "literals": [null, true, false]}',
    ) as JsonValue;
    assert.equal(
      canonicalJson(input),
      '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],' +
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
    );
  });

  it('sorts keys by UTF-16 code units (§3.2.3), not by code point or locale', () => {
    const input: JsonValue = {
      '\u20ac': 'Euro Sign',
      '\r': 'Carriage Return',
      '\ufb33': 'Hebrew Letter Dalet With Dagesh',
      '1': 'One',
      '\ud83d\ude00': 'Emoji: Grinning Face',
      '\u0080': 'Control',
      '\u00f6': 'Latin Small Letter O With Diaeresis',
    };
    assert.equal(
      canonicalJson(input),
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis",' +
        '"\u20ac":"Euro Sign","\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    );
  });

  describe('numbers (Appendix B)', () => {
    const vectors: ReadonlyArray<readonly [bits: string, expected: string]> = [
      ['0000000000000000', '0'],
      ['8000000000000000', '0'],
      ['0000000000000001', '5e-324'],
      ['8000000000000001', '-5e-324'],
      ['7fefffffffffffff', '1.7976931348623157e+308'],
      ['ffefffffffffffff', '-1.7976931348623157e+308'],
      ['4340000000000000', '9007199254740992'],
      ['c340000000000000', '-9007199254740992'],
      ['4430000000000000', '295147905179352830000'],
      ['44b52d02c7e14af5', '9.999999999999997e+22'],
      ['44b52d02c7e14af6', '1e+23'],
      ['44b52d02c7e14af7', '1.0000000000000001e+23'],
      ['444b1ae4d6e2ef4e', '999999999999999700000'],
      ['444b1ae4d6e2ef4f', '999999999999999900000'],
      ['444b1ae4d6e2ef50', '1e+21'],
      ['3eb0c6f7a0b5ed8c', '9.999999999999997e-7'],
      ['3eb0c6f7a0b5ed8d', '0.000001'],
      ['41b3de4355555553', '333333333.3333332'],
      ['41b3de4355555554', '333333333.33333325'],
      ['41b3de4355555555', '333333333.3333333'],
      ['41b3de4355555556', '333333333.3333334'],
      ['41b3de4355555557', '333333333.33333343'],
      ['becbf647612f3696', '-0.0000033333333333333333'],
      ['43143ff3c1cb0959', '1424953923781206.2'],
    ];
    for (const [bits, expected] of vectors) {
      it(`writes 0x${bits} as ${expected}`, () => {
        assert.equal(canonicalJson(double(bits)), expected);
      });
    }

    for (const bits of ['7fffffffffffffff', '7ff0000000000000', 'fff0000000000000']) {
      it(`rejects the non-finite 0x${bits}`, () => {
        assert.throws(() => canonicalJson({ n: double(bits) }), RangeError);
      });
    }
  });

  it('escapes control characters as lowercase \\u00xx and the five named ones by name', () => {
    assert.equal(canonicalJson('\b\t\n\f\r\u0001\u001f"\\/\u007f'), '"\\b\\t\\n\\f\\r\\u0001\\u001f\\"\\\\/\u007f"');
  });

  it('rejects strings with lone surrogates (input must be I-JSON)', () => {
    assert.throws(() => canonicalJson({ s: '\ud800' }), RangeError);
    assert.throws(() => canonicalJson({ ['\udc00']: 1 }), RangeError);
    assert.equal(canonicalJson('\ud83d\ude00'), '"😀"');
  });

  it('gives equal output for equal values whatever the key insertion order', () => {
    const a: JsonValue = { b: [1, { y: 2, x: 1 }], a: null };
    const b: JsonValue = { a: null, b: [1, { x: 1, y: 2 }] };
    assert.equal(canonicalJson(a), canonicalJson(b));
    assert.equal(canonicalJson(a), '{"a":null,"b":[1,{"x":1,"y":2}]}');
  });

  it('encodes as UTF-8 bytes', () => {
    assert.deepEqual([...canonicalBytes({ '€': 'ö' })], [...Buffer.from('{"€":"ö"}', 'utf8')]);
  });
});

describe('makeBundle', () => {
  it('digests the canonical bytes as sha256:<hex>', () => {
    const bundle = makeBundle({ mtls: { mode: 'STRICT' }, a: [1, 2] });
    const expected = createHash('sha256').update('{"a":[1,2],"mtls":{"mode":"STRICT"}}').digest('hex');
    assert.equal(bundle.digest, `sha256:${expected}`);
    assert.equal(Buffer.from(bundle.bytes).toString('utf8'), '{"a":[1,2],"mtls":{"mode":"STRICT"}}');
  });

  it('gives identical documents identical digests and different ones different digests', () => {
    assert.equal(makeBundle({ x: 1, y: { z: true } }).digest, makeBundle({ y: { z: true }, x: 1 }).digest);
    assert.notEqual(makeBundle({ x: 1 }).digest, makeBundle({ x: 2 }).digest);
  });

  it('freezes the document deeply', () => {
    const bundle = makeBundle({ routes: [{ name: 'a' }] });
    assert.ok(Object.isFrozen(bundle));
    assert.ok(Object.isFrozen(bundle.document));
    assert.ok(Object.isFrozen((bundle.document['routes'] as JsonValue[])[0]));
  });
});
