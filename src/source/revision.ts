import { SourceError } from '../domain/errors.js';

/** One ancestry step after a revision's name: `~n` (n first parents) or `^n` (the n-th parent, `^0` itself). */
export type RevisionStep =
  | { readonly kind: 'ancestor'; readonly count: number }
  | { readonly kind: 'parent'; readonly index: number };

/** A parsed revision: a name (ref, tag, `HEAD` or a full/short object id) and ancestry steps. */
export interface RevisionSpec {
  readonly name: string;
  readonly steps: readonly RevisionStep[];
}

/**
 * Parses the subset of gitrevisions(7) that `meshcfg plan --rev/--base` needs:
 * `<name>` followed by any of `~`, `~n`, `^`, `^n`, `^{}`, `^{commit}` (e.g. `HEAD~1`,
 * `origin/main`, `v1.2^2`). `@` means `HEAD`.
 *
 * The name becomes a path under the git directory when looked up, so it is held to
 * git's ref-name rules here (no `..`, no leading `/`, no control characters) before
 * anything touches the disk.
 */
export function parseRevision(input: string): RevisionSpec {
  const match = /^([^~^]+)((?:~\d*|\^\d*|\^\{(?:commit)?\})*)$/.exec(input);
  const rawName = match?.[1];
  if (!match || rawName === undefined || !isValidRefName(rawName)) {
    throw new SourceError({ code: 'REVISION_NOT_FOUND', message: `invalid revision ${JSON.stringify(input)}` });
  }
  const steps: RevisionStep[] = [];
  for (const [token, tilde, caret] of (match[2] ?? '').matchAll(/~(\d*)|\^\{(?:commit)?\}|\^(\d*)/g)) {
    // `^{}` and `^{commit}` peel to a commit, which every lookup does anyway.
    if (token.startsWith('^{')) continue;
    const digits = tilde ?? caret ?? '';
    const n = digits === '' ? 1 : Number.parseInt(digits, 10);
    steps.push(tilde !== undefined ? { kind: 'ancestor', count: n } : { kind: 'parent', index: n });
  }
  return { name: rawName === '@' ? 'HEAD' : rawName, steps };
}

function isValidRefName(name: string): boolean {
  if (name === '@') return true;
  if (name.length > 255) return false;
  if (/[\u0000-\u0020\u007f~^:?*[\\]/.test(name)) return false;
  if (name.includes('..') || name.includes('//') || name.includes('@{')) return false;
  if (name.startsWith('/') || name.endsWith('/') || name.endsWith('.') || name.endsWith('.lock')) return false;
  return name.split('/').every((part) => part !== '' && !part.startsWith('.'));
}
