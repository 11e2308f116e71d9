import { inspect } from 'node:util';
import { errnoCode } from '../lib/index.js';

/**
 * The shape of isomorphic-git's errors (`Errors.*`: a string `code` naming the class, and
 * `data`), which Node's system errors (`ECONNREFUSED`, ...) share.
 */
export interface CodedError extends Error {
  readonly code: string;
  readonly data?: Readonly<Record<string, unknown>>;
}

export function isCodedError(err: unknown): err is CodedError {
  return err instanceof Error && errnoCode(err) !== undefined;
}

/** isomorphic-git's "no such ref/object" error (`Errors.NotFoundError`), optionally about `what`. */
export function isNotFound(err: unknown, what?: string): boolean {
  if (!isCodedError(err) || err.code !== 'NotFoundError') return false;
  return what === undefined || err.data?.what === what;
}

/** A short, secret-free description of a transport failure for an error message. */
export function describeFailure(err: unknown, secrets: readonly string[]): string {
  if (isCodedError(err) && err.code === 'HttpError') {
    const status = err.data?.statusCode;
    const text = err.data?.statusMessage;
    return `HTTP ${typeof status === 'number' ? status : '?'}${typeof text === 'string' && text ? ` ${text}` : ''}`;
  }
  const message = err instanceof Error ? err.message : String(err);
  return scrub(message, secrets);
}

export function scrub(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) if (secret.length > 0) out = out.split(secret).join('***');
  return out;
}

/**
 * The error to keep as `cause`: the original, unless anything in it (message, stack,
 * data, nested causes) echoes a credential, in which case a scrubbed stand-in with the
 * same name, code and message shape. Logs serialize causes; credentials must not ride along.
 */
export function safeCause(err: unknown, secrets: readonly string[]): unknown {
  const live = secrets.filter((s) => s.length > 0);
  if (live.length === 0) return err;
  const rendered = inspect(err, { depth: 6, maxStringLength: 1_000_000 });
  if (!live.some((secret) => rendered.includes(secret))) return err;
  const message = scrub(err instanceof Error ? err.message : String(err), live);
  const standIn = new Error(message);
  standIn.name = err instanceof Error ? err.name : 'Error';
  if (isCodedError(err)) Object.defineProperty(standIn, 'code', { value: err.code, enumerable: true });
  standIn.stack = `${standIn.name}: ${message}\n    (stack withheld: it contained credentials)`;
  return standIn;
}
