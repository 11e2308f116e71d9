import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/** A fresh temporary directory, removed by the returned cleanup function. */
export function tempDir(prefix = 'meshcfg-test-'): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** Environment that isolates the real git CLI from the machine's and user's config. */
function gitEnv(home: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_AUTHOR_NAME: 'Test Author',
    GIT_AUTHOR_EMAIL: 'author@example.org',
    GIT_COMMITTER_NAME: 'Test Committer',
    GIT_COMMITTER_EMAIL: 'committer@example.org',
    LANG: 'C',
  };
}

export interface SshSigner {
  readonly principal: string;
  readonly privateKeyPath: string;
  /** `keytype base64 comment` as in a .pub file. */
  readonly publicKey: string;
  readonly keyType: 'ed25519' | 'rsa' | 'ecdsa';
}

/** Creates a real SSH key pair with ssh-keygen (no passphrase). */
export function makeSshSigner(
  dir: string,
  principal: string,
  keyType: SshSigner['keyType'] = 'ed25519',
): SshSigner {
  const privateKeyPath = join(dir, `${principal.replace(/[^a-z0-9]/gi, '_')}-${keyType}`);
  const args = ['-q', '-t', keyType, '-N', '', '-C', principal, '-f', privateKeyPath];
  if (keyType === 'rsa') args.push('-b', '2048');
  if (keyType === 'ecdsa') args.push('-b', '256');
  execFileSync('ssh-keygen', args, { stdio: 'ignore' });
  const publicKey = readFileSync(`${privateKeyPath}.pub`, 'utf8').trim();
  return { principal, privateKeyPath, publicKey, keyType };
}

/** Writes a file in git's allowed-signers format. `options` go before the key (e.g. `namespaces="git"`). */
export function writeAllowedSigners(
  path: string,
  entries: ReadonlyArray<{ signer: SshSigner; options?: string; principals?: string }>,
): string {
  const lines = entries.map(({ signer, options, principals }) => {
    const [type, key] = signer.publicKey.split(' ');
    return [principals ?? signer.principal, options, type, key].filter(Boolean).join(' ');
  });
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

/** A real git repository driven through the git CLI, for building test fixtures. */
export class GitRepo {
  readonly dir: string;
  private readonly env: NodeJS.ProcessEnv;

  private constructor(dir: string, home: string) {
    this.dir = dir;
    this.env = gitEnv(home);
  }

  static init(dir: string, branch = 'main'): GitRepo {
    mkdirSync(dir, { recursive: true });
    const home = join(dir, '..', `${dir.split('/').pop() ?? 'repo'}-home`);
    mkdirSync(home, { recursive: true });
    const repo = new GitRepo(dir, home);
    repo.git('init', '-q', '-b', branch);
    return repo;
  }

  git(...args: string[]): string {
    return this.gitWith({}, ...args);
  }

  /** Like `git`, with extra environment (e.g. `GIT_COMMITTER_DATE`). */
  gitWith(env: NodeJS.ProcessEnv, ...args: string[]): string {
    return execFileSync('git', args, { cwd: this.dir, env: { ...this.env, ...env }, encoding: 'utf8' }).trim();
  }

  /** Writes files (path → content) relative to the repository root. */
  write(files: Readonly<Record<string, string>>): this {
    for (const [path, content] of Object.entries(files)) {
      const full = join(this.dir, path);
      mkdirSync(dirname(full), { recursive: true });
      writeFileSync(full, content);
    }
    return this;
  }

  remove(...paths: string[]): this {
    for (const path of paths) rmSync(join(this.dir, path), { recursive: true, force: true });
    return this;
  }

  /**
   * Stages everything and commits; signs with `signer` when given. Returns the new commit id.
   * `date` (any format git takes, e.g. `2019-06-01T12:00:00Z`) sets the author and committer
   * dates, as someone backdating a commit would. `stage: false` commits the index as it is
   * (e.g. a gitlink added with `update-index`, which `add -A` would drop).
   */
  commit(
    message: string,
    signer?: SshSigner,
    extra: string[] = [],
    { date, stage = true }: { readonly date?: string; readonly stage?: boolean } = {},
  ): string {
    if (stage) this.git('add', '-A');
    const sign = signer
      ? ['-c', 'gpg.format=ssh', '-c', `user.signingkey=${signer.privateKeyPath}`]
      : [];
    const args = [...sign, 'commit', '-q', '--allow-empty', '-m', message, ...extra];
    if (signer) args.push('-S');
    this.gitWith(date === undefined ? {} : { GIT_COMMITTER_DATE: date, GIT_AUTHOR_DATE: date }, ...args);
    return this.head();
  }

  head(ref = 'HEAD'): string {
    return this.git('rev-parse', ref);
  }
}
