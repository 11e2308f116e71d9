import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';

const SRC = join(import.meta.dirname, '..', '..', 'src');

/** `export type X`, `export interface X`, `export class X`, `export enum X` (not `export type { X }` re-exports). */
const DEFINITION = /^export\s+(?:declare\s+)?(?:abstract\s+)?(?:type|interface|class|enum)\s+([A-Za-z_$][\w$]*)/gm;

/** Every exported type name defined by more than one file, with the files that define it. */
function duplicateTypeNames(files: ReadonlyMap<string, string>): Map<string, string[]> {
  const where = new Map<string, string[]>();
  for (const [path, text] of files) {
    for (const match of text.matchAll(DEFINITION)) {
      const name = match[1] as string;
      const paths = where.get(name) ?? [];
      if (!paths.includes(path)) paths.push(path);
      where.set(name, paths);
    }
  }
  return new Map([...where].filter(([, paths]) => paths.length > 1));
}

async function sourceFiles(dir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.ts')) continue;
    const path = join(entry.parentPath, entry.name);
    files.set(relative(dir, path), await readFile(path, 'utf8'));
  }
  return files;
}

describe('type names in src/', () => {
  it('finds a type name that two files export (the check can fail)', () => {
    const found = duplicateTypeNames(
      new Map([
        ['fleet/store.ts', "export type AgentState = 'SYNCED';\nexport interface FleetStore {}\n"],
        ['server/fleet.ts', "export type AgentState = 'SYNCED';\nexport type { FleetStore } from '../fleet/index.js';\nexport interface LiveFleet {}\n"],
      ]),
    );
    assert.deepEqual([...found], [['AgentState', ['fleet/store.ts', 'server/fleet.ts']]]);
  });

  it('no two files in src/ export a type, interface, class or enum of the same name', async () => {
    const files = await sourceFiles(SRC);
    assert.ok(files.size > 100, 'reads the whole of src/');
    assert.deepEqual(Object.fromEntries(duplicateTypeNames(files)), {});
  });
});
