import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { importFleet, PostgresFleetStore, SqliteFleetStore, type FleetStore } from '../../src/fleet/index.js';
import { hashToken } from '../../src/pki/tokens.js';
import { meshcfg } from '../helpers/cli.js';
import { tempDir } from '../helpers/git.js';
import { aid, cid } from '../helpers/ids.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { COMMIT_A, COMMIT_B, DIGEST_A, DIGEST_B, T0, ack, at, auditEntry, send, storeCode } from './helpers.js';

/** What a replica can read back of a fleet, through the store's own interface. */
async function everything(store: FleetStore): Promise<unknown> {
  const agents = await store.listAgents();
  const perAgent = await Promise.all(
    agents.map(async (a) => ({
      id: a.id,
      lastSend: await store.lastSend(a.id),
      acks: await store.listAcks(a.id),
      applied: [...(await store.digestsApplied(a.id))].sort(),
    })),
  );
  return {
    state: await store.serverState(),
    agents,
    perAgent,
    rollout: await store.loadRollout(),
    revocations: await store.listRevocations(),
    adminTokens: await store.listAdminTokens(),
    certificates: await store.listCurrentCertificates(),
    audit: await store.listAudit(),
    generation: await store.latestGeneration(),
  };
}

/** One server's fleet.db with a little of everything it keeps. */
async function populate(store: SqliteFleetStore): Promise<void> {
  await store.saveAccepted({ accepted: cid(COMMIT_A), generation: 7, seenAt: at(1) });
  await store.saveRefusal({ commit: cid(COMMIT_B), code: 'UNTRUSTED_SIGNER', message: 'not ours', at: at(2), violations: [] });
  for (const id of ['edge-1', 'edge-2', 'edge-3']) {
    await store.recordSend(send({ agentId: aid(id) }), { desired: { commit: cid(COMMIT_A), digest: DIGEST_A, generation: 7 }, state: 'PENDING' });
    await store.recordAck(ack({ agentId: aid(id) }), { state: 'SYNCED', lastSeen: at(3) });
  }
  await store.recordAck(ack({ agentId: aid('edge-2'), digest: DIGEST_B, status: 'REJECTED', error: 'bad', nonce: 'n2' }));
  await store.updateAgent(aid('edge-3'), { quarantine: { since: at(4), reason: 'ran config it was not issued', by: 'meshcfg' }, state: 'QUARANTINED' });
  await store.tokens.insert({ hash: hashToken('unused-token'), agentId: aid('edge-4'), expiresAt: at(86_400_000) });
  await store.tokens.insert({ hash: hashToken('used-token'), agentId: aid('edge-1'), expiresAt: at(86_400_000), usedAt: at(5) });
  await store.revoke({ serial: '0abc', agentId: aid('edge-2'), at: at(6), by: 'ops' }, auditEntry({ action: 'agent.revoke', target: 'edge-2' }));
  await store.setCurrentCertificate({ agentId: aid('edge-1'), serial: '0def', kind: 'enroll', at: at(7) });
  await store.insertAdminToken({ name: 'ci', role: 'viewer', hash: hashToken('admin-secret'), createdAt: at(8), createdBy: 'bootstrap', expiresAt: null, revokedAt: null });
  await store.saveRollout({ commit: cid(COMMIT_A), document: { waves: ['canary'], paused: true }, at: at(9) });
  await store.appendAudit(auditEntry({ action: 'rollout.pause', target: 'rollout' }));
}

