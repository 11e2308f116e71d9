import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { type Client, credentials } from '@grpc/grpc-js';
import type { Alert } from '../../src/server/alerts.js';
import { FleetCache } from '../../src/server/fleet.js';
import { QuarantineController } from '../../src/server/quarantine.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { DistributionClient, type FetchResponseMsg } from '../../src/transport/proto.js';
import { forgeCsr, rsaKey } from '../pki/helpers.js';
import { hello, openStream, unary } from '../transport/helpers.js';
import { configFor, makeFixture, manualClock, silentLogger, type Fixture } from './helpers.js';
import { aid, cid } from '../helpers/ids.js';
import type { AgentId } from '../../src/domain/types.js';

const FOREIGN = { commit: cid('c'.repeat(40)), digest: `sha256:${'f'.repeat(64)}`, generation: 1 };

/**
 * Drift detection against the real gRPC transport: what an agent reports in its hello (or
 * poll) is judged before anything is sent to it.
 */
describe('quarantine on a drifting agent’s first contact (real gRPC)', () => {
  let fixture: Fixture;
  let server: RunningServer | undefined;
  let client: Client | undefined;
  const agentKey = rsaKey();

  beforeEach(() => {
    fixture = makeFixture();
  });
  afterEach(async () => {
    client?.close();
    client = undefined;
    await server?.close();
    server = undefined;
    fixture.cleanup();
  });

  async function connect(agentId: AgentId): Promise<{ s: RunningServer; client: Client }> {
    const s = (server = await startServer(configFor(fixture), { logger: silentLogger }));
    await s.syncNow();
    const issued = s.dataDir.ca.issueAgentCertificate({ csrPem: forgeCsr(agentKey), agentId: aid(agentId) });
    const creds = credentials.createSsl(Buffer.from(s.dataDir.ca.certificatePem), Buffer.from(agentKey.privateKeyPem), Buffer.from(issued.certPem), {
      checkServerIdentity: () => undefined,
    });
    client = new DistributionClient(s.grpcAddress, creds, { 'grpc.use_local_subchannel_pool': 1, 'grpc.ssl_target_name_override': 'localhost' });
    return { s, client };
  }

  it('sends the baseline as the first bundle of a stream whose hello reports a digest never issued to the agent', async () => {
    const { s, client } = await connect(aid('edge-1'));
    const own = s.reconciler.served()?.snapshot.deliveries.get(aid('edge-1'));
    assert.equal(own?.baseline, false);
    const stream = openStream(client);
    stream.call.write(hello('edge-1', FOREIGN));
    const first = await stream.nth(1);
    assert.equal(first.bundle?.baseline, true, 'the first delivery to a drifting agent is the baseline');
    assert.notEqual(first.bundle?.digest, own?.digest);
    assert.equal(s.fleet.get(aid('edge-1'))?.state, 'QUARANTINED');
    stream.call.end();
  });

  it('answers the first poll that reports a digest never issued to the agent with the baseline', async () => {
    const { s, client } = await connect(aid('edge-2'));
    const res = await unary<FetchResponseMsg>(client, 'Fetch', { agent_id: 'edge-2', if_none_match: FOREIGN.digest, active: FOREIGN });
    assert.equal(res.bundle?.baseline, true);
    assert.equal(s.fleet.get(aid('edge-2'))?.state, 'QUARANTINED');
  });

  it('sends a well-behaved agent its own bundle first', async () => {
    const { s, client } = await connect(aid('edge-3'));
    const stream = openStream(client);
    stream.call.write(hello('edge-3'));
    const first = await stream.nth(1);
    assert.equal(first.bundle?.baseline, false);
    assert.equal(first.bundle?.digest, s.reconciler.served()?.snapshot.deliveries.get(aid('edge-3'))?.digest);
    stream.call.end();
  });
});

