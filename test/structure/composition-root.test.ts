import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';

const SERVER = join(import.meta.dirname, '..', '..', 'src', 'server');
const MAX_ROOT_LINES = 120;
const MAX_LINE_LENGTH = 160;

/** The lines of `text` (a trailing newline does not start another line). */
function lines(text: string): string[] {
  const all = text.split('\n');
  return all.at(-1) === '' ? all.slice(0, -1) : all;
}

/** `file:line (length)` for every line of `files` longer than `max` characters. */
function longLines(files: ReadonlyMap<string, string>, max: number): string[] {
  const found: string[] = [];
  for (const [name, text] of files) {
    lines(text).forEach((line, i) => {
      if (line.length > max) found.push(`${name}:${i + 1} (${line.length})`);
    });
  }
  return found;
}

async function serverFiles(): Promise<Map<string, string>> {
  const names = (await readdir(SERVER)).filter((name) => name.endsWith('.ts')).sort();
  return new Map(await Promise.all(names.map(async (name) => [name, await readFile(join(SERVER, name), 'utf8')] as const)));
}

describe('the server composition root (docs/architecture.md, The server\'s parts)', () => {
  it('finds a line over the limit (the check can fail)', () => {
    const files = new Map([['server.ts', `short\n${'x'.repeat(MAX_LINE_LENGTH + 1)}\n${'y'.repeat(MAX_LINE_LENGTH)}\n`]]);
    assert.deepEqual(longLines(files, MAX_LINE_LENGTH), [`server.ts:2 (${MAX_LINE_LENGTH + 1})`]);
  });

  it(`src/server/server.ts is at most ${MAX_ROOT_LINES} lines`, async () => {
    const text = await readFile(join(SERVER, 'server.ts'), 'utf8');
    assert.ok(lines(text).length <= MAX_ROOT_LINES, `server.ts has ${lines(text).length} lines`);
  });

  it(`no line in src/server/*.ts is over ${MAX_LINE_LENGTH} characters (wiring is not hidden in long lines)`, async () => {
    const files = await serverFiles();
    assert.ok(files.has('server.ts'), 'reads src/server/');
    assert.deepEqual(longLines(files, MAX_LINE_LENGTH), []);
  });
});
