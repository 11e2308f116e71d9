/**
 * A commit's git object id: 40 lowercase hex (64 in a sha256 repository). Branded: made only
 * by `isCommitSha` / `parseCommitSha` (`domain/agent-id.ts`) where commits come in (git reads,
 * the commit object parser, state files, the signed statement, the commits agents echo on the
 * wire); see docs/architecture.md, "Conventions".
 */
export type CommitSha = string & { readonly __brand: 'CommitSha' };

/**
 * A DNS-label agent id from the inventory (e.g. `edge-1`). Branded: made only by
 * `parseAgentId` / `isAgentId` (`domain/agent-id.ts`) where ids come in (inventory, certificate,
 * CLI and admin arguments, store rows).
 */
export type AgentId = string & { readonly __brand: 'AgentId' };

/** `sha256:<hex>` of a bundle's canonical JSON bytes. Opaque: compare with `===`. */
export type Digest = `sha256:${string}`;

export type Labels = Readonly<Record<string, string>>;

/** An agent's answer to a delivery: it loaded the bundle, or refused it and kept the previous one. */
export type AckStatus = 'APPLIED' | 'REJECTED';

/** A JSON value as parsed from YAML config documents. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** Ids of the built-in policy rules (docs/architecture.md). */
export type RuleId =
  | 'parse'
  | 'schema'
  | 'mtls-strict-in-secure-zone'
  | 'min-tls-version'
  | 'no-embedded-secrets'
  | 'retry-budget'
  | 'destination-allowlist'
  /** Across commits: too many agents removed from the inventory at once, or none left. */
  | 'inventory-shrink';

/**
 * One reason a commit must not reach agents. `file` is the repository path that
 * introduced the offending value as far as it can be known; `path` a JSON pointer
 * into the agent's compiled document (or into the file, for repository-level errors).
 */
export interface Violation {
  readonly rule: RuleId;
  readonly agent?: AgentId;
  readonly file?: string;
  readonly path?: string;
  readonly line?: number;
  readonly message: string;
}
