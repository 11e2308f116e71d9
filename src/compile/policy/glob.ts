/**
 * Destination globs for `policy.allowedDestinations`.
 *
 * Semantics (the contract users read in the README):
 * - `*` matches one or more characters within one DNS label: anything but `.` and `:`.
 *   `*.internal` matches `api.internal`, not `a.b.internal` and not `internal`.
 * - `**` (or any longer run of `*`) matches one or more characters across labels:
 *   anything but `:`. `**.internal` matches `a.b.internal`, not `internal`.
 * - Every other character matches itself; matching is case-insensitive (DNS names
 *   are) and anchored at both ends.
 * - A glob without `:` is matched against the destination's host (port stripped);
 *   a glob with `:` against the whole `host:port`, so `db.internal:5432` admits only
 *   that port and `db.internal:*` any port.
 */
export interface DestinationMatcher {
  readonly glob: string;
  matches(destination: string): boolean;
}

export function compileDestinationGlob(glob: string): DestinationMatcher {
  const regex = globToRegExp(glob);
  const withPort = glob.includes(':');
  return {
    glob,
    matches: (destination) => regex.test(withPort ? destination : hostOf(destination)),
  };
}

/** The host of `host:port`; a destination without a numeric port is all host. */
export function hostOf(destination: string): string {
  return destination.replace(/:\d+$/, '');
}

export function globToRegExp(glob: string): RegExp {
  let source = '';
  for (let i = 0; i < glob.length; ) {
    if (glob[i] === '*') {
      let j = i;
      while (glob[j] === '*') j++;
      source += j - i >= 2 ? '[^:]+' : '[^.:]+';
      i = j;
    } else {
      source += glob[i]!.replace(/[\\^$.|?*+()[\]{}]/g, '\\$&');
      i++;
    }
  }
  return new RegExp(`^${source}$`, 'i');
}

// One compiled list per settings object: every agent of a compilation shares the same
// `allowedDestinations` array, so each glob compiles once per commit. A WeakMap lets a
// superseded commit's matchers be collected with its settings (no global growth).
const compiledLists = new WeakMap<readonly unknown[], readonly DestinationMatcher[]>();

export function compileDestinationGlobs(globs: readonly unknown[]): readonly DestinationMatcher[] {
  let matchers = compiledLists.get(globs);
  if (matchers === undefined) {
    matchers = globs.filter((g): g is string => typeof g === 'string').map(compileDestinationGlob);
    compiledLists.set(globs, matchers);
  }
  return matchers;
}
