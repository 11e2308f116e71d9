import assert from 'node:assert/strict';
import { chmodSync, existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { MIGRATIONS } from '../../src/fleet/sqlite/migrations.js';
import { SqliteFleetStore } from '../../src/fleet/sqlite/store.js';
import { hashToken } from '../../src/pki/tokens.js';
import { tempDir } from '../helpers/git.js';
import { COMMIT_A, DIGEST_A, DIGEST_B, T0, ack, at, auditEntry, send, storeCode } from './helpers.js';
import { aid, cid } from '../helpers/ids.js';

const tmp = tempDir('meshcfg-fleet-sqlite-');
after(() => tmp.cleanup());
let counter = 0;
const freshPath = (): string => join(tmp.path, `fleet-${(counter += 1)}.db`);

function rawVersions(path: string): number[] {
  const raw = new Database(path, { readonly: true });
  try {
    return raw.prepare<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version').all().map((r) => r.version);
  } finally {
    raw.close();
  }
}

describe('SqliteFleetStore', () => {
  describe('when it creates the database', () => {
    it('makes the file and its WAL readable by the owner only (0600)', async () => {
      const path = freshPath();
      const store = await SqliteFleetStore.open(path);
      await store.recordAck(ack());
      assert.equal(statSync(path).mode & 0o777, 0o600);
      assert.ok(existsSync(`${path}-wal`));
      assert.equal(statSync(`${path}-wal`).mode & 0o777, 0o600);
      await store.close();
    });

    it('tightens an existing file that others can read', async () => {
      const path = freshPath();
      writeFileSync(path, '');
      chmodSync(path, 0o644);
      const store = await SqliteFleetStore.open(path);
      await store.close();
      assert.equal(statSync(path).mode & 0o777, 0o600);
    });

    it('uses WAL, synchronous=FULL, foreign keys and a busy timeout by default', async () => {
      const store = await SqliteFleetStore.open(freshPath());
      assert.deepEqual(store.settings(), { journalMode: 'wal', synchronous: 'FULL', foreignKeys: true, busyTimeoutMs: 5000 });
      await store.close();
    });

    it('takes synchronous=NORMAL and another busy timeout when asked', async () => {
      const store = await SqliteFleetStore.open(freshPath(), { synchronous: 'NORMAL', busyTimeoutMs: 250 });
      assert.deepEqual(store.settings(), { journalMode: 'wal', synchronous: 'NORMAL', foreignKeys: true, busyTimeoutMs: 250 });
      await store.close();
    });
  });

  describe('migrations', () => {
    it('runs every migration once, and none again on reopen', async () => {
      const path = freshPath();
      const first = await SqliteFleetStore.open(path);
      const expected = MIGRATIONS.map((_, i) => i + 1);
      assert.deepEqual(first.schemaVersions(), expected);
      assert.equal(SqliteFleetStore.SCHEMA_VERSION, MIGRATIONS.length);
      await first.close();
      const raw = new Database(path, { readonly: true });
      const appliedAt = raw.prepare('SELECT version, applied_at FROM schema_migrations').all();
      raw.close();
      const second = await SqliteFleetStore.open(path);
      assert.deepEqual(second.schemaVersions(), expected);
      await second.close();
      const again = new Database(path, { readonly: true });
      assert.deepEqual(again.prepare('SELECT version, applied_at FROM schema_migrations').all(), appliedAt);
      again.close();
    });

    it('applies only the new migrations to an older database and keeps its data', async () => {
      const path = freshPath();
      const old = await SqliteFleetStore.open(path, { migrations: MIGRATIONS });
      await old.recordAck(ack());
      await old.close();
      const upgraded = await SqliteFleetStore.open(path, { migrations: [...MIGRATIONS, 'CREATE TABLE extra (x INTEGER) STRICT;'] });
      assert.deepEqual(upgraded.schemaVersions(), [...MIGRATIONS.map((_, i) => i + 1), MIGRATIONS.length + 1]);
      assert.equal((await upgraded.listAcks(aid('edge-1'))).length, 1);
      await upgraded.close();
    });

    it('records, for agents enrolled before current certificates were kept, the last certificate known (revoked identities stay revoked)', async () => {
      const path = freshPath();
      const before = MIGRATIONS.findIndex((m) => m.includes('CREATE TABLE agent_certificates'));
      assert.ok(before > 0, 'the agent_certificates migration exists');
      // A database as the previous meshcfg left it (its store could not open this schema any more).
      const raw = new Database(path);
      raw.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT');
      MIGRATIONS.slice(0, before).forEach((migration, i) => {
        raw.exec(migration);
        raw.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(i + 1, Date.now());
      });
      const agent = raw.prepare("INSERT INTO agents (id, state, cert_serial, last_seen) VALUES (?, 'DISCONNECTED', ?, ?)");
      agent.run('edge-1', '0a', at(1).getTime());
      agent.run('edge-2', null, null);
      const revocation = raw.prepare("INSERT INTO revocations (serial, agent_id, at, revoked_by) VALUES (?, 'edge-3', ?, 'alice')");
      revocation.run('0b', at(2).getTime());
      revocation.run('0c', at(3).getTime());
      raw.close();
      const upgraded = await SqliteFleetStore.open(path);
      assert.deepEqual(await upgraded.listCurrentCertificates(), [
        { agentId: 'edge-1', serial: '0a', kind: 'adopted', at: at(1) },
        { agentId: 'edge-3', serial: '0c', kind: 'adopted', at: at(3) },
      ]);
      await upgraded.close();
    });

    it('rolls a failing migration back whole and refuses to open', async () => {
      const path = freshPath();
      await (await SqliteFleetStore.open(path)).close();
      const failing = 'CREATE TABLE half_done (x INTEGER); INSERT INTO no_such_table VALUES (1);';
      await assert.rejects(SqliteFleetStore.open(path, { migrations: [...MIGRATIONS, failing] }), storeCode('CORRUPT'));
      assert.deepEqual(rawVersions(path), MIGRATIONS.map((_, i) => i + 1));
      const raw = new Database(path, { readonly: true });
      assert.deepEqual(raw.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'half_done'").get(), { n: 0 });
      raw.close();
    });

    it('refuses a database from a newer meshcfg with SCHEMA_TOO_NEW and leaves it untouched', async () => {
      const path = freshPath();
      await (await SqliteFleetStore.open(path)).close();
      const raw = new Database(path);
      raw.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(MIGRATIONS.length + 1, Date.now());
      raw.close();
      await assert.rejects(SqliteFleetStore.open(path), (err: unknown) => {
        storeCode('SCHEMA_TOO_NEW')(err);
        assert.match((err as Error).message, new RegExp(`schema version ${MIGRATIONS.length + 1}`));
        return true;
      });
      assert.deepEqual(rawVersions(path), [...MIGRATIONS.map((_, i) => i + 1), MIGRATIONS.length + 1]);
    });
  });

  describe('when the file cannot be used', () => {
    it('refuses a file that is not a database with CORRUPT', async () => {
      const path = freshPath();
      writeFileSync(path, 'this is not sqlite, just text that is long enough to have a header '.repeat(20), { mode: 0o600 });
      await assert.rejects(SqliteFleetStore.open(path), storeCode('CORRUPT'));
    });

    it('refuses a path in a missing directory with STORE_UNAVAILABLE', async () => {
      await assert.rejects(SqliteFleetStore.open(join(tmp.path, 'missing', 'fleet.db')), storeCode('STORE_UNAVAILABLE'));
    });

    it('fails a write with STORE_UNAVAILABLE when another process holds the lock past the busy timeout, and succeeds after', async () => {
      const path = freshPath();
      const store = await SqliteFleetStore.open(path, { busyTimeoutMs: 50 });
      const other = new Database(path);
      other.exec('BEGIN IMMEDIATE');
      await assert.rejects(store.recordAck(ack()), storeCode('STORE_UNAVAILABLE'));
      other.exec('COMMIT');
      other.close();
      assert.equal(typeof (await store.recordAck(ack())), 'number');
      await store.close();
    });
  });

  describe('across close and reopen', () => {
    it('keeps everything: server state, agents, sends, acks, rollout, tokens, revocations, audit', async () => {
      const path = freshPath();
      const hash = hashToken('mcet_persisted');
      const doc = { waves: [{ name: 'canary', state: 'complete' }] };
      {
        const store = await SqliteFleetStore.open(path);
        await store.saveAccepted({ accepted: cid(COMMIT_A), generation: 7 });
        await store.recordSend(send({ digest: DIGEST_A }), { desired: { commit: cid(COMMIT_A), digest: DIGEST_A, generation: 7 }, state: 'PENDING' });
        for (let i = 0; i < 100; i += 1) await store.recordAck(ack({ nonce: `n${i}`, digest: i % 2 === 0 ? DIGEST_A : DIGEST_B }));
        await store.saveRollout({ commit: cid(COMMIT_A), document: doc, at: at(9) });
        await store.tokens.insert({ hash, agentId: aid('edge-9'), expiresAt: at(3_600_000) });
        await store.revoke({ serial: '00ff', agentId: aid('edge-3'), at: T0, by: 'alice' });
        await store.appendAudit(auditEntry());
        await store.close();
      }
      const store = await SqliteFleetStore.open(path);
      assert.deepEqual(await store.serverState(), { accepted: COMMIT_A, generation: 7, lastRefusal: null });
      assert.equal((await store.getAgent(aid('edge-1')))?.state, 'PENDING');
      assert.equal(await store.wasIssued(aid('edge-1'), DIGEST_A), true);
      assert.equal((await store.listAcks(aid('edge-1'), { limit: 1000 })).length, 100);
      assert.deepEqual([...(await store.digestsApplied(aid('edge-1')))].sort(), [DIGEST_A, DIGEST_B]);
      assert.deepEqual((await store.loadRollout())?.document, doc);
      assert.equal((await store.tokens.claim(hash, at(1)))?.agentId, 'edge-9');
      assert.equal(await store.isRevoked('00ff'), true);
      assert.equal((await store.listAudit()).length, 1);
      assert.deepEqual(store.integrityCheck(), ['ok']);
      await store.close();
    });
  });

  describe('with two connections to one file', () => {
    it('lets exactly one of two claims of a token win', async () => {
      const path = freshPath();
      const a = await SqliteFleetStore.open(path);
      const b = await SqliteFleetStore.open(path);
      const hash = hashToken('mcet_race');
      await a.tokens.insert({ hash, agentId: aid('edge-1'), expiresAt: at(3_600_000) });
      const results = await Promise.all([a.tokens.claim(hash, at(1)), b.tokens.claim(hash, at(2))]);
      assert.deepEqual(
        results.map((r) => r?.usedAt === undefined),
        [true, false],
      );
      assert.deepEqual(results[1]?.usedAt, at(1));
      await a.close();
      await b.close();
    });

    it('refuses a generation that would rewind what the other connection saved', async () => {
      const path = freshPath();
      const a = await SqliteFleetStore.open(path);
      const b = await SqliteFleetStore.open(path);
      await a.saveAccepted({ accepted: cid(COMMIT_A), generation: 10 });
      await assert.rejects(b.saveAccepted({ accepted: cid(COMMIT_A), generation: 9 }), storeCode('CONFLICT'));
      await a.close();
      await b.close();
    });
  });

  describe('throughput (measured, not asserted)', () => {
    for (const synchronous of ['FULL', 'NORMAL'] as const) {
      it(`records acks one transaction each with synchronous=${synchronous}`, async (t) => {
        const store = await SqliteFleetStore.open(freshPath(), { synchronous });
        const n = 2_000;
        const started = process.hrtime.bigint();
        for (let i = 0; i < n; i += 1) {
          const agentId = `edge-${i % 500}`;
          const at = new Date(T0.getTime() + i);
          await store.recordAck(ack({ agentId: aid(agentId), nonce: `n${i}`, at }), { active: { commit: cid(COMMIT_A), digest: DIGEST_A, generation: 1, at }, state: 'SYNCED', lastSeen: at });
        }
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        t.diagnostic(`recordAck + agent update, synchronous=${synchronous}: ${Math.round((n / ms) * 1000)} acks/s (${((ms * 1000) / n).toFixed(0)} µs each)`);
        const lookups = process.hrtime.bigint();
        for (let i = 0; i < n; i += 1) await store.wasIssued(aid(`edge-${i % 500}`), DIGEST_A);
        t.diagnostic(`wasIssued: ${((Number(process.hrtime.bigint() - lookups) / 1e3) / n).toFixed(1)} µs each`);
        const batch = process.hrtime.bigint();
        await store.updateAgents(Array.from({ length: 10_000 }, (_, i) => ({ id: aid(`agent-${i}`), patch: { desired: { commit: cid(COMMIT_A), digest: DIGEST_A, generation: 2 }, state: 'PENDING' as const } })));
        t.diagnostic(`updateAgents, 10,000 agents in one transaction: ${(Number(process.hrtime.bigint() - batch) / 1e6).toFixed(0)} ms`);
        await store.close();
      });
    }
  });
});
