import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { matchPattern, matchPatternList } from '../../../src/source/trust/pattern.js';

describe('OpenSSH patterns', () => {
  describe('matchPattern', () => {
    const cases: Array<[value: string, pattern: string, expected: boolean]> = [
      ['git', 'git', true],
      ['git', 'Git', false],
      ['git', 'g?t', true],
      ['git', 'g??t', false],
      ['alice@example.org', '*@example.org', true],
      ['alice@example.org.evil', '*@example.org', false],
      ['alice@example.org', '*', true],
      ['', '*', true],
      ['', '?', false],
      ['abcabcabd', '*abc*abd', true],
      ['a'.repeat(64), `${'*a'.repeat(32)}b`, false],
    ];
    for (const [value, pattern, expected] of cases) {
      it(`${expected ? 'matches' : 'does not match'} ${JSON.stringify(value.slice(0, 20))} against ${JSON.stringify(pattern.slice(0, 20))}`, () => {
        assert.equal(matchPattern(value, pattern), expected);
      });
    }
  });

  describe('matchPatternList', () => {
    it('matches when any positive pattern matches', () => assert.equal(matchPatternList('git', ['file', 'git']), true));
    it('does not match when no pattern matches', () => assert.equal(matchPatternList('git', ['file']), false));
    it('lets a matching negation win over a positive match', () =>
      assert.equal(matchPatternList('git', ['*', '!git']), false));
    it('needs a positive match besides negations that do not match', () =>
      assert.equal(matchPatternList('git', ['!file']), false));
  });
});
