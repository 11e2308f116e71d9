/**
 * git's allowed-signers file (ssh-keygen(1) "ALLOWED SIGNERS"): one signer per line,
 *
 *     principals [options] keytype base64 [comment]
 *
 * `principals` is a comma-separated pattern list, optionally in double quotes; options are
 * `namespaces="git,..."`, `valid-after="..."`, `valid-before="..."` and `cert-authority`.
 *
 * The file is the trust policy, so it is parsed strictly: any line ssh-keygen would refuse
 * (and a few it would take but we cannot honour) fails the whole file with
 * MALFORMED_ALLOWED_SIGNERS naming the line, rather than silently trusting something other
 * than what the operator wrote. Two deliberate departures, both failing closed:
 * - Key types the gate cannot verify (DSA, FIDO `sk-*` keys, certificates) and RSA keys
 *   under 2048 bits are refused at load time.
 * - `cert-authority` lines are parsed and kept, but they only ever vouch for SSH
 *   certificates, which the gate does not verify (such signatures are refused as
 *   UNSUPPORTED_SIGNATURE). So a CA line authorizes nothing here — exactly what ssh-keygen
 *   does for a plain-key signature — and a shared file that has one still loads.
 */
import { readFile } from 'node:fs/promises';
import { TrustError, errorMessage } from '../../domain/errors.js';
import { matchPatternList } from './pattern.js';
import {
  isKnownUnsupportedKeyType,
  isSupportedKeyType,
  parseSshPublicKey,
  sameKey,
  type SshPublicKey,
} from './ssh-key.js';

export interface AllowedSigner {
  /** 1-based line number in the file, for messages. */
  readonly line: number;
  /** Principal patterns as written (`*`, `?` and `!` keep their pattern meaning). */
  readonly principals: readonly string[];
  /** Patterns of `namespaces="..."`; undefined when absent, which allows every namespace. */
  readonly namespaces: readonly string[] | undefined;
  readonly validAfter: Date | undefined;
  readonly validBefore: Date | undefined;
  /** See the module comment: such a line never authorizes a plain key. */
  readonly certAuthority: boolean;
  readonly key: SshPublicKey;
  readonly comment: string | undefined;
}

export interface AllowedSigners {
  /** Where the list came from (a path), for messages. */
  readonly source: string;
  readonly signers: readonly AllowedSigner[];
}

/** Whether a key may sign in a namespace at a moment, and if not, why not. */
export type SignerDecision =
  | { readonly kind: 'allowed'; readonly signer: AllowedSigner }
  | { readonly kind: 'unknown-key' }
  | { readonly kind: 'namespace-excluded'; readonly lines: readonly number[] }
  | { readonly kind: 'outside-validity'; readonly lines: readonly number[] };

/** RSA keys below this size are refused in the policy file (OpenSSH itself accepts 1024). */
const RSA_POLICY_MIN_BITS = 2048;

type LineFail = (reason: string) => never;

/** Reads and parses an allowed-signers file. Unreadable files fail like malformed ones. */
export async function loadAllowedSigners(path: string): Promise<AllowedSigners> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new TrustError({
      code: 'MALFORMED_ALLOWED_SIGNERS',
      message: `cannot read allowed signers file ${path}: ${errorMessage(err)}`,
      cause: err,
    });
  }
  return parseAllowedSigners(text, path);
}

/** Parses allowed-signers text; `source` names it in errors. A list with no signer is refused. */
export function parseAllowedSigners(text: string, source = 'allowed signers'): AllowedSigners {
  const signers: AllowedSigner[] = [];
  text.split('\n').forEach((raw, index) => {
    const line = index + 1;
    const fail: LineFail = (reason) => {
      throw new TrustError({ code: 'MALFORMED_ALLOWED_SIGNERS', message: `${source}:${line}: ${reason}` });
    };
    const signer = parseLine(raw, line, fail);
    if (signer) signers.push(signer);
  });
  if (signers.length === 0) {
    throw new TrustError({
      code: 'MALFORMED_ALLOWED_SIGNERS',
      message: `${source}: lists no signers, so no commit could ever be trusted`,
    });
  }
  return { source, signers };
}

/**
 * Decides whether `key` may sign in `namespace` at time `at`, the way ssh-keygen checks
 * each line: the key must equal the line's key (CA lines never match a plain key), the
 * namespace must match `namespaces=` when present, and `at` must lie within
 * valid-after..valid-before. The first line that passes wins, in file order. When none
 * passes, the reason reported is the closest miss: a validity window over a namespace.
 */
