import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { createCa, EnrollmentCa, generateRsaKeyPair } from '../../src/pki/index.js';
import { ServerError } from '../../src/server/errors.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { meshcfg } from '../helpers/cli.js';
import { capturingLogger, configFor, fakeTransport, makeFixture, silentLogger, type Fixture } from '../server/helpers.js';

/** Another organisation's CA and a certificate it issued for 127.0.0.1, written to PEM files as an operator would. */
async function otherCa(dir: string): Promise<{ cert: string; key: string; ca: string }> {
  mkdirSync(dir, { recursive: true });
  const material = await createCa({ trustDomain: 'corp.example' });
  const pair = await generateRsaKeyPair();
  const issued = new EnrollmentCa(material).issueServerCertificate({ serverNames: ['127.0.0.1'], publicKeyPem: pair.publicKeyPem });
  const paths = { cert: join(dir, 'admin.crt'), key: join(dir, 'admin.key'), ca: join(dir, 'corp-ca.crt') };
  writeFileSync(paths.cert, issued.certPem);
  writeFileSync(paths.key, pair.privateKeyPem, { mode: 0o600 });
  writeFileSync(paths.ca, material.certPem);
  return paths;
}

describe('admin API over TLS', () => {
  describe('with adminTls: server (the server certificate, issued by the enrollment CA)', () => {
    let fixture: Fixture;
    let server: RunningServer;
    const admin = (): string[] => ['--admin', server.adminUrl, '--admin-token-file', server.adminTokenPath];

    before(async () => {
      fixture = makeFixture();
      server = await startServer(configFor(fixture, { adminTls: 'server' }), { logger: silentLogger, transport: fakeTransport().start });
      await server.syncNow();
    });
    after(async () => {
      await server?.close();
      fixture?.cleanup();
    });

    it('listens on https', () => {
      assert.match(server.adminUrl, /^https:\/\/127\.0\.0\.1:\d+$/);
    });

    it('meshcfg status and quarantine work with --admin-ca <dataDir>/ca.crt', async () => {
      const status = await meshcfg('status', ...admin(), '--admin-ca', server.dataDir.paths.caCert);
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, /^4 agents/m);
      const quarantine = await meshcfg('quarantine', 'edge-2', '--reason', 'tls check', ...admin(), '--admin-ca', server.dataDir.paths.caCert);
      assert.equal(quarantine.code, 0, quarantine.stderr);
      assert.match(quarantine.stdout, /edge-2 quarantined/);
    });

    it('meshcfg rollout status works with the CA from MESHCFG_ADMIN_CA', async () => {
      process.env['MESHCFG_ADMIN_CA'] = server.dataDir.paths.caCert;
      try {
        const run = await meshcfg('rollout', 'status', ...admin());
        assert.equal(run.code, 0, run.stderr);
        assert.match(run.stdout, /^STATE/);
      } finally {
        delete process.env['MESHCFG_ADMIN_CA'];
      }
    });

    it('refuses a server it cannot verify: without --admin-ca the CLI exits 2 (ADMIN_UNREACHABLE), sending nothing', async () => {
      const run = await meshcfg('status', ...admin());
      assert.equal(run.code, 2);
      assert.equal(run.stdout, '');
      assert.match(run.stderr, /admin API at https:\/\/127\.0\.0\.1:\d+: (UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN)/);
    });

    it('plain HTTP to the TLS port gets no answer', async () => {
      await assert.rejects(fetch(server.adminUrl.replace(/^https:/, 'http:') + '/healthz'));
      const run = await meshcfg('status', '--admin', server.adminUrl.replace(/^https:/, 'http:'), '--admin-token-file', server.adminTokenPath);
      assert.equal(run.code, 2);
      assert.equal(run.stdout, '');
    });
  });

  describe('with adminTls: {cert, key} files', () => {
    let fixture: Fixture;
    let server: RunningServer | undefined;
    afterEach(async () => {
      await server?.close();
      server = undefined;
      fixture?.cleanup();
    });

    it('serves that certificate; the CLI trusts it with --admin-ca <its CA>, and not with the enrollment CA', async () => {
      fixture = makeFixture();
      const files = await otherCa(join(fixture.root, 'corp'));
      server = await startServer(configFor(fixture, { adminTls: { cert: files.cert, key: files.key } }), { logger: silentLogger, transport: fakeTransport().start });
      await server.syncNow();
      const run = await meshcfg('status', '--admin', server.adminUrl, '--admin-token-file', server.adminTokenPath, '--admin-ca', files.ca);
      assert.equal(run.code, 0, run.stderr);
      const untrusted = await meshcfg('status', '--admin', server.adminUrl, '--admin-token-file', server.adminTokenPath, '--admin-ca', server.dataDir.paths.caCert);
      assert.equal(untrusted.code, 2);
    });

    it('refuses to start with CONFIG_INVALID naming adminTls when the key does not match the certificate', async () => {
      fixture = makeFixture();
      const files = await otherCa(join(fixture.root, 'corp'));
      const other = await otherCa(join(fixture.root, 'other'));
      await assert.rejects(
        startServer(configFor(fixture, { adminTls: { cert: files.cert, key: other.key } }), { logger: silentLogger, transport: fakeTransport().start }),
        (err: unknown) => err instanceof ServerError && err.code === 'CONFIG_INVALID' && err.message.includes('adminTls'),
      );
    });
  });

  describe('the start-up warning for an admin API beyond loopback', () => {
    let fixture: Fixture;
    let server: RunningServer | undefined;
    afterEach(async () => {
      await server?.close();
      server = undefined;
      fixture?.cleanup();
    });

    const cases: ReadonlyArray<{ what: string; admin: string; adminTls?: string; warning: { tls: boolean } | null }> = [
      { what: 'on every interface in plain HTTP: warns, saying TLS is off', admin: '0.0.0.0:0', warning: { tls: false } },
      { what: 'on every interface with TLS: warns, saying TLS is on', admin: '0.0.0.0:0', adminTls: 'server', warning: { tls: true } },
      { what: 'on loopback: no warning', admin: '127.0.0.1:0', warning: null },
    ];
    for (const { what, admin, adminTls, warning } of cases) {
      it(what, async () => {
        fixture = makeFixture();
        const log = capturingLogger();
        server = await startServer(configFor(fixture, { admin, ...(adminTls === undefined ? {} : { adminTls }) }), { logger: log.logger, transport: fakeTransport().start });
        const lines = log.lines().filter((l) => l['event'] === 'admin-not-loopback');
        if (warning === null) {
          assert.equal(lines.length, 0);
        } else {
          assert.equal(lines.length, 1);
          assert.equal(lines[0]?.['level'], 40, 'logged at warn');
          assert.equal(lines[0]?.['host'], '0.0.0.0');
          assert.equal(lines[0]?.['tls'], warning.tls);
        }
      });
    }
  });
});
