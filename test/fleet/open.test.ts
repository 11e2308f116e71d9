import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { after, describe, it } from 'node:test';
import { defaultFleetStoreConfig, describeFleetStore, openFleetStore } from '../../src/fleet/index.js';
import { tempDir } from '../helpers/git.js';
import { createTestDatabase } from '../helpers/postgres.js';
import { T0, auditEntry } from './helpers.js';

const tmp = tempDir('meshcfg-fleet-open-');
after(() => tmp.cleanup());

const SRC = join(import.meta.dirname, '..', '..', 'src');

describe('openFleetStore', () => {
  it('opens SQLite at <dataDir>/fleet.db by default, and what it wrote is there when opened again', async () => {
    const config = defaultFleetStoreConfig(tmp.path);
    assert.deepEqual(config, { kind: 'sqlite', path: join(tmp.path, 'fleet.db') });
    const first = await openFleetStore(config, { now: () => T0 });
    await first.appendAudit(auditEntry());
    await first.close();
    assert.ok(existsSync(join(tmp.path, 'fleet.db')));
    const second = await openFleetStore(config);
    assert.equal((await second.listAudit()).length, 1);
    await second.close();
  });

  it('opens PostgreSQL with { kind: postgres, url }, and what it wrote is there when opened again', async () => {
    const db = await createTestDatabase('meshcfg_open');
    try {
      const config = { kind: 'postgres', url: db.url } as const;
      const first = await openFleetStore(config, { now: () => T0 });
      await first.appendAudit(auditEntry());
      await first.close();
      const second = await openFleetStore(config);
      assert.equal((await second.listAudit()).length, 1);
      assert.notEqual(second.changes, null);
      await second.close();
    } finally {
      await db.drop();
    }
  });

  it('describes the backend for logs, without the password', () => {
    assert.equal(describeFleetStore({ kind: 'sqlite', path: '/var/lib/meshcfg/fleet.db' }), 'SQLite at /var/lib/meshcfg/fleet.db');
    assert.equal(describeFleetStore({ kind: 'postgres', url: 'postgres://meshcfg:s3cret@db:5432/fleet' }), 'PostgreSQL at postgres://meshcfg:***@db:5432/fleet');
  });

  for (const [name, folder] of [
    ['SqliteFleetStore', 'fleet/sqlite/'],
    ['PostgresFleetStore', 'fleet/postgres/'],
  ] as const) {
    it(`is the only file in src/ outside its backend that names ${name}`, async () => {
      const naming: string[] = [];
      for (const entry of await readdir(SRC, { recursive: true, withFileTypes: true })) {
        if (!entry.isFile() || !entry.name.endsWith('.ts')) continue;
        const path = relative(SRC, join(entry.parentPath, entry.name)).split(sep).join('/');
        if (path.startsWith(folder)) continue;
        if ((await readFile(join(SRC, path), 'utf8')).includes(name)) naming.push(path);
      }
      assert.deepEqual(naming.sort(), ['fleet/index.ts', 'fleet/open.ts']);
    });
  }
});
