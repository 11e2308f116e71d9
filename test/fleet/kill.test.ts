import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { SqliteFleetStore } from '../../src/fleet/sqlite/store.js';
import { tempDir } from '../helpers/git.js';

const CHILD = fileURLToPath(new URL('./writer-child.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Reported {
  readonly acks: readonly number[];
  readonly batches: readonly number[];
}

/** Runs the writer until it has reported `target` acks, then SIGKILLs it mid-loop. */
function writeUntilKilled(db: string, synchronous: 'FULL' | 'NORMAL', target: number): Promise<Reported> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, db, synchronous], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const acks: number[] = [];
    const batches: number[] = [];
    let buffered = '';
    let stderr = '';
    let killed = false;
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        const [kind, value] = line.split(' ');
        if (kind === 'ack') acks.push(Number(value));
        if (kind === 'batch') batches.push(Number(value));
      }
      if (!killed && acks.length >= target) {
        killed = true;
        child.kill('SIGKILL');
      }
    });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`writer exited with ${String(code)} before it was killed: ${stderr}`));
      else resolve({ acks, batches });
    });
  });
}

for (const synchronous of ['FULL', 'NORMAL'] as const) {
  describe(`SqliteFleetStore killed with SIGKILL while writing (synchronous=${synchronous})`, () => {
    const tmp = tempDir('meshcfg-fleet-kill-');
    after(() => tmp.cleanup());
    const db = join(tmp.path, 'fleet.db');
    const reportedAcks = new Set<number>();
    let lastBatch = 0;

    for (const [round, target] of [
      [1, 150],
      [2, 317],
      [3, 90],
    ] as const) {
      it(`round ${round}: reopens intact with every ack and batch the writer saw committed, all or nothing`, async (t) => {
        const reported = await writeUntilKilled(db, synchronous, target);
        assert.ok(reported.acks.length >= target);
        for (const id of reported.acks) reportedAcks.add(id);
        lastBatch = Math.max(lastBatch, ...reported.batches);

        const store = await SqliteFleetStore.open(db, { synchronous });
        try {
          assert.deepEqual(store.integrityCheck(), ['ok']);
        } finally {
          await store.close();
        }
        const raw = new Database(db, { readonly: true });
        try {
          const stored = new Set(raw.prepare<{ id: number }>('SELECT id FROM acks').all().map((r) => r.id));
          const missing = [...reportedAcks].filter((id) => !stored.has(id));
          assert.deepEqual(missing, [], 'acks reported committed are missing');
          // At most the one ack in flight at the kill was committed without being reported.
          assert.ok(stored.size <= reportedAcks.size + round, `${stored.size} stored, ${reportedAcks.size} reported`);
          t.diagnostic(`${stored.size} acks stored, ${reportedAcks.size} reported: ${stored.size - reportedAcks.size} committed by a killed writer before it could report`);
          // An ack and its agent update commit together: each agent's active generation is its newest ack's.
          const torn = raw
            .prepare<{ id: string }>('SELECT id FROM agents a WHERE active_generation IS NOT (SELECT max(generation) FROM acks WHERE agent_id = a.id)')
            .all();
          assert.deepEqual(torn, []);
          // A 50-agent batch commits whole: every agent carries the same desired generation, at least the last reported.
          const generations = raw.prepare<{ g: number | null }>('SELECT DISTINCT desired_generation AS g FROM agents').all().map((r) => r.g);
          assert.equal(generations.length, 1, `agents disagree on the desired generation: ${generations.join(', ')}`);
          assert.ok((generations[0] ?? 0) >= lastBatch);
        } finally {
          raw.close();
        }
      });
    }
  });
}
