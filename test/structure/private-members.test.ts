import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ESLint } from 'eslint';

const ROOT = join(import.meta.dirname, '..', '..');

/** The rules that fire when `code` is linted as the file `filePath` with the repository's eslint.config.js. */
async function ruleIds(code: string, filePath: string): Promise<string[]> {
  const eslint = new ESLint({ cwd: ROOT });
  const [result] = await eslint.lintText(code, { filePath: join(ROOT, filePath) });
  assert.ok(result, 'one result');
  return result.messages.map((m) => m.ruleId ?? '');
}

describe('the private-member convention (docs/architecture.md, Conventions)', () => {
  describe('when a class declares an ECMAScript #private member', () => {
    it('refuses a #field', async () => {
      const code = 'export class Counter {\n  #count = 0;\n  get count(): number {\n    return this.#count;\n  }\n}\n';
      assert.ok((await ruleIds(code, 'src/lib/x.ts')).includes('no-restricted-syntax'));
    });

    it('refuses a #method', async () => {
      const code = 'export class Counter {\n  #step(): number {\n    return 1;\n  }\n  next(): number {\n    return this.#step();\n  }\n}\n';
      assert.ok((await ruleIds(code, 'src/lib/x.ts')).includes('no-restricted-syntax'));
    });
  });

  describe('when a class uses the TypeScript private modifier', () => {
    it('passes', async () => {
      const code = 'export class Counter {\n  private count = 0;\n  next(): number {\n    this.count += 1;\n    return this.count;\n  }\n}\n';
      assert.deepEqual(await ruleIds(code, 'src/lib/x.ts'), []);
    });
  });
});
