import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { assertNever, combineHooks, errnoCode, isErrnoCode, isObject, notify, readOptionalFile, writeFileAtomic } from '../../src/lib/index.js';

describe('lib', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshcfg-lib-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  describe('writeFileAtomic', () => {
    it('replaces the file whole, 0600 by default, and leaves no temporary file', async () => {
      const path = join(dir, 'secret');
      await writeFileAtomic(path, 'one');
      await writeFileAtomic(path, new TextEncoder().encode('two'));
      assert.equal(await readFile(path, 'utf8'), 'two');
      assert.equal((await stat(path)).mode & 0o777, 0o600);
      assert.deepEqual((await readdir(dir)).filter((name) => name.endsWith('.tmp')), []);
    });

    it('creates the file with the mode it is given, durable or not', async () => {
      const path = join(dir, 'public');
      await writeFileAtomic(path, 'x', 0o644, { durable: false });
      assert.equal((await stat(path)).mode & 0o777, 0o644 & ~process.umask());
    });

    it('rethrows ENOENT unchanged when the directory does not exist, and cleans up', async () => {
      await assert.rejects(writeFileAtomic(join(dir, 'missing', 'file'), 'x'), (err: unknown) => isErrnoCode(err, 'ENOENT'));
    });
  });

  describe('readOptionalFile', () => {
    it('answers undefined for a missing file and the text otherwise', async () => {
      assert.equal(await readOptionalFile(join(dir, 'nope')), undefined);
      await writeFileAtomic(join(dir, 'text'), 'hello');
      assert.equal(await readOptionalFile(join(dir, 'text')), 'hello');
    });
  });

  describe('errnoCode', () => {
    it('reads a string code and nothing else', () => {
      assert.equal(errnoCode(Object.assign(new Error('x'), { code: 'EPERM' })), 'EPERM');
      assert.equal(errnoCode({ code: 7 }), undefined);
      assert.equal(errnoCode(null), undefined);
      assert.equal(errnoCode('ENOENT'), undefined);
    });
  });

  describe('guards', () => {
    it('isObject accepts plain objects only', () => {
      assert.equal(isObject({}), true);
      assert.equal(isObject([]), false);
      assert.equal(isObject(null), false);
      assert.equal(isObject('x'), false);
    });

    it('assertNever throws for a value that entered through a cast', () => {
      assert.throws(() => assertNever('surprise' as never), TypeError);
    });
  });

  describe('observers', () => {
    it('notify swallows an observer that throws', () => {
      assert.doesNotThrow(() =>
        notify(() => {
          throw new Error('observer');
        }),
      );
    });

    it('combineHooks calls every observer even when one throws', () => {
      const seen: string[] = [];
      const hooks = combineHooks<{ onEvent?(name: string): void }>(
        {
          onEvent: () => {
            throw new Error('first');
          },
        },
        {},
        { onEvent: (name) => seen.push(name) },
      );
      hooks.onEvent?.('a');
      assert.deepEqual(seen, ['a']);
    });
  });
});
