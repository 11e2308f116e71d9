import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseDuration } from '../../src/domain/duration.js';
import { ServerError } from '../../src/server/errors.js';
import { CONFIG_DEFAULTS, isLoopbackHost, loadServerConfig, parseServerConfig } from '../../src/server/config.js';
import { tempDir } from '../helpers/git.js';

const minimal = (): Record<string, unknown> => ({
  trustDomain: 'example.org',
  repo: { url: './config-repo' },
  trust: { allowedSigners: './allowed_signers' },
  listen: { grpc: '127.0.0.1:7443', admin: '127.0.0.1:7080' },
  dataDir: './data',
  tls: { serverNames: ['localhost', '127.0.0.1'] },
});

function refused(doc: unknown, key: string): void {
  assert.throws(
    () => parseServerConfig(doc, { baseDir: '/etc/meshcfg' }),
    (err: unknown) => err instanceof ServerError && err.code === 'CONFIG_INVALID' && err.message.includes(key),
    `expected CONFIG_INVALID naming ${key}`,
  );
}

describe('server config', () => {
  describe('with only the required keys', () => {
    const config = parseServerConfig(minimal(), { baseDir: '/etc/meshcfg' });

    it('resolves relative paths against the config file directory', () => {
      assert.equal(config.repo.url, '/etc/meshcfg/config-repo');
      assert.equal(config.trust.allowedSigners, '/etc/meshcfg/allowed_signers');
      assert.equal(config.dataDir, '/etc/meshcfg/data');
    });

    it('applies the defaults', () => {
      assert.equal(config.repo.branch, CONFIG_DEFAULTS.branch);
      assert.equal(config.repo.pollIntervalMs, CONFIG_DEFAULTS.pollIntervalMs);
      assert.equal(config.bundles.ttlMs, 24 * 3_600_000);
      assert.equal(config.enrollment.certificateTtlMs, 24 * 3_600_000);
      assert.equal(config.alerts.webhook, null);
      assert.deepEqual(config.adminTls, { kind: 'off' });
    });

    it('judges key validity now by default', () => {
      assert.equal(config.trust.keyValidity, 'now');
    });

    it('parses listen addresses', () => {
      assert.deepEqual(config.listen.grpc, { host: '127.0.0.1', port: 7443 });
      assert.deepEqual(parseServerConfig({ ...minimal(), listen: { grpc: '[::1]:0', admin: ':7080' } }, { baseDir: '/' }).listen, {
        grpc: { host: '::1', port: 0 },
        admin: { host: '0.0.0.0', port: 7080 },
      });
    });
  });

  it('keeps http(s) repository URLs as they are', () => {
    const config = parseServerConfig({ ...minimal(), repo: { url: 'https://git.example.org/config.git', branch: 'prod', pollInterval: '10s' } }, { baseDir: '/x' });
    assert.equal(config.repo.url, 'https://git.example.org/config.git');
    assert.equal(config.repo.branch, 'prod');
    assert.equal(config.repo.pollIntervalMs, 10_000);
  });

  it('reads optional sections', () => {
    const config = parseServerConfig(
      { ...minimal(), enrollment: { certificateTtl: '12h' }, bundles: { ttl: '2h' }, alerts: { webhook: 'https://hooks.example.org/x' } },
      { baseDir: '/x' },
    );
    assert.equal(config.enrollment.certificateTtlMs, 12 * 3_600_000);
    assert.equal(config.bundles.ttlMs, 2 * 3_600_000);
    assert.equal(config.alerts.webhook, 'https://hooks.example.org/x');
  });

  describe('adminTls', () => {
    it('`server` reuses the server certificate', () => {
      assert.deepEqual(parseServerConfig({ ...minimal(), adminTls: 'server' }, { baseDir: '/x' }).adminTls, { kind: 'server' });
    });

    it('{cert, key} names PEM files, resolved against the config file directory', () => {
      const config = parseServerConfig({ ...minimal(), adminTls: { cert: 'admin.crt', key: '/secrets/admin.key' } }, { baseDir: '/x' });
      assert.deepEqual(config.adminTls, { kind: 'files', cert: '/x/admin.crt', key: '/secrets/admin.key' });
    });
  });

  describe('isLoopbackHost', () => {
    const table: ReadonlyArray<readonly [string, boolean]> = [
      ['127.0.0.1', true],
      ['127.1.2.3', true],
      ['::1', true],
      ['::ffff:127.0.0.1', true],
      ['localhost', true],
      ['0.0.0.0', false],
      ['::', false],
      ['10.0.0.5', false],
      ['admin.example.org', false],
    ];
    for (const [host, loopback] of table) {
      it(`${host} → ${loopback}`, () => assert.equal(isLoopbackHost(host), loopback));
    }
  });

  it('reads trust.keyValidity: commit-time as an explicit opt-in', () => {
    const config = parseServerConfig({ ...minimal(), trust: { allowedSigners: './a', keyValidity: 'commit-time' } }, { baseDir: '/x' });
    assert.equal(config.trust.keyValidity, 'commit-time');
  });

  describe('fleet state backend', () => {
    const url = 'postgres://meshcfg:s3cret@db.example:5432/fleet';
    const parse = (doc: Record<string, unknown>, env: Record<string, string | undefined> = {}) => parseServerConfig(doc, { baseDir: '/x', env });

    it('is SQLite in the data dir with neither state.postgres nor MESHCFG_POSTGRES_URL', () => {
      assert.deepEqual(parse(minimal()).state, { kind: 'sqlite' });
      assert.deepEqual(parse(minimal(), { MESHCFG_POSTGRES_URL: '  ' }).state, { kind: 'sqlite' });
    });

    it('is PostgreSQL with state.postgres', () => {
      assert.deepEqual(parse({ ...minimal(), state: { postgres: url } }).state, { kind: 'postgres', url, from: 'server.yaml' });
      const other = 'postgresql://meshcfg@localhost/fleet?host=/var/run/postgresql';
      assert.deepEqual(parse({ ...minimal(), state: { postgres: other } }).state, { kind: 'postgres', url: other, from: 'server.yaml' });
    });

    it('takes MESHCFG_POSTGRES_URL over state.postgres, so no password need sit in the file', () => {
      const fromEnv = 'postgres://meshcfg:other@db2.example/fleet';
      assert.deepEqual(parse({ ...minimal(), state: { postgres: url } }, { MESHCFG_POSTGRES_URL: fromEnv }).state, { kind: 'postgres', url: fromEnv, from: 'MESHCFG_POSTGRES_URL' });
      assert.deepEqual(parse(minimal(), { MESHCFG_POSTGRES_URL: fromEnv }).state, { kind: 'postgres', url: fromEnv, from: 'MESHCFG_POSTGRES_URL' });
    });

    it('refuses a URL that is not postgres:// with CONFIG_INVALID naming where it came from, without echoing it', () => {
      for (const [doc, env, key] of [
        [{ ...minimal(), state: { postgres: 'mysql://u:s3cret@h/db' } }, {}, 'state.postgres'],
        [minimal(), { MESHCFG_POSTGRES_URL: 'mysql://u:s3cret@h/db' }, 'MESHCFG_POSTGRES_URL'],
        [minimal(), { MESHCFG_POSTGRES_URL: 'not a url s3cret' }, 'MESHCFG_POSTGRES_URL'],
      ] as const) {
        assert.throws(
          () => parse(doc, env),
          (err: unknown) => err instanceof ServerError && err.code === 'CONFIG_INVALID' && err.message.includes(key) && !err.message.includes('s3cret'),
        );
      }
    });
  });

  describe('refuses, naming the key,', () => {
    const cases: ReadonlyArray<readonly [string, () => unknown, string]> = [
      ['a missing trustDomain', () => ({ ...minimal(), trustDomain: undefined }), 'trustDomain'],
      ['an invalid trustDomain', () => ({ ...minimal(), trustDomain: 'Example Org' }), 'trustDomain'],
      ['a missing repo', () => ({ ...minimal(), repo: undefined }), 'repo'],
      ['a missing repo.url', () => ({ ...minimal(), repo: { branch: 'main' } }), 'repo.url'],
      ['an unsupported repo URL scheme', () => ({ ...minimal(), repo: { url: 'ssh://git@host/repo' } }), 'repo.url'],
      ['a duration without unit', () => ({ ...minimal(), repo: { url: './r', pollInterval: '5' } }), 'repo.pollInterval'],
      ['a zero duration', () => ({ ...minimal(), bundles: { ttl: '0s' } }), 'bundles.ttl'],
      ['a bundle ttl below a minute', () => ({ ...minimal(), bundles: { ttl: '30s' } }), 'bundles.ttl'],
      ['a bad listen address', () => ({ ...minimal(), listen: { grpc: 'localhost', admin: '127.0.0.1:7080' } }), 'listen.grpc'],
      ['a port out of range', () => ({ ...minimal(), listen: { grpc: '127.0.0.1:70000', admin: '127.0.0.1:7080' } }), 'listen.grpc'],
      ['empty serverNames', () => ({ ...minimal(), tls: { serverNames: [] } }), 'tls.serverNames'],
      ['a webhook that is not http(s)', () => ({ ...minimal(), alerts: { webhook: 'ftp://x' } }), 'alerts.webhook'],
      ['an unknown key validity time', () => ({ ...minimal(), trust: { allowedSigners: './a', keyValidity: 'signing-time' } }), 'trust.keyValidity'],
      ['an unknown top-level key', () => ({ ...minimal(), datadir: './x' }), 'datadir'],
      ['an unknown nested key', () => ({ ...minimal(), repo: { url: './r', pollIntervall: '5s' } }), 'repo.pollIntervall'],
      ['a document that is not a mapping', () => ['x'], '(root)'],
      ['an adminTls word other than server', () => ({ ...minimal(), adminTls: 'yes' }), 'adminTls'],
      ['an adminTls without key', () => ({ ...minimal(), adminTls: { cert: './a.crt' } }), 'adminTls.key'],
      ['an unknown adminTls key', () => ({ ...minimal(), adminTls: { cert: './a.crt', key: './a.key', ca: './ca' } }), 'adminTls.ca'],
      ['an unknown state key', () => ({ ...minimal(), state: { sqlite: './fleet.db' } }), 'state.sqlite'],
      ['an empty state.postgres', () => ({ ...minimal(), state: { postgres: 5432 } }), 'state.postgres'],
    ];
    for (const [what, doc, key] of cases) {
      it(`${what} (${key})`, () => refused(doc(), key));
    }
  });

  describe('loadServerConfig', () => {
    it('reads YAML from a file and resolves paths against its directory', async () => {
      const dir = tempDir();
      try {
        const path = join(dir.path, 'server.yaml');
        writeFileSync(
          path,
          'trustDomain: example.org\nrepo: { url: ./repo, branch: main, pollInterval: 5s }\ntrust: { allowedSigners: ./allowed_signers }\n' +
            'listen: { grpc: 127.0.0.1:7443, admin: 127.0.0.1:7080 }\ndataDir: ./data\ntls: { serverNames: [localhost, 127.0.0.1] }\n',
        );
        const config = await loadServerConfig(path);
        assert.equal(config.source, path);
        assert.equal(config.dataDir, join(dir.path, 'data'));
        assert.equal(config.repo.pollIntervalMs, 5_000);
      } finally {
        dir.cleanup();
      }
    });

    it('refuses YAML that does not parse and a file that does not exist', async () => {
      const dir = tempDir();
      try {
        const path = join(dir.path, 'server.yaml');
        writeFileSync(path, 'trustDomain: [unclosed\n');
        await assert.rejects(loadServerConfig(path), (err: unknown) => err instanceof ServerError && err.code === 'CONFIG_INVALID');
        await assert.rejects(loadServerConfig(join(dir.path, 'missing.yaml')), (err: unknown) => err instanceof ServerError && err.code === 'CONFIG_INVALID');
      } finally {
        dir.cleanup();
      }
    });
  });
});

describe('parseDuration', () => {
  const table: ReadonlyArray<readonly [string, number | undefined]> = [
    ['5s', 5_000],
    ['10m', 600_000],
    ['24h', 86_400_000],
    ['7d', 604_800_000],
    ['250ms', 250],
    ['1h30m', 5_400_000],
    ['5', undefined],
    ['5 s', undefined],
    ['-5s', undefined],
    ['', undefined],
  ];
  for (const [text, ms] of table) {
    it(`${JSON.stringify(text)} → ${String(ms)}`, () => assert.equal(parseDuration(text), ms));
  }
});