export function authorizeKey(
  list: AllowedSigners,
  key: SshPublicKey,
  namespace: string,
  at: Date,
): SignerDecision {
  const sameKeyLines = list.signers.filter((s) => !s.certAuthority && sameKey(s.key, key));
  if (sameKeyLines.length === 0) return { kind: 'unknown-key' };
  const inNamespace = sameKeyLines.filter(
    (s) => s.namespaces === undefined || matchPatternList(namespace, s.namespaces),
  );
  if (inNamespace.length === 0) return { kind: 'namespace-excluded', lines: sameKeyLines.map((s) => s.line) };
  const valid = inNamespace.find((s) => isValidAt(s, at));
  if (valid) return { kind: 'allowed', signer: valid };
  return { kind: 'outside-validity', lines: inNamespace.map((s) => s.line) };
}

function isValidAt(signer: AllowedSigner, at: Date): boolean {
  if (signer.validAfter && at.getTime() < signer.validAfter.getTime()) return false;
  if (signer.validBefore && at.getTime() > signer.validBefore.getTime()) return false;
  return true;
}

function parseLine(raw: string, line: number, fail: LineFail): AllowedSigner | undefined {
  const text = raw.replace(/\r$/, '').replace(/^[ \t]+/, '');
  if (text === '' || text.startsWith('#')) return undefined;

  const [principalsField, afterPrincipals] = takePrincipals(text, fail);
  let rest = skipSpace(afterPrincipals);
  if (rest === '') fail('missing key');

  // As in ssh-keygen: a word that names a key type starts the key; anything else is options.
  let optionsField = '';
  if (!looksLikeKeyType(firstWord(rest))) {
    [optionsField, rest] = takeOptions(rest, fail);
    rest = skipSpace(rest);
    if (rest === '') fail('missing key after options');
  }

  const { key, comment } = parseKeyField(rest, fail);
  const options = parseOptions(optionsField, fail);
  return { line, principals: parsePrincipals(principalsField, fail), ...options, key, comment };
}

function takePrincipals(text: string, fail: LineFail): [field: string, rest: string] {
  if (text.startsWith('"')) {
    const close = text.indexOf('"', 1);
    if (close < 0) fail('unterminated quote in principals');
    const rest = text.slice(close + 1);
    if (rest !== '' && !/^[ \t]/.test(rest)) fail('quoted principals must be followed by a space');
    return [text.slice(1, close), rest];
  }
  const field = firstWord(text);
  return [field, text.slice(field.length)];
}

function parsePrincipals(field: string, fail: LineFail): string[] {
  const principals = field.split(',');
  if (principals.some((p) => p === '' || p === '!')) fail('empty principal in principals list');
  return principals;
}

/** Options run to the first space outside double quotes; `\"` inside quotes is literal. */
function takeOptions(text: string, fail: LineFail): [field: string, rest: string] {
  let quoted = false;
  let i = 0;
  for (; i < text.length; i++) {
    const c = text[i];
    if (!quoted && (c === ' ' || c === '\t')) break;
    if (quoted && c === '\\' && text[i + 1] === '"') i++;
    else if (c === '"') quoted = !quoted;
  }
  if (quoted) fail('missing end quote in options');
  return [text.slice(0, i), text.slice(i)];
}

type SignerOptions = Pick<AllowedSigner, 'namespaces' | 'validAfter' | 'validBefore' | 'certAuthority'>;

function parseOptions(field: string, fail: LineFail): SignerOptions {
  const options: { -readonly [K in keyof SignerOptions]: SignerOptions[K] } = {
    namespaces: undefined,
    validAfter: undefined,
    validBefore: undefined,
    certAuthority: false,
  };
  const seen = new Set<string>();
  for (const { name, value } of splitOptions(field, fail)) {
    if (seen.has(name)) fail(`option ${name} is given twice`);
    seen.add(name);
    if (name === 'cert-authority') {
      if (value !== undefined) fail('cert-authority takes no value');
      options.certAuthority = true;
    } else if (value === undefined) {
      fail(`option ${JSON.stringify(name)} is unknown or needs a quoted value`);
    } else if (name === 'namespaces') {
      options.namespaces = value.split(',');
    } else if (name === 'valid-after') {
      options.validAfter = parseSshTime(value, name, fail);
    } else if (name === 'valid-before') {
      options.validBefore = parseSshTime(value, name, fail);
    } else {
      fail(`unknown option ${JSON.stringify(name)}`);
    }
  }
  if (options.validAfter && options.validBefore && options.validBefore <= options.validAfter) {
    fail('valid-before is not after valid-after');
  }
  return options;
}

