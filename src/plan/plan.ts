import type { VerifiedCommit } from '../domain/commit.js';
import { BaseError, errorMessage, TrustError } from '../domain/errors.js';
import type { AgentId, CommitSha, Digest } from '../domain/types.js';
import { changeKey, type Compilation, type CompiledAgent, Compiler, diffDocuments, inventoryShrink, renderDiff } from '../compile/index.js';
import { describeSkipped, GitSource, parseRepositoryLocation } from '../source/index.js';
import { loadAllowedSigners, skipVerification, SshSignatureVerifier, TrustGate, type KeyValidityTime } from '../source/trust/index.js';
import type { PlanAgent, PlanBase, PlanChange, PlanReport, PlanSignature } from './report.js';
import { assertNever } from '../lib/index.js';

export interface PlanOptions {
  /** Local path (plain or bare repository) or smart-HTTP(S) URL. */
  readonly repo: string;
  /** Revision to plan. Default `HEAD`. */
  readonly rev?: string;
  /** Revision to compare with; compiled but not verified (it is a comparison point only). */
  readonly base?: string;
  /** git allowed-signers file; without it the signature is reported as not checked. */
  readonly allowedSigners?: string;
  /**
   * When a signer's valid-after/valid-before window is checked: `now` (default; what a server
   * seeing the commit now would decide) or `commit-time` (the committer date, as git does).
   */
  readonly keyValidity?: KeyValidityTime;
  /** Where a remote repository is cloned; default a temporary directory removed afterwards. */
  readonly dataDir?: string;
  /** Progress lines for long steps (clone, compile); never data. */
  readonly progress?: (line: string) => void;
}

/**
 * What a plan ends in: a report (clean or with violations), or a refusal — the commit
 * cannot be judged at all (unsigned, untrusted, unreadable, not a config repository).
 */
export type PlanOutcome =
  | { readonly kind: 'report'; readonly report: PlanReport }
  | {
      readonly kind: 'refused';
      readonly code: string;
      readonly message: string;
      readonly commit: CommitSha | null;
      readonly signature: PlanSignature | null;
    };

const NOT_ABOUT_THE_SIGNATURE: ReadonlySet<TrustError['code']> = new Set(['MALFORMED_ALLOWED_SIGNERS', 'NOT_FAST_FORWARD', 'NON_MONOTONIC_DATE']);

const NOT_CHECKED = 'no --allowed-signers given: the signature was not checked';

/**
 * `meshcfg plan`: resolve, verify, compile every agent, run the policy, compare with a base.
 * Every refusal the layers below raise as a coded error becomes a `refused` outcome; anything
 * else is a bug and propagates.
 */
export async function runPlan(options: PlanOptions, compiler: Compiler = new Compiler()): Promise<PlanOutcome> {
  const progress = options.progress ?? (() => {});
  let commit: CommitSha | null = null;
  let signature: PlanSignature | null = null;
  let source: GitSource | null = null;
  try {
    const location = parseRepositoryLocation(options.repo);
    progress(`reading ${location.display}`);
    source = await GitSource.open({
      repository: location,
      fetchAllRefs: true,
      ...(options.dataDir === undefined ? {} : { dataDir: options.dataDir }),
    });
    await source.fetch();
    commit = await source.resolve(options.rev ?? 'HEAD');

    const verified = await verifyCommit(source, commit, options.allowedSigners, options.keyValidity ?? 'now');
    signature = describeTrust(verified);
    const head = await compileCommit(source, verified, compiler, progress);

    let base: PlanBase | undefined;
    let baseAgents: ReadonlyMap<AgentId, CompiledAgent> | undefined;
    if (options.base !== undefined) {
      const baseSha = await source.resolve(options.base);
      const baseCommit = await skipVerification(source, baseSha, 'comparison base of a plan');
      const baseCompilation = await compileBase(source, baseCommit, compiler, progress);
      baseAgents = new Map(baseCompilation?.agents.map((a) => [a.id, a]) ?? []);
      base = compare(baseSha, baseAgents, head);
    }
    // Without --base only the empty-inventory part of inventory-shrink can apply.
    const shrink = inventoryShrink(baseAgents === undefined ? null : [...baseAgents.keys()], head);
    if (base !== undefined) base = { ...base, allowedRemovals: shrink.allowed };

    const agents: PlanAgent[] = head.agents.map((a) => ({
      id: a.id,
      digest: a.bundle.digest,
      wave: a.wave,
      ...(baseAgents ? { changed: baseAgents.get(a.id)?.bundle.digest !== a.bundle.digest } : {}),
    }));
    const report: PlanReport = {
      commit,
      signature,
      agents,
      violations: [...head.violations, ...shrink.violations],
      warnings: head.skipped.map((entry) => ({ kind: entry.kind, path: entry.path, message: describeSkipped(entry) })),
      ...(base ? { base } : {}),
    };
    return { kind: 'report', report };
  } catch (err) {
    if (err instanceof BaseError) {
      return { kind: 'refused', code: err.code, message: err.message, commit, signature: signature ?? refusedSignature(err) };
    }
    throw err;
  } finally {
    await source?.close();
  }
}

