import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { SqliteFleetStore } from '../../src/fleet/index.js';
import { waitFor } from '../helpers/process.js';
import { CONFIG_FILES, Deployment, INVENTORY, sha256File, type AgentView, useDeployment } from './harness.js';
import { aid } from '../helpers/ids.js';

/**
 * Fleet state end to end with real processes: drift → quarantine → baseline on disk →
 * `meshcfg approve` → desired on disk; and fleet.db surviving `kill -9` of the server.
 */
/** The digest of the agent's newest stored ack, read from the file beside the running server (read-only). */
function lastAckDigest(path: string, agentId: string): string | undefined {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return db.prepare<{ digest: string }>('SELECT digest FROM acks WHERE agent_id = ? ORDER BY id DESC LIMIT 1').get(agentId)?.digest;
  } finally {
    db.close();
  }
}

describe('fleet state end to end', { timeout: 240_000 }, () => {
  const suite = useDeployment('meshcfg-e2e-fleet-', CONFIG_FILES);
  let d: Deployment;
  let first: string;

  before(async () => {
    ({ deployment: d, first } = suite);
    assert.equal((await d.enroll('edge-1')).code, 0);
    d.startAgent('edge-1');
    await d.waitSynced('edge-1', first);
  });

  it('quarantines an agent whose file was edited by hand, puts the baseline on disk, and approval restores its bundle', async () => {
    const own = (await d.agentView('edge-1'))?.desired?.digest;
    await d.agents.get('edge-1')?.stop();
    const doc = JSON.parse(readFileSync(d.agentFile('edge-1'), 'utf8')) as Record<string, unknown>;
    writeFileSync(d.agentFile('edge-1'), JSON.stringify({ ...doc, mtls: { mode: 'DISABLE' } }));
    d.startAgent('edge-1'); // its hello reports the digest of the edited file

    const quarantined = await waitFor('edge-1 QUARANTINED with the baseline on disk', async () => {
      const v = await d.agentView('edge-1');
      if (v?.state !== 'QUARANTINED' || v.desired?.baseline !== true) return undefined;
      return sha256File(d.agentFile('edge-1')) === v.desired.digest ? v : undefined;
    });
    assert.equal(quarantined.quarantine?.by, 'system');
    const baseline = JSON.parse(readFileSync(d.agentFile('edge-1'), 'utf8')) as { mtls?: { minTlsVersion?: string } };
    assert.equal(baseline.mtls?.minTlsVersion, '1.3', 'the bytes of baseline/ are on disk');

    const status = await d.operator('status');
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^edge-1\s.*QUARANTINED/m);

    const approved = await d.operator('approve', 'edge-1', '--reason', 'hand edit reverted', '--actor', 'alice');
    assert.equal(approved.code, 0, approved.stderr);
    const view = await d.waitSynced('edge-1', first);
    assert.equal(view.desired?.baseline, false);
    assert.equal(view.desired?.digest, own);
    assert.equal(sha256File(d.agentFile('edge-1')), own, 'the desired bytes are on disk again');

    const audit = (await d.admin<Array<{ action: string; actor: string; target: string; reason: string }>>('/api/v1/audit?limit=2')).body;
    assert.deepEqual(audit.map((e) => [e.action, e.actor, e.target]), [
      ['agent.approve', 'admin', 'edge-1'],
      ['agent.quarantine', 'system', 'edge-1'],
    ]);
  });

  it('leaves fleet.db intact after kill -9, and the restarted server still knows the last ack', async () => {
    const next = d.push({ 'config/agents/edge-1.yaml': 'telemetry: { accessLog: true }\n' }, 'edge-1 access log');
    const synced: AgentView = await d.waitSynced('edge-1', next);
    // Acks reach fleet.db in the fleet cache's write batches (a 20 ms window, docs/architecture.md):
    // the kill comes once the ack is durable, and what is checked below is that it outlives the kill.
    await waitFor('the ack of edge-1 in fleet.db', () => lastAckDigest(join(d.dataDir, 'fleet.db'), 'edge-1') === synced.desired?.digest);
    // Mid-operation: the agent stream is open and the server polls the repository every 200 ms.
    await d.killServer();
    await d.agents.get('edge-1')?.stop(); // so nothing re-reports what it runs after the restart

    const db = await SqliteFleetStore.open(join(d.dataDir, 'fleet.db'));
    try {
      assert.deepEqual(db.integrityCheck(), ['ok']);
      const acks = await db.listAcks(aid('edge-1'), { limit: 1 });
      assert.equal(acks[0]?.digest, synced.desired?.digest);
      assert.equal(acks[0]?.status, 'APPLIED');
    } finally {
      await db.close();
    }

    await d.startServer();
    const known = await d.agentView('edge-1');
    assert.equal(known?.active?.commit, next, 'the restarted server knows what the agent acked');
    assert.equal(known?.active?.digest, synced.desired?.digest);
    assert.ok((known?.desired?.generation ?? 0) > (synced.desired?.generation ?? 0), 'generations keep growing after kill -9');
  });

  it('keeps a quarantine through the agent leaving the inventory, a server restart and coming back: only approve lifts it', async () => {
    const accepted = async (commit: string): Promise<void> => {
      await waitFor(`the server to serve ${commit.slice(0, 12)}`, async () => (await d.admin<{ accepted: string | null }>('/api/v1/source')).body.accepted === commit);
    };
    assert.equal((await d.enroll('edge-2')).code, 0);
    d.startAgent('edge-2');
    await d.waitSynced('edge-2', d.work.head());
    const quarantined = await d.operator('quarantine', 'edge-2', '--reason', 'suspected compromise');
    assert.equal(quarantined.code, 0, quarantined.stderr);
    const onBaseline = await waitFor('edge-2 on the baseline', async () => {
      const v = await d.agentView('edge-2');
      return v?.state === 'QUARANTINED' && v.desired?.baseline === true && sha256File(d.agentFile('edge-2')) === v.desired.digest ? v : undefined;
    });
    await d.agents.get('edge-2')?.stop();

    // A deliberate removal: inventory-shrink refuses it unless the commit names the agent.
    const settings = CONFIG_FILES['meshcfg.yaml'] as string;
    const removed = d.push(
      {
        'inventory/edge.yaml': INVENTORY.split('\n').filter((l) => !l.includes('edge-2')).join('\n'),
        'meshcfg.yaml': settings.replace('policy:\n', 'policy:\n  allowInventoryRemoval: [edge-2]\n'),
      },
      'edge-2 leaves',
    );
    await accepted(removed);
    assert.equal(await d.agentView('edge-2'), undefined, 'edge-2 is no longer listed');
    await d.stopServer();
    await d.startServer();
    const back = d.push({ 'inventory/edge.yaml': INVENTORY, 'meshcfg.yaml': settings }, 'edge-2 comes back');
    await accepted(back);
    d.startAgent('edge-2');

    const view = await waitFor('edge-2 back, connected and running what it is given', async () => {
      const v = await d.agentView('edge-2');
      return v?.connected === true && v.active !== null && v.active.digest === v.desired?.digest ? v : undefined;
    });
    assert.equal(view.state, 'QUARANTINED');
    assert.equal(view.quarantine?.by, 'admin');
    assert.equal(view.desired?.baseline, true, 'its first stream after coming back gets the baseline');
    assert.equal(view.desired?.digest, onBaseline.desired?.digest);
    assert.equal(sha256File(d.agentFile('edge-2')), onBaseline.desired?.digest, 'the baseline stays on disk');
    const audit = (await d.admin<Array<{ action: string; target: string }>>('/api/v1/audit?limit=50')).body;
    assert.deepEqual(audit.filter((e) => e.target === 'edge-2' && e.action.startsWith('agent.')).map((e) => e.action), ['agent.quarantine']);
  });
});
