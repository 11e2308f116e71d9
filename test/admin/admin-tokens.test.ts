import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { capturingLogger, configFor, fakeTransport, makeFixture, type Fixture } from '../server/helpers.js';

interface Answer {
  readonly status: number;
  readonly body: Record<string, unknown> & { error?: { code: string } };
}

describe('admin API: named tokens with roles', () => {
  let fixture: Fixture;
  let server: RunningServer;
  let log: ReturnType<typeof capturingLogger>;
  let bootstrap: string;
  const secrets = new Map<string, string>();

  const call = async (path: string, token: string, method = 'GET', body?: unknown, headers: Record<string, string> = {}): Promise<Answer> => {
    const res = await fetch(`${server.adminUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: (text === '' ? {} : JSON.parse(text)) as Answer['body'] };
  };
  const as = (name: string): string => secrets.get(name) ?? assert.fail(`no token ${name}`);
  const create = async (name: string, role: string, ttl?: string): Promise<Answer> => {
    const answer = await call('/api/v1/admin-tokens', bootstrap, 'POST', { name, role, ...(ttl === undefined ? {} : { ttl }) });
    if (answer.status === 201) secrets.set(name, String(answer.body['token']));
    return answer;
  };
  const lastAudit = async (): Promise<Record<string, unknown>> => {
    const entries = (await call('/api/v1/audit?limit=1', bootstrap)).body as unknown as Array<Record<string, unknown>>;
    return entries[0] ?? {};
  };
  const metric = async (reason: string): Promise<number> => {
    const text = await (await fetch(`${server.adminUrl}/metrics`)).text();
    const match = new RegExp(`^meshcfg_admin_unauthorized_requests_total\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(text);
    return match === null ? 0 : Number(match[1]);
  };

  before(async () => {
    fixture = makeFixture();
    log = capturingLogger();
    server = await startServer(configFor(fixture), { logger: log.logger, transport: fakeTransport().start });
    assert.equal((await server.syncNow()).kind, 'accepted');
    bootstrap = readFileSync(server.adminTokenPath, 'utf8').trim();
  });
  after(async () => {
    await server?.close();
    fixture?.cleanup();
  });

  describe('POST /api/v1/admin-tokens (bootstrap token)', () => {
    it('creates a viewer and an operator token, each shown once with its name and role', async () => {
      const viewer = await create('vera', 'viewer');
      assert.equal(viewer.status, 201);
      assert.match(String(viewer.body['token']), /^mcot_[A-Za-z0-9_-]{43}$/);
      assert.deepEqual([viewer.body['name'], viewer.body['role'], viewer.body['state'], viewer.body['createdBy'], viewer.body['expiresAt']], ['vera', 'viewer', 'active', 'admin', null]);
      assert.equal((await create('otto', 'operator', '30d')).status, 201);
      assert.deepEqual(await lastAudit().then((e) => [e['action'], e['actor'], e['target']]), ['admin-token.create', 'admin', 'otto']);
    });

    it('stores only hashes: the secrets are neither in fleet.db nor in the log', () => {
      const db = Buffer.concat(['fleet.db', 'fleet.db-wal'].map((f) => { try { return readFileSync(join(fixture.dataDir, f)); } catch { return Buffer.alloc(0); } }));
      for (const secret of secrets.values()) {
        assert.equal(db.indexOf(secret), -1, 'secret in fleet.db');
        assert.ok(!log.text().includes(secret), 'secret in the log');
      }
      assert.ok(log.lines().some((l) => l['event'] === 'admin-token-created' && l['name'] === 'vera'));
    });

    const refusals: ReadonlyArray<readonly [string, Record<string, unknown>, number, string]> = [
      ['a name in use', { name: 'vera', role: 'viewer' }, 409, 'TOKEN_NAME_TAKEN'],
      ['the reserved name admin', { name: 'admin', role: 'operator' }, 400, 'TOKEN_NAME_INVALID'],
      ['the reserved name system', { name: 'System', role: 'operator' }, 400, 'TOKEN_NAME_INVALID'],
      ['a name with a space', { name: 'a b', role: 'viewer' }, 400, 'TOKEN_NAME_INVALID'],
      ['an unknown role', { name: 'root', role: 'root' }, 400, 'ROLE_INVALID'],
      ['a ttl without unit', { name: 'tina', role: 'viewer', ttl: '60' }, 400, 'TOKEN_TTL_INVALID'],
    ];
    for (const [what, body, status, code] of refusals) {
      it(`answers ${status} ${code} for ${what}`, async () => {
        const answer = await call('/api/v1/admin-tokens', bootstrap, 'POST', body);
        assert.equal(answer.status, status);
        assert.equal(answer.body.error?.code, code);
      });
    }

    it('GET lists the tokens without secrets or hashes', async () => {
      const list = (await call('/api/v1/admin-tokens', bootstrap)).body as unknown as Array<Record<string, unknown>>;
      assert.deepEqual(list.map((t) => [t['name'], t['role'], t['state']]), [['otto', 'operator', 'active'], ['vera', 'viewer', 'active']]);
      assert.deepEqual(Object.keys(list[0] ?? {}).sort(), ['createdAt', 'createdBy', 'expiresAt', 'name', 'revokedAt', 'role', 'state']);
    });
  });

  describe('a viewer token', () => {
    for (const path of ['/api/v1/agents', '/api/v1/source', '/api/v1/rollout', '/api/v1/audit']) {
      it(`reads GET ${path}`, async () => {
        assert.equal((await call(path, as('vera'))).status, 200);
      });
    }

    const forbidden: ReadonlyArray<readonly [string, string, unknown]> = [
      ['POST', '/api/v1/rollout/pause', {}],
      ['POST', '/api/v1/agents/edge-1/quarantine', { reason: 'x' }],
      ['POST', '/api/v1/agents/edge-1/approve', { reason: 'x' }],
      ['POST', '/api/v1/agents/edge-1/revoke', {}],
      ['POST', '/api/v1/tokens', { agentId: 'edge-1' }],
      ['GET', '/api/v1/admin-tokens', undefined],
      ['DELETE', '/api/v1/admin-tokens/otto', undefined],
    ];
    for (const [method, path, body] of forbidden) {
      it(`is refused ${method} ${path}: 403 FORBIDDEN_ROLE`, async () => {
        const answer = await call(path, as('vera'), method, body);
        assert.equal(answer.status, 403);
        assert.equal(answer.body.error?.code, 'FORBIDDEN_ROLE');
      });
    }

    it('refusals are counted and logged with the token name', async () => {
      assert.ok((await metric('forbidden-role')) >= forbidden.length);
      const line = log.lines().find((l) => l['event'] === 'admin-unauthorized' && l['reason'] === 'forbidden-role');
      assert.equal(line?.['actor'], 'vera');
      assert.equal(line?.['level'], 40);
    });
  });

  describe('an operator token', () => {
    it('quarantines and approves; the audit actor is the token name, whatever X-Meshcfg-Actor claims', async () => {
      const q = await call('/api/v1/agents/edge-2/quarantine', as('otto'), 'POST', { reason: 'suspicious' }, { 'x-meshcfg-actor': 'mallory' });
      assert.equal(q.status, 200);
      assert.equal(q.body['actor'], 'otto');
      assert.deepEqual(await lastAudit().then((e) => [e['action'], e['actor']]), ['agent.quarantine', 'otto']);
      const a = await call('/api/v1/agents/edge-2/approve', as('otto'), 'POST', { reason: 'checked' });
      assert.equal(a.status, 200);
      assert.deepEqual(await lastAudit().then((e) => [e['action'], e['actor']]), ['agent.approve', 'otto']);
    });

    it('pauses and resumes the rollout, audited as the token name', async () => {
      assert.equal((await call('/api/v1/rollout/pause', as('otto'), 'POST', { reason: 'freeze' })).status, 200);
      assert.deepEqual(await lastAudit().then((e) => [e['action'], e['actor']]), ['rollout.pause', 'otto']);
      assert.equal((await call('/api/v1/rollout/resume', as('otto'), 'POST', {})).status, 200);
    });

    for (const [method, path, body] of [
      ['POST', '/api/v1/agents/edge-1/revoke', {}],
      ['POST', '/api/v1/tokens', { agentId: 'edge-1' }],
      ['POST', '/api/v1/admin-tokens', { name: 'eve', role: 'operator' }],
    ] as const) {
      it(`is refused ${method} ${path}: 403 FORBIDDEN_ROLE (bootstrap token only)`, async () => {
        const answer = await call(path, as('otto'), method, body);
        assert.equal(answer.status, 403);
        assert.equal(answer.body.error?.code, 'FORBIDDEN_ROLE');
      });
    }
  });

  describe('the bootstrap token', () => {
    it('is audited as admin, ignoring X-Meshcfg-Actor', async () => {
      const answer = await call('/api/v1/rollout/pause', bootstrap, 'POST', {}, { 'x-meshcfg-actor': 'carol' });
      assert.equal(answer.status, 200);
      assert.equal(answer.body['actor'], 'admin');
      assert.deepEqual(await lastAudit().then((e) => [e['action'], e['actor']]), ['rollout.pause', 'admin']);
      assert.equal((await call('/api/v1/rollout/resume', bootstrap, 'POST', {})).status, 200);
    });
  });

  describe('revocation and expiry', () => {
    it('DELETE /api/v1/admin-tokens/{name} revokes: the token is refused at once with 401, counted as revoked-token', async () => {
      assert.equal((await call('/api/v1/agents', as('vera'))).status, 200);
      const revoked = await call('/api/v1/admin-tokens/vera', bootstrap, 'DELETE');
      assert.equal(revoked.status, 200);
      assert.equal(revoked.body['state'], 'revoked');
      assert.deepEqual(await lastAudit().then((e) => [e['action'], e['actor'], e['target']]), ['admin-token.revoke', 'admin', 'vera']);
      const before = await metric('revoked-token');
      const refused = await call('/api/v1/agents', as('vera'));
      assert.equal(refused.status, 401);
      assert.equal(refused.body.error?.code, 'UNAUTHORIZED');
      assert.equal(await metric('revoked-token'), before + 1);
    });

    it('answers 409 ALREADY_REVOKED for a second revoke and 404 UNKNOWN_TOKEN for an unknown name', async () => {
      assert.equal((await call('/api/v1/admin-tokens/vera', bootstrap, 'DELETE')).body.error?.code, 'ALREADY_REVOKED');
      const unknown = await call('/api/v1/admin-tokens/nobody', bootstrap, 'DELETE');
      assert.equal(unknown.status, 404);
      assert.equal(unknown.body.error?.code, 'UNKNOWN_TOKEN');
    });

    it('a revoked name can be given to a new token, which works', async () => {
      assert.equal((await create('vera', 'viewer')).status, 201);
      assert.equal((await call('/api/v1/agents', as('vera'))).status, 200);
    });

    it('refuses an expired token with 401, counted as expired-token', async () => {
      assert.equal((await create('brief', 'viewer', '1s')).status, 201);
      assert.equal((await call('/api/v1/agents', as('brief'))).status, 200);
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      const before = await metric('expired-token');
      const refused = await call('/api/v1/agents', as('brief'));
      assert.equal(refused.status, 401);
      assert.equal(await metric('expired-token'), before + 1);
      const list = (await call('/api/v1/admin-tokens', bootstrap)).body as unknown as Array<Record<string, unknown>>;
      assert.equal(list.find((t) => t['name'] === 'brief')?.['state'], 'expired');
    });

    it('refuses a token of the right shape that was never issued with 401 bad-token', async () => {
      const answer = await call('/api/v1/agents', `mcot_${'A'.repeat(43)}`);
      assert.equal(answer.status, 401);
    });
  });
});
