import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { configFor, fakeTransport, makeFixture, silentLogger, webhookReceiver, type Fixture } from '../server/helpers.js';

/**
 * What the admin port adds for the dashboard: the page and its assets (open, no fleet data,
 * a strict CSP), `GET /api/v1/alerts` and `GET /api/v1/whoami` (bearer token, viewer role).
 */
describe('admin API: dashboard routes', () => {
  let fixture: Fixture;
  let server: RunningServer;
  let bootstrap: string;
  let viewer: string;

  const get = (path: string, token: string | null = bootstrap): Promise<Response> =>
    fetch(`${server.adminUrl}${path}`, { headers: token === null ? {} : { authorization: `Bearer ${token}` } });
  const codeOf = async (res: Response): Promise<string> => ((await res.json()) as { error: { code: string } }).error.code;

  before(async () => {
    fixture = makeFixture();
    server = await startServer(configFor(fixture), { logger: silentLogger, transport: fakeTransport().start });
    assert.equal((await server.syncNow()).kind, 'accepted');
    bootstrap = readFileSync(server.adminTokenPath, 'utf8').trim();
    const created = await fetch(`${server.adminUrl}/api/v1/admin-tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${bootstrap}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'wall-screen', role: 'viewer' }),
    });
    assert.equal(created.status, 201);
    viewer = ((await created.json()) as { token: string }).token;
  });
  after(async () => {
    await server?.close();
    fixture?.cleanup();
  });

  describe('the page and its assets', () => {
    for (const [path, type] of [
      ['/', 'text/html'],
      ['/dashboard/app.js', 'text/javascript'],
      ['/dashboard/style.css', 'text/css'],
      ['/dashboard/favicon.svg', 'image/svg+xml'],
    ] as const) {
      it(`serves ${path} without a token, as ${type}, under a same-origin-only CSP`, async () => {
        const res = await get(path, null);
        assert.equal(res.status, 200);
        assert.ok(res.headers.get('content-type')?.startsWith(type));
        const csp = res.headers.get('content-security-policy') ?? '';
        assert.match(csp, /(^|; )default-src 'self'(;|$)/);
        assert.match(csp, /(^|; )script-src 'self'(;|$)/, 'no inline or remote script');
        assert.match(csp, /(^|; )frame-ancestors 'none'(;|$)/);
        assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
        assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
        const body = await res.text();
        for (const secret of [fixture.first, 'edge-1', bootstrap]) assert.ok(!body.includes(secret), `${path} holds no fleet data`);
      });
    }

    it('has no inline script, inline style or remote URL in the page', async () => {
      const html = await (await get('/', null)).text();
      assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/i, 'every script has a src');
      assert.doesNotMatch(html, /\sstyle=|<style/i);
      assert.doesNotMatch(html, /(src|href)="(https?:)?\/\//i);
    });

    it('answers 404 NOT_FOUND for any other path outside /api', async () => {
      for (const path of ['/dashboard/', '/dashboard/../../package.json', '/index.html', '/dashboard/app.ts']) {
        const res = await get(path, null);
        assert.equal(res.status, 404, path);
        assert.equal(await codeOf(res), 'NOT_FOUND');
      }
    });

    it('refuses POST to the page with 405 METHOD_NOT_ALLOWED', async () => {
      const res = await fetch(`${server.adminUrl}/`, { method: 'POST' });
      assert.equal(res.status, 405);
      assert.equal(await codeOf(res), 'METHOD_NOT_ALLOWED');
    });
  });

  describe('GET /api/v1/alerts', () => {
    it('is 401 UNAUTHORIZED without a token', async () => {
      const res = await get('/api/v1/alerts', null);
      assert.equal(res.status, 401);
      assert.equal(await codeOf(res), 'UNAUTHORIZED');
    });

    it('lists recent alerts newest first for a viewer token, without a webhook configured', async () => {
      const before = (await (await get('/api/v1/alerts', viewer)).json()) as unknown[];
      const unsigned = fixture.repo.write({ 'config/agents/edge-1.yaml': 'telemetry: { accessLog: true }\n' }).commit('unsigned change');
      assert.equal((await server.syncNow()).kind, 'refused');
      const res = await get('/api/v1/alerts', viewer);
      assert.equal(res.status, 200);
      const alerts = (await res.json()) as Array<{ id: number; kind: string; commit?: string; code?: string; at: string }>;
      assert.equal(alerts.length, before.length + 1);
      assert.equal(alerts[0]?.kind, 'commit-refused');
      assert.equal(alerts[0]?.commit, unsigned);
      assert.equal(typeof alerts[0]?.code, 'string');
      assert.ok(Number.isInteger(alerts[0]?.id));
    });

    it('takes ?limit=N from 1 to 100 and refuses others with 400 BAD_REQUEST', async () => {
      assert.equal(((await (await get('/api/v1/alerts?limit=1')).json()) as unknown[]).length, 1);
      for (const limit of ['0', '101', 'x']) {
        const res = await get(`/api/v1/alerts?limit=${limit}`);
        assert.equal(res.status, 400, limit);
        assert.equal(await codeOf(res), 'BAD_REQUEST');
      }
    });
  });

  describe('GET /api/v1/whoami', () => {
    it("names the token's holder and role", async () => {
      assert.deepEqual(await (await get('/api/v1/whoami', viewer)).json(), { name: 'wall-screen', role: 'viewer' });
      assert.deepEqual(await (await get('/api/v1/whoami')).json(), { name: 'admin', role: 'admin' });
    });

    it('is 401 UNAUTHORIZED without a token', async () => {
      assert.equal((await get('/api/v1/whoami', null)).status, 401);
    });
  });

  describe('GET /api/v1/source', () => {
    it('describes the accepted commit: sha, signer, subject, commit time', async () => {
      const source = (await (await get('/api/v1/source', viewer)).json()) as {
        acceptedCommit: { sha: string; signer: string; subject: string; committedAt: string; seenAt: string | null };
      };
      assert.equal(source.acceptedCommit.sha, fixture.first);
      assert.equal(source.acceptedCommit.signer, 'ops@example.org');
      assert.equal(source.acceptedCommit.subject, 'initial config');
      assert.ok(!Number.isNaN(Date.parse(source.acceptedCommit.committedAt)));
    });
  });
});

describe('admin API: GET /api/v1/alerts with alerts.webhook set', () => {
  it('keeps each alert in the ring and posts it to the webhook', async () => {
    const hook = await webhookReceiver();
    const fixture = makeFixture();
    const server = await startServer(configFor(fixture, { webhook: hook.url }), { logger: silentLogger, transport: fakeTransport().start });
    try {
      assert.equal((await server.syncNow()).kind, 'accepted');
      const unsigned = fixture.repo.write({ 'config/agents/edge-1.yaml': 'telemetry: { accessLog: true }\n' }).commit('unsigned change');
      assert.equal((await server.syncNow()).kind, 'refused');
      await hook.waitFor(1);
      assert.deepEqual(hook.bodies.map((b) => [(b as { kind: string }).kind, (b as { commit: string }).commit]), [['commit-refused', unsigned]]);
      const token = readFileSync(server.adminTokenPath, 'utf8').trim();
      const alerts = (await (await fetch(`${server.adminUrl}/api/v1/alerts`, { headers: { authorization: `Bearer ${token}` } })).json()) as Array<{ kind: string; commit: string }>;
      assert.deepEqual(alerts.map((a) => [a.kind, a.commit]), [['commit-refused', unsigned]]);
    } finally {
      await server.close();
      await hook.close();
      fixture.cleanup();
    }
  });
});
