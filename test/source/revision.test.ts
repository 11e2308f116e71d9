import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SourceError } from '../../src/domain/errors.js';
import { parseRevision, type RevisionSpec } from '../../src/source/revision.js';

describe('parseRevision', () => {
  const valid: Array<[string, RevisionSpec]> = [
    ['HEAD', { name: 'HEAD', steps: [] }],
    ['@', { name: 'HEAD', steps: [] }],
    ['origin/main', { name: 'origin/main', steps: [] }],
    ['HEAD~', { name: 'HEAD', steps: [{ kind: 'ancestor', count: 1 }] }],
    ['HEAD~3', { name: 'HEAD', steps: [{ kind: 'ancestor', count: 3 }] }],
    ['main^', { name: 'main', steps: [{ kind: 'parent', index: 1 }] }],
    ['main^2~1', { name: 'main', steps: [{ kind: 'parent', index: 2 }, { kind: 'ancestor', count: 1 }] }],
    ['v1.2^{}', { name: 'v1.2', steps: [] }],
    ['v1.2^{commit}~', { name: 'v1.2', steps: [{ kind: 'ancestor', count: 1 }] }],
    ['abc1234', { name: 'abc1234', steps: [] }],
  ];
  for (const [input, expected] of valid) {
    it(`parses ${input}`, () => assert.deepEqual(parseRevision(input), expected));
  }

  const invalid = ['', '../../etc/passwd', 'a..b', '/abs', 'x/', 'has space', 'a:b', 'x.lock', 'a/.hidden', 'main^{tree}', 'a@{1}'];
  for (const input of invalid) {
    it(`refuses ${JSON.stringify(input)} with REVISION_NOT_FOUND`, () => {
      assert.throws(() => parseRevision(input), (err: unknown) => err instanceof SourceError && err.code === 'REVISION_NOT_FOUND');
    });
  }
});