describe('importFleet: one server’s SQLite fleet.db into PostgreSQL for replicas', { timeout: 120_000 }, () => {
  let tmp: ReturnType<typeof tempDir>;
  let db: TestDatabase;
  let path: string;
  const dbs: TestDatabase[] = [];
  before(async () => {
    tmp = tempDir('meshcfg-import-');
  });
  after(async () => {
    for (const d of dbs) await d.drop();
    tmp.cleanup();
  });
  beforeEach(async () => {
    db = await createTestDatabase('meshcfg_import');
    dbs.push(db);
    path = join(tmp.path, `fleet-${dbs.length}.db`);
    const store = await SqliteFleetStore.open(path, { now: () => T0 });
    await populate(store);
    await store.close();
  });
  let opened: FleetStore[] = [];
  afterEach(async () => {
    for (const store of opened) await store.close();
    opened = [];
  });
  const open = async (): Promise<{ sqlite: SqliteFleetStore; postgres: PostgresFleetStore }> => {
    const stores = { sqlite: await SqliteFleetStore.open(path, { now: () => T0 }), postgres: await PostgresFleetStore.open(db.url, { now: () => T0 }) };
    opened.push(stores.sqlite, stores.postgres);
    return stores;
  };

  it('copies every record: PostgreSQL reads back what fleet.db held, and new writes number on from it', async () => {
    const tables: string[] = [];
    const imported = await importFleet(path, db.url, (name, rows) => tables.push(`${name}:${rows}`));
    assert.equal(imported.accepted, COMMIT_A);
    assert.equal(imported.generation, 7);
    assert.ok(tables.includes('agents:3') && tables.includes('acks:4') && tables.includes('sends:3'), tables.join(' '));

    const { sqlite, postgres } = await open();
    assert.deepEqual(await everything(postgres), await everything(sqlite));
    // The enrollment token not used yet can be used once on a replica; the used one cannot.
    // (`claim` answers the record as it was before: unused, then used.)
    assert.equal((await postgres.tokens.claim(hashToken('unused-token'), at(10)))?.usedAt, undefined);
    assert.deepEqual((await postgres.tokens.claim(hashToken('unused-token'), at(11)))?.usedAt, at(10));
    assert.deepEqual((await postgres.tokens.claim(hashToken('used-token'), at(10)))?.usedAt, at(5));
    assert.equal(await postgres.isRevoked('0abc'), true);
    assert.equal((await postgres.adminTokenByHash(hashToken('admin-secret')))?.name, 'ci');
    // Ids continue after the imported ones (the identity sequences were moved past them).
    const lastAck = Math.max(...(await sqlite.listAcks(aid('edge-2'))).map((a) => a.id));
    assert.ok((await postgres.recordAck(ack({ agentId: aid('edge-2'), nonce: 'later' }))) > lastAck);
    assert.ok((await postgres.appendAudit(auditEntry({ action: 'later' }))) > (await sqlite.listAudit()).length);
    // A generation that would go back is refused as before.
    await assert.rejects(postgres.saveAccepted({ accepted: cid(COMMIT_A), generation: 6 }), storeCode('CONFLICT'));
  });

  it('refuses a database that holds fleet state already, and changes nothing there', async () => {
    await importFleet(path, db.url);
    const { postgres } = await open();
    await postgres.updateAgent(aid('edge-9'), { state: 'PENDING' });
    const before = await everything(postgres);
    await assert.rejects(importFleet(path, db.url), (err: unknown) => storeCode('CONFLICT')(err) && /holds fleet state already \(.*\bagents\b/.test((err as Error).message));
    assert.deepEqual(await everything(postgres), before);
  });

  it('refuses a fleet.db whose tables are not this version’s (CORRUPT), before writing anything', async () => {
    const { default: Database } = await import('better-sqlite3');
    const raw = new Database(path);
    raw.exec('CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)');
    raw.close();
    await assert.rejects(importFleet(path, db.url), (err: unknown) => storeCode('CORRUPT')(err) && /the tables differ/.test((err as Error).message));
    const { postgres } = await open();
    assert.deepEqual(await postgres.listAgents(), []);
  });

  it('refuses a fleet.db that is not there, without creating one', async () => {
    const missing = join(tmp.path, 'nowhere', 'fleet.db');
    await assert.rejects(importFleet(missing, db.url), (err: unknown) => storeCode('STORE_UNAVAILABLE')(err) && /no fleet store to import/.test((err as Error).message));
    assert.equal(existsSync(missing), false);
  });

  describe('meshcfg state import', () => {
    const config = (dataDir: string, postgres?: string): string => {
      const file = join(tmp.path, `server-${dbs.length}.yaml`);
      const allowedSigners = join(tmp.path, 'allowed_signers');
      writeFileSync(allowedSigners, '');
      writeFileSync(
        file,
        [
          'trustDomain: example.org',
          'repo: { url: "http://127.0.0.1:9/config.git", branch: main }',
          `trust: { allowedSigners: "${allowedSigners}" }`,
          'listen: { grpc: "127.0.0.1:0", admin: "127.0.0.1:0" }',
          `dataDir: "${dataDir}"`,
          'tls: { serverNames: [localhost] }',
          ...(postgres === undefined ? [] : [`state: { postgres: "${postgres}" }`]),
          '',
        ].join('\n'),
      );
      return file;
    };

    it('imports the fleet.db named by --from into the database server.yaml names, table by table, without printing the password', async () => {
      const run = await meshcfg('state', 'import', '--config', config(join(tmp.path, 'data'), db.url), '--from', path);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, new RegExp(`^imported .*fleet-\\d+\\.db into PostgreSQL at .*: 3 agents, accepted ${COMMIT_A}, generation 7\\n$`));
      assert.match(run.stderr, /^ {2}acks: 4 rows$/m);
      const { password } = new URL(db.url);
      assert.ok(password !== '' && !`${run.stdout}${run.stderr}`.includes(`:${password}@`));
      assert.match(run.stdout, /:\*\*\*@/);
      const { sqlite, postgres } = await open();
      assert.deepEqual(await everything(postgres), await everything(sqlite));
    });

    it('refuses, exit 2, a server.yaml without PostgreSQL, and a second import', async () => {
      const sqliteOnly = await meshcfg('state', 'import', '--config', config(tmp.path), '--from', path);
      assert.equal(sqliteOnly.code, 2);
      assert.match(sqliteOnly.stderr, /names no PostgreSQL fleet store/);
      assert.equal((await meshcfg('state', 'import', '--config', config(tmp.path, db.url), '--from', path)).code, 0);
      const again = await meshcfg('state', 'import', '--config', config(tmp.path, db.url), '--from', path);
      assert.equal(again.code, 2);
      assert.match(again.stderr, /^meshcfg state import: CONFLICT: .*holds fleet state already/m);
    });

    it('has --help', async () => {
      const run = await meshcfg('state', 'import', '--help');
      assert.equal(run.code, 0);
      assert.match(run.stdout, /--from <file>/);
      assert.match(run.stdout, /Exit codes: 0 imported/);
    });
  });
});
