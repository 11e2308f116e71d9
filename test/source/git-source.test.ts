import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { SourceError, type SourceErrorCode } from '../../src/domain/errors.js';
import type { HttpClient } from 'isomorphic-git';
import nodeHttp from 'isomorphic-git/http/node';
import { GitSource, type FetchEvent, type GitSourceOptions } from '../../src/source/git-source.js';
import type { CommitReader } from '../../src/source/trust/index.js';
import { GitRepo, tempDir } from '../helpers/git.js';
import { startGitHttpServer, type GitHttpServer } from '../helpers/http-git-server.js';
import { cid } from '../helpers/ids.js';

/** A served bare repository plus a working clone to commit and push from. */
interface Served {
  readonly work: GitRepo;
  readonly bareDir: string;
  push(...args: string[]): void;
}

function serveRepo(root: string, name: string): Served {
  const work = GitRepo.init(join(root, `${name}-work`));
  work.write({ 'meshcfg.yaml': 'trustDomain: example.org\n' }).commit('initial');
  const bareDir = join(root, 'srv', `${name}.git`);
  execFileSync('git', ['clone', '-q', '--bare', work.dir, bareDir]);
  work.git('remote', 'add', 'origin', bareDir);
  work.git('fetch', '-q', 'origin');
  return { work, bareDir, push: (...args) => void work.git('push', '-q', ...args, 'origin', 'main') };
}

async function rejectsWith(promise: Promise<unknown>, code: SourceErrorCode): Promise<SourceError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof SourceError, `expected a SourceError, got ${inspect(err)}`);
    assert.equal(err.code, code, `${err.code}: ${err.message}`);
    return err;
  }
  assert.fail(`expected ${code}, but it resolved`);
}

/** isomorphic-git's node client, counting how many requests were in flight at once. */
function countingHttp(): { http: HttpClient; maxConcurrent: () => number } {
  let running = 0;
  let max = 0;
  const http: HttpClient = {
    request: async (req) => {
      running += 1;
      max = Math.max(max, running);
      try {
        const response = await nodeHttp.request(req);
        // Count until the body is consumed: a fetch holds the response that long.
        const body = response.body;
        if (body === undefined) return response;
        async function* counted(): AsyncIterableIterator<Uint8Array> {
          try {
            yield* body as AsyncIterable<Uint8Array>;
          } finally {
            running -= 1;
          }
        }
        return { ...response, body: counted() };
      } catch (err) {
        running -= 1;
        throw err;
      }
    },
  };
  return { http, maxConcurrent: () => max };
}

