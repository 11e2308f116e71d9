/**
 * Child process for the kill -9 test: opens the store at argv[2] and writes until killed.
 * Prints `ack <id>` after recordAck resolves (the transaction committed) and `batch <n>`
 * after a 50-agent updateAgents batch committed. Pipes are synchronous on Linux, so a line
 * the parent has read was written after its commit returned.
 */
import { SqliteFleetStore } from '../../src/fleet/sqlite/store.js';
import { aid, cid } from '../helpers/ids.js';

const path = process.argv[2];
if (path === undefined) throw new Error('usage: writer-child.ts <db>');
const synchronous = process.argv[3] === 'NORMAL' ? 'NORMAL' : 'FULL';
const store = await SqliteFleetStore.open(path, { synchronous });
const agents = Array.from({ length: 50 }, (_, i) => `edge-${i}`);

// Continue after the previous run's acks, so generations keep growing per agent.
let start = 1;
for (const a of agents) start = Math.max(start, ((await store.listAcks(aid(a), { limit: 1 }))[0]?.generation ?? 0) + 1);

process.stdout.write('ready\n');
for (let n = start; ; n += 1) {
  const agentId = agents[n % agents.length] ?? 'edge-0';
  const at = new Date();
  const digest = `sha256:${n.toString(16).padStart(64, '0')}`;
  const id = await store.recordAck(
    { agentId: aid(agentId), commit: cid('a'.repeat(40)), digest, generation: n, nonce: `n${n}`, status: 'APPLIED', error: '', at },
    { active: { commit: cid('a'.repeat(40)), digest, generation: n, at }, state: 'SYNCED', lastSeen: at },
  );
  process.stdout.write(`ack ${id}\n`);
  if (n % 10 === 0) {
    await store.updateAgents(agents.map((a) => ({ id: aid(a), patch: { desired: { commit: cid('b'.repeat(40)), digest, generation: n } } })));
    process.stdout.write(`batch ${n}\n`);
  }
}
