import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { VerifiedCommit, VerifiedTree } from '../../src/domain/commit.js';
import { SourceError, type SourceErrorCode } from '../../src/domain/errors.js';
import { GitSource, type GitSourceOptions } from '../../src/source/git-source.js';
import { ConfigTreeReader, type GitObjectReader } from '../../src/source/tree.js';
import { GitRepo, tempDir } from '../helpers/git.js';
import { startGitHttpServer, type GitHttpServer } from '../helpers/http-git-server.js';

/**
 * Stands in for the trust gate, which alone makes VerifiedCommits: these tests are about
 * reading content, not about verifying it.
 */
function trusted(repo: GitRepo, sha: string): VerifiedCommit {
  const fake = {
    sha,
    tree: repo.git('rev-parse', `${sha}^{tree}`),
    parents: [],
    message: '',
    committedAt: new Date(0),
    trust: { kind: 'unchecked', reason: 'test' },
  };
  return fake as unknown as VerifiedCommit;
}

function contents(tree: VerifiedTree): Record<string, string> {
  return Object.fromEntries(tree.files.map((f) => [f.path, Buffer.from(f.bytes).toString('utf8')]));
}

async function rejectsWith(promise: Promise<unknown>, code: SourceErrorCode): Promise<SourceError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof SourceError, String(err));
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected ${code}, but it resolved`);
}

const CONFIG_FILES = {
  'meshcfg.yaml': 'trustDomain: example.org\n',
  'inventory/agents.yaml': 'agents: [{id: edge-1}]\n',
  'inventory/more/agents.yml': 'agents: [{id: edge-2}]\n',
  'config/base/00-mtls.yaml': 'mtls: {mode: STRICT}\n',
  'config/overlays/10-zone.yaml': 'match: {zone: a}\nconfig: {}\n',
  'config/agents/edge-1.yaml': 'telemetry: {accessLog: true}\n',
  'baseline/safe.yaml': 'mtls: {mode: STRICT}\nrouting: []\n',
};
const IGNORED_FILES = {
  'README.md': '# not config\n',
  'config/notes.txt': 'not yaml\n',
  'config/base/00-mtls.yaml.bak': 'backup\n',
  'other/stray.yaml': 'outside the layout\n',
  'meshcfg.yml': 'not the settings file\n',
  'inventory.yaml': 'not under inventory/\n',
};

describe('reading the config tree of a verified commit', () => {
  const tmp = tempDir();
  const sources: GitSource[] = [];
  let repo: GitRepo;
  let first: string;
  let second: string;

  const open = async (options: Partial<GitSourceOptions> = {}): Promise<GitSource> => {
    const source = await GitSource.open({ repository: repo.dir, branch: 'main', ...options });
    sources.push(source);
    return source;
  };

  before(() => {
    repo = GitRepo.init(join(tmp.path, 'cfg'));
    repo.write({ ...CONFIG_FILES, ...IGNORED_FILES });
    symlinkSync('/etc/passwd', join(repo.dir, 'config/base/link.yaml'));
    first = repo.commit('first');
    repo.write({ 'config/base/00-mtls.yaml': 'mtls: {mode: PERMISSIVE}\n', 'config/base/01-new.yaml': 'new: true\n' });
    repo.remove('baseline/safe.yaml');
    second = repo.commit('second');
  });

  after(async () => {
    await Promise.all(sources.map((s) => s.close()));
    tmp.cleanup();
  });

  it('returns exactly the config files (meshcfg.yaml and yaml under inventory/, config/, baseline/), sorted', async () => {
    const source = await open();
    const tree = await source.readTree(trusted(repo, first));

    assert.deepEqual(contents(tree), CONFIG_FILES);
    const paths = tree.files.map((f) => f.path);
    assert.deepEqual(paths, [...paths].sort());
    assert.equal(tree.commit.sha, first);
  });

  it('names each symlink and submodule where config is read as skipped, and nothing else', async () => {
    const links = GitRepo.init(join(tmp.path, 'links'));
    links.write(CONFIG_FILES);
    symlinkSync('/etc/passwd', join(links.dir, 'config/base/link.yaml'));
    symlinkSync('../elsewhere', join(links.dir, 'baseline/dir-link'));
    symlinkSync('inventory/agents.yaml', join(links.dir, 'docs-link')); // outside the layout: not ours to mention
    links.git('add', '-A');
    const pinned = '1234567890abcdef1234567890abcdef12345678'; // a gitlink names a commit of another repository
    links.git('update-index', '--add', '--cacheinfo', `160000,${pinned},config/vendor`);
    links.git('update-index', '--add', '--cacheinfo', `160000,${pinned},inventory/sub`);
    const sha = links.commit('links and submodules', undefined, [], { stage: false });
    const source = await GitSource.open({ repository: links.dir, branch: 'main' });
    sources.push(source);

    const tree = await source.readTree(trusted(links, sha));

    assert.deepEqual(contents(tree), CONFIG_FILES);
    assert.deepEqual(tree.skipped, [
      { path: 'baseline/dir-link', kind: 'symlink' },
      { path: 'config/base/link.yaml', kind: 'symlink' },
      { path: 'config/vendor', kind: 'submodule' },
      { path: 'inventory/sub', kind: 'submodule' },
    ]);
  });

  it('gives each file its blob id', async () => {
    const source = await open();
    const tree = await source.readTree(trusted(repo, first));
    for (const file of tree.files) {
      assert.equal(file.oid, repo.git('rev-parse', `${first}:${file.path}`));
    }
  });

  it('reads an old commit by object id while HEAD and the working tree have moved on', async () => {
    repo.write({ 'meshcfg.yaml': 'uncommitted: edit\n', 'config/base/dirty.yaml': 'untracked: true\n' });
    const source = await open();
    await source.fetch();

    const tree = await source.readTree(trusted(repo, first));

    assert.equal(source.head()?.commit, second);
    assert.deepEqual(contents(tree), CONFIG_FILES);
  });

  it('reads many commits side by side', async () => {
    const source = await open();
    const [a, b, c] = await Promise.all([
      source.readTree(trusted(repo, first)),
      source.readTree(trusted(repo, second)),
      source.readTree(trusted(repo, first)),
    ]);

    assert.deepEqual(contents(a), CONFIG_FILES);
    assert.deepEqual(contents(c), CONFIG_FILES);
    assert.equal(contents(b)['config/base/00-mtls.yaml'], 'mtls: {mode: PERMISSIVE}\n');
    assert.equal(contents(b)['config/base/01-new.yaml'], 'new: true\n');
    assert.equal(contents(b)['baseline/safe.yaml'], undefined);
  });

  it('re-reads only the blobs a commit changed (blob cache keyed by id)', async () => {
    const source = await open();
    await source.readTree(trusted(repo, first));
    const cold = source.treeCacheStats();
    assert.equal(cold.blobMisses, Object.keys(CONFIG_FILES).length);

    await source.readTree(trusted(repo, second));
    const warm = source.treeCacheStats();

    assert.equal(warm.blobMisses - cold.blobMisses, 2, 'the changed and the added file');
    assert.equal(warm.blobHits - cold.blobHits, Object.keys(CONFIG_FILES).length - 2);

    await source.readTree(trusted(repo, first));
    assert.equal(source.treeCacheStats().blobMisses, warm.blobMisses, 'a repeat read is all hits');
  });

  describe('limits', () => {
    it('refuses a file above maxFileBytes with FILE_TOO_LARGE naming the path', async () => {
      const bySize = Object.entries(CONFIG_FILES).sort(([, x], [, y]) => Buffer.byteLength(y) - Buffer.byteLength(x));
      const [[largest, text] = ['', ''], [, runnerUp = ''] = []] = bySize;
      assert.ok(Buffer.byteLength(text) > Buffer.byteLength(runnerUp), 'fixture: one file is the largest');
      const source = await open({ tree: { maxFileBytes: Buffer.byteLength(text) - 1 } });

      const error = await rejectsWith(source.readTree(trusted(repo, first)), 'FILE_TOO_LARGE');

      // Naming the offending file is part of the contract, so the message is checked here.
      assert.ok(error.message.includes(largest), error.message);
    });

    it('refuses more than maxFiles config files with TREE_TOO_LARGE', async () => {
      const source = await open({ tree: { maxFiles: Object.keys(CONFIG_FILES).length - 1 } });
      await rejectsWith(source.readTree(trusted(repo, first)), 'TREE_TOO_LARGE');
    });

    it('refuses more than maxTotalBytes of config with TREE_TOO_LARGE', async () => {
      const total = Object.values(CONFIG_FILES).reduce((n, text) => n + Buffer.byteLength(text), 0);
      const source = await open({ tree: { maxTotalBytes: total - 1 } });
      await rejectsWith(source.readTree(trusted(repo, first)), 'TREE_TOO_LARGE');
    });

    it('accepts a tree exactly at its limits', async () => {
      const total = Object.values(CONFIG_FILES).reduce((n, text) => n + Buffer.byteLength(text), 0);
      const largest = Math.max(...Object.values(CONFIG_FILES).map((t) => Buffer.byteLength(t)));
      const source = await open({
        tree: { maxTotalBytes: total, maxFiles: Object.keys(CONFIG_FILES).length, maxFileBytes: largest },
      });
      assert.equal((await source.readTree(trusted(repo, first))).files.length, Object.keys(CONFIG_FILES).length);
    });

    it('names the first offending file in path order, however reads interleave', async () => {
      const sizes = [10, 50, 10, 60, 70];
      const objects: GitObjectReader = {
        readTreeEntries: async () =>
          sizes.map((_, i) => ({ mode: '100644', path: `f${i}.yaml`, oid: `blob${i}`, type: 'blob' as const })),
        // Later files answer first.
        readBlob: async (oid) => {
          const i = Number(oid.slice(4));
          await new Promise((resolve) => setTimeout(resolve, (sizes.length - i) * 5));
          return new Uint8Array(sizes[i] ?? 0);
        },
      };
      const commit = { sha: 'c'.repeat(40), tree: 'root' } as unknown as VerifiedCommit;
      const wrap: GitObjectReader = {
        readTreeEntries: async (oid) =>
          oid === 'root' ? [{ mode: '040000', path: 'config', oid: 'dir', type: 'tree' }] : objects.readTreeEntries(oid),
        readBlob: (oid) => objects.readBlob(oid),
      };

      const tooLarge = await rejectsWith(new ConfigTreeReader(wrap, { maxFileBytes: 40 }).read(commit), 'FILE_TOO_LARGE');
      const tooMuch = await rejectsWith(new ConfigTreeReader(wrap, { maxTotalBytes: 100 }).read(commit), 'TREE_TOO_LARGE');

      assert.ok(tooLarge.message.includes('config/f1.yaml'), tooLarge.message);
      assert.ok(tooMuch.message.includes('config/f3.yaml'), tooMuch.message);
    });

    it('counts files before reading any blob', async () => {
      let blobReads = 0;
      const objects: GitObjectReader = {
        readTreeEntries: async (oid) => {
          if (oid === 'root') return [{ mode: '040000', path: 'config', oid: 'dir', type: 'tree' }];
          return Array.from({ length: 50 }, (_, i) => ({ mode: '100644', path: `f${i}.yaml`, oid: `blob${i}`, type: 'blob' as const }));
        },
        readBlob: async () => {
          blobReads += 1;
          return new Uint8Array(1);
        },
      };
      const reader = new ConfigTreeReader(objects, { maxFiles: 10 });
      const commit = { sha: 'c'.repeat(40), tree: 'root' } as unknown as VerifiedCommit;

      await rejectsWith(reader.read(commit), 'TREE_TOO_LARGE');
      assert.equal(blobReads, 0);
    });
  });

  describe('from the clone of a remote', () => {
    let server: GitHttpServer;

    before(async () => {
      execFileSync('git', ['clone', '-q', '--bare', repo.dir, join(tmp.path, 'srv', 'cfg.git')]);
      server = await startGitHttpServer(join(tmp.path, 'srv'));
    });
    after(() => server.close());

    it('reads the same files from packed objects', async () => {
      const source = await GitSource.open({
        repository: server.url('cfg.git'),
        branch: 'main',
        dataDir: join(tmp.path, 'data'),
      });
      sources.push(source);
      await source.fetch();

      assert.deepEqual(contents(await source.readTree(trusted(repo, first))), CONFIG_FILES);
    });
  });
});