async function verifyCommit(
  source: GitSource,
  sha: CommitSha,
  allowedSignersPath: string | undefined,
  keyValidityAt: KeyValidityTime,
): Promise<VerifiedCommit> {
  if (allowedSignersPath === undefined) return skipVerification(source, sha, NOT_CHECKED);
  const allowedSigners = await loadAllowedSigners(allowedSignersPath);
  const gate = new TrustGate({ reader: source, verifiers: [new SshSignatureVerifier({ allowedSigners })], keyValidityAt });
  return gate.verify(sha);
}

function describeTrust(commit: VerifiedCommit): PlanSignature {
  const trust = commit.trust;
  switch (trust.kind) {
    case 'verified':
      return { verified: true, signer: trust.signer, format: trust.format };
    case 'unchecked':
      return { verified: false, signer: null, format: null, reason: trust.reason };
    default:
      return assertNever(trust);
  }
}

/** A trust refusal names itself in the signature block too, so `--json` consumers see why. */
function refusedSignature(err: BaseError<string>): PlanSignature | null {
  return err instanceof TrustError && !NOT_ABOUT_THE_SIGNATURE.has(err.code)
    ? { verified: false, signer: null, format: null, reason: `${err.code}: ${err.message}` }
    : null;
}

async function compileCommit(
  source: GitSource,
  commit: VerifiedCommit,
  compiler: Compiler,
  progress: (line: string) => void,
): Promise<Compilation> {
  const tree = await source.readTree(commit);
  const started = performance.now();
  const compilation = compiler.compile(tree);
  progress(`compiled ${compilation.agents.length} agents of ${commit.sha.slice(0, 12)} in ${Math.round(performance.now() - started)} ms`);
  return compilation;
}

/** A base from before the repository had a meshcfg.yaml compiles to nothing: every agent is new. */
async function compileBase(
  source: GitSource,
  commit: VerifiedCommit,
  compiler: Compiler,
  progress: (line: string) => void,
): Promise<Compilation | null> {
  try {
    return await compileCommit(source, commit, compiler, progress);
  } catch (err) {
    if (err instanceof BaseError && err.code === 'INVALID_REPOSITORY') {
      progress(`base ${commit.sha.slice(0, 12)} is not a meshcfg repository: ${errorMessage(err)}`);
      return null;
    }
    throw err;
  }
}

/** Groups changed agents by the change itself, so one diff stands for every agent that changed alike. */
function compare(baseSha: CommitSha, before: ReadonlyMap<AgentId, CompiledAgent>, head: Compilation): PlanBase {
  const groups = new Map<string, { agents: AgentId[]; from: Digest | null; to: Digest; diff: string[] }>();
  for (const agent of head.agents) {
    const old = before.get(agent.id);
    if (old?.bundle.digest === agent.bundle.digest) continue;
    const ops = diffDocuments(old?.bundle.document ?? {}, agent.bundle.document);
    const key = `${old ? 'changed' : 'new'}:${changeKey(ops)}`;
    const group = groups.get(key);
    if (group) group.agents.push(agent.id);
    else groups.set(key, { agents: [agent.id], from: old?.bundle.digest ?? null, to: agent.bundle.digest, diff: renderDiff(ops) });
  }
  const current = new Set(head.agents.map((a) => a.id));
  const removed = [...before.keys()].filter((id) => !current.has(id)).sort();
  const changes: PlanChange[] = [...groups.values()];
  return { commit: baseSha, changes, removed, allowedRemovals: [] };
}
