/**
 * OpenSSH pattern lists (ssh_config(5) "PATTERNS"), as used by the allowed-signers
 * `principals` field and the `namespaces=` option: comma-separated patterns where `*`
 * matches any run of characters, `?` exactly one, and a leading `!` negates.
 * Matching is case-sensitive, as ssh-keygen does for signatures.
 */

/**
 * True when `value` matches the list: at least one positive pattern matches and no
 * negated one does (a matching negation wins, as in OpenSSH's match_pattern_list).
 */
export function matchPatternList(value: string, patterns: readonly string[]): boolean {
  let matched = false;
  for (const pattern of patterns) {
    const negated = pattern.startsWith('!');
    if (!matchPattern(value, negated ? pattern.slice(1) : pattern)) continue;
    if (negated) return false;
    matched = true;
  }
  return matched;
}

/**
 * Glob match without regular expressions: patterns come from configuration, and a
 * backtracking regex built from many `*` can take exponential time. This greedy walk
 * with one saved star position is O(value × pattern) at worst.
 */
export function matchPattern(value: string, pattern: string): boolean {
  let v = 0;
  let p = 0;
  let starP = -1;
  let starV = 0;
  while (v < value.length) {
    const c = pattern[p];
    if (c === '*') {
      starP = p++;
      starV = v;
    } else if (c !== undefined && (c === '?' || c === value[v])) {
      p++;
      v++;
    } else if (starP >= 0) {
      p = starP + 1;
      v = ++starV;
    } else {
      return false;
    }
  }
  while (pattern[p] === '*') p++;
  return p === pattern.length;
}
