import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { lineOfPointer, parseYaml, type ParsedYaml } from '../../src/compile/yaml.js';

const LIMITS = { maxFileBytes: 4096, maxAliasCount: 100, maxDepth: 16 };
const parse = (text: string, limits = LIMITS): ParsedYaml => parseYaml(new TextEncoder().encode(text), limits);

function problems(result: ParsedYaml): ReadonlyArray<{ line?: number; message: string }> {
  assert.equal(result.kind, 'invalid', 'expected the file to be refused');
  return result.kind === 'invalid' ? result.problems : [];
}

describe('parseYaml', () => {
  it('parses a document into frozen JSON', () => {
    const result = parse('mtls:\n  mode: STRICT\nroutes:\n  - name: a\n    timeoutMs: 100\n');
    assert.deepEqual(result, { kind: 'document', value: { mtls: { mode: 'STRICT' }, routes: [{ name: 'a', timeoutMs: 100 }] } });
    assert.ok(result.kind === 'document' && Object.isFrozen(result.value));
  });

  it('reads an empty or comment-only file as null', () => {
    assert.deepEqual(parse(''), { kind: 'document', value: null });
    assert.deepEqual(parse('# nothing yet\n'), { kind: 'document', value: null });
  });

  it('uses YAML 1.2 core types (yes/no/on/off stay strings)', () => {
    assert.deepEqual(parse('a: yes\nb: off\nc: true\nd: 010\n'), { kind: 'document', value: { a: 'yes', b: 'off', c: true, d: 10 } });
  });

  it('accepts aliases within the expansion budget', () => {
    assert.deepEqual(parse('a: &x [1, 2]\nb: *x\n'), { kind: 'document', value: { a: [1, 2], b: [1, 2] } });
  });

  describe('refuses, with the line where YAML can tell', () => {
    const cases: ReadonlyArray<{ name: string; text: string; line?: number; message: RegExp }> = [
      { name: 'a syntax error', text: 'a: 1\nb: [1,\n', line: 3, message: /flow sequence/i },
      { name: 'a bad indentation', text: 'a: 1\n  b: 2\n', line: 1, message: /./ },
      { name: 'a duplicate key', text: 'mtls:\n  mode: STRICT\n  mode: DISABLE\n', line: 3, message: /unique/i },
      { name: 'a second document', text: 'a: 1\n---\nb: 2\n', line: 2, message: /single YAML document/ },
      { name: 'an unknown tag', text: 'a: 1\nb: !secret x\n', line: 2, message: /tag/i },
      { name: 'a collection as a key', text: '? [a, b]\n: 1\n', line: 1, message: /keys must be strings/ },
      { name: 'a null key', text: 'a: 1\n~: 2\n', line: 2, message: /keys must be strings/ },
      { name: 'a non-finite number', text: 'a:\n  b: .inf\n', line: 2, message: /not a JSON number/ },
      { name: 'a lone surrogate escape', text: 'a: "\\ud800"\n', line: 1, message: /surrogate/ },
      { name: 'the __proto__ key', text: 'a:\n  __proto__: {x: 1}\n', line: 2, message: /not allowed/ },
      { name: 'an alias to a missing anchor', text: 'a: *nope\n', message: /alias/i },
    ];
    for (const { name, text, line, message } of cases) {
      it(name, () => {
        const [first] = problems(parse(text));
        assert.ok(first, 'expected a problem');
        assert.match(first.message, message);
        assert.equal(first.line, line);
      });
    }
  });

  it('refuses a "billion laughs" alias expansion', () => {
    const lol = [
      'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
      'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]',
      'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]',
      'd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]',
      'e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]',
    ].join('\n');
    assert.match(problems(parse(lol))[0]?.message ?? '', /resource exhaustion/);
  });

  it('refuses a file over the size cap before decoding it', () => {
    const fifty = `a: ${'x'.repeat(46)}\n`;
    const [problem] = problems(parse(fifty, { ...LIMITS, maxFileBytes: 49 }));
    assert.match(problem?.message ?? '', /50 bytes; the limit is 49/);
    assert.equal(parse(fifty, { ...LIMITS, maxFileBytes: 50 }).kind, 'document');
  });

  describe('refuses nesting deeper than the limit before building documents', () => {
    const deep = 16;
    const cases: ReadonlyArray<readonly [string, (n: number) => string]> = [
      ['flow lists', (n) => `${'['.repeat(n)}${']'.repeat(n)}\n`],
      ['flow maps', (n) => `${'{a: '.repeat(n)}1${'}'.repeat(n)}\n`],
      ['compact block lists', (n) => `${'- '.repeat(n)}x\n`],
      ['block maps', (n) => `${Array.from({ length: n }, (_, i) => `${' '.repeat(i)}k:`).join('\n')} 1\n`],
    ];
    for (const [description, make] of cases) {
      it(`${description}: ${deep} levels pass, ${deep + 1} do not`, () => {
        assert.equal(parse(make(deep)).kind, 'document');
        assert.match(problems(parse(make(deep + 1)))[0]?.message ?? '', /nesting is deeper than 16 levels/);
      });
    }

    it('counts nesting that aliases create', () => {
      const chain = ['a0: &a0 [1]', ...Array.from({ length: 20 }, (_, i) => `a${i + 1}: &a${i + 1} [*a${i}]`)].join('\n');
      // No alias budget (-1 turns it off in `yaml`), so the depth check is what refuses it.
      assert.match(problems(parse(chain, { ...LIMITS, maxAliasCount: -1 }))[0]?.message ?? '', /too deep \(through aliases\)/);
    });

    it('survives nesting that would overflow the YAML composer (and once crashed V8)', () => {
      // Both sizes together: an overflow inside a lazy regex compile used to abort the process.
      for (const n of [1_000, 20_000]) {
        const result = parseYaml(new TextEncoder().encode(`a: ${'['.repeat(n)}${']'.repeat(n)}\n`), { ...LIMITS, maxFileBytes: 1e6, maxDepth: 10_000 });
        assert.match(problems(result)[0]?.message ?? '', /nesting is deeper than 256 levels/);
      }
    });
  });

  it('refuses invalid UTF-8', () => {
    assert.match(problems(parseYaml(Uint8Array.from([0x61, 0x3a, 0x20, 0xff]), LIMITS))[0]?.message ?? '', /UTF-8/);
  });
});

describe('lineOfPointer', () => {
  const text = new TextEncoder().encode('agents:\n  - id: a\n  - id: b\n    labels:\n      zone: pci\n');
  const cases: ReadonlyArray<readonly [string, number | undefined]> = [
    ['', 1],
    ['/agents/1/id', 3],
    ['/agents/1/labels/zone', 5],
    ['/agents/2', undefined],
    ['/nope', undefined],
  ];
  for (const [pointer, line] of cases) {
    it(`finds ${pointer || "''"} on line ${String(line)}`, () => {
      assert.equal(lineOfPointer(text, pointer), line);
    });
  }
});
