import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SourceError } from '../domain/errors.js';

/**
 * Where a config repository lives. `url` of a remote may carry credentials in its
 * userinfo: it is passed to the transport and nowhere else; everything that is shown
 * or stored uses `display`.
 */
export type RepositoryLocation =
  | { readonly kind: 'local'; readonly path: string; readonly display: string }
  | { readonly kind: 'remote'; readonly url: string; readonly display: string };

/**
 * Classifies `--repo`-style input: `http(s)://` is a smart-HTTP remote, `file://` and
 * anything without a scheme a local path (made absolute). Other transports (ssh, git,
 * scp-like `host:path`) are refused: isomorphic-git speaks smart HTTP only.
 */
export function parseRepositoryLocation(spec: string): RepositoryLocation {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(spec)?.[1]?.toLowerCase();
  if (scheme === 'http' || scheme === 'https') {
    let url: URL;
    try {
      url = new URL(spec);
    } catch (cause) {
      throw new SourceError({ code: 'REPO_UNREADABLE', message: `invalid repository URL ${redactUrl(spec)}`, cause });
    }
    return { kind: 'remote', url: url.href, display: redactUrl(url.href) };
  }
  if (scheme === 'file') {
    const path = fileURLToPath(spec);
    return { kind: 'local', path, display: path };
  }
  if (scheme !== undefined || /^[^/]*@[^/]*:/.test(spec)) {
    throw new SourceError({
      code: 'REPO_UNREADABLE',
      message: `unsupported repository location ${redactUrl(spec)}: use an http(s):// URL or a local path`,
    });
  }
  const path = isAbsolute(spec) ? spec : resolve(spec);
  return { kind: 'local', path, display: path };
}

/**
 * A URL safe to log or show: userinfo, query and fragment removed (tokens ride in all
 * three). From input that does not parse as a URL, the authority part up to its `@` is cut.
 */
export function redactUrl(raw: string): string {
  try {
    const url = new URL(raw);
    url.username = '';
    url.password = '';
    url.search = '';
    url.hash = '';
    return url.href;
  } catch {
    return raw.replace(/^([a-z][a-z0-9+.-]*:\/\/)?[^/?#]*@/i, '$1');
  }
}

/**
 * The secret a URL carries, for scrubbing text that may echo it: the password, or the
 * username when there is no password (a token passed as `https://<token>@host/`). A
 * username beside a password (`x-access-token`, `oauth2`) is not secret, and scrubbing
 * it would mangle unrelated text.
 */
export function urlSecrets(raw: string): string[] {
  try {
    const url = new URL(raw);
    const secret = url.password !== '' ? url.password : url.username;
    return secret === '' ? [] : [...new Set([secret, decodeURIComponent(secret)])];
  } catch {
    return [];
  }
}
