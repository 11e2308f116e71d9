import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { type Client, credentials } from '@grpc/grpc-js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { DistributionClient, type FetchResponseMsg } from '../../src/transport/proto.js';
import { forgeCsr, rsaKey } from '../pki/helpers.js';
import { hello, openStream, unary } from '../transport/helpers.js';
import { configFor, makeFixture, silentLogger, type Fixture } from './helpers.js';

const FOREIGN = { commit: 'c'.repeat(40), digest: `sha256:${'f'.repeat(64)}`, generation: 1 };

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

  async function connect(agentId: string): Promise<{ s: RunningServer; client: Client }> {
    const s = (server = await startServer(configFor(fixture), { logger: silentLogger }));
    await s.syncNow();
    const issued = s.dataDir.ca.issueAgentCertificate({ csrPem: forgeCsr(agentKey), agentId });
    const creds = credentials.createSsl(Buffer.from(s.dataDir.ca.certificatePem), Buffer.from(agentKey.privateKeyPem), Buffer.from(issued.certPem), {
      checkServerIdentity: () => undefined,
    });
    client = new DistributionClient(s.grpcAddress, creds, { 'grpc.use_local_subchannel_pool': 1, 'grpc.ssl_target_name_override': 'localhost' });
    return { s, client };
  }

  it('sends the baseline as the first bundle of a stream whose hello reports a digest never issued to the agent', async () => {
    const { s, client } = await connect('edge-1');
    const own = s.reconciler.served()?.snapshot.deliveries.get('edge-1');
    assert.equal(own?.baseline, false);
    const stream = openStream(client);
    stream.call.write(hello('edge-1', FOREIGN));
    const first = await stream.nth(1);
    assert.equal(first.bundle?.baseline, true, 'the first delivery to a drifting agent is the baseline');
    assert.notEqual(first.bundle?.digest, own?.digest);
    assert.equal(s.fleet.get('edge-1')?.state, 'QUARANTINED');
    stream.call.end();
  });

  it('answers the first poll that reports a digest never issued to the agent with the baseline', async () => {
    const { s, client } = await connect('edge-2');
    const res = await unary<FetchResponseMsg>(client, 'Fetch', { agent_id: 'edge-2', if_none_match: FOREIGN.digest, active: FOREIGN });
    assert.equal(res.bundle?.baseline, true);
    assert.equal(s.fleet.get('edge-2')?.state, 'QUARANTINED');
  });

  it('sends a well-behaved agent its own bundle first', async () => {
    const { s, client } = await connect('edge-3');
    const stream = openStream(client);
    stream.call.write(hello('edge-3'));
    const first = await stream.nth(1);
    assert.equal(first.bundle?.baseline, false);
    assert.equal(first.bundle?.digest, s.reconciler.served()?.snapshot.deliveries.get('edge-3')?.digest);
    stream.call.end();
  });
});
