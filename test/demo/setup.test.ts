import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DemoError } from '../../src/demo/errors.js';
import { demoLayout, markComplete, prepareFolder, releaseFolder } from '../../src/demo/folder.js';
import { choosePort } from '../../src/demo/ports.js';
import { createRepository, createSigner, DEMO_AGENTS } from '../../src/demo/repository.js';
import { meshcfg } from '../helpers/cli.js';
import { tempDir } from '../helpers/git.js';

/** Listens on a free loopback port until closed: a port that is certainly taken. */
async function occupy(): Promise<{ port: number; server: Server }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return { port: typeof address === 'object' && address ? address.port : 0, server };
}

async function rejectsWithCode(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => err instanceof DemoError && err.code === code);
}

describe('the demo folder', () => {
  const tmp = tempDir('meshcfg-demo-folder-');
  after(() => tmp.cleanup());

  it('is scaffolded fresh the first time, reused once complete, and emptied by --reset', async () => {
    const layout = demoLayout(join(tmp.path, 'fresh'));
    assert.deepEqual(await prepareFolder(layout, { reset: false }), { kind: 'fresh' });
    await markComplete(layout);
    writeFileSync(join(layout.root, 'kept'), 'x');
    await releaseFolder(layout);
    assert.deepEqual(await prepareFolder(layout, { reset: false }), { kind: 'reuse' });
    assert.ok(existsSync(join(layout.root, 'kept')));
    await releaseFolder(layout);
    assert.deepEqual(await prepareFolder(layout, { reset: true }), { kind: 'fresh' });
    assert.ok(!existsSync(join(layout.root, 'kept')), 'reset empties the folder');
    assert.ok(!existsSync(layout.marker));
    await releaseFolder(layout);
  });

  it('starts afresh when an earlier run stopped before its scaffold was complete', async () => {
    const layout = demoLayout(join(tmp.path, 'interrupted'));
    await prepareFolder(layout, { reset: false });
    writeFileSync(join(layout.root, 'half-made'), 'x');
    await releaseFolder(layout);
    writeFileSync(layout.pidFile, '0\n'); // what a killed run leaves behind
    assert.deepEqual(await prepareFolder(layout, { reset: false }), { kind: 'fresh' });
    assert.ok(!existsSync(join(layout.root, 'half-made')));
    await releaseFolder(layout);
  });

  it('refuses a non-empty folder that is not a demo with DIR_NOT_DEMO and leaves it alone', async () => {
    const root = join(tmp.path, 'someone-elses');
    mkdirSync(root);
    writeFileSync(join(root, 'important.txt'), 'keep me');
    for (const reset of [false, true]) {
      await rejectsWithCode(prepareFolder(demoLayout(root), { reset }), 'DIR_NOT_DEMO');
    }
    assert.ok(existsSync(join(root, 'important.txt')));
  });

  it('refuses a folder that a running demo holds with ALREADY_RUNNING', async () => {
    const layout = demoLayout(join(tmp.path, 'busy'));
    await prepareFolder(layout, { reset: false }); // holds it as this (live) process
    await rejectsWithCode(prepareFolder(layout, { reset: false, pid: process.pid + 1_000_000 }), 'ALREADY_RUNNING');
    await releaseFolder(layout, process.pid + 1_000_000);
    assert.ok(existsSync(layout.pidFile), 'the refused run leaves the running demo its pid file');
    await releaseFolder(layout);
    assert.ok(!existsSync(layout.pidFile));
  });
});

describe('choosing the demo ports', () => {
  let taken: { port: number; server: Server };
  before(async () => {
    taken = await occupy();
  });
  after(() => taken.server.close());

  it('refuses a port the user asked for that is taken, with PORT_IN_USE', async () => {
    await rejectsWithCode(choosePort('admin', taken.port, true), 'PORT_IN_USE');
  });

  it('moves a default port that is taken to the next free one and says so', async () => {
    const choice = await choosePort('admin', taken.port, false);
    assert.equal(choice.movedFrom, taken.port);
    assert.ok(choice.port > taken.port);
  });

  it('never gives both listeners the same port', async () => {
    const free = await choosePort('grpc', taken.port + 1, false);
    const other = await choosePort('admin', free.port, false, [free.port]);
    assert.notEqual(other.port, free.port);
  });
});

describe('the demo config repository', () => {
  const tmp = tempDir('meshcfg-demo-repo-');
  after(() => tmp.cleanup());

  it('is signed by the demo key, trusted by its allowed-signers file, and plans clean with a canary and a rest wave', async () => {
    const signer = await createSigner(join(tmp.path, 'keys'), join(tmp.path, 'allowed_signers'));
    const head = await createRepository(join(tmp.path, 'config'), signer);
    const run = await meshcfg('plan', '--repo', join(tmp.path, 'config'), '--allowed-signers', join(tmp.path, 'allowed_signers'), '--json');
    assert.equal(run.code, 0, run.stderr);
    const plan = JSON.parse(run.stdout) as { commit: string; signature: { verified: boolean; signer: string }; agents: Array<{ id: string; wave: string }>; violations: unknown[] };
    assert.equal(plan.commit, head);
    assert.deepEqual(plan.signature.verified, true);
    assert.equal(plan.signature.signer, 'demo@example.org');
    assert.deepEqual(plan.violations, []);
    assert.deepEqual(
      plan.agents.map((a) => [a.id, a.wave]).sort(),
      DEMO_AGENTS.map((a) => [a.id, a.labels['ring'] === 'canary' ? 'canary' : 'rest']).sort(),
    );
  });
});
