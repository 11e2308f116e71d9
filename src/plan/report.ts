import type { AgentId, CommitSha, Digest, JsonValue, Violation } from '../domain/types.js';

/** The signature part of a plan, as `meshcfg plan --json` prints it. */
export interface PlanSignature {
  readonly verified: boolean;
  readonly signer: string | null;
  readonly format: 'ssh' | 'openpgp' | 'sigstore' | null;
  readonly reason?: string;
}

export interface PlanAgent {
  readonly id: AgentId;
  readonly digest: Digest;
  readonly wave: string;
  /** Present only when the plan has a base: the digest differs from the base's (or the agent is new). */
  readonly changed?: boolean;
}

/** One distinct change between base and head, shared by one or more agents. */
export interface PlanChange {
  readonly agents: readonly AgentId[];
  readonly from: Digest | null;
  readonly to: Digest;
  /** Readable diff lines of the first agent of the group. */
  readonly diff: readonly string[];
}

export interface PlanBase {
  readonly commit: CommitSha;
  readonly changes: readonly PlanChange[];
  /** Agents in the base's inventory that the head no longer has, sorted. */
  readonly removed: readonly AgentId[];
  /** Of `removed`, those the head's `policy.allowInventoryRemoval` names (a deliberate decommission). */
  readonly allowedRemovals: readonly AgentId[];
}

/** Something a reviewer should know that does not block the commit (exit code unchanged). */
export interface PlanWarning {
  /** A symlink or submodule where config is read: skipped, never followed. */
  readonly kind: 'symlink' | 'submodule';
  readonly path: string;
  readonly message: string;
}

export interface PlanReport {
  readonly commit: CommitSha;
  readonly signature: PlanSignature;
  readonly agents: readonly PlanAgent[];
  readonly violations: readonly Violation[];
  readonly warnings: readonly PlanWarning[];
  readonly base?: PlanBase;
}

/** The `--json` object: exactly the documented keys (base details are for humans only). */
export function planToJson(report: PlanReport): Record<string, JsonValue> {
  return {
    commit: report.commit,
    signature: { ...report.signature } as unknown as JsonValue,
    agents: report.agents.map((a) => ({ ...a })) as unknown as JsonValue,
    violations: report.violations.map((v) => ({ ...v })) as unknown as JsonValue,
    warnings: report.warnings.map((w) => ({ ...w })) as unknown as JsonValue,
  };
}

function describeSignature(sig: PlanSignature): string {
  if (sig.verified) return `verified (${sig.format ?? 'unknown'}) by ${sig.signer ?? 'unknown'}`;
  return `NOT VERIFIED: ${sig.reason ?? 'no reason given'}`;
}

function describeViolation(v: Violation): string {
  const where = [v.agent && `agent ${v.agent}`, v.file && (v.line ? `${v.file}:${v.line}` : v.file), v.path]
    .filter(Boolean)
    .join(' ');
  return `  ✗ [${v.rule}] ${where ? `${where}: ` : ''}${v.message}`;
}

/** Human-readable plan: a summary, each violation on its own line, then one diff per distinct change. */
export function renderPlan(report: PlanReport): string {
  const lines: string[] = [];
  const changed = report.agents.filter((a) => a.changed).length;
  lines.push(`commit:     ${report.commit}`);
  lines.push(`signature:  ${describeSignature(report.signature)}`);
  lines.push(`agents:     ${report.agents.length}`);
  if (report.base) {
    lines.push(`base:       ${report.base.commit}`);
    lines.push(`changed:    ${changed}${report.base.removed.length ? ` (+${report.base.removed.length} removed)` : ''}`);
  }
  lines.push(`violations: ${report.violations.length}`);
  if (report.warnings.length > 0) lines.push(`warnings:   ${report.warnings.length}`);
  if (report.violations.length > 0) {
    lines.push('');
    for (const v of report.violations) lines.push(describeViolation(v));
  }
  if (report.warnings.length > 0) {
    lines.push('');
    for (const w of report.warnings) lines.push(`  ! ${w.message}`);
  }
  if (report.base) {
    for (const change of report.base.changes) {
      const [first, ...rest] = change.agents;
      lines.push('');
      const others = rest.length ? ` (and ${rest.length} more agent${rest.length === 1 ? '' : 's'} with the same change)` : '';
      lines.push(`~ ${first}${others}: ${change.from ?? '(new agent)'} → ${change.to}`);
      for (const d of change.diff) lines.push(`    ${d}`);
    }
    if (report.base.removed.length > 0) {
      const allowed = new Set(report.base.allowedRemovals);
      lines.push('');
      lines.push(`- removed from inventory (${report.base.removed.length}):`);
      for (const id of report.base.removed) {
        lines.push(`    - ${id}${allowed.has(id) ? ' (listed in policy.allowInventoryRemoval)' : ''}`);
      }
    }
  }
  lines.push('');
  lines.push(report.violations.length === 0 ? 'plan: clean' : `plan: ${report.violations.length} policy violation(s); this commit would be refused`);
  return `${lines.join('\n')}\n`;
}
