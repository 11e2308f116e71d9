/**
 * Raw git commit objects (the content after `commit <size>\0`, as isomorphic-git's
 * `readObject({ format: 'content' })` returns it): separating the signature from the bytes
 * it signs, and reading the few fields a verified commit carries.
 *
 * Works on bytes, not strings: the signed payload must be byte-identical to what git
 * signed, whatever encoding the author's name or the message are in.
 */
import { createHash } from 'node:crypto';
import { parseCommitSha } from '../../domain/agent-id.js';
import { TrustError } from '../../domain/errors.js';
import type { CommitSha } from '../../domain/types.js';
import type { DetachedSignature, SignatureKind } from './verifier.js';

/** The repository's object format: which hash names objects and which header holds the signature. */
export type ObjectFormat = 'sha1' | 'sha256';

export interface SplitCommit {
  /** The commit without any signature header: exactly the bytes git signs and verifies. */
  readonly payload: Uint8Array;
  /** The signature for this object format, or undefined for an unsigned commit. */
  readonly signature: DetachedSignature | undefined;
}

export interface CommitFields {
  readonly tree: string;
  readonly parents: readonly CommitSha[];
  /** The committer timestamp (what git verifies key validity against). */
  readonly committedAt: Date;
  /** The message as stored (UTF-8 decoded; the `encoding` header is not honoured). */
  readonly message: string;
}

const SIGNATURE_HEADER: Readonly<Record<ObjectFormat, DetachedSignature['header']>> = {
  sha1: 'gpgsig',
  sha256: 'gpgsig-sha256',
};

const HEX_ID: Readonly<Record<ObjectFormat, RegExp>> = { sha1: /^[0-9a-f]{40}$/, sha256: /^[0-9a-f]{64}$/ };

const NEWLINE = 0x0a;
const SPACE = 0x20;
const utf8 = new TextDecoder('utf-8');

/** Byte-preserving decoding (ISO-8859-1) for header names and armor, which git keeps ASCII. */
function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}

/**
 * Splits the signature header off a commit, following git's
 * parse_buffer_signed_by_header(): the header of this object format (`gpgsig` or
 * `gpgsig-sha256`) plus its continuation lines (one leading space) is the signature; any
 * other `gpgsig*` header (the other format's signature) is dropped from the payload too;
 * everything else, message included, is kept byte for byte. Headers end at the first
 * empty line, so a message line that starts with "gpgsig" is never mistaken for one.
 */
export function splitCommitSignature(raw: Uint8Array, objectFormat: ObjectFormat = 'sha1'): SplitCommit {
  const ownHeader = SIGNATURE_HEADER[objectFormat];
  const kept: Uint8Array[] = [];
  const signatureLines: Uint8Array[] = [];
  let inside: 'payload' | 'own-signature' | 'other-signature' = 'payload';

  for (let start = 0; start < raw.length; ) {
    const newline = raw.indexOf(NEWLINE, start);
    const end = newline === -1 ? raw.length : newline + 1;
    const line = raw.subarray(start, end);
    if (line[0] === NEWLINE) {
      kept.push(raw.subarray(start)); // the blank line and the message
      break;
    }
    if (line[0] === SPACE && inside !== 'payload') {
      if (inside === 'own-signature') signatureLines.push(line.subarray(1));
    } else {
      const key = headerKey(line);
      if (key === ownHeader && line[key.length] === SPACE) {
        inside = 'own-signature';
        signatureLines.push(line.subarray(key.length + 1));
      } else if (key.startsWith('gpgsig')) {
        inside = 'other-signature';
      } else {
        inside = 'payload';
        kept.push(line);
      }
    }
    start = end;
  }

  const payload = Buffer.concat(kept);
  if (signatureLines.length === 0) return { payload, signature: undefined };
  const armored = latin1(Buffer.concat(signatureLines));
  return { payload, signature: { kind: signatureKind(armored), header: ownHeader, armored } };
}

/** Recognises a signature by its armor, with the same prefixes git uses to pick a verifier. */
export function signatureKind(armored: string): SignatureKind {
  if (armored.startsWith('-----BEGIN SSH SIGNATURE-----')) return 'ssh';
  if (armored.startsWith('-----BEGIN PGP SIGNATURE-----') || armored.startsWith('-----BEGIN PGP MESSAGE-----')) {
    return 'openpgp';
  }
  if (armored.startsWith('-----BEGIN SIGNED MESSAGE-----')) return 'x509';
  return 'unknown';
}

/**
 * Reads tree, parents, committer time and message from a commit (signed payload or raw
 * object; the fields are the same). Requires git's header order — `tree`, then `parent`s —
 * and one well-formed `committer` line; anything else is MALFORMED_COMMIT.
 */
export function parseCommitFields(commit: Uint8Array, objectFormat: ObjectFormat = 'sha1'): CommitFields {
  const text = utf8.decode(commit);
  const blank = text.indexOf('\n\n');
  const headerLines = (blank === -1 ? text : text.slice(0, blank)).split('\n');
  const message = blank === -1 ? '' : text.slice(blank + 2);
  const id = HEX_ID[objectFormat];

  const tree = /^tree (\S+)$/.exec(headerLines[0] ?? '')?.[1];
  if (tree === undefined || !id.test(tree)) malformedCommit('it does not start with a valid tree line');
  const parents: CommitSha[] = [];
  let i = 1;
  for (; headerLines[i]?.startsWith('parent ') === true; i++) {
    const parent = headerLines[i]!.slice('parent '.length);
    if (!id.test(parent)) malformedCommit(`invalid parent ${JSON.stringify(parent)}`);
    parents.push(commitSha(parent));
  }
  const committers = headerLines.slice(i).filter((line) => line.startsWith('committer '));
  if (committers.length !== 1) malformedCommit(`it has ${committers.length} committer lines, expected 1`);
  return { tree, parents, committedAt: committerTime(committers[0]!), message };
}

/** The object id git gives these content bytes: H("commit <size>\0" ‖ content). */
export function commitObjectId(raw: Uint8Array, objectFormat: ObjectFormat = 'sha1'): CommitSha {
  return commitSha(createHash(objectFormat).update(`commit ${raw.length}\0`).update(raw).digest('hex'));
}

/** A hex id this file has checked (or computed) as a `CommitSha`. */
function commitSha(hex: string): CommitSha {
  return parseCommitSha(hex) ?? malformedCommit(`${JSON.stringify(hex)} is not a commit id`);
}

/** `committer Name <email> <unix seconds> <+hhmm>` — the time is the part after the last `>`. */
function committerTime(line: string): Date {
  const match = /> (\d{1,15}) [+-]\d{4}$/.exec(line);
  if (!match) malformedCommit('committer line has no valid timestamp');
  return new Date(Number(match[1]) * 1000);
}

function headerKey(line: Uint8Array): string {
  const space = line.indexOf(SPACE);
  return latin1(line.subarray(0, space === -1 ? line.length : space)).replace(/\n$/, '');
}

function malformedCommit(reason: string): never {
  throw new TrustError({ code: 'MALFORMED_COMMIT', message: `malformed commit object: ${reason}` });
}
