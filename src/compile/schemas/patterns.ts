/**
 * The string shapes the schemas check, each with the hint a user sees when a value
 * does not match. The schemas reference `.pattern`; `schema.ts` looks the hint up by
 * the pattern text, so a pattern and its explanation cannot drift apart.
 *
 * Patterns run with ajv's `u` flag. They are anchored and free of nested ambiguous
 * quantifiers, because they run on repository content for every agent.
 */
export interface StringShape {
  readonly pattern: string;
  /** Completes "must be …". */
  readonly hint: string;
}

const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?';
const PORT = '(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])';

export const shapes = {
  /** DNS name or IPv4 address, a colon, and a port 1–65535. IPv6 literals are not supported. */
  hostPort: {
    pattern: `^${LABEL}(?:\\.${LABEL})*:${PORT}$`,
    hint: 'host:port with a DNS name or IPv4 address and a port from 1 to 65535, e.g. "payments.internal:443"',
  },
  /** SPIFFE trust-domain characters (SPIFFE ID spec §2.1). */
  trustDomain: {
    pattern: '^[a-z0-9._-]+$',
    hint: 'a SPIFFE trust domain: lowercase letters, digits, ".", "-" and "_", e.g. "prod.example.org"',
  },
  /** Units in descending order, each at most once, at least one: 90s, 10m, 1h30m, 2d. */
  duration: {
    pattern: '^(?=[0-9])(?:[0-9]+d)?(?:[0-9]+h)?(?:[0-9]+m)?(?:[0-9]+s)?$',
    hint: 'a duration such as "90s", "10m", "1h30m" or "2d" (units d, h, m, s in that order)',
  },
  /** Five whitespace-separated cron fields: minute hour day-of-month month day-of-week. */
  cron: {
    pattern: '^[0-9A-Za-z*?,/#-]+(?:[ \\t]+[0-9A-Za-z*?,/#-]+){4}$',
    hint: 'a five-field cron schedule "minute hour day-of-month month day-of-week", e.g. "0 9 * * MON-FRI"',
  },
  /** Host globs for policy.allowedDestinations; semantics in policy/glob.ts. */
  destinationGlob: {
    pattern: '^[A-Za-z0-9_*-]+(?:\\.[A-Za-z0-9_*-]+)*(?::(?:[0-9]+|\\*))?$',
    hint: 'a host glob such as "*.internal", "**.svc.cluster.local" or "api.example.com:443"',
  },
  /** RFC 9110 `token`: the characters an HTTP field name may use. */
  headerName: {
    pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$",
    hint: 'an HTTP header name (letters, digits and !#$%&\'*+.^_`|~-)',
  },
} as const satisfies Record<string, StringShape>;

const hintByPattern: ReadonlyMap<string, string> = new Map(
  Object.values(shapes).map((s: StringShape) => [s.pattern, s.hint]),
);

/** The user-facing explanation for a schema pattern, if it is one of ours. */
export function hintForPattern(pattern: string): string | undefined {
  return hintByPattern.get(pattern);
}

/** TLS versions the schema accepts. Which of them are *safe* is policy (min-tls-version), not shape. */
export const TLS_VERSIONS = ['1.0', '1.1', '1.2', '1.3'] as const;
