import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { errorMessage } from '../domain/errors.js';
import { DemoError } from './errors.js';
import { isErrnoCode } from '../lib/index.js';

/**
 * The demo's config repository: a small fleet with overlays, a canary wave and the rest, and
 * a baseline, committed with a real SSH signature (git `gpg.format=ssh`) by a key that the
 * demo's allowed-signers file trusts. Built with the real `git` and `ssh-keygen` CLIs, as a
 * platform team would.
 */

export const DEMO_TRUST_DOMAIN = 'example.org';
export const DEMO_SIGNER = 'demo@example.org';
/** The canary wave bakes this long, so a change is seen reaching the canary first, then the rest. */
export const DEMO_CANARY_BAKE = '20s';

export interface DemoAgent {
  readonly id: string;
  readonly labels: Readonly<Record<string, string>>;
}

export const DEMO_AGENTS: readonly DemoAgent[] = [
  { id: 'edge-1', labels: { zone: 'pci', env: 'prod', service: 'payments', ring: 'canary' } },
  { id: 'edge-2', labels: { zone: 'public', env: 'prod', service: 'web' } },
  { id: 'edge-3', labels: { zone: 'public', env: 'prod', service: 'web' } },
];

/** Path → content of the first commit. Every file passes `meshcfg plan` (the demo test plans it). */
export function demoRepositoryFiles(agents: readonly DemoAgent[] = DEMO_AGENTS): Readonly<Record<string, string>> {
  const inventory = agents
    .map((a) => `  - { id: ${a.id}, labels: { ${Object.entries(a.labels).map(([k, v]) => `${k}: ${v}`).join(', ')} } }`)
    .join('\n');
  return {
    'README.md':
      '# meshcfg demo config repository\n\nCreated by `npm start`. Every commit must be signed (this clone signs with the demo key).\n' +
      'Change a file, `git commit -am "…"`, and watch the rollout with `meshcfg rollout status`.\n',
    'meshcfg.yaml': [
      `trustDomain: ${DEMO_TRUST_DOMAIN}`,
      'policy:',
      '  secureZones: [pci]',
      '  allowedDestinations: ["**.svc.cluster.local", "api.example.com"]',
      'rollout:',
      '  waves:',
      `    - { name: canary, match: { ring: canary }, bake: ${DEMO_CANARY_BAKE} }`,
      '    - { name: rest, percent: 100 }',
      '  successRatio: 1',
      '  maxNackRatio: 0',
      '  ackTimeout: 1m',
      '  expediteReverts: true',
      '',
    ].join('\n'),
    'inventory/demo.yaml': `agents:\n${inventory}\n`,
    'config/base/00-mtls.yaml': `mtls: { mode: STRICT, minTlsVersion: "1.2" }\nidentity: { trustDomain: ${DEMO_TRUST_DOMAIN} }\n`,
    'config/base/10-telemetry.yaml': 'telemetry: { accessLog: true, metrics: true }\n',
    'config/overlays/10-web.yaml': [
      'match: { service: web }',
      'config:',
      '  routes:',
      '    - name: api',
      '      destination: api.example.com:443',
      '      protocol: http2',
      '      timeoutMs: 3000',
      '      retries: { attempts: 2, perTryTimeoutMs: 900 }',
      '',
    ].join('\n'),
    'config/overlays/20-payments.yaml': [
      'match: { service: payments }',
      'config:',
      '  mtls: { minTlsVersion: "1.3" }',
      '  routes:',
      '    - name: ledger',
      '      destination: ledger.payments.svc.cluster.local:8443',
      '      protocol: grpc',
      '      timeoutMs: 2000',
      '      retries: { attempts: 1, perTryTimeoutMs: 900 }',
      '  authz:',
      '    - { action: ALLOW, from: ["spiffe://example.org/agent/edge-2", "spiffe://example.org/agent/edge-3"], paths: ["/pay/*"] }',
      '',
    ].join('\n'),
    'baseline/00-safe.yaml': 'mtls: { mode: STRICT, minTlsVersion: "1.3" }\ntelemetry: { accessLog: true, metrics: true }\n',
  };
}

/** Runs a CLI to completion; rejects with SCAFFOLD_FAILED carrying its stderr. */
export function run(file: string, args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, [...args], { encoding: 'utf8', cwd: options.cwd, env: options.env ?? process.env }, (err, stdout, stderr) => {
      if (err) {
        reject(new DemoError({ code: 'SCAFFOLD_FAILED', message: `${file} ${args.join(' ')}: ${stderr.trim() || errorMessage(err)}`, cause: err }));
      } else {
        resolve(stdout.trim());
      }
    });
  });
}

/** Fails with PREREQUISITE_MISSING unless every command answers. */
export async function checkPrerequisites(): Promise<void> {
  const missing: string[] = [];
  await run('git', ['--version']).catch(() => missing.push('git'));
  // ssh-keygen has no --version; -? prints usage and exits 1, ENOENT means it is missing.
  await new Promise<void>((resolve) => {
    execFile('ssh-keygen', ['-?'], (err) => {
      if (isErrnoCode(err, 'ENOENT')) missing.push('ssh-keygen');
      resolve();
    });
  });
  if (missing.length > 0) {
    throw new DemoError({
      code: 'PREREQUISITE_MISSING',
      message: `npm start needs ${missing.join(' and ')} on PATH (Debian/Ubuntu: apt-get install git openssh-client)`,
    });
  }
}

export interface DemoSigner {
  readonly privateKeyPath: string;
  readonly allowedSignersPath: string;
}

/** A fresh ed25519 key (no passphrase) and an allowed-signers file that trusts it for `git`. */
export async function createSigner(keyDir: string, allowedSignersPath: string): Promise<DemoSigner> {
  await mkdir(keyDir, { recursive: true, mode: 0o700 });
  const privateKeyPath = join(keyDir, 'demo-signer');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', DEMO_SIGNER, '-f', privateKeyPath]);
  const [type, key] = (await readFile(`${privateKeyPath}.pub`, 'utf8')).trim().split(' ');
  await writeFile(allowedSignersPath, `${DEMO_SIGNER} namespaces="git" ${type} ${key}\n`);
  return { privateKeyPath, allowedSignersPath };
}

/**
 * `git init` + the demo files + one signed commit on `main`. The clone's own config signs
 * every later commit with the demo key, so the commands the demo prints work as they are
 * (whatever the user's global git config says about identity or signing).
 */
export async function createRepository(dir: string, signer: DemoSigner, files: Readonly<Record<string, string>> = demoRepositoryFiles()): Promise<string> {
  await mkdir(dir, { recursive: true });
  const git = (...args: string[]): Promise<string> => run('git', args, { cwd: dir, env: { ...process.env, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null' } });
  await git('init', '-q', '-b', 'main');
  const settings: ReadonlyArray<[string, string]> = [
    ['user.name', 'meshcfg demo'],
    ['user.email', DEMO_SIGNER],
    ['gpg.format', 'ssh'],
    ['user.signingkey', signer.privateKeyPath],
    ['commit.gpgsign', 'true'],
    ['gpg.ssh.allowedSignersFile', signer.allowedSignersPath],
  ];
  for (const [key, value] of settings) await git('config', key, value);
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), content);
  }
  await git('add', '-A');
  await git('commit', '-q', '-S', '-m', 'demo fleet: three agents, a canary wave and the rest, a baseline');
  return git('rev-parse', 'HEAD');
}
