import type { JsonValue } from '../../domain/types.js';
import type { Finding, PolicyContext, PolicyRule } from '../types.js';
import { pointerOf, walk } from './json.js';

/** TLS 1.0 and 1.1 are deprecated (RFC 8996); anything older is SSL. */
const MINIMUM: TlsVersion = { major: 1, minor: 2 };

interface TlsVersion {
  readonly major: number;
  readonly minor: number;
}

/**
 * Blocks TLS below 1.2 wherever a TLS version is configured. The schema's keys are
 * `mtls.minTlsVersion` and `mtls.maxTlsVersion`, but the whole document is scanned
 * for version-bearing keys (any case and `-`/`_` spelling of minTlsVersion,
 * maxTlsVersion, tlsMinimumProtocolVersion, tlsVersion, …) so a downgrade cannot be
 * smuggled in through `extensions`. A *maximum* below 1.2 is a downgrade just like a
 * minimum: it caps every handshake at a broken version.
 *
 * Versions compare as numbers (major, then minor), never as strings, and YAML numbers
 * (`minTlsVersion: 1.1` unquoted) count too: the schema reports their type, this rule
 * still reports the risk.
 */
export const minTlsVersion: PolicyRule = {
  id: 'min-tls-version',
  check({ document }: PolicyContext): readonly Finding[] {
    const findings: Finding[] = [];
    walk(document, (node) => {
      const { key, value } = node;
      if (key === undefined || node.inArray || !TLS_VERSION_KEY.test(key)) return;
      const version = parseTlsVersion(value);
      if (version === undefined || compare(version, MINIMUM) >= 0) return;
      const shown = version.major === 0 ? 'SSL' : `TLS ${version.major}.${version.minor}`;
      findings.push({
        path: pointerOf(node),
        message: `${key} is ${shown}, below TLS 1.2: a protocol downgrade to versions with known attacks (RFC 8996); use "1.2" or "1.3"`,
      });
    });
    return findings;
  },
};

/** minTlsVersion, min-tls-version, tls_minimum_protocol_version, TLS_MAX_VERSION, tlsVersion, … */
const TLS_VERSION_KEY =
  /^(?:tls[-_]?(?:(?:min|max|minimum|maximum)[-_]?)?(?:protocol[-_]?)?version|(?:min|max|minimum|maximum)[-_]?tls[-_]?(?:protocol[-_]?)?version)$/i;

/**
 * "1.2", "TLSv1.2", "TLSv1_2", "TLS1.3", 1.2 (a YAML number) → {1, 2}; "SSLv3" → {0, 3}
 * so every SSL version sorts below every TLS version. Anything else is not a version
 * this rule can judge (the schema reports it).
 */
export function parseTlsVersion(value: JsonValue | undefined): TlsVersion | undefined {
  if (typeof value === 'number') value = String(value);
  if (typeof value !== 'string') return undefined;
  const ssl = /^\s*ssl\s*v?\s*(\d+)\s*$/i.exec(value);
  if (ssl) return { major: 0, minor: Number(ssl[1]) };
  const tls = /^\s*(?:tls\s*v?\s*)?(\d+)(?:[._](\d+))?\s*$/i.exec(value);
  if (!tls) return undefined;
  return { major: Number(tls[1]), minor: Number(tls[2] ?? '0') };
}

function compare(a: TlsVersion, b: TlsVersion): number {
  return a.major - b.major || a.minor - b.minor;
}
