import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { GitRepo, tempDir } from '../helpers/git.js';
import { startGitHttpServer, type GitHttpServer } from '../helpers/http-git-server.js';

// The server runs in this process: the git CLI must be run asynchronously, or it waits on a blocked event loop.
const git = promisify(execFile);
const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', GIT_CONFIG_NOSYSTEM: '1', GIT_TERMINAL_PROMPT: '0', HOME: '/nonexistent' };

describe('the test smart-HTTP server (git http-backend)', () => {
  const tmp = tempDir();
  let repo: GitRepo;
  let open: GitHttpServer;
  let guarded: GitHttpServer;

  before(async () => {
    repo = GitRepo.init(join(tmp.path, 'work'));
    // 40 tagged commits: a protocol v0 clone then wants > 1 KiB of refs, which git sends gzipped.
    for (let i = 0; i < 40; i += 1) {
      repo.write({ [`config/f${i}.yaml`]: `v: ${i}\n` }).commit(`c${i}`);
      repo.git('tag', `t${i}`);
    }
    execFileSync('git', ['clone', '-q', '--bare', repo.dir, join(tmp.path, 'srv', 'cfg.git')]);
    open = await startGitHttpServer(join(tmp.path, 'srv'));
    guarded = await startGitHttpServer(join(tmp.path, 'srv'), { basicAuth: { username: 'u', password: 'p' } });
  });
  after(async () => {
    await Promise.all([open.close(), guarded.close()]);
    tmp.cleanup();
  });

  for (const version of ['0', '2']) {
    it(`serves clones and fetches to the real git client (protocol v${version})`, async () => {
      const before = open.requests;
      const target = join(tmp.path, `clone-v${version}`);
      const protocol = ['-c', `protocol.version=${version}`];
      await git('git', [...protocol, 'clone', '-q', open.url('cfg.git'), target], { env });
      await git('git', [...protocol, '-C', target, 'fetch', '-q', 'origin'], { env });
      const { stdout } = await git('git', ['-C', target, 'rev-parse', 'HEAD', 't0'], { env });
      assert.deepEqual(stdout.trim().split('\n'), [repo.head(), repo.head('t0')]);
      assert.ok(open.requests > before);
    });
  }

  it('passes gzip-encoded request bodies to the backend', async () => {
    const before = open.gzippedRequests;
    await git('git', ['-c', 'protocol.version=0', 'clone', '-q', '--bare', open.url('cfg.git'), join(tmp.path, 'gz.git')], { env });
    assert.ok(open.gzippedRequests > before, 'the clone sent a gzipped request');
  });

  it('answers 401 without the configured credentials, and serves with them', async () => {
    await assert.rejects(git('git', ['ls-remote', guarded.url('cfg.git', { withCredentials: false })], { env }));
    const { stdout } = await git('git', ['ls-remote', guarded.url('cfg.git'), 'refs/heads/main'], { env });
    assert.ok(stdout.startsWith(repo.head()));
  });
});
