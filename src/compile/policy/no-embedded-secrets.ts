import type { Finding, PolicyContext, PolicyRule } from '../types.js';
import { isJsonObject, pointerOf, walk } from './json.js';

/**
 * No credentials in config: a bundle goes to every agent it compiles for, into git
 * history forever, and into logs and plan output. Secrets belong in a secret store,
 * referenced by name (`passwordRef: {secretName: db}`), never inlined.
 *
 * Every string in the document is scanned, `extensions` and `headers` included:
 * - by value: PEM private keys (`-----BEGIN … PRIVATE KEY-----`, any algorithm,
 *   encrypted or not, and PGP private key blocks), AWS access key ids (`AKIA`/`ASIA` +
 *   16 uppercase letters or digits) and HTTP `Bearer`/`Basic` credentials;
 * - by key: a key whose name *ends* in password, passwd, secret, token, apikey,
 *   privatekey, secretaccesskey, credential or authorization (ignoring case, `-`, `_`,
 *   spaces and a plural `s`) holding a non-empty string, or a list of them. Ending,
 *   not containing, is what keeps `secretName`, `tokenTtl` and `passwordRef` legal;
 *   numbers, booleans and maps under such keys are not literals and pass.
 * Object keys are scanned by value too (a key id pasted as a map key); that finding
 * points at the enclosing object, because the key itself is the secret.
 *
 * Messages never contain the value: they are logged and printed.
 */
export const noEmbeddedSecrets: PolicyRule = {
  id: 'no-embedded-secrets',
  check({ document }: PolicyContext): readonly Finding[] {
    const findings: Finding[] = [];
    walk(document, (node) => {
      const { value, key } = node;
      if (typeof value === 'string') {
        const found = secretInText(value);
        if (found !== undefined) findings.push({ path: pointerOf(node), message: `value holds ${found}${ADVICE}` });
        else if (key !== undefined && isSecretKey(key) && value.trim() !== '') {
          // The key name is safe to show and helps find the line; the value is not.
          findings.push({ path: pointerOf(node), message: `key "${key}" holds a literal secret${ADVICE}` });
        }
      } else if (isJsonObject(value)) {
        for (const k of Object.keys(value)) {
          const found = secretInText(k);
          if (found !== undefined) findings.push({ path: pointerOf(node), message: `a key of this map is ${found}${ADVICE}` });
        }
      }
    });
    return findings;
  },
};

const ADVICE = ': config is copied to agents, git history and logs; reference a secret store instead (value not shown)';

const PEM_PRIVATE_KEY = /-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----/;
const AWS_ACCESS_KEY_ID = /(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])/;
const HTTP_CREDENTIALS = /^\s*(?:bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}\s*$/i;

// One pass that rules out almost every string, so the precise patterns run only on
// candidates: this rule scans every string of every agent's document.
const CANDIDATE = /PRIVATE KEY|AKIA|ASIA|^\s*(?:bearer|basic)\s/i;

/** What kind of secret a string contains, as a noun phrase, or undefined. */
function secretInText(text: string): string | undefined {
  if (!CANDIDATE.test(text)) return undefined;
  if (PEM_PRIVATE_KEY.test(text)) return 'a PEM private key';
  if (AWS_ACCESS_KEY_ID.test(text)) return 'an AWS access key id';
  if (HTTP_CREDENTIALS.test(text)) return 'HTTP Bearer/Basic credentials';
  return undefined;
}

/** The key-name suffixes of the rule's contract, with optional `-`, `_` or space between words. */
const SECRET_KEY_NAME =
  /(?:password|passwd|secret|token|api[-_\s]*key|private[-_\s]*key|secret[-_\s]*access[-_\s]*key|credential|authorization)s?$/i;

export function isSecretKey(key: string): boolean {
  return SECRET_KEY_NAME.test(key);
}
