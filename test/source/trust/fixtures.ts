/**
 * Fixtures for the trust tests: real git objects and real ssh-keygen signatures, plus the
 * forgeries an attacker could push (hand-built commit objects written with
 * `git hash-object`). Nothing here uses the code under test, so it can serve as an oracle.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { SourceError } from '../../../src/domain/errors.js';
import type { CommitReader } from '../../../src/source/trust/index.js';
import type { GitRepo, SshSigner } from '../../helpers/git.js';

const gitEnv: NodeJS.ProcessEnv = {
  PATH: process.env.PATH ?? '/usr/bin:/bin',
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  LANG: 'C',
};

/** The raw content of a commit, byte for byte as git stores it. */
export function catCommit(repo: GitRepo, sha: string): Buffer {
  return execFileSync('git', ['cat-file', 'commit', sha], { cwd: repo.dir, env: gitEnv });
}

/** Stores `content` as a commit object, as a malicious pusher could, and returns its id. */
export function writeCommitObject(repo: GitRepo, content: string | Uint8Array): string {
  return execFileSync('git', ['hash-object', '-t', 'commit', '-w', '--stdin'], {
    cwd: repo.dir,
    env: gitEnv,
    input: content,
    encoding: 'utf8',
  }).trim();
}

/** Runs git with fixed identities and dates, so two commits made this way differ only where asked. */
export function gitAt(repo: GitRepo, args: readonly string[], date = '1700000000 +0100'): string {
  return execFileSync('git', args, {
    cwd: repo.dir,
    encoding: 'utf8',
    env: {
      ...gitEnv,
      GIT_AUTHOR_NAME: 'Fixed Author',
      GIT_AUTHOR_EMAIL: 'fixed@example.org',
      GIT_COMMITTER_NAME: 'Fixed Committer',
      GIT_COMMITTER_EMAIL: 'fixed@example.org',
      GIT_AUTHOR_DATE: date,
      GIT_COMMITTER_DATE: date,
    },
  }).trim();
}

/** `git commit-tree` signed with `signer` (SSH) — or unsigned without one. */
export function commitTree(repo: GitRepo, tree: string, message: string, parents: readonly string[], signer?: SshSigner): string {
  const sign = signer ? ['-c', 'gpg.format=ssh', '-c', `user.signingkey=${signer.privateKeyPath}`] : [];
  const args = [...sign, 'commit-tree', tree, ...parents.flatMap((p) => ['-p', p]), '-m', message];
  if (signer) args.push('-S');
  return gitAt(repo, args);
}

/** An armored SSH signature of `data` by `signer` in `namespace`, made by ssh-keygen. */
export function sshSign(signer: SshSigner, namespace: string, data: string | Uint8Array, hashalg?: 'sha256' | 'sha512'): string {
  const args = ['-Y', 'sign', '-f', signer.privateKeyPath, '-n', namespace];
  if (hashalg) args.push('-O', `hashalg=${hashalg}`);
  return execFileSync('ssh-keygen', args, { input: data, encoding: 'utf8', stdio: ['pipe', 'pipe', 'ignore'] });
}

/** Inserts a signature header where git puts it: after the other headers, continuation lines indented by one space. */
export function withSignatureHeader(unsigned: string, armored: string, header = 'gpgsig'): string {
  const end = unsigned.indexOf('\n\n');
  const value = armored.replace(/\n$/, '').split('\n').join('\n ');
  return `${unsigned.slice(0, end)}\n${header} ${value}${unsigned.slice(end)}`;
}

/** The signature header's value, as a naive line filter reads it (independent of the code under test). */
export function signatureHeaderOf(content: string, header = 'gpgsig'): string {
  const lines = content.slice(0, content.indexOf('\n\n')).split('\n');
  const start = lines.findIndex((l) => l.startsWith(`${header} `));
  const out = [lines[start]!.slice(header.length + 1)];
  for (let i = start + 1; lines[i]?.startsWith(' '); i++) out.push(lines[i]!.slice(1));
  return `${out.join('\n')}\n`;
}

export function gitObjectId(content: string | Uint8Array, algorithm: 'sha1' | 'sha256' = 'sha1'): string {
  const bytes = typeof content === 'string' ? Buffer.from(content) : content;
  return createHash(algorithm).update(`commit ${bytes.length}\0`).update(bytes).digest('hex');
}

/**
 * An in-memory CommitReader that records what the gate asked, to check the order of
 * checks and to feed it objects no honest repository would contain.
 */
export class MemoryCommitReader implements CommitReader {
  readonly objects = new Map<string, Uint8Array>();
  readonly ancestry = new Map<string, readonly string[]>();
  readonly calls: string[] = [];

  constructor(private readonly algorithm: 'sha1' | 'sha256' = 'sha1') {}

  /** Stores a commit under its true id, with the parents ancestry walks should follow. */
  add(content: string | Uint8Array, parents: readonly string[] = []): string {
    const bytes = typeof content === 'string' ? Buffer.from(content) : content;
    const id = gitObjectId(bytes, this.algorithm);
    this.objects.set(id, bytes);
    this.ancestry.set(id, parents);
    return id;
  }

  async readCommitObject(sha: string): Promise<Uint8Array> {
    this.calls.push(`read ${sha}`);
    const object = this.objects.get(sha);
    if (!object) throw new SourceError({ code: 'REVISION_NOT_FOUND', message: `no ${sha}` });
    return object;
  }

  async isDescendant(sha: string, ancestor: string): Promise<boolean> {
    this.calls.push(`ancestry ${sha} ${ancestor}`);
    const queue = [...(this.ancestry.get(sha) ?? [])];
    for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
      if (next === ancestor) return true;
      queue.push(...(this.ancestry.get(next) ?? []));
    }
    return false;
  }
}

/** An unsigned commit object's text with fixed, well-formed headers. */
export function unsignedCommitText(message: string, parents: readonly string[] = [], tree = '4b825dc642cb6eb9a060e54bf8d69288fbee4904'): string {
  return [
    `tree ${tree}`,
    ...parents.map((p) => `parent ${p}`),
    'author Fixed Author <fixed@example.org> 1700000000 +0100',
    'committer Fixed Committer <fixed@example.org> 1700000000 +0100',
    '',
    message,
  ].join('\n');
}
