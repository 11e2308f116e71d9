import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { dataDirPaths, openDataDir } from '../../src/pki/data-dir.js';
import type { Pin } from '../../src/pki/pin.js';
import { meshcfg } from '../helpers/cli.js';
import { tempDir } from '../helpers/git.js';

/** `meshcfg ca` end to end, through the built binary. */

describe('meshcfg ca pin', () => {
  const tmp = tempDir('meshcfg-cli-ca-');
  const dataDir = join(tmp.path, 'data');
  let serverPin: Pin;

  before(async () => {
    serverPin = (await openDataDir({ dataDir, trustDomain: 'example.org', serverNames: ['localhost', '127.0.0.1'] })).serverPin;
  });
  after(() => tmp.cleanup());

  describe('given a data directory the server created', () => {
    it("prints the server key's pin, and only that, on stdout", async () => {
      const run = await meshcfg('ca', 'pin', '--data-dir', dataDir);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stdout, `${serverPin}\n`);
      assert.match(run.stdout, /^sha256\/[A-Za-z0-9+/]{43}=\n$/);
      assert.equal(run.stderr, '');
    });

    it('prints the same pin after the server certificate is reissued for other names', async () => {
      await openDataDir({ dataDir, trustDomain: 'example.org', serverNames: ['mesh.example.org'] });
      const run = await meshcfg('ca', 'pin', '--data-dir', dataDir);
      assert.equal(run.stdout, `${serverPin}\n`);
    });
  });

  describe('exits 2 with a message on stderr and nothing on stdout', () => {
    it('when the directory has no server certificate', async () => {
      const run = await meshcfg('ca', 'pin', '--data-dir', join(tmp.path, 'empty'));
      assert.equal(run.code, 2);
      assert.equal(run.stdout, '');
      assert.match(run.stderr, /DATA_DIR_INVALID/);
    });

    it('when the server certificate is not a certificate', async () => {
      const broken = join(tmp.path, 'broken');
      await openDataDir({ dataDir: broken, trustDomain: 'example.org', serverNames: ['localhost'] });
      writeFileSync(dataDirPaths(broken).serverCert, 'not a certificate\n');
      const run = await meshcfg('ca', 'pin', '--data-dir', broken);
      assert.equal(run.code, 2);
      assert.equal(run.stdout, '');
      assert.match(run.stderr, /CERTIFICATE_INVALID/);
    });

    it('when --data-dir is missing', async () => {
      const run = await meshcfg('ca', 'pin');
      assert.equal(run.code, 2);
      assert.equal(run.stdout, '');
      assert.match(run.stderr, /--data-dir/);
    });
  });

  it('explains itself with --help and exits 0', async () => {
    const run = await meshcfg('ca', 'pin', '--help');
    assert.equal(run.code, 0);
    assert.match(run.stdout, /--data-dir <dir>/);
    assert.match(run.stdout, /Exit codes/);
  });

  it('is listed under `meshcfg ca --help`', async () => {
    const run = await meshcfg('ca', '--help');
    assert.equal(run.code, 0);
    assert.match(run.stdout, /pin \[options\]/);
  });
});
