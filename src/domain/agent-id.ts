import type { AgentId, CommitSha } from './types.js';

/** RFC 1123 DNS label: lowercase alphanumerics and `-`, alphanumeric at both ends, 1–63 characters. */
const DNS_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** A full git object id of a commit, as git prints it: 40 hex (sha1 repositories) or 64 (sha256 repositories). */
const COMMIT_SHA = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

/**
 * Agent ids end up in certificate SANs (`spiffe://<td>/agent/<id>`), signed leaves and file
 * names, hence DNS labels. The one definition every layer checks against, and with
 * `parseAgentId` the only maker of the `AgentId` brand.
 */
export function isAgentId(value: unknown): value is AgentId {
  return typeof value === 'string' && DNS_LABEL.test(value);
}

/**
 * The `AgentId` for an id that came in from outside (inventory, certificate, CLI or admin
 * argument), or `undefined` when it breaks the rules: the caller refuses it with its own
 * layer's error code.
 */
export function parseAgentId(value: unknown): AgentId | undefined {
  return isAgentId(value) ? value : undefined;
}

/** 40 (or, for a sha256 repository, 64) lowercase hex: the one rule for a `CommitSha` (docs/architecture.md, Conventions). */
export function isCommitSha(value: unknown): value is CommitSha {
  return typeof value === 'string' && COMMIT_SHA.test(value);
}

/** The `CommitSha` for an object id read from git or from a request, or `undefined` when it is not a full lowercase hex object id. */
export function parseCommitSha(value: unknown): CommitSha | undefined {
  return isCommitSha(value) ? value : undefined;
}