/** A port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('GitSource', () => {
  const tmp = tempDir();
  let server: GitHttpServer;
  let served: Served;
  const sources: GitSource[] = [];

  const open = async (options: Partial<GitSourceOptions> = {}): Promise<GitSource> => {
    const source = await GitSource.open({
      repository: server.url('cfg.git'),
      branch: 'main',
      dataDir: join(tmp.path, 'data'),
      ...options,
    });
    sources.push(source);
    return source;
  };

  before(async () => {
    served = serveRepo(tmp.path, 'cfg');
    server = await startGitHttpServer(join(tmp.path, 'srv'));
  });

  after(async () => {
    await Promise.all(sources.map((s) => s.close()));
    await server.close();
    tmp.cleanup();
  });

  describe('over smart HTTP', () => {
    it('clones the branch on the first fetch and reports its head', async () => {
      const source = await open({ dataDir: join(tmp.path, 'data-first') });
      assert.equal(source.head(), null);

      const result = await source.fetch();

      assert.equal(result.kind, 'updated');
      assert.equal(result.head.commit, served.work.head());
      assert.deepEqual(source.head(), result.head);
      assert.ok(result.head.fetchedAt instanceof Date);
    });

    it('sees a commit pushed to the remote after the next fetch', async () => {
      const source = await open({ dataDir: join(tmp.path, 'data-push') });
      const first = await source.fetch();

      const pushed = served.work.write({ 'config/base/a.yaml': 'a: 1\n' }).commit('add base');
      served.push();
      const second = await source.fetch();

      assert.equal(second.kind, 'updated');
      assert.equal(second.head.commit, pushed);
      assert.equal(second.kind === 'updated' ? second.previous?.commit : undefined, first.head.commit);
    });

    it('reports an unchanged head when nothing was pushed', async () => {
      const source = await open({ dataDir: join(tmp.path, 'data-noop') });
      await source.fetch();
      const again = await source.fetch();
      assert.equal(again.kind, 'unchanged');
      assert.equal(again.head.commit, served.work.head());
    });

    it('reports a force-pushed (rewound) branch faithfully as the new head', async () => {
      const own = serveRepo(tmp.path, 'rewind');
      const older = own.work.head();
      own.work.write({ 'config/base/x.yaml': 'x: 1\n' }).commit('to be rewound');
      own.push();
      const source = await open({ repository: server.url('rewind.git'), dataDir: join(tmp.path, 'data-rewind') });
      const before = await source.fetch();

      own.work.git('reset', '-q', '--hard', older);
      const rewritten = own.work.write({ 'config/base/y.yaml': 'y: 1\n' }).commit('rewritten history');
      own.push('--force');
      const afterRewrite = await source.fetch();

      assert.equal(afterRewrite.head.commit, rewritten);
      assert.equal(await source.isDescendant(cid(rewritten), before.head.commit), false);

      own.work.git('reset', '-q', '--hard', older);
      own.push('--force');
      const rewound = await source.fetch();
      assert.equal(rewound.head.commit, older, 'a rewind to an ancestor is reported too');
    });

    it('reuses its clone directory across restarts', async () => {
      const dataDir = join(tmp.path, 'data-restart');
      const first = await open({ dataDir });
      await first.fetch();
      await first.close();

      const requestsBefore = server.requests;
      const second = await open({ dataDir });
      assert.equal(server.requests, requestsBefore, 'open() does not touch the network');
      assert.equal(second.head(), null, 'a head is only reported after a fetch');
      assert.equal(await second.resolve('main'), served.work.head(), 'objects are there before any fetch');
      assert.equal((await second.fetch()).head.commit, served.work.head());
      assert.equal(readdirSync(join(dataDir, 'sources')).length, 1);
    });

    it('clones into a temporary directory without a data dir, and removes it on close', async () => {
      const source = await GitSource.open({ repository: server.url('cfg.git'), branch: 'main' });
      await source.fetch();
      assert.ok(source.gitdir.startsWith(tmpdir()));
      assert.ok(existsSync(source.gitdir));
      await source.close();
      assert.equal(existsSync(source.gitdir), false);
    });

    it('tracks the remote default branch when no branch is given', async () => {
      const source = await open({ branch: undefined, dataDir: join(tmp.path, 'data-default') });
      assert.equal((await source.fetch()).head.commit, served.work.head());
      assert.equal(await source.resolve('HEAD'), served.work.head());
    });

    it('fetches every branch and tag with fetchAllRefs', async () => {
      const own = serveRepo(tmp.path, 'allrefs');
      const base = own.work.head();
      own.work.git('tag', '-a', 'v1', '-m', 'release 1');
      own.work.git('checkout', '-q', '-b', 'feature');
      const feature = own.work.write({ 'config/base/f.yaml': 'f: 1\n' }).commit('feature');
      own.work.git('push', '-q', 'origin', 'feature', '--tags');
      own.work.git('checkout', '-q', 'main');
      const source = await open({ repository: server.url('allrefs.git'), fetchAllRefs: true, dataDir: join(tmp.path, 'data-all') });

      await source.fetch();

      assert.equal(await source.resolve('feature'), feature);
      assert.equal(await source.resolve('v1'), base);
      assert.equal(await source.resolve('HEAD'), base);
    });

    it('resolves only the tracked branch without fetchAllRefs', async () => {
      const source = await open({ dataDir: join(tmp.path, 'data-single') });
      await source.fetch();
      await rejectsWith(source.resolve('feature'), 'REVISION_NOT_FOUND');
    });
  });

  describe('fetch scheduling', () => {
    it('never overlaps fetches: calls while one runs share one fetch scheduled behind it', async () => {
      const events: FetchEvent[] = [];
      const { http, maxConcurrent } = countingHttp();
      const source = await open({ dataDir: join(tmp.path, 'data-coalesce'), http, hooks: { onFetch: (e) => events.push(e) } });

      const first = source.fetch();
      await new Promise((resolve) => setImmediate(resolve));
      const second = source.fetch();
      const third = source.fetch();

      assert.equal(second, third, 'calls made while a fetch runs share the next one');
      assert.notEqual(first, second);
      await Promise.all([first, second, third]);
      assert.deepEqual(events.map((e) => e.kind), ['updated', 'unchanged']);
      assert.equal(maxConcurrent(), 1);
    });

    it('serves calls made in the same tick with one fetch', async () => {
      const events: FetchEvent[] = [];
      const source = await open({ dataDir: join(tmp.path, 'data-burst'), hooks: { onFetch: (e) => events.push(e) } });

      const results = await Promise.all([source.fetch(), source.fetch(), source.fetch()]);

      assert.equal(events.length, 1);
      assert.ok(results.every((r) => r === results[0]));
    });

    it('lets a caller that awaited one fetch start another without overlap', async () => {
      const { http, maxConcurrent } = countingHttp();
      const source = await open({ dataDir: join(tmp.path, 'data-chain'), http });
      const first = source.fetch();
      await new Promise((resolve) => setImmediate(resolve));
      const meanwhile = source.fetch();
      const chained = first.then(() => source.fetch());

      await Promise.all([chained, meanwhile]);

      assert.equal(maxConcurrent(), 1);
      assert.equal((await chained).head.commit, served.work.head());
    });

    it('polls on an interval until stopped, and stop waits for the fetch in flight', async () => {
      const own = serveRepo(tmp.path, 'poll');
      const events: FetchEvent[] = [];
      const source = await open({
        repository: server.url('poll.git'),
        dataDir: join(tmp.path, 'data-poll'),
        hooks: { onFetch: (e) => events.push(e) },
      });

      source.start({ intervalMs: 20 });
      const pushed = own.work.write({ 'inventory/a.yaml': 'agents: []\n' }).commit('inventory');
      own.push();
      const deadline = Date.now() + 10_000;
      while (source.head()?.commit !== pushed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      await source.stop();
      const seen = events.length;
      await new Promise((r) => setTimeout(r, 100));

      assert.equal(source.head()?.commit, pushed);
      assert.equal(events.length, seen, 'no fetch after stop()');
    });

    it('lets the caller choose the delay after a failure (backoff lives in the caller)', async () => {
      const port = await closedPort();
      const delays: number[] = [];
      const source = await open({ repository: `http://127.0.0.1:${port}/cfg.git`, dataDir: join(tmp.path, 'data-backoff') });

      source.start({
        intervalMs: 1_000,
        nextDelayMs: (status) => {
          delays.push(status.consecutiveFailures);
          return 5 * 2 ** status.consecutiveFailures;
        },
      });
      const deadline = Date.now() + 5_000;
      while (delays.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      await source.stop();

      assert.deepEqual(delays.slice(0, 3), [1, 2, 3]);
      assert.equal(source.status().lastError?.code, 'FETCH_FAILED');
    });
  });

  describe('when fetching fails', () => {
    it('fails with REVISION_NOT_FOUND for a branch the remote does not have', async () => {
      const source = await open({ branch: 'no-such-branch', dataDir: join(tmp.path, 'data-nobranch') });
      await rejectsWith(source.fetch(), 'REVISION_NOT_FOUND');
    });

    it('fails with FETCH_FAILED when nothing listens at the URL, and counts consecutive failures', async () => {
      const port = await closedPort();
      const source = await open({ repository: `http://127.0.0.1:${port}/cfg.git`, dataDir: join(tmp.path, 'data-refused') });

      const error = await rejectsWith(source.fetch(), 'FETCH_FAILED');
      await rejectsWith(source.fetch(), 'FETCH_FAILED');

      assert.ok(error.cause !== undefined, 'keeps the cause');
      assert.equal(source.status().consecutiveFailures, 2);
      assert.equal(source.status().lastError?.code, 'FETCH_FAILED');
      assert.equal(source.head(), null);
    });

    it('fails with FETCH_FAILED when the server has no such repository', async () => {
      const source = await open({ repository: server.url('missing.git'), dataDir: join(tmp.path, 'data-404') });
      await rejectsWith(source.fetch(), 'FETCH_FAILED');
    });

    it('fails with FETCH_FAILED at the deadline when the server stalls', async () => {
      const sockets = new Set<Socket>();
      const stall = createNetServer((socket) => sockets.add(socket));
      await new Promise<void>((resolve) => stall.listen(0, '127.0.0.1', resolve));
      const { port } = stall.address() as AddressInfo;
      try {
        const source = await open({
          repository: `http://127.0.0.1:${port}/cfg.git`,
          dataDir: join(tmp.path, 'data-stall'),
          fetchTimeoutMs: 200,
        });
        const started = Date.now();
        await rejectsWith(source.fetch(), 'FETCH_FAILED');
        assert.ok(Date.now() - started < 2_000, `took ${Date.now() - started} ms`);
      } finally {
        for (const socket of sockets) socket.destroy();
        await new Promise<void>((resolve) => stall.close(() => resolve()));
      }
    });

    it('fails with FETCH_FAILED when the server stalls in the middle of the pack', async () => {
      // Answers ref discovery from the real backend, then never finishes the pack response.
      const stalling = createHttpServer((req, res) => {
        if (req.method === 'POST') {
          res.writeHead(200, { 'Content-Type': 'application/x-git-upload-pack-result' });
          res.write('0008NAK\n');
          return;
        }
        void fetch(`${server.url('cfg.git')}${req.url?.replace(/^\/cfg\.git/, '') ?? ''}`).then(async (upstream) => {
          res.writeHead(upstream.status, { 'Content-Type': upstream.headers.get('content-type') ?? '' });
          res.end(Buffer.from(await upstream.arrayBuffer()));
        });
      });
      await new Promise<void>((resolve) => stalling.listen(0, '127.0.0.1', resolve));
      const { port } = stalling.address() as AddressInfo;
      try {
        const source = await open({
          repository: `http://127.0.0.1:${port}/cfg.git`,
          dataDir: join(tmp.path, 'data-midpack'),
          fetchTimeoutMs: 300,
        });
        await rejectsWith(source.fetch(), 'FETCH_FAILED');
        assert.equal(source.head(), null);
      } finally {
        stalling.closeAllConnections();
        await new Promise<void>((resolve) => stalling.close(() => resolve()));
      }
    });
  });

  describe('with credentials in the URL', () => {
    let authServer: GitHttpServer;
    const password = 'hunter2-s3cret-token';

    before(async () => {
      authServer = await startGitHttpServer(join(tmp.path, 'srv'), { basicAuth: { username: 'deploy', password } });
    });
    after(() => authServer.close());

    it('authenticates, and keeps the credentials out of the clone and of `location`', async () => {
      const dataDir = join(tmp.path, 'data-auth');
      const source = await open({ repository: authServer.url('cfg.git'), dataDir });

      assert.equal((await source.fetch()).head.commit, served.work.head());
      assert.ok(!source.location.includes(password));
      const [clone] = readdirSync(join(dataDir, 'sources'));
      assert.ok(clone !== undefined);
      assert.ok(!readFileSync(join(dataDir, 'sources', clone, 'config'), 'utf8').includes(password));
    });

    const cases: Array<{ name: string; url: () => Promise<string> }> = [
      {
        name: 'a rejected password',
        url: async () => authServer.url('cfg.git').replace(password, `${password}-wrong`),
      },
      {
        name: 'an unreachable host',
        url: async () => `http://deploy:${password}@127.0.0.1:${await closedPort()}/cfg.git`,
      },
    ];
    for (const { name, url } of cases) {
      it(`never shows them in errors, causes included, on ${name}`, async () => {
        const source = await open({ repository: await url(), dataDir: join(tmp.path, `data-secret-${name.length}`) });
        const error = await rejectsWith(source.fetch(), 'FETCH_FAILED');
        const rendered = inspect(error, { depth: 10 });
        assert.ok(!rendered.includes(password), rendered);
        assert.ok(!JSON.stringify(source.status()).includes(password));
      });
    }
  });

  describe('with a local repository', () => {
    it('reads a plain repository through its git directory and sees new commits on fetch', async () => {
      const repo = GitRepo.init(join(tmp.path, 'local-plain'));
      const first = repo.write({ 'meshcfg.yaml': 'a: 1\n' }).commit('one');
      const source = await open({ repository: repo.dir, dataDir: undefined });

      assert.equal((await source.fetch()).head.commit, first);
      const second = repo.write({ 'meshcfg.yaml': 'a: 2\n' }).commit('two');
      const result = await source.fetch();

      assert.equal(result.kind, 'updated');
      assert.equal(result.head.commit, second);
    });

    it('reads a bare repository', async () => {
      const source = await open({ repository: served.bareDir, dataDir: undefined });
      assert.equal((await source.fetch()).head.commit, served.work.head());
    });

    it('follows the branch, not what is checked out', async () => {
      const repo = GitRepo.init(join(tmp.path, 'local-checkout'));
      const onMain = repo.write({ 'meshcfg.yaml': 'a: 1\n' }).commit('one');
      repo.git('checkout', '-q', '-b', 'other');
      repo.write({ 'meshcfg.yaml': 'a: 2\n' }).commit('two');
      const source = await open({ repository: repo.dir });
      assert.equal((await source.fetch()).head.commit, onMain);
    });

    it('fails with REPO_UNREADABLE when the repository disappears', async () => {
      const repo = GitRepo.init(join(tmp.path, 'local-vanishing'));
      repo.write({ 'meshcfg.yaml': 'a: 1\n' }).commit('one');
      const source = await open({ repository: repo.dir });
      await source.fetch();

      rmSync(repo.dir, { recursive: true, force: true });

      await rejectsWith(source.fetch(), 'REPO_UNREADABLE');
    });

    it('fails with REVISION_NOT_FOUND for an unknown branch', async () => {
      const source = await open({ repository: served.work.dir, branch: 'nope' });
      await rejectsWith(source.fetch(), 'REVISION_NOT_FOUND');
    });

    const notRepos: Array<{ name: string; path: () => string }> = [
      { name: 'a directory that is no repository', path: () => tempDirIn(tmp.path, 'plain-dir') },
      { name: 'a path that does not exist', path: () => join(tmp.path, 'does-not-exist') },
      { name: 'a file', path: () => join(served.work.dir, 'meshcfg.yaml') },
    ];
    for (const { name, path } of notRepos) {
      it(`refuses ${name} with REPO_UNREADABLE`, async () => {
        await rejectsWith(GitSource.open({ repository: path(), branch: 'main' }), 'REPO_UNREADABLE');
      });
    }

    it('refuses transports other than smart HTTP with REPO_UNREADABLE', async () => {
      await rejectsWith(GitSource.open({ repository: 'git@example.org:org/cfg.git', branch: 'main' }), 'REPO_UNREADABLE');
      await rejectsWith(GitSource.open({ repository: 'ssh://example.org/cfg.git', branch: 'main' }), 'REPO_UNREADABLE');
    });
  });

  describe('resolve()', () => {
    let repo: GitRepo;
    let source: GitSource;
    const ids: Record<string, string> = {};

    before(async () => {
      repo = GitRepo.init(join(tmp.path, 'resolve'));
      ids.one = repo.write({ 'meshcfg.yaml': 'a: 1\n' }).commit('one');
      repo.git('tag', 'light');
      ids.two = repo.write({ 'meshcfg.yaml': 'a: 2\n' }).commit('two');
      repo.git('tag', '-a', 'annotated', '-m', 'an annotated tag');
      repo.git('checkout', '-q', '-b', 'side', ids.one);
      ids.side = repo.write({ 'config/base/side.yaml': 'b: 3\n' }).commit('side');
      repo.git('checkout', '-q', 'main');
      repo.git('merge', '-q', '--no-ff', '-m', 'merge side', 'side');
      ids.merge = repo.head();
      repo.git('update-ref', 'refs/remotes/origin/main', ids.two);
      source = await open({ repository: repo.dir });
      await source.fetch();
    });

    const cases: Array<{ rev: string; expect: string }> = [
      { rev: 'HEAD', expect: 'merge' },
      { rev: 'main', expect: 'merge' },
      { rev: 'refs/heads/side', expect: 'side' },
      { rev: 'light', expect: 'one' },
      { rev: 'annotated', expect: 'two' },
      { rev: 'origin/main', expect: 'two' },
      { rev: 'HEAD~1', expect: 'two' },
      { rev: 'HEAD^2', expect: 'side' },
      { rev: 'main~2', expect: 'one' },
      { rev: 'annotated^{}', expect: 'two' },
      { rev: 'HEAD^0', expect: 'merge' },
      { rev: 'short:two', expect: 'two' },
      { rev: 'full:side', expect: 'side' },
    ];
    for (const { rev, expect } of cases) {
      it(`resolves ${rev}`, async () => {
        const expected = ids[expect];
        const [kind, key] = rev.split(':');
        const input = kind === 'short' ? ids[key ?? '']?.slice(0, 8) : kind === 'full' ? ids[key ?? ''] : rev;
        assert.ok(input !== undefined);
        assert.equal(await source.resolve(input), expected);
      });
    }

    const unknown = ['nope', 'HEAD~10', 'HEAD^3', 'deadbeef', '../../etc/passwd', 'a..b', 'main^{tree}'];
    for (const rev of unknown) {
      it(`fails with REVISION_NOT_FOUND for ${rev}`, async () => {
        await rejectsWith(source.resolve(rev), 'REVISION_NOT_FOUND');
      });
    }

    it('fails with REVISION_NOT_FOUND for an object that is not a commit', async () => {
      const tree = repo.git('rev-parse', 'HEAD^{tree}');
      await rejectsWith(source.resolve(tree), 'REVISION_NOT_FOUND');
    });
  });

  describe('as the trust gate\'s CommitReader', () => {
    it('returns the raw commit object, byte for byte what git stores', async () => {
      const source: CommitReader & GitSource = await open({ repository: served.work.dir });
      const head = (await source.fetch()).head.commit;
      const expected = execFileSync('git', ['-C', served.work.dir, 'cat-file', 'commit', head]);
      assert.deepEqual(Buffer.from(await source.readCommitObject(head)), expected);
    });

    it('reads commit objects from the clone of a remote', async () => {
      const source = await open({ dataDir: join(tmp.path, 'data-reader') });
      const head = (await source.fetch()).head.commit;
      const expected = execFileSync('git', ['-C', served.bareDir, 'cat-file', 'commit', head]);
      assert.deepEqual(Buffer.from(await source.readCommitObject(head)), expected);
    });

    it('answers ancestry over the whole history, strictly', async () => {
      const repo = GitRepo.init(join(tmp.path, 'ancestry'));
      const root = repo.write({ 'meshcfg.yaml': 'a: 0\n' }).commit('root');
      for (let i = 1; i <= 30; i += 1) repo.write({ 'meshcfg.yaml': `a: ${i}\n` }).commit(`c${i}`);
      const tip = repo.head();
      const source = await open({ repository: repo.dir });

      assert.equal(await source.isDescendant(cid(tip), cid(root)), true);
      assert.equal(await source.isDescendant(cid(root), cid(tip)), false);
      assert.equal(await source.isDescendant(cid(tip), cid(tip)), false);
    });

    it('fails with REVISION_NOT_FOUND for commits it does not have', async () => {
      const source = await open({ repository: served.work.dir });
      const missing = '0123456789abcdef0123456789abcdef01234567';
      await rejectsWith(source.readCommitObject(cid(missing)), 'REVISION_NOT_FOUND');
      await rejectsWith(source.isDescendant(cid(missing), cid(served.work.head())), 'REVISION_NOT_FOUND');
      await rejectsWith(source.readCommitObject(cid(served.work.git('rev-parse', 'HEAD^{tree}'))), 'REVISION_NOT_FOUND');
    });
  });
});

function tempDirIn(root: string, name: string): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}
