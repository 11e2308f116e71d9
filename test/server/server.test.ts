import assert from 'node:assert/strict';
import { readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { pino } from 'pino';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { capturingLogger, configFor, makeFixture, type Fixture } from './helpers.js';

describe('startServer (with the real gRPC transport)', () => {
  let fixture: Fixture;
  let server: RunningServer | undefined;

  beforeEach(() => {
    fixture = makeFixture();
  });
  afterEach(async () => {
    await server?.close();
    server = undefined;
    fixture.cleanup();
  });

  it('listens on real ports, becomes ready once the head is accepted, and logs where things are but no secrets', async () => {
    const log = capturingLogger();
    server = await startServer(configFor(fixture), { logger: log.logger });
    assert.ok(server.grpcPort > 0);
    assert.ok(server.adminPort > 0);
    assert.equal(server.grpcAddress, `127.0.0.1:${server.grpcPort}`);
    assert.match(server.pin, /^sha256\//);

    assert.equal((await server.syncNow()).kind, 'accepted');
    assert.equal(server.ready(), true);
    assert.equal((await fetch(`${server.adminUrl}/readyz`)).status, 200);

    const started = log.lines().find((l) => l['event'] === 'listening');
    assert.equal(started?.['pin'], server.pin);
    assert.equal(started?.['adminTokenFile'], server.adminTokenPath);
    assert.ok(log.lines().some((l) => l['event'] === 'data-dir' && l['what'] === 'CA key'));
    const adminToken = readFileSync(server.adminTokenPath, 'utf8').trim();
    assert.ok(!log.text().includes(adminToken), 'the admin token is never logged');
    assert.ok(!log.text().includes('PRIVATE KEY'), 'no key material is logged');
  });

  it('logs each skipped symlink and submodule of an accepted commit and shows them in GET /api/v1/source', async () => {
    symlinkSync('/etc/passwd', join(fixture.repo.dir, 'config/base/zz-link.yaml'));
    fixture.repo.git('add', '-A');
    fixture.repo.git('update-index', '--add', '--cacheinfo', `160000,${fixture.first},config/vendor`);
    const withLinks = fixture.repo.commit('a symlink and a submodule under config/', fixture.signer, [], { stage: false });
    const log = capturingLogger();
    server = await startServer(configFor(fixture), { logger: log.logger });
    assert.deepEqual(await server.syncNow(), { kind: 'accepted', commit: withLinks, generation: 1 });

    const skipped = log.lines().filter((l) => l['event'] === 'entry-skipped');
    assert.deepEqual(skipped.map((l) => [l['level'], l['kind'], l['path'], l['commit']]), [
      [40, 'symlink', 'config/base/zz-link.yaml', withLinks],
      [40, 'submodule', 'config/vendor', withLinks],
    ]);
    const token = readFileSync(server.adminTokenPath, 'utf8').trim();
    const res = await fetch(`${server.adminUrl}/api/v1/source`, { headers: { authorization: `Bearer ${token}` } });
    const body = (await res.json()) as { warnings: Array<{ kind: string; path: string; message: string }> };
    assert.deepEqual(body.warnings.map((w) => [w.kind, w.path]), [
      ['symlink', 'config/base/zz-link.yaml'],
      ['submodule', 'config/vendor'],
    ]);
    assert.ok(body.warnings.every((w) => w.message.includes(w.path)));
  });

  it('after a restart, serves the accepted commit under a new generation before the first fetch', async () => {
    server = await startServer(configFor(fixture), { logger: pino({ level: 'silent' }) });
    await server.syncNow();
    await server.close();

    // Any poll would find the same head; what matters is that it is served before one runs.
    server = await startServer(configFor(fixture), { logger: pino({ level: 'silent' }) });
    assert.equal(server.ready(), true);
    const status = server.reconciler.status();
    assert.equal(status.serving, fixture.first);
    assert.equal(status.generation, 2);
  });

  it('close() is idempotent and frees the ports', async () => {
    server = await startServer(configFor(fixture), { logger: pino({ level: 'silent' }) });
    const { adminUrl } = server;
    await Promise.all([server.close(), server.close()]);
    await assert.rejects(fetch(`${adminUrl}/healthz`));
    server = undefined;
  });

  it('refuses to start when the allowed signers file is missing, leaving nothing listening', async () => {
    const config = configFor(fixture);
    await assert.rejects(startServer({ ...config, trust: { ...config.trust, allowedSigners: `${fixture.root}/nope` } }, { logger: pino({ level: 'silent' }) }));
  });
});