describe('QuarantineController with rollout.quarantineStaleAfter (injected time)', () => {
  const DESIRED = { commit: cid('a'.repeat(40)), digest: `sha256:${'1'.repeat(64)}`, generation: 3 };
  const MIN = 60_000;

  function setup(): { clock: ReturnType<typeof manualClock>; fleet: FleetCache; quarantine: QuarantineController; alerts: Alert[]; republished: () => number } {
    const clock = manualClock(new Date('2030-01-01T00:00:00Z'));
    const fleet = new FleetCache({ now: clock.now, disconnectedAfterMs: 2 * MIN });
    fleet.setDesired(['edge-1', 'edge-2'].map((id) => ({ id: aid(id), labels: {}, desired: DESIRED })));
    const alerts: Alert[] = [];
    let republished = 0;
    const quarantine = new QuarantineController({
      fleet,
      store: null,
      deliveries: { desired: () => null },
      republish: async () => void (republished += 1),
      servingCommit: () => DESIRED.commit,
      alerts: { post: (alert) => void alerts.push(alert) },
      now: clock.now,
    });
    return { clock, fleet, quarantine, alerts, republished: () => republished };
  }

  /** The agent's stream is open and its desired bundle went out now. */
  function sent(fleet: FleetCache, id: string, at: Date): void {
    fleet.setConnected(aid(id), true, at);
    fleet.recordSend(aid(id), { ...DESIRED, nonce: `n-${id}` }, at);
  }

  it('is off by default: a connected agent silent for hours stays STALE, not quarantined', async () => {
    const { clock, fleet, quarantine } = setup();
    sent(fleet, 'edge-1', clock.now());
    clock.advance(600 * MIN);
    assert.deepEqual(await quarantine.sweepStale(), []);
    assert.equal(fleet.get(aid('edge-1'))?.state, 'STALE');
  });

  it('quarantines a connected agent that leaves its desired bundle unanswered that long, with the cause recorded and an alert', async () => {
    const { clock, fleet, quarantine, alerts, republished } = setup();
    quarantine.setStaleAfter(10 * MIN);
    sent(fleet, 'edge-1', clock.now());
    clock.advance(10 * MIN - 1);
    assert.deepEqual(await quarantine.sweepStale(), [], 'not before the time');
    clock.advance(1);
    assert.deepEqual(await quarantine.sweepStale(), ['edge-1']);
    const view = fleet.get(aid('edge-1'));
    assert.equal(view?.state, 'QUARANTINED');
    assert.equal(view?.quarantine?.by, 'system');
    assert.match(view?.quarantine?.reason ?? '', /quarantineStaleAfter/);
    assert.deepEqual(alerts.map((a) => [a.kind, 'agent' in a ? a.agent : null]), [['agent-quarantined', 'edge-1']]);
    assert.equal(republished(), 1, 'the baseline is published for it');
    assert.deepEqual(await quarantine.sweepStale(), [], 'once');
  });

  it('leaves alone agents that answered, disconnected agents, and agents just back in contact', async () => {
    const { clock, fleet, quarantine } = setup();
    quarantine.setStaleAfter(10 * MIN);
    sent(fleet, 'edge-1', clock.now());
    fleet.recordAck(aid('edge-1'), { ...DESIRED, nonce: 'n-edge-1', status: 'REJECTED', error: 'RELOAD_FAILED: exit 3' }, clock.now());
    sent(fleet, 'edge-2', clock.now());
    fleet.setConnected(aid('edge-2'), false, clock.now());
    clock.advance(30 * MIN);
    assert.deepEqual(await quarantine.sweepStale(), [], 'a rejection is an answer; a disconnected agent is not silent');
    assert.equal(fleet.get(aid('edge-2'))?.state, 'DISCONNECTED');

    fleet.setConnected(aid('edge-2'), true, clock.now()); // back after 30 minutes away
    clock.advance(10 * MIN - 1);
    assert.deepEqual(await quarantine.sweepStale(), [], 'its clock starts when it came back');
    clock.advance(1);
    assert.deepEqual(await quarantine.sweepStale(), ['edge-2']);
  });
});
