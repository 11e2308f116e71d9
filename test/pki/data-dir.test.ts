import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { inspect } from 'node:util';
import { createPublicKey, X509Certificate } from 'node:crypto';
import { PkiError, type PkiErrorCode } from '../../src/domain/errors.js';
import { type DataDirOptions, dataDirPaths, openDataDir, readServerPin } from '../../src/pki/data-dir.js';
import { serverNamesOfCertificate } from '../../src/pki/identity.js';
import { spkiPin } from '../../src/pki/pin.js';
import { tempDir } from '../helpers/git.js';
import { fixedClock } from './helpers.js';

const T0 = new Date('2030-01-01T00:00:00.000Z');
const DAY = 24 * 3_600_000;

function pkiCode(code: PkiErrorCode): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof PkiError, `expected a PkiError, got ${String(err)}`);
    assert.equal(err.code, code);
    return true;
  };
}

const mode = (path: string): number => statSync(path).mode & 0o777;
const read = (path: string): string => readFileSync(path, 'utf8');

describe('openDataDir', () => {
  const tmp = tempDir('meshcfg-datadir-');
  after(() => tmp.cleanup());
  let n = 0;
  const options = (overrides: Partial<DataDirOptions> = {}): DataDirOptions => ({
    dataDir: join(tmp.path, `data-${n}`, 'nested'),
    trustDomain: 'example.org',
    serverNames: ['localhost', '127.0.0.1'],
    ...overrides,
  });
  const fresh = (): DataDirOptions => {
    n += 1;
    return options();
  };

  describe('on first start', () => {
    const opts = fresh();
    const paths = dataDirPaths(opts.dataDir);
    let first: Awaited<ReturnType<typeof openDataDir>>;

    it('creates everything and says what it created where', async () => {
      first = await openDataDir(opts);
      assert.deepEqual(
        first.changes.map((c) => [c.action, c.what, c.path]),
        [
          ['created', 'data directory', paths.dir],
          ['created', 'CA key', paths.caKey],
          ['created', 'CA certificate', paths.caCert],
          ['created', 'server key', paths.serverKey],
          ['created', 'server certificate', paths.serverCert],
          ['created', 'bundle signing key', paths.signingKey],
          ['created', 'admin token', paths.adminToken],
        ],
      );
    });

    it('makes the directory 0700 and every secret 0600', () => {
      assert.equal(mode(paths.dir), 0o700);
      for (const secret of [paths.caKey, paths.serverKey, paths.signingKey, paths.adminToken]) assert.equal(mode(secret), 0o600, secret);
    });

    it('issues the server certificate for the server names from the CA', () => {
      const cert = new X509Certificate(read(paths.serverCert));
      const ca = new X509Certificate(read(paths.caCert));
      assert.ok(cert.checkIssued(ca) && cert.verify(ca.publicKey));
      assert.deepEqual(serverNamesOfCertificate(cert), [
        { kind: 'dns', name: 'localhost' },
        { kind: 'ip', address: '127.0.0.1' },
      ]);
      assert.equal(first.ca.trustDomain, 'example.org');
      assert.equal(first.serverCertPem, read(paths.serverCert));
    });

    it('gives the pin of the server key, as `ca pin` reads it', async () => {
      assert.equal(first.serverPin, spkiPin(read(paths.serverCert)));
      assert.equal(first.serverPin, spkiPin(first.serverKey));
      assert.equal(await readServerPin(opts.dataDir), first.serverPin);
    });

    it('creates an ECDSA P-256 bundle signing key and exposes its public key', () => {
      assert.equal(first.signingKey.asymmetricKeyType, 'ec');
      assert.equal(first.signingKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
      assert.ok(createPublicKey(first.signingPublicKeyPem).equals(createPublicKey(read(paths.signingKey))));
      assert.doesNotMatch(first.signingPublicKeyPem, /PRIVATE/);
    });

    it('writes an admin token', () => {
      assert.match(read(paths.adminToken), /^mcat_[A-Za-z0-9_-]{43}\n$/);
    });

    it('exposes no key material when the result is logged', () => {
      const dump = `${inspect(first, { depth: 10 })}${JSON.stringify(first.changes)}`;
      assert.doesNotMatch(dump, /PRIVATE KEY|qInv|dP:/);
      assert.ok(!dump.includes(read(paths.adminToken).trim()));
    });

    describe('then on the next start', () => {
      it('reuses everything and changes nothing', async () => {
        const before = [paths.caKey, paths.caCert, paths.serverKey, paths.serverCert, paths.signingKey, paths.adminToken].map(read);
        const again = await openDataDir(opts);
        assert.deepEqual(again.changes, []);
        assert.equal(again.serverPin, first.serverPin);
        assert.deepEqual([paths.caKey, paths.caCert, paths.serverKey, paths.serverCert, paths.signingKey, paths.adminToken].map(read), before);
      });

      it('reissues the server certificate for new server names under the same key, so the pin holds', async () => {
        const keyBefore = read(paths.serverKey);
        const changed = await openDataDir({ ...opts, serverNames: ['mesh.example.org', '127.0.0.1'] });
        assert.deepEqual(changed.changes.map((c) => [c.action, c.what]), [['reissued', 'server certificate']]);
        assert.equal(changed.serverPin, first.serverPin);
        assert.equal(read(paths.serverKey), keyBefore);
        assert.deepEqual(serverNamesOfCertificate(read(paths.serverCert)), [
          { kind: 'dns', name: 'mesh.example.org' },
          { kind: 'ip', address: '127.0.0.1' },
        ]);
      });

      it('treats the same names in another order or spelling as unchanged', async () => {
        const same = await openDataDir({ ...opts, serverNames: ['127.0.0.1', 'MESH.example.org'] });
        assert.deepEqual(same.changes, []);
      });
    });
  });

  it('reissues a server certificate that expires within 30 days', async () => {
    const clock = fixedClock(T0);
    const opts = { ...fresh(), now: clock.now };
    const first = await openDataDir(opts);
    clock.advance(340 * DAY);
    const later = await openDataDir(opts);
    assert.deepEqual(later.changes.map((c) => [c.action, c.what, c.reason]), [['reissued', 'server certificate', 'expires soon']]);
    assert.equal(later.serverPin, first.serverPin);
  });

  it('recreates a deleted server certificate under the kept key', async () => {
    const opts = fresh();
    const first = await openDataDir(opts);
    rmSync(dataDirPaths(opts.dataDir).serverCert);
    const again = await openDataDir(opts);
    assert.deepEqual(again.changes.map((c) => [c.action, c.what]), [['created', 'server certificate']]);
    assert.equal(again.serverPin, first.serverPin);
  });

  it('certifies a CA key left without its certificate (a crash between the two writes)', async () => {
    const opts = fresh();
    await openDataDir(opts);
    const paths = dataDirPaths(opts.dataDir);
    const caKey = read(paths.caKey);
    rmSync(paths.caCert);
    const again = await openDataDir(opts);
    assert.ok(again.changes.some((c) => c.action === 'created' && c.what === 'CA certificate'));
    assert.equal(read(paths.caKey), caKey);
    assert.ok(createPublicKey(caKey).equals(new X509Certificate(read(paths.caCert)).publicKey));
  });

  it('tightens a data directory others can enter to 0700', async () => {
    const opts = fresh();
    mkdirSync(opts.dataDir, { recursive: true });
    chmodSync(opts.dataDir, 0o755);
    const result = await openDataDir(opts);
    assert.deepEqual(result.changes[0], { action: 'restricted', what: 'data directory', path: opts.dataDir, reason: 'mode was 755, now 700' });
    assert.equal(mode(opts.dataDir), 0o700);
  });

  describe('refuses with DATA_DIR_INVALID', () => {
    it('a CA of another trust domain', async () => {
      const opts = fresh();
      await openDataDir(opts);
      await assert.rejects(openDataDir({ ...opts, trustDomain: 'other.org' }), pkiCode('DATA_DIR_INVALID'));
    });

    it('a CA certificate without its key', async () => {
      const opts = fresh();
      await openDataDir(opts);
      rmSync(dataDirPaths(opts.dataDir).caKey);
      await assert.rejects(openDataDir(opts), pkiCode('DATA_DIR_INVALID'));
    });

    describe('a directory that cannot hold the data, fast and without creating anything', () => {
      const cases: ReadonlyArray<{ name: string; dataDir: () => string }> = [
        { name: 'under /proc (a recursive mkdir there never returns in Node 20)', dataDir: () => '/proc/meshcfg-test/data' },
        { name: 'under /sys', dataDir: () => '/sys/meshcfg-test/data' },
        { name: 'under /dev', dataDir: () => '/dev/meshcfg-test/data' },
        {
          name: 'behind a symbolic link into /proc',
          dataDir: () => {
            const link = join(tmp.path, `proc-link-${n}`);
            symlinkSync('/proc/self', link);
            return join(link, 'data');
          },
        },
        {
          name: 'through a file (ENOTDIR)',
          dataDir: () => {
            const file = join(tmp.path, `a-file-${n}`);
            writeFileSync(file, '');
            return join(file, 'data');
          },
        },
      ];
      for (const c of cases) {
        it(c.name, async () => {
          n += 1;
          const dataDir = c.dataDir();
          const started = Date.now();
          await assert.rejects(openDataDir(options({ dataDir })), pkiCode('DATA_DIR_INVALID'));
          assert.ok(Date.now() - started < 2_000, 'refused at once');
          assert.equal(existsSync(dataDir), false);
        });
      }

      // chattr +i: not even root may create files in an immutable directory (EPERM).
      const immutable = (dir: string, on: boolean): void => {
        try {
          execFileSync('chattr', [on ? '+i' : '-i', dir], { stdio: 'pipe' });
        } catch (err) {
          assert.fail(`this test needs \`chattr ${on ? '+i' : '-i'}\` (root, a file system with the immutable flag): ${String(err)}`);
        }
      };
      it('an immutable directory (EPERM), as the data directory itself and as its parent', async () => {
        const opts = fresh();
        mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
        immutable(opts.dataDir, true);
        try {
          await assert.rejects(openDataDir(opts), pkiCode('DATA_DIR_INVALID'));
          await assert.rejects(openDataDir(options({ dataDir: join(opts.dataDir, 'below') })), pkiCode('DATA_DIR_INVALID'));
        } finally {
          immutable(opts.dataDir, false);
        }
        assert.deepEqual(readdirSync(opts.dataDir), []);
      });
    });

    for (const file of ['caKey', 'serverKey', 'signingKey', 'adminToken'] as const) {
      it(`a ${file} file that group or others can read`, async () => {
        const opts = fresh();
        await openDataDir(opts);
        chmodSync(dataDirPaths(opts.dataDir)[file], 0o640);
        await assert.rejects(openDataDir(opts), pkiCode('DATA_DIR_INVALID'));
      });
    }
  });

  it('refuses bad server names with NAME_INVALID before writing anything', async () => {
    const opts = { ...fresh(), serverNames: ['not a name'] };
    await assert.rejects(openDataDir(opts), pkiCode('NAME_INVALID'));
    assert.equal(existsSync(opts.dataDir), false);
  });
});

describe('readServerPin', () => {
  it('refuses a directory without a server certificate with DATA_DIR_INVALID', async () => {
    const tmp = tempDir('meshcfg-datadir-empty-');
    try {
      await assert.rejects(readServerPin(tmp.path), pkiCode('DATA_DIR_INVALID'));
    } finally {
      tmp.cleanup();
    }
  });
});