/** `name` or `name="value"`, comma-separated; names are case-insensitive as in OpenSSH. */
function splitOptions(field: string, fail: LineFail): Array<{ name: string; value: string | undefined }> {
  const out: Array<{ name: string; value: string | undefined }> = [];
  let i = 0;
  while (i < field.length) {
    const name = /^[A-Za-z0-9-]+/.exec(field.slice(i))?.[0];
    if (name === undefined) return fail(`invalid options at ${JSON.stringify(field.slice(i))}`);
    i += name.length;
    let value: string | undefined;
    if (field[i] === '=') [value, i] = readQuoted(field, i + 1, fail);
    out.push({ name: name.toLowerCase(), value });
    if (i === field.length) break;
    if (field[i] !== ',') fail(`expected "," after option ${name}`);
    if (++i === field.length) fail('options end with ","');
  }
  return out;
}

function readQuoted(text: string, start: number, fail: LineFail): [value: string, next: number] {
  if (text[start] !== '"') fail('option values must be in double quotes');
  let value = '';
  let i = start + 1;
  for (; i < text.length && text[i] !== '"'; i++) {
    if (text[i] === '\\' && text[i + 1] === '"') i++;
    value += text[i];
  }
  if (i >= text.length) fail('missing end quote in option value');
  return [value, i + 1];
}

/**
 * `YYYYMMDD[HHMM[SS]]` with an optional `Z` (or `UTC`) suffix for UTC. Without the suffix
 * the time is local to this process, exactly as ssh-keygen reads it — prefer `Z` in a
 * server's policy file so the verdict does not depend on the host's time zone.
 */
function parseSshTime(value: string, option: string, fail: LineFail): Date {
  const match = /^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})(\d{2})?)?(z|utc)?$/i.exec(value);
  if (!match) return fail(`invalid ${option} time ${JSON.stringify(value)}: expected YYYYMMDD[HHMM[SS]][Z]`);
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map((part) => Number(part ?? 0)) as [
    number, number, number, number, number, number,
  ];
  const utc = match[7] !== undefined;
  const date = utc
    ? new Date(Date.UTC(year, month - 1, day, hour, minute, second))
    : new Date(year, month - 1, day, hour, minute, second);
  // Date silently rolls 20230231 over into March; a policy date that is not a real date is a typo.
  const sameDay = utc
    ? date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day
    : date.getFullYear() === year && date.getMonth() === month - 1 && date.getDate() === day;
  if (year < 1970 || !sameDay || hour > 23 || minute > 59 || second > 60) {
    fail(`invalid ${option} time ${JSON.stringify(value)}`);
  }
  return date;
}

function parseKeyField(text: string, fail: LineFail): { key: SshPublicKey; comment: string | undefined } {
  const match = /^(\S+)[ \t]+(\S+)(?:[ \t]+(.*))?$/.exec(text);
  if (!match) return fail('missing key: expected "keytype base64"');
  const [, type = '', base64 = '', comment] = match;
  if (isKnownUnsupportedKeyType(type)) {
    fail(`unsupported key type ${type}: use ssh-ed25519 (or ssh-rsa, ecdsa-sha2-nistp256/384/521)`);
  }
  if (!isSupportedKeyType(type)) fail(`invalid key type ${JSON.stringify(type)}`);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64) || base64.length % 4 !== 0) fail('key is not valid base64');
  const key = parseSshPublicKey(Buffer.from(base64, 'base64'), (reason) => fail(`invalid ${type} key: ${reason}`));
  if (key.type !== type) fail(`key type field says ${type} but the key is ${key.type}`);
  if (key.type === 'ssh-rsa' && key.bits < RSA_POLICY_MIN_BITS) {
    fail(`RSA key of ${key.bits} bits is too weak: use at least ${RSA_POLICY_MIN_BITS} bits, or ssh-ed25519`);
  }
  return { key, comment: comment?.trim() || undefined };
}

/** Also true for unknown `ssh-*`/`ecdsa-*`/`sk-*` names, so a typo'd key type is reported as one. */
function looksLikeKeyType(word: string): boolean {
  return isSupportedKeyType(word) || isKnownUnsupportedKeyType(word) || /^(ssh|ecdsa|sk)-[^=]*$/.test(word);
}

function firstWord(text: string): string {
  return /^[^ \t]*/.exec(text)?.[0] ?? '';
}

function skipSpace(text: string): string {
  return text.replace(/^[ \t]+/, '');
}
