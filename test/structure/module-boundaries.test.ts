import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ESLint } from 'eslint';

const ROOT = join(import.meta.dirname, '..', '..');
const RULE = 'meshcfg/module-boundaries';

/** Lints `code` as if it were the file `filePath` of the repository, with the repository's eslint.config.js. */
async function boundaryMessages(code: string, filePath: string): Promise<string[]> {
  const eslint = new ESLint({ cwd: ROOT });
  const [result] = await eslint.lintText(code, { filePath: join(ROOT, filePath) });
  assert.ok(result, 'one result');
  assert.deepEqual(
    result.messages.filter((m) => m.ruleId !== RULE),
    [],
    'the snippets are otherwise clean',
  );
  return result.messages.filter((m) => m.ruleId === RULE).map((m) => m.messageId ?? '');
}

describe('the module-boundaries lint rule (docs/architecture.md, module map)', () => {
  describe('when a pure module imports upward', () => {
    it('refuses src/compile/ importing src/server/', async () => {
      const code = "import { startServer } from '../server/index.js';\nexport const start = startServer;\n";
      assert.deepEqual(await boundaryMessages(code, 'src/compile/x.ts'), ['upward']);
    });

    it('refuses admin/ importing server/ types (import type counts too)', async () => {
      const code = "import type { AgentStatus } from '../server/fleet.js';\nexport type View = AgentStatus;\n";
      assert.deepEqual(await boundaryMessages(code, 'src/admin/x.ts'), ['upward']);
    });

    it('refuses source/trust/ importing its parent source/ from a nested folder', async () => {
      const code = "import { GitSource } from '../git-source.js';\nexport const source = GitSource;\n";
      assert.deepEqual(await boundaryMessages(code, 'src/source/trust/x.ts'), ['upward']);
    });
  });

  describe('when the import is allowed', () => {
    it('passes src/compile/ importing lib/ and domain/, from a nested folder', async () => {
      const code =
        "import { canonicalJson } from '../../lib/index.js';\nimport type { AgentId } from '../../domain/types.js';\nexport const json = canonicalJson;\nexport type Id = AgentId;\n";
      assert.deepEqual(await boundaryMessages(code, 'src/compile/policy/x.ts'), []);
    });

    it('passes imports inside one module and of packages', async () => {
      const code = "import { Compiler } from './compiler.js';\nimport { parse } from 'yaml';\nexport const both = [Compiler, parse];\n";
      assert.deepEqual(await boundaryMessages(code, 'src/compile/x.ts'), []);
    });
  });

  describe('when an allowed import bypasses the module index', () => {
    it('refuses a deep import into another module', async () => {
      const code = "import { Compiler } from '../compile/compiler.js';\nexport const compiler = Compiler;\n";
      assert.deepEqual(await boundaryMessages(code, 'src/server/x.ts'), ['deep']);
    });
  });

  describe('when a folder is not in the map', () => {
    it('refuses importing it until the map lists it', async () => {
      const code = "import { thing } from '../newmodule/index.js';\nexport const it = thing;\n";
      assert.deepEqual(await boundaryMessages(code, 'src/server/x.ts'), ['unmapped']);
    });
  });
});
