import assert from 'node:assert/strict';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { checkOutputFile } from '../../src/agent/output.js';
import { AgentError } from '../../src/domain/errors.js';
import { tempDir } from './helpers.js';

describe('checkOutputFile (what `meshcfg agent` checks about --out before it connects)', () => {
  let root: Awaited<ReturnType<typeof tempDir>>;
  before(async () => {
    root = await tempDir();
    await mkdir(join(root.path, 'is-a-dir'));
    await writeFile(join(root.path, 'a-file'), '');
  });
  after(() => root.remove());

  it('accepts a new file in an existing directory and leaves nothing behind', async () => {
    const dir = join(root.path, 'fresh');
    await mkdir(dir);
    await checkOutputFile(join(dir, 'envoy.json'));
    assert.deepEqual(await readdir(dir), []);
  });

  const refused: ReadonlyArray<{ name: string; path: () => string }> = [
    { name: 'a file in a directory that does not exist', path: () => join(root.path, 'missing', 'envoy.json') },
    { name: 'a file under a path that is a file', path: () => join(root.path, 'a-file', 'envoy.json') },
    { name: 'a path that is a directory', path: () => join(root.path, 'is-a-dir') },
    { name: 'a directory that takes no new files (/proc)', path: () => '/proc/meshcfg-envoy.json' },
  ];
  for (const c of refused) {
    it(`refuses ${c.name} with OUTPUT_INVALID naming the path`, async () => {
      const path = c.path();
      await assert.rejects(checkOutputFile(path), (err: unknown) => {
        assert.ok(err instanceof AgentError);
        assert.equal(err.code, 'OUTPUT_INVALID');
        assert.ok(err.message.includes(path), 'the message names the path');
        return true;
      });
    });
  }
});
