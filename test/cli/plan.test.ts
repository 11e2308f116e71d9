import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { cpSync, symlinkSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { meshcfg, type Run } from '../helpers/cli.js';
import { GitRepo, makeSshSigner, type SshSigner, tempDir, writeAllowedSigners } from '../helpers/git.js';
import { startGitHttpServer, type GitHttpServer } from '../helpers/http-git-server.js';

/**
 * `meshcfg plan` end to end: the built binary (bin/meshcfg.js → dist/) against real git
 * repositories with real SSH-signed commits, locally and over real smart HTTP.
 */
const EXAMPLE = fileURLToPath(new URL('../../deploy/example-config', import.meta.url));

const SETTINGS = `trustDomain: example.org
policy:
  secureZones: [pci]
  allowedDestinations: ["*.svc.cluster.local", "api.example.com"]
rollout:
  waves:
    - { name: canary, match: { ring: canary } }
    - { name: rest, percent: 100 }
`;

const INVENTORY = `agents:
  - { id: edge-1, labels: { zone: pci, env: prod, ring: canary } }
  - { id: edge-2, labels: { zone: public, env: prod } }
  - { id: edge-3, labels: { zone: public, env: prod } }
`;

const BASE = `mtls: { mode: STRICT, minTlsVersion: "1.2" }
identity: { trustDomain: example.org }
`;

const PUBLIC_OVERLAY = `match: { zone: public }
config:
  routes:
    - { name: api, destination: "api.example.com:443", protocol: http2, timeoutMs: 3000, retries: { attempts: 2, perTryTimeoutMs: 900 } }
`;

interface PlanJson {
  commit: string;
  signature: { verified: boolean; signer: string | null; format: string | null; reason?: string };
  agents: Array<{ id: string; digest: string; wave: string; changed?: boolean }>;
  violations: Array<{ rule: string; agent?: string; file?: string; path?: string; message: string }>;
  warnings: Array<{ kind: string; path: string; message: string }>;
}

function parsePlan(run: Run): PlanJson {
  const lines = run.stdout.trim().split('\n');
  assert.equal(lines.length, 1, `--json prints exactly one line, got: ${run.stdout}`);
  return JSON.parse(lines[0] as string) as PlanJson;
}

describe('meshcfg plan', () => {
  const tmp = tempDir();
  let alice: SshSigner;
  let mallory: SshSigner;
  let allowed: string;
  let repo: GitRepo;
  let first: string;

  before(() => {
    alice = makeSshSigner(tmp.path, 'alice@example.org');
    mallory = makeSshSigner(tmp.path, 'mallory@example.org');
    allowed = writeAllowedSigners(`${tmp.path}/allowed_signers`, [{ signer: alice, options: 'namespaces="git"' }]);
    repo = GitRepo.init(`${tmp.path}/config`);
    repo.write({
      'meshcfg.yaml': SETTINGS,
      'inventory/agents.yaml': INVENTORY,
      'config/base/00-defaults.yaml': BASE,
      'config/overlays/10-public.yaml': PUBLIC_OVERLAY,
      'baseline/safe.yaml': 'mtls: { mode: STRICT, minTlsVersion: "1.3" }\n',
      'README.md': 'not config\n',
    });
    first = repo.commit('first config', alice);
  });

  after(() => tmp.cleanup());

  describe('when the head is signed by an allowed signer and clean', () => {
    it('exits 0 and prints the documented JSON object', async () => {
      const run = await meshcfg('plan', '--repo', repo.dir, '--allowed-signers', allowed, '--json');
      assert.equal(run.code, 0, run.stderr);
      const plan = parsePlan(run);
      assert.deepEqual(Object.keys(plan).sort(), ['agents', 'commit', 'signature', 'violations', 'warnings']);
      assert.deepEqual(plan.warnings, []);
      assert.equal(plan.commit, first);
      assert.deepEqual(plan.signature, { verified: true, signer: 'alice@example.org', format: 'ssh' });
      assert.deepEqual(plan.agents.map((a) => [a.id, a.wave]), [['edge-1', 'canary'], ['edge-2', 'rest'], ['edge-3', 'rest']]);
      assert.ok(plan.agents.every((a) => /^sha256:[0-9a-f]{64}$/.test(a.digest) && a.changed === undefined));
      assert.deepEqual(plan.violations, []);
    });

    it('gives agents with the same config the same digest, run after run', async () => {
      const a = parsePlan(await meshcfg('plan', '--repo', repo.dir, '--json'));
      const b = parsePlan(await meshcfg('plan', '--repo', repo.dir, '--json'));
      assert.deepEqual(a.agents, b.agents);
      const digest = (id: string) => a.agents.find((x) => x.id === id)?.digest;
      assert.equal(digest('edge-2'), digest('edge-3'));
      assert.notEqual(digest('edge-1'), digest('edge-2'));
    });

    it('prints a human summary', async () => {
      const run = await meshcfg('plan', '--repo', repo.dir, '--allowed-signers', allowed);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, new RegExp(`commit: +${first}`));
      assert.match(run.stdout, /signature: +verified \(ssh\) by alice@example\.org/);
      assert.match(run.stdout, /agents: +3/);
      assert.match(run.stdout, /violations: +0/);
    });
  });

  describe('when --allowed-signers is not given', () => {
    it('says on stderr and in the JSON that the signature was not checked', async () => {
      const run = await meshcfg('plan', '--repo', repo.dir, '--json');
      assert.equal(run.code, 0, run.stderr);
      const plan = parsePlan(run);
      assert.equal(plan.signature.verified, false);
      assert.equal(plan.signature.signer, null);
      assert.match(plan.signature.reason ?? '', /allowed-signers/);
      assert.match(run.stderr, /NOT verified/);
    });
  });

  describe('with --base', () => {
    let weakened: string;
    before(() => {
      repo.git('switch', '-q', '-c', 'weaken');
      repo.write({
        'config/agents/edge-1.yaml': 'mtls: { mode: PERMISSIVE }\n',
        'config/overlays/10-public.yaml': PUBLIC_OVERLAY.replace('timeoutMs: 3000', 'timeoutMs: 4000'),
      });
      weakened = repo.commit('weaken edge-1, slower api', alice);
      repo.git('switch', '-q', 'main');
    });

    it('marks exactly the agents whose digest changes', async () => {
      const run = await meshcfg('plan', '--repo', repo.dir, '--rev', 'weaken', '--base', 'main', '--json');
      assert.equal(run.code, 1, run.stderr);
      const plan = parsePlan(run);
      assert.equal(plan.commit, weakened);
      assert.deepEqual(plan.agents.map((a) => [a.id, a.changed]), [['edge-1', true], ['edge-2', true], ['edge-3', true]]);
      assert.deepEqual(
        plan.violations.map((v) => [v.rule, v.agent, v.file, v.path]),
        [['mtls-strict-in-secure-zone', 'edge-1', 'config/agents/edge-1.yaml', '/mtls/mode']],
      );
    });

    it('reports unchanged agents as unchanged', async () => {
      const plan = parsePlan(await meshcfg('plan', '--repo', repo.dir, '--rev', 'main', '--base', first, '--json'));
      assert.ok(plan.agents.every((a) => a.changed === false));
    });

    it('shows one diff per distinct change, naming how many agents share it', async () => {
      const run = await meshcfg('plan', '--repo', repo.dir, '--rev', 'weaken', '--base', 'main');
      assert.equal(run.code, 1);
      assert.match(run.stdout, /changed: +3/);
      assert.match(run.stdout, /~ edge-1: sha256:[0-9a-f]{64} → sha256:[0-9a-f]{64}/);
      assert.match(run.stdout, /~ \/mtls\/mode: "STRICT" → "PERMISSIVE"/);
      assert.match(run.stdout, /~ edge-2 \(and 1 more agent with the same change\)/);
      assert.equal(run.stdout.match(/\/routes\/0\/timeoutMs: 3000 → 4000/g)?.length, 1);
      assert.match(run.stdout, /\[mtls-strict-in-secure-zone\] agent edge-1 config\/agents\/edge-1\.yaml:1 \/mtls\/mode/);
    });
  });

  describe('when the commit violates policy', () => {
    const cases: Array<{ name: string; files: Record<string, string>; rule: string; file: string; path?: string }> = [
      {
        name: 'a YAML syntax error',
        files: { 'config/overlays/20-broken.yaml': 'match: { zone: public }\nconfig:\n  mtls: [unclosed\n' },
        rule: 'parse',
        file: 'config/overlays/20-broken.yaml',
      },
      {
        name: 'an unknown top-level key',
        files: { 'config/base/10-typo.yaml': 'rootes: []\n' },
        rule: 'schema',
        file: 'config/base/10-typo.yaml',
        path: '/rootes',
      },
      {
        name: 'an embedded private key',
        files: { 'config/agents/edge-2.yaml': 'extensions:\n  key: "-----BEGIN PRIVATE KEY-----\\nMIIE\\n-----END PRIVATE KEY-----"\n' },
        rule: 'no-embedded-secrets',
        file: 'config/agents/edge-2.yaml',
        path: '/extensions/key',
      },
      {
        name: 'a route outside the allowlist',
        files: { 'config/agents/edge-3.yaml': 'routes:\n  - { name: exfil, destination: "evil.example.net:443" }\n' },
        rule: 'destination-allowlist',
        file: 'config/agents/edge-3.yaml',
        path: '/routes/0/destination',
      },
    ];
    for (const c of cases) {
      it(`exits 1 on ${c.name}, naming rule, file and path`, async () => {
        repo.git('switch', '-q', '-c', `bad-${c.rule}`, first);
        repo.write(c.files);
        const sha = repo.commit(`introduce ${c.name}`, alice);
        repo.git('switch', '-q', 'main');
        const run = await meshcfg('plan', '--repo', repo.dir, '--rev', sha, '--allowed-signers', allowed, '--json');
        assert.equal(run.code, 1, run.stderr);
        const hit = parsePlan(run).violations.find((v) => v.rule === c.rule);
        assert.ok(hit, `expected a ${c.rule} violation in ${run.stdout}`);
        assert.equal(hit.file, c.file);
        if (c.path) assert.equal(hit.path, c.path);
      });
    }
  });

  describe('when the commit cannot be trusted', () => {
    it('refuses an unsigned commit with exit 2 and the reason on stderr', async () => {
      repo.git('switch', '-q', '-c', 'unsigned', first);
      const sha = repo.commit('unsigned change');
      repo.git('switch', '-q', 'main');
      const run = await meshcfg('plan', '--repo', repo.dir, '--rev', sha, '--allowed-signers', allowed);
      assert.equal(run.code, 2);
      assert.match(run.stderr, /refused: UNSIGNED/);
      assert.equal(run.stdout, '');
    });

    it('refuses a commit signed by a key that is not allowed', async () => {
      repo.git('switch', '-q', '-c', 'mallory', first);
      const sha = repo.commit('mallory change', mallory);
      repo.git('switch', '-q', 'main');
      const run = await meshcfg('plan', '--repo', repo.dir, '--rev', sha, '--allowed-signers', allowed, '--json');
      assert.equal(run.code, 2);
      const plan = parsePlan(run);
      assert.equal(plan.signature.verified, false);
      assert.match(plan.signature.reason ?? '', /^UNTRUSTED_SIGNER/);
    });
  });

  describe('when a config file is over the 1 MiB limit', () => {
    it('refuses the commit with FILE_TOO_LARGE and exit 2 (a size limit, not a parse violation)', async () => {
      repo.git('switch', '-q', '-c', 'huge', first);
      repo.write({ 'config/agents/edge-2.yaml': `extensions:\n  blob: "${'x'.repeat(1024 * 1024)}"\n` });
      const sha = repo.commit('a file over the limit', alice);
      repo.git('switch', '-q', 'main');
      const run = await meshcfg('plan', '--repo', repo.dir, '--rev', sha, '--allowed-signers', allowed);
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, /refused: FILE_TOO_LARGE/);
    });
  });

  describe('when the commit has symlinks or submodules where config is read', () => {
    let linked: string;
    before(() => {
      repo.git('switch', '-q', '-c', 'linked', first);
      symlinkSync('/etc/passwd', `${repo.dir}/config/base/zz-link.yaml`);
      repo.git('add', '-A');
      repo.git('update-index', '--add', '--cacheinfo', `160000,${first},config/vendor`);
      linked = repo.commit('a symlink and a submodule', alice, [], { stage: false });
      repo.git('reset', '-q', '--hard');
      repo.git('switch', '-q', 'main');
    });

    it('names each skipped entry under warnings in --json, keeping exit 0', async () => {
      const run = await meshcfg('plan', '--repo', repo.dir, '--rev', linked, '--allowed-signers', allowed, '--json');
      assert.equal(run.code, 0, run.stderr);
      const plan = parsePlan(run);
      assert.deepEqual(plan.warnings.map((w) => [w.kind, w.path]), [
        ['symlink', 'config/base/zz-link.yaml'],
        ['submodule', 'config/vendor'],
      ]);
      assert.deepEqual(plan.violations, []);
    });

    it('prints them in the human output', async () => {
      const run = await meshcfg('plan', '--repo', repo.dir, '--rev', linked, '--allowed-signers', allowed);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /warnings: +2/);
      assert.match(run.stdout, /! config\/base\/zz-link\.yaml is a symlink and was skipped/);
      assert.match(run.stdout, /! config\/vendor is a submodule and was skipped/);
    });
  });

  describe('inventory-shrink', () => {
    const TWO = INVENTORY.split('\n').filter((line) => !line.includes('edge-3')).join('\n');
    let shrunk: string;
    let decommission: string;
    let emptied: string;
    before(() => {
      repo.git('switch', '-q', '-c', 'shrink', first);
      shrunk = repo.write({ 'inventory/agents.yaml': TWO }).commit('drop edge-3', alice);
      repo.git('switch', '-q', '-c', 'decommission', first);
      decommission = repo
        .write({ 'inventory/agents.yaml': TWO, 'meshcfg.yaml': SETTINGS.replace('policy:\n', 'policy:\n  allowInventoryRemoval: [edge-3]\n') })
        .commit('decommission edge-3', alice);
      repo.git('switch', '-q', '-c', 'emptied', first);
      emptied = repo.write({ 'inventory/agents.yaml': 'agents: []\n' }).commit('no agents', alice);
      repo.git('switch', '-q', 'main');
    });

    it('exits 1 on an empty inventory, even without --base', async () => {
      const run = await meshcfg('plan', '--repo', repo.dir, '--rev', emptied, '--allowed-signers', allowed, '--json');
      assert.equal(run.code, 1, run.stderr);
      assert.deepEqual(parsePlan(run).violations.map((v) => v.rule), ['inventory-shrink']);
    });

    it('exits 1 when the commit removes more than policy.maxInventoryRemoval of --base’s agents, naming them', async () => {
      const run = await meshcfg('plan', '--repo', repo.dir, '--rev', shrunk, '--base', first, '--allowed-signers', allowed);
      assert.equal(run.code, 1, run.stderr);
      assert.match(run.stdout, /\[inventory-shrink\] removes 1 of 3 agents \(33\.3%\), more than policy\.maxInventoryRemoval 10%: edge-3;/);
      assert.match(run.stdout, /- removed from inventory \(1\):\n {4}- edge-3\n/);
    });

    it('exits 0 when the removed agents are listed in policy.allowInventoryRemoval, and says so', async () => {
      const run = await meshcfg('plan', '--repo', repo.dir, '--rev', decommission, '--base', first, '--allowed-signers', allowed);
      assert.equal(run.code, 0, run.stdout);
      assert.match(run.stdout, / {4}- edge-3 \(listed in policy\.allowInventoryRemoval\)/);
    });
  });

  describe('when a retired key signs a backdated commit', () => {
    let backdated: string;
    let retiredPolicy: string;
    before(() => {
      const bob = makeSshSigner(tmp.path, 'bob@example.org');
      retiredPolicy = writeAllowedSigners(`${tmp.path}/allowed_signers_retired`, [
        { signer: alice },
        { signer: bob, options: 'valid-before="20200101Z"' },
      ]);
      // The branch starts from a commit dated 2019 too, so only the key's window can refuse it.
      repo.git('switch', '-q', '--orphan', 'retired');
      repo.write({
        'meshcfg.yaml': SETTINGS,
        'inventory/agents.yaml': INVENTORY,
        'config/base/00-defaults.yaml': BASE,
        'config/agents/edge-2.yaml': 'telemetry: { accessLog: false }\n',
      });
      const root = repo.commit('old history', alice, [], { date: '2019-05-01T12:00:00Z' });
      backdated = repo.write({ 'config/agents/edge-2.yaml': 'telemetry: { accessLog: true }\n' }).commit('bob, backdated', bob, [], { date: '2019-06-01T12:00:00Z' });
      repo.git('switch', '-q', 'main');
      assert.ok(root);
    });

    it('refuses it with exit 2 (UNTRUSTED_SIGNER), judging the key now by default', async () => {
      const run = await meshcfg('plan', '--repo', repo.dir, '--rev', backdated, '--allowed-signers', retiredPolicy, '--json');
      assert.equal(run.code, 2, run.stderr);
      assert.match(parsePlan(run).signature.reason ?? '', /^UNTRUSTED_SIGNER/);
    });

    it('accepts it with --key-validity commit-time, as git verify-commit does', async () => {
      const run = await meshcfg('plan', '--repo', repo.dir, '--rev', backdated, '--allowed-signers', retiredPolicy, '--key-validity', 'commit-time', '--json');
      assert.equal(run.code, 0, run.stderr);
      assert.equal(parsePlan(run).signature.signer, 'bob@example.org');
    });

    it('refuses a commit dated before its parent with exit 2 (NON_MONOTONIC_DATE), whatever the key validity time', async () => {
      repo.git('switch', '-q', '-c', 'backwards', first);
      const sha = repo.write({ 'config/agents/edge-3.yaml': 'telemetry: { metrics: false }\n' }).commit('dated before its parent', alice, [], { date: '2020-06-01T12:00:00Z' });
      repo.git('switch', '-q', 'main');
      for (const keyValidity of ['now', 'commit-time']) {
        const run = await meshcfg('plan', '--repo', repo.dir, '--rev', sha, '--allowed-signers', allowed, '--key-validity', keyValidity, '--json');
        assert.equal(run.code, 2, run.stderr);
        assert.match(run.stderr, /refused: NON_MONOTONIC_DATE/);
        assert.equal((JSON.parse(run.stdout) as { error: { code: string } }).error.code, 'NON_MONOTONIC_DATE');
      }
    });

    it('exits 2 on an unknown --key-validity', async () => {
      const run = await meshcfg('plan', '--repo', repo.dir, '--allowed-signers', allowed, '--key-validity', 'sometimes');
      assert.equal(run.code, 2);
      assert.match(run.stderr, /USAGE/);
    });
  });

  describe('when the input is unusable', () => {
    const cases: Array<{ name: string; args: () => string[]; stderr: RegExp }> = [
      { name: 'a path that is not a repository', args: () => ['plan', '--repo', tmp.path], stderr: /REPO_UNREADABLE/ },
      { name: 'an unknown revision', args: () => ['plan', '--repo', repo.dir, '--rev', 'no-such-branch'], stderr: /REVISION_NOT_FOUND/ },
      { name: 'a missing --repo', args: () => ['plan'], stderr: /--repo/ },
      { name: 'an unknown flag', args: () => ['plan', '--repo', repo.dir, '--frobnicate'], stderr: /unknown option/ },
      {
        name: 'an unreadable allowed-signers file',
        args: () => ['plan', '--repo', repo.dir, '--allowed-signers', `${tmp.path}/missing`],
        stderr: /allowed/i,
      },
    ];
    for (const c of cases) {
      it(`exits 2 on ${c.name}`, async () => {
        const run = await meshcfg(...c.args());
        assert.equal(run.code, 2, run.stdout);
        assert.match(run.stderr, c.stderr);
      });
    }

    it('exits 2 on a repository without meshcfg.yaml', async () => {
      const other = GitRepo.init(`${tmp.path}/not-config`);
      other.write({ 'hello.txt': 'hi\n' });
      other.commit('not a config repo', alice);
      const run = await meshcfg('plan', '--repo', other.dir);
      assert.equal(run.code, 2);
      assert.match(run.stderr, /INVALID_REPOSITORY/);
    });
  });

  describe('on the example repository in deploy/example-config', () => {
    it('plans clean once committed and signed', async () => {
      const example = GitRepo.init(`${tmp.path}/example`);
      cpSync(EXAMPLE, example.dir, { recursive: true });
      const sha = example.commit('example config', alice);
      const run = await meshcfg('plan', '--repo', example.dir, '--allowed-signers', allowed, '--json');
      assert.equal(run.code, 0, run.stdout);
      const plan = parsePlan(run);
      assert.equal(plan.commit, sha);
      assert.equal(plan.signature.verified, true);
      assert.deepEqual(plan.agents.map((a) => a.id), ['edge-1', 'edge-2', 'edge-3', 'edge-4']);
    });
  });

  describe('over smart HTTP', () => {
    let server: GitHttpServer;
    before(async () => {
      repo.git('clone', '-q', '--bare', repo.dir, `${tmp.path}/served/config.git`);
      server = await startGitHttpServer(`${tmp.path}/served`);
    });
    after(() => server.close());

    it('clones the URL and plans a branch against another', async () => {
      const run = await meshcfg(
        'plan', '--repo', server.url('config.git'), '--rev', 'weaken', '--base', 'main', '--allowed-signers', allowed, '--json',
      );
      assert.equal(run.code, 1, run.stderr);
      const plan = parsePlan(run);
      assert.equal(plan.commit, repo.head('weaken'));
      assert.equal(plan.signature.verified, true);
      assert.equal(plan.agents.filter((a) => a.changed).length, 3);
      assert.ok(server.requests > 0);
    });

    it('refuses an unreachable URL with exit 2', async () => {
      const run = await meshcfg('plan', '--repo', 'http://127.0.0.1:9/none.git');
      assert.equal(run.code, 2);
      assert.match(run.stderr, /FETCH_FAILED|REPO_UNREADABLE/);
    });
  });
});
