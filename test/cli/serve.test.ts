import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { tempDir } from '../helpers/git.js';
import { freePort, MeshcfgProcess, waitFor } from '../helpers/process.js';

/**
 * `meshcfg serve` start-up as its own process (issue 7, item 9): a start-up that hangs can be
 * stopped with SIGTERM, and data directories that cannot work are refused with
 * DATA_DIR_INVALID and exit 2 — fast, without a stack trace.
 */
describe('meshcfg serve start-up', { timeout: 120_000 }, () => {
  const tmp = tempDir('meshcfg-serve-start-');
  after(() => tmp.cleanup());
  let n = 0;

  /** A server.yaml under its own directory; the repository is never reached (start-up ends before). */
  async function config(fields: { dataDir: string; allowedSigners?: string }): Promise<string> {
    n += 1;
    const path = join(tmp.path, `server-${n}.yaml`);
    const allowedSigners = fields.allowedSigners ?? join(tmp.path, `allowed_signers-${n}`);
    if (fields.allowedSigners === undefined) writeFileSync(allowedSigners, '');
    writeFileSync(
      path,
      [
        'trustDomain: example.org',
        'repo: { url: "http://127.0.0.1:9/config.git", branch: main }',
        `trust: { allowedSigners: "${allowedSigners}" }`,
        `listen: { grpc: "127.0.0.1:${await freePort()}", admin: "127.0.0.1:${await freePort()}" }`,
        `dataDir: "${fields.dataDir}"`,
        'tls: { serverNames: [localhost] }',
        '',
      ].join('\n'),
    );
    return path;
  }

  /** Resolves with the exit code, or 'running' if the process has not exited within `ms` (then kills it). */
  async function exitWithin(serve: MeshcfgProcess, ms: number): Promise<number | null | 'running'> {
    const outcome = await Promise.race([serve.exited, new Promise<'running'>((resolve) => setTimeout(() => resolve('running'), ms))]);
    if (outcome === 'running') {
      serve.child.kill('SIGKILL');
      await serve.exited;
    }
    return outcome;
  }

  it('stops on SIGTERM while start-up hangs (the allowed-signers file is a FIFO nobody writes)', async () => {
    const fifo = join(tmp.path, 'allowed_signers.fifo');
    execFileSync('mkfifo', [fifo]);
    const serve = new MeshcfgProcess(['serve', '--config', await config({ dataDir: join(tmp.path, 'data-fifo'), allowedSigners: fifo })]);
    // Start-up is stuck once the data directory is made and the signers file is being opened.
    await waitFor('start-up to reach the allowed-signers file', () => serve.stdout.includes('"what":"admin token"'), 30_000);
    assert.equal(serve.child.exitCode, null, 'start-up hangs');
    serve.child.kill('SIGTERM');
    const code = await exitWithin(serve, 5_000);
    assert.notEqual(code, 'running', 'SIGTERM during start-up ends the process');
    assert.equal(serve.child.signalCode, 'SIGTERM', 'it ends as killed by the signal: process.exit() would wait for the blocked open');
  });

  const refused: ReadonlyArray<{ name: string; dataDir: () => string }> = [
    { name: 'under /proc (where a recursive mkdir spins in Node 20)', dataDir: () => '/proc/meshcfg-test/data' },
    { name: 'under /proc/self', dataDir: () => '/proc/self/meshcfg' },
    { name: 'under /sys', dataDir: () => '/sys/meshcfg/data' },
    { name: 'under /dev', dataDir: () => '/dev/meshcfg-test/data' },
    {
      name: 'through a file (ENOTDIR)',
      dataDir: () => {
        const file = join(tmp.path, 'a-file');
        writeFileSync(file, '');
        return join(file, 'data');
      },
    },
  ];
  for (const c of refused) {
    it(`refuses a data directory ${c.name} with DATA_DIR_INVALID and exit 2, at once`, async () => {
      const serve = new MeshcfgProcess(['serve', '--config', await config({ dataDir: c.dataDir() })]);
      const code = await exitWithin(serve, 10_000);
      assert.notEqual(code, 'running', 'start-up fails fast');
      assert.equal(code, 2, serve.stderr);
      assert.match(serve.stderr, /^meshcfg serve: DATA_DIR_INVALID: /m);
      assert.doesNotMatch(serve.stderr, /internal error|\n\s+at /, 'no stack trace');
    });
  }
});
