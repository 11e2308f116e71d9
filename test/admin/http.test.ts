import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { capturingLogger, configFor, fakeTransport, makeFixture, PERMISSIVE_BASE, type Fixture } from '../server/helpers.js';
import { aid } from '../helpers/ids.js';

describe('admin HTTP API', () => {
  let fixture: Fixture;
  let server: RunningServer;
  let transport: ReturnType<typeof fakeTransport>;
  let token: string;
  let log: ReturnType<typeof capturingLogger>;

  const call = (path: string, init: RequestInit & { auth?: string | null } = {}): Promise<Response> => {
    const { auth = token, ...rest } = init;
    return fetch(`${server.adminUrl}${path}`, {
      ...rest,
      headers: { ...(auth === null ? {} : { authorization: `Bearer ${auth}` }), ...(rest.body === undefined ? {} : { 'content-type': 'application/json' }) },
    });
  };

  before(async () => {
    // No commit on main yet: the server starts, but nothing can be accepted until one lands.
    fixture = makeFixture({ empty: true });
    transport = fakeTransport();
    log = capturingLogger();
    server = await startServer(configFor(fixture), { logger: log.logger, transport: transport.start });
    token = readFileSync(server.adminTokenPath, 'utf8').trim();
  });
  after(async () => {
    await server?.close();
    fixture.cleanup();
  });

  describe('before any commit is accepted', () => {
    it('GET /healthz is 200 without a token', async () => {
      const res = await call('/healthz', { auth: null });
      assert.equal(res.status, 200);
    });

    it('GET /readyz is 503', async () => {
      assert.equal((await call('/readyz', { auth: null })).status, 503);
      assert.equal(server.ready(), false);
      assert.equal(transport.serving(), false);
    });

    it('POST /api/v1/tokens refuses every agent with 400 UNKNOWN_AGENT (no inventory yet)', async () => {
      const res = await call('/api/v1/tokens', { method: 'POST', body: JSON.stringify({ agentId: 'edge-1' }) });
      assert.equal(res.status, 400);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'UNKNOWN_AGENT');
    });
  });

  describe('once the head is accepted', () => {
    before(async () => {
      fixture.commitExample();
      const result = await server.syncNow();
      assert.equal(result.kind, 'accepted');
    });

    it('GET /readyz is 200 and the transport is told to serve', async () => {
      assert.equal((await call('/readyz', { auth: null })).status, 200);
      assert.equal(transport.serving(), true);
    });

    describe('authentication', () => {
      for (const [what, auth] of [
        ['no token', null],
        ['a wrong token', 'mcat_wrong'],
        ['an empty bearer', ''],
      ] as const) {
        it(`answers 401 with a JSON error for ${what}`, async () => {
          for (const path of ['/api/v1/agents', '/api/v1/source']) {
            const res = await call(path, { auth });
            assert.equal(res.status, 401);
            assert.deepEqual(Object.keys(((await res.json()) as { error: object }).error).sort(), ['code', 'message']);
          }
        });
      }

      it('counts refused admin requests apart from agents’ unauthorized attempts', async () => {
        const text = await (await call('/metrics', { auth: null })).text();
        assert.match(text, /meshcfg_admin_unauthorized_requests_total\{reason="bad-token"\} [1-9]/);
        assert.match(text, /^meshcfg_unauthorized_attempts_total\{reason="bad-token"\} 0$/m, 'the agents’ bad-token series is there from the start, and stays at 0');
      });
    });

    it('POST /api/v1/tokens creates a one-time token for an inventory agent', async () => {
      const res = await call('/api/v1/tokens', { method: 'POST', body: JSON.stringify({ agentId: 'edge-1', ttl: '30m' }) });
      assert.equal(res.status, 201);
      const body = (await res.json()) as { token: string; expiresAt: string };
      assert.match(body.token, /^mcet_/);
      const ttl = Date.parse(body.expiresAt) - Date.now();
      assert.ok(ttl > 29 * 60_000 && ttl <= 30 * 60_000, `ttl ${ttl}`);
      // Usable at once by the backend the transport was given.
      assert.equal((await transport.backend().enroll(body.token, (await import('../pki/helpers.js')).forgeCsr((await import('../pki/helpers.js')).rsaKey()))).agentId, 'edge-1');
    });

    const badRequests: ReadonlyArray<readonly [string, unknown, number, string]> = [
      ['an agent not in the inventory', { agentId: 'edge-9' }, 400, 'UNKNOWN_AGENT'],
      ['an agent id that is no DNS label', { agentId: 'Edge_1' }, 400, 'BAD_REQUEST'],
      ['a ttl without unit', { agentId: 'edge-1', ttl: '60' }, 400, 'BAD_REQUEST'],
      ['a ttl above the maximum', { agentId: 'edge-1', ttl: '30d' }, 400, 'TOKEN_TTL_INVALID'],
      ['a body that is not an object', ['edge-1'], 400, 'BAD_REQUEST'],
      ['a body larger than the limit', { agentId: 'edge-1', pad: 'x'.repeat(20_000) }, 413, 'PAYLOAD_TOO_LARGE'],
    ];
    for (const [what, body, status, code] of badRequests) {
      it(`POST /api/v1/tokens answers ${status} ${code} for ${what}`, async () => {
        const res = await call('/api/v1/tokens', { method: 'POST', body: JSON.stringify(body) });
        assert.equal(res.status, status);
        assert.equal(((await res.json()) as { error: { code: string } }).error.code, code);
      });
    }

    describe('when an agent path holds a malformed percent-encoding', () => {
      it('answers 400 BAD_PATH and logs no error or stack', async () => {
        const res = await call('/api/v1/agents/%E0%A4%A/quarantine', { method: 'POST', body: JSON.stringify({ reason: 'x' }) });
        assert.equal(res.status, 400);
        assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'BAD_PATH');
        assert.ok(!log.lines().some((l) => l['event'] === 'admin-error'), 'no admin-error logged');
        assert.ok(!log.text().includes('URIError'), 'no stack logged');
      });
    });

    it('answers 405 for a wrong method and 404 for an unknown path, as JSON', async () => {
      const wrong = await call('/api/v1/agents', { method: 'POST', body: '{}' });
      assert.equal(wrong.status, 405);
      const missing = await call('/api/v1/nothing');
      assert.equal(missing.status, 404);
      assert.equal(((await missing.json()) as { error: { code: string } }).error.code, 'NOT_FOUND');
    });

    it('GET /api/v1/agents lists the inventory with desired and active versions', async () => {
      const res = await call('/api/v1/agents');
      assert.equal(res.status, 200);
      const agents = (await res.json()) as Array<Record<string, unknown>>;
      assert.deepEqual(agents.map((a) => a['id']), ['edge-1', 'edge-2', 'edge-3', 'edge-4']);
      const edge1 = agents[0] as Record<string, unknown>;
      assert.deepEqual(Object.keys(edge1).sort(), ['active', 'certExpiry', 'certSerial', 'connected', 'desired', 'id', 'labels', 'lastError', 'lastRejection', 'lastSeen', 'quarantine', 'state', 'wave']);
      assert.equal(edge1['wave'], 'canary');
      assert.deepEqual(edge1['labels'], { zone: 'pci', env: 'prod', service: 'payments', ring: 'canary' });
      const desired = edge1['desired'] as Record<string, unknown>;
      assert.equal(desired['commit'], fixture.first);
      assert.match(String(desired['digest']), /^sha256:[0-9a-f]{64}$/);
      assert.equal(desired['generation'], 1);
      assert.equal(edge1['active'], null);
      assert.equal(edge1['connected'], false);
      assert.equal(typeof edge1['state'], 'string');
    });

    it('GET /api/v1/agents shows an agent that acked as SYNCED', async () => {
      const backend = transport.backend();
      const delivery = backend.desired(aid('edge-3'));
      assert.ok(delivery);
      const identity = { agentId: 'edge-3', notAfter: new Date(Date.now() + 3_600_000), serialNumber: '01' } as Parameters<typeof backend.ack>[0];
      backend.ack(identity, { commit: delivery.commit, digest: delivery.digest, generation: delivery.generation, nonce: delivery.nonce, status: 'APPLIED', error: '' });
      const agents = (await (await call('/api/v1/agents')).json()) as Array<Record<string, unknown>>;
      const edge3 = agents.find((a) => a['id'] === 'edge-3') as Record<string, unknown>;
      assert.equal(edge3['state'], 'SYNCED');
      assert.deepEqual(Object.keys(edge3['active'] as object).sort(), ['at', 'commit', 'digest', 'generation']);
      assert.equal(typeof edge3['lastSeen'], 'string');
    });

    it('GET /api/v1/source shows branch, head, accepted and no refusal', async () => {
      const body = (await (await call('/api/v1/source')).json()) as Record<string, unknown>;
      assert.equal(body['branch'], 'main');
      assert.equal(body['head'], fixture.first);
      assert.equal(body['accepted'], fixture.first);
      assert.equal(body['refused'], null);
    });

    it('GET /api/v1/source shows a refused head while the accepted commit stays', async () => {
      const bad = fixture.repo.write({ 'config/base/00-mtls.yaml': PERMISSIVE_BASE }).commit('plaintext', fixture.signer);
      assert.equal((await server.syncNow()).kind, 'refused');
      const body = (await (await call('/api/v1/source')).json()) as Record<string, unknown>;
      assert.equal(body['head'], bad);
      assert.equal(body['accepted'], fixture.first);
      const refused = body['refused'] as Record<string, unknown>;
      assert.deepEqual(Object.keys(refused).sort(), ['at', 'code', 'commit', 'message']);
      assert.equal(refused['commit'], bad);
      assert.equal(refused['code'], 'POLICY_VIOLATIONS');
      assert.equal((await call('/readyz', { auth: null })).status, 200);
    });

    it('GET /metrics is Prometheus text with the meshcfg metrics, without a token', async () => {
      const res = await call('/metrics', { auth: null });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
      const text = await res.text();
      for (const name of [
        'meshcfg_tls_handshakes_total',
        'meshcfg_unauthorized_attempts_total',
        'meshcfg_commits_total',
        'meshcfg_acks_total',
        'meshcfg_connected_agents',
        'meshcfg_generation',
        'meshcfg_agents',
      ]) {
        assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), name);
      }
      assert.match(text, /^meshcfg_commits_total\{result="accepted"\} 1$/m);
      assert.match(text, /^meshcfg_commits_total\{result="refused"\} 1$/m);
      assert.match(text, /^meshcfg_generation 1$/m);
      assert.match(text, /^meshcfg_agents\{state="SYNCED"\} 1$/m);
      assert.match(text, /^meshcfg_acks_total\{status="applied"\} 1$/m);
    });
  });
});
