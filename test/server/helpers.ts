import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { parseServerConfig, type ServerConfig } from '../../src/server/config.js';
import type { StartTransport, TransportHandle } from '../../src/server/server.js';
import type { DistributionBackend } from '../../src/transport/backend.js';
import { GitRepo, makeSshSigner, tempDir, writeAllowedSigners, type SshSigner } from '../helpers/git.js';

const EXAMPLE_CONFIG = fileURLToPath(new URL('../../deploy/example-config', import.meta.url));

/** deploy/example-config as path → content. */
export function exampleConfigFiles(): Record<string, string> {
  const files: Record<string, string> = {};
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const full = join(dir, name);
      if (statSync(full).isDirectory()) walk(full);
      else files[relative(EXAMPLE_CONFIG, full)] = readFileSync(full, 'utf8');
    }
  };
  walk(EXAMPLE_CONFIG);
  return files;
}

/** The example's base with plaintext mTLS: violates mtls-strict-in-secure-zone for the pci agents. */
export const PERMISSIVE_BASE = 'mtls:\n  mode: PERMISSIVE\n  minTlsVersion: "1.2"\nidentity:\n  trustDomain: example.org\n';

export interface Fixture {
  readonly root: string;
  readonly repo: GitRepo;
  readonly signer: SshSigner;
  /** A key that is not in allowed_signers. */
  readonly stranger: SshSigner;
  readonly allowedSigners: string;
  readonly dataDir: string;
  /** The first commit: deploy/example-config, signed by `signer` ('' with `{ empty: true }` until `commitExample`). */
  first: string;
  /** Commits deploy/example-config signed by `signer` and makes it `first`. */
  commitExample(): string;
  cleanup(): void;
}

/** A real git repository holding the example config, signed with a real SSH key. */
export function makeFixture({ empty = false }: { empty?: boolean } = {}): Fixture {
  const { path: root, cleanup } = tempDir('meshcfg-server-');
  const signer = makeSshSigner(root, 'ops@example.org');
  const stranger = makeSshSigner(root, 'mallory@example.org');
  const allowedSigners = writeAllowedSigners(join(root, 'allowed_signers'), [{ signer }]);
  const repo = GitRepo.init(join(root, 'config'));
  const fixture: Fixture = {
    root,
    repo,
    signer,
    stranger,
    allowedSigners,
    dataDir: join(root, 'data'),
    first: '',
    commitExample: () => (fixture.first = repo.write(exampleConfigFiles()).commit('initial config', signer)),
    cleanup,
  };
  if (!empty) fixture.commitExample();
  return fixture;
}

export function configFor(
  fixture: Fixture,
  overrides: { trustDomain?: string; webhook?: string; bundleTtl?: string; admin?: string; grpc?: string; adminTls?: unknown } = {},
): ServerConfig {
  return parseServerConfig(
    {
      trustDomain: overrides.trustDomain ?? 'example.org',
      repo: { url: fixture.repo.dir, branch: 'main', pollInterval: '1h' },
      trust: { allowedSigners: fixture.allowedSigners },
      listen: { grpc: overrides.grpc ?? '127.0.0.1:0', admin: overrides.admin ?? '127.0.0.1:0' },
      dataDir: fixture.dataDir,
      tls: { serverNames: ['localhost', '127.0.0.1'] },
      ...(overrides.bundleTtl === undefined ? {} : { bundles: { ttl: overrides.bundleTtl } }),
      ...(overrides.webhook === undefined ? {} : { alerts: { webhook: overrides.webhook } }),
      ...(overrides.adminTls === undefined ? {} : { adminTls: overrides.adminTls }),
    },
    { baseDir: fixture.root },
  );
}

export const silentLogger = pino({ level: 'silent' });

/** A pino logger at debug that keeps every line, parsed. */
export function capturingLogger(): { logger: Logger; lines: () => Array<Record<string, unknown>>; text: () => string } {
  let text = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString('utf8');
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), text: () => text, lines: () => text.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

/** A transport that listens nowhere: records the backend it was given and its serving status. */
export function fakeTransport(): { start: StartTransport; backend: () => DistributionBackend; serving: () => boolean | null; rechecked: () => readonly string[] } {
  let backend: DistributionBackend | undefined;
  let serving: boolean | null = null;
  const rechecked: string[] = [];
  const start: StartTransport = async (options) => {
    backend = options.backend;
    const handle: TransportHandle = {
      port: 65000,
      setServing: (b) => {
        serving = b;
      },
      recheckStreams: (agentId) => {
        rechecked.push(agentId);
      },
      shutdown: async () => {
        serving = false;
      },
    };
    return handle;
  };
  return {
    start,
    backend: () => {
      if (backend === undefined) throw new Error('transport not started');
      return backend;
    },
    serving: () => serving,
    rechecked: () => rechecked,
  };
}

/** A local webhook receiver that records every JSON body; answers `failFirst` requests with 503. */
export async function webhookReceiver(failFirst = 0): Promise<{ url: string; bodies: unknown[]; requests: () => number; waitFor(n: number): Promise<void>; close(): Promise<void> }> {
  const bodies: unknown[] = [];
  let requests = 0;
  const waiters: Array<() => void> = [];
  const server: Server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests += 1;
      if (requests <= failFirst) {
        res.writeHead(503).end();
        return;
      }
      bodies.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      res.writeHead(204).end();
      for (const w of waiters.splice(0)) w();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    bodies,
    requests: () => requests,
    waitFor: async (n) => {
      const deadline = Date.now() + 10_000;
      while (bodies.length < n) {
        if (Date.now() > deadline) throw new Error(`webhook got ${bodies.length} of ${n} alerts`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 200);
        });
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A settable clock. */
export function manualClock(start = new Date()): { now: () => Date; advance(ms: number): void } {
  let current = start.getTime();
  return { now: () => new Date(current), advance: (ms) => void (current += ms) };
}
