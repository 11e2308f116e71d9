import { spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** The real git smart-HTTP server program, run as a CGI script per request. */
const GIT_HTTP_BACKEND = '/usr/lib/git-core/git-http-backend';

export interface GitHttpServerOptions {
  /** When set, every request must carry these Basic credentials (else 401), to test credential handling. */
  readonly basicAuth?: { readonly username: string; readonly password: string };
}

export interface GitHttpServer {
  /** `http://127.0.0.1:<port>/<repoName>`, with `user:password@` when basic auth is on and `withCredentials`. */
  url(repoName: string, options?: { withCredentials?: boolean }): string;
  /** Stops accepting connections and ends open ones. */
  close(): Promise<void>;
  /** Requests served so far (a live count). */
  readonly requests: number;
  /** Of those, requests whose body came `Content-Encoding: gzip` (git gzips large protocol v0 requests). */
  readonly gzippedRequests: number;
}

/**
 * Serves every repository under `projectRoot` over git's smart-HTTP protocol with the
 * real `git http-backend` (as CGI), on 127.0.0.1 and a free port. Push directly to the
 * repositories on disk; clients see the change on their next fetch.
 */
export async function startGitHttpServer(
  projectRoot: string,
  options: GitHttpServerOptions = {},
): Promise<GitHttpServer> {
  let requests = 0;
  let gzippedRequests = 0;
  const server = createServer((req, res) => {
    requests += 1;
    if (req.headers['content-encoding'] === 'gzip') gzippedRequests += 1;
    if (options.basicAuth && !authorized(req, options.basicAuth)) {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="git"' }).end();
      return;
    }
    runBackend(projectRoot, req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    url(repoName, { withCredentials = true } = {}) {
      const auth = options.basicAuth && withCredentials
        ? `${encodeURIComponent(options.basicAuth.username)}:${encodeURIComponent(options.basicAuth.password)}@`
        : '';
      return `http://${auth}127.0.0.1:${port}/${repoName}`;
    },
    close() {
      return new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      });
    },
    get requests() {
      return requests;
    },
    get gzippedRequests() {
      return gzippedRequests;
    },
  };
}

function authorized(req: IncomingMessage, expected: { username: string; password: string }): boolean {
  const header = req.headers.authorization ?? '';
  const match = /^Basic (.+)$/i.exec(header);
  if (!match?.[1]) return false;
  const [username, ...rest] = Buffer.from(match[1], 'base64').toString('utf8').split(':');
  return username === expected.username && rest.join(':') === expected.password;
}

function runBackend(projectRoot: string, req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    GIT_PROJECT_ROOT: projectRoot,
    GIT_HTTP_EXPORT_ALL: '1',
    GIT_CONFIG_NOSYSTEM: '1',
    HOME: projectRoot,
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_PROTOCOL: 'HTTP/1.1',
    PATH_INFO: decodeURIComponent(url.pathname),
    QUERY_STRING: url.search.slice(1),
    REQUEST_METHOD: req.method ?? 'GET',
    CONTENT_TYPE: req.headers['content-type'] ?? '',
    REMOTE_ADDR: req.socket.remoteAddress ?? '127.0.0.1',
    // git clients gzip large upload-pack requests; the backend inflates them itself.
    HTTP_CONTENT_ENCODING: req.headers['content-encoding'] ?? '',
    GIT_PROTOCOL: typeof req.headers['git-protocol'] === 'string' ? req.headers['git-protocol'] : '',
  };
  // Without CONTENT_LENGTH the backend reads stdin to EOF, which is what a chunked body needs.
  const length = req.headers['content-length'];
  if (length !== undefined) env.CONTENT_LENGTH = length;

  const cgi = spawn(GIT_HTTP_BACKEND, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  req.pipe(cgi.stdin);
  cgi.stdin.on('error', () => {
    // The backend may exit before reading the whole body (e.g. on a bad request).
  });
  let stderr = '';
  cgi.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });

  // CGI output: header lines, a blank line, then the body, which is streamed through.
  let head = Buffer.alloc(0);
  let headersSent = false;
  cgi.stdout.on('data', (chunk: Buffer) => {
    if (headersSent) {
      res.write(chunk);
      return;
    }
    head = Buffer.concat([head, chunk]);
    const split = findHeaderEnd(head);
    if (!split) return;
    const { status, headers } = parseCgiHeaders(head.subarray(0, split.start).toString('latin1'));
    res.writeHead(status, headers);
    headersSent = true;
    const rest = head.subarray(split.end);
    if (rest.length > 0) res.write(rest);
  });
  cgi.on('close', (code) => {
    if (!headersSent) {
      res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end(`git http-backend exited with ${String(code)}: ${stderr}`);
      return;
    }
    res.end();
  });
  cgi.on('error', (err) => {
    if (!headersSent) res.writeHead(500);
    res.end(String(err));
  });
  res.on('close', () => {
    if (cgi.exitCode === null) cgi.kill();
  });
}

function findHeaderEnd(buf: Buffer): { start: number; end: number } | null {
  const crlf = buf.indexOf('\r\n\r\n');
  const lf = buf.indexOf('\n\n');
  if (crlf !== -1 && (lf === -1 || crlf < lf)) return { start: crlf, end: crlf + 4 };
  if (lf !== -1) return { start: lf, end: lf + 2 };
  return null;
}

function parseCgiHeaders(text: string): { status: number; headers: Record<string, string> } {
  let status = 200;
  const headers: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10) || 500;
    else headers[name] = value;
  }
  return { status, headers };
}
