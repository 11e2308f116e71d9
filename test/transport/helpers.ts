import { createHash, randomBytes } from 'node:crypto';
import { after, afterEach, before, beforeEach } from 'node:test';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type ChannelCredentials,
  type Client,
  type ClientDuplexStream,
  credentials,
  makeClientConstructor,
  Metadata,
  type ServiceError,
} from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import type { AgentId, Digest } from '../../src/domain/types.js';
import { createCa, EnrollmentCa } from '../../src/pki/ca.js';
import { openDataDir } from '../../src/pki/data-dir.js';
import type {
  AckOutcome,
  AckReport,
  ActiveReport,
  AgentIdentity,
  Authorization,
  Delivery,
  DistributionBackend,
  EnrollmentResult,
  TransportHooks,
  UnauthorizedReason,
} from '../../src/transport/backend.js';
import { DistributionClient, EnrollmentClient, type AgentMessageMsg, type ServerMessageMsg } from '../../src/transport/proto.js';
import { GrpcServer, type GrpcServerOptions } from '../../src/transport/server.js';
import { forgeCsr, rsaKey } from '../pki/helpers.js';
import { aid, aids, cid } from '../helpers/ids.js';

export const TRUST_DOMAIN = 'example.org';

export interface AgentCredentials {
  readonly agentId: AgentId;
  readonly keyPem: string;
  readonly certPem: string;
}

/** A real data directory (CA, server certificate) and a way to issue agent certificates from it. */
export interface Pki {
  readonly dir: string;
  readonly caPem: string;
  readonly serverCertPem: string;
  readonly serverKeyPem: string;
  readonly ca: EnrollmentCa;
  issue(agentId: AgentId, options?: { notBefore?: Date; ttlMs?: number }): AgentCredentials;
  /** Same trust domain, another CA: only the signature tells its certificates apart. */
  foreign(agentId: AgentId): Promise<AgentCredentials>;
  cleanup(): Promise<void>;
}

export async function makePki(): Promise<Pki> {
  const dir = await mkdtemp(join(tmpdir(), 'meshcfg-transport-'));
  const dataDir = await openDataDir({ dataDir: dir, trustDomain: TRUST_DOMAIN, serverNames: ['localhost', '127.0.0.1'] });
  const caKeyPem = await readFile(dataDir.paths.caKey, 'utf8');
  const material = { certPem: dataDir.ca.certificatePem, keyPem: caKeyPem };
  const issueFrom = (ca: EnrollmentCa, agentId: AgentId, ttlMs?: number): AgentCredentials => {
    const key = rsaKey();
    const cert = ca.issueAgentCertificate({ csrPem: forgeCsr(key), agentId: aid(agentId), ...(ttlMs === undefined ? {} : { ttlMs }) });
    return { agentId, keyPem: key.privateKeyPem, certPem: cert.certPem };
  };
  return {
    dir,
    caPem: dataDir.ca.certificatePem,
    serverCertPem: dataDir.serverCertPem,
    serverKeyPem: dataDir.serverKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    ca: dataDir.ca,
    issue: (agentId, options = {}) => {
      const ca = options.notBefore === undefined ? dataDir.ca : new EnrollmentCa(material, { now: () => options.notBefore as Date });
      return issueFrom(ca, agentId, options.ttlMs);
    },
    foreign: async (agentId) => issueFrom(new EnrollmentCa(await createCa({ trustDomain: TRUST_DOMAIN })), agentId),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

// ---- A fake backend: in-memory, records every call ----

export type BackendCall =
  | { readonly method: 'authorize'; readonly agentId: AgentId }
  | { readonly method: 'reportActive'; readonly agentId: AgentId; readonly active: ActiveReport | null }
  | { readonly method: 'ack'; readonly agentId: AgentId; readonly ack: AckReport }
  | { readonly method: 'disconnected'; readonly agentId: AgentId }
  | { readonly method: 'enroll'; readonly token: string; readonly csrPem: string }
  | { readonly method: 'renew'; readonly agentId: AgentId; readonly csrPem: string };

export class FakeBackend implements DistributionBackend {
  readonly calls: BackendCall[] = [];
  /** Agents `authorize` knows; everyone else is `unknown-agent`. */
  readonly known = new Set<AgentId>(aids(['edge-1', 'edge-2']));
  readonly revoked = new Set<AgentId>();
  readonly current = new Map<AgentId, Delivery>();
  readonly watchers = new Map<AgentId, Set<(delivery: Delivery) => void>>();
  ackOutcome: AckOutcome = { kind: 'recorded' };
  enrollWith: (token: string, csrPem: string) => Promise<EnrollmentResult> = () => Promise.reject(new Error('enroll not set up'));
  renewWith: (identity: AgentIdentity, csrPem: string) => Promise<EnrollmentResult> = () => Promise.reject(new Error('renew not set up'));

  authorize(identity: AgentIdentity): Authorization {
    this.calls.push({ method: 'authorize', agentId: identity.agentId });
    if (this.revoked.has(identity.agentId)) return { ok: false, reason: 'revoked', message: `certificate of ${identity.agentId} is revoked` };
    if (!this.known.has(identity.agentId)) return { ok: false, reason: 'unknown-agent', message: `${identity.agentId} is not in the inventory` };
    return { ok: true };
  }

  watch(agentId: AgentId, listener: (delivery: Delivery) => void): () => void {
    const set = this.watchers.get(agentId) ?? new Set();
    set.add(listener);
    this.watchers.set(agentId, set);
    const current = this.current.get(agentId);
    if (current !== undefined) listener(current);
    return () => set.delete(listener);
  }

  desired(agentId: AgentId): Delivery | null {
    return this.current.get(agentId) ?? null;
  }

  reportActive(identity: AgentIdentity, active: ActiveReport | null): void {
    this.calls.push({ method: 'reportActive', agentId: identity.agentId, active });
  }

  ack(identity: AgentIdentity, ack: AckReport): AckOutcome {
    this.calls.push({ method: 'ack', agentId: identity.agentId, ack });
    return this.ackOutcome;
  }

  disconnected(agentId: AgentId): void {
    this.calls.push({ method: 'disconnected', agentId });
  }

  enroll(token: string, csrPem: string): Promise<EnrollmentResult> {
    this.calls.push({ method: 'enroll', token, csrPem });
    return this.enrollWith(token, csrPem);
  }

  renew(identity: AgentIdentity, csrPem: string): Promise<EnrollmentResult> {
    this.calls.push({ method: 'renew', agentId: identity.agentId, csrPem });
    return this.renewWith(identity, csrPem);
  }

  /** Sets the agent's desired delivery and answers its open watches, like the snapshot cache. */
  push(agentId: AgentId, delivery: Delivery): void {
    this.current.set(agentId, delivery);
    for (const listener of [...(this.watchers.get(agentId) ?? [])]) listener(delivery);
  }

  watcherCount(agentId: AgentId): number {
    return this.watchers.get(agentId)?.size ?? 0;
  }

  callsOf<M extends BackendCall['method']>(method: M): Extract<BackendCall, { method: M }>[] {
    return this.calls.filter((call): call is Extract<BackendCall, { method: M }> => call.method === method);
  }

  reset(): void {
    this.calls.length = 0;
    this.known.clear();
    this.known.add(aid('edge-1')).add(aid('edge-2'));
    this.revoked.clear();
    this.current.clear();
    this.watchers.clear();
    this.ackOutcome = { kind: 'recorded' };
  }
}

let generation = 0;

export function delivery(agentId: AgentId, options: { bytes?: Uint8Array; nonce?: string } = {}): Delivery {
  generation += 1;
  const bytes = options.bytes ?? Buffer.from(JSON.stringify({ agent: agentId, generation }));
  return {
    commit: cid(randomBytes(20).toString('hex')),
    digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest,
    generation,
    bytes,
    signature: `{"signed":"for ${agentId}"}`,
    nonce: options.nonce ?? `nonce-${generation}`,
    baseline: false,
  };
}

// ---- Hooks and logs, recorded ----

export class Recorder {
  readonly handshakes: { result: 'ok' | 'failed'; detail: string }[] = [];
  readonly unauthorized: { reason: UnauthorizedReason; agentId?: AgentId; message: string }[] = [];
  readonly streams: { event: 'open' | 'close'; agentId: AgentId }[] = [];
  readonly logs: { level: 'info' | 'warn'; obj: object; msg?: string }[] = [];

  readonly hooks: TransportHooks = {
    onHandshake: (result, detail) => this.handshakes.push({ result, detail }),
    onUnauthorized: (reason, detail) => this.unauthorized.push({ reason, ...detail }),
    onStream: (event, agentId) => this.streams.push({ event, agentId }),
  };

  readonly logger = {
    info: (obj: object, msg?: string) => this.logs.push({ level: 'info', obj, ...(msg === undefined ? {} : { msg }) }),
    warn: (obj: object, msg?: string) => this.logs.push({ level: 'warn', obj, ...(msg === undefined ? {} : { msg }) }),
  };

  reset(): void {
    this.handshakes.length = 0;
    this.unauthorized.length = 0;
    this.streams.length = 0;
    this.logs.length = 0;
  }
}

export async function startServer(pki: Pki, backend: DistributionBackend, recorder: Recorder, extra: Partial<GrpcServerOptions> = {}): Promise<GrpcServer> {
  return GrpcServer.start({
    address: '127.0.0.1:0',
    trustDomain: TRUST_DOMAIN,
    serverCertPem: pki.serverCertPem,
    serverKeyPem: pki.serverKeyPem,
    caPem: pki.caPem,
    backend,
    hooks: recorder.hooks,
    logger: recorder.logger,
    ...extra,
  });
}

// ---- Real grpc-js clients ----

/** Server pinning is the agent's business (src/transport/client.ts); these trust the CA only. */
export function clientCredentials(pki: Pki, agent?: AgentCredentials): ChannelCredentials {
  return credentials.createSsl(
    Buffer.from(pki.caPem),
    agent === undefined ? null : Buffer.from(agent.keyPem),
    agent === undefined ? null : Buffer.from(agent.certPem),
    { checkServerIdentity: () => undefined },
  );
}

/** No subchannel sharing between clients: each test's credentials get their own connection. */
const CLIENT_OPTIONS = { 'grpc.use_local_subchannel_pool': 1, 'grpc.ssl_target_name_override': 'localhost' };

export function distributionClient(server: GrpcServer, creds: ChannelCredentials): Client {
  return new DistributionClient(`127.0.0.1:${server.port}`, creds, CLIENT_OPTIONS);
}

export function enrollmentClient(server: GrpcServer, creds: ChannelCredentials): Client {
  return new EnrollmentClient(`127.0.0.1:${server.port}`, creds, CLIENT_OPTIONS);
}

const HealthClient = makeClientConstructor(healthService as unknown as Parameters<typeof makeClientConstructor>[0], 'grpc.health.v1.Health');

export function healthClient(server: GrpcServer, creds: ChannelCredentials): Client {
  return new HealthClient(`127.0.0.1:${server.port}`, creds, CLIENT_OPTIONS);
}

const DEADLINE_MS = 5_000;

/** A unary call as a promise; rejects with the ServiceError. */
export function unary<Res>(client: Client, method: string, request: object): Promise<Res> {
  const fn = (client as unknown as Record<string, (...args: unknown[]) => unknown>)[method];
  if (fn === undefined) throw new Error(`no method ${method}`);
  return new Promise((resolve, reject) => {
    fn.call(client, request, new Metadata(), { deadline: Date.now() + DEADLINE_MS }, (err: ServiceError | null, res: Res) => {
      if (err !== null) reject(err);
      else resolve(res);
    });
  });
}

/** Waits for a unary call to fail and returns its status. */
export async function unaryError(client: Client, method: string, request: object): Promise<ServiceError> {
  try {
    await unary(client, method, request);
  } catch (err) {
    return err as ServiceError;
  }
  throw new Error(`${method} succeeded; a failure was expected`);
}

export interface AgentStreamHandle {
  readonly call: ClientDuplexStream<AgentMessageMsg, ServerMessageMsg>;
  /** Every message received so far. */
  readonly received: ServerMessageMsg[];
  /** Resolves with the nth message (1-based), waiting for it. */
  nth(n: number): Promise<ServerMessageMsg>;
  /** Resolves with the final status: `{ code, details }`. */
  readonly ended: Promise<{ code: number; details: string }>;
}

export function openStream(client: Client): AgentStreamHandle {
  const call = (client as unknown as { Stream(): ClientDuplexStream<AgentMessageMsg, ServerMessageMsg> }).Stream();
  const received: ServerMessageMsg[] = [];
  const waiters: { n: number; resolve: (m: ServerMessageMsg) => void; reject: (e: Error) => void }[] = [];
  let ended: { code: number; details: string } | undefined;
  const endedPromise = new Promise<{ code: number; details: string }>((resolve) => {
    call.on('status', (status: { code: number; details: string }) => {
      ended = { code: status.code, details: status.details };
      resolve(ended);
      for (const w of waiters.splice(0)) w.reject(new Error(`stream ended (${status.code} ${status.details}) before message ${w.n}`));
    });
  });
  // The status event carries the outcome; the error event would otherwise be unhandled.
  call.on('error', () => undefined);
  call.on('data', (message: ServerMessageMsg) => {
    received.push(message);
    for (const w of [...waiters]) {
      if (received.length >= w.n) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(received[w.n - 1] as ServerMessageMsg);
      }
    }
  });
  return {
    call,
    received,
    ended: endedPromise,
    nth: (n) =>
      new Promise((resolve, reject) => {
        const have = received[n - 1];
        if (have !== undefined) resolve(have);
        else if (ended !== undefined) reject(new Error(`stream ended (${ended.code} ${ended.details}) before message ${n}`));
        else waiters.push({ n, resolve, reject });
      }),
  };
}

export function hello(agentId = '', active?: { commit: string; digest: string; generation: number }): AgentMessageMsg {
  return { hello: { agent_id: agentId, agent_version: 'test', active: active ?? null } };
}

export function ackOf(bundle: NonNullable<ServerMessageMsg['bundle']>, extra: Partial<{ commit: string; status: string; agent_id: string; error: string }> = {}): AgentMessageMsg {
  return {
    ack: {
      commit: bundle.commit,
      digest: bundle.digest,
      generation: bundle.generation,
      nonce: bundle.nonce,
      status: 'APPLIED',
      error: '',
      agent_id: '',
      ...extra,
    } as NonNullable<AgentMessageMsg['ack']>,
  };
}

/** Polls until `check` holds, for effects that land after a network round trip. */
export async function eventually(check: () => boolean, what: string, timeoutMs = 3_000): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

// ---- One server per suite ----

/** What `useServerSuite` gives a describe block. `pki` and `server` exist from its `before` hook on. */
export interface ServerSuite {
  readonly backend: FakeBackend;
  readonly recorder: Recorder;
  /** Clients opened by a test; closed after it. */
  readonly clients: Client[];
  readonly pki: Pki;
  readonly server: GrpcServer;
}

/**
 * Registers the hooks every transport suite shares: a fresh PKI and server before the suite,
 * backend and recorder reset before each test, the test's clients closed after it, and the
 * server shut down and the PKI removed after the suite. Call inside a `describe`.
 */
export function useServerSuite(): ServerSuite {
  let pki: Pki | undefined;
  let server: GrpcServer | undefined;
  const suite: ServerSuite = {
    backend: new FakeBackend(),
    recorder: new Recorder(),
    clients: [],
    get pki(): Pki {
      if (pki === undefined) throw new Error('the suite PKI exists from its before hook on');
      return pki;
    },
    get server(): GrpcServer {
      if (server === undefined) throw new Error('the suite server exists from its before hook on');
      return server;
    },
  };
  before(async () => {
    pki = await makePki();
    server = await startServer(pki, suite.backend, suite.recorder);
  });
  after(async () => {
    await server?.shutdown(1_000);
    await pki?.cleanup();
  });
  beforeEach(() => {
    suite.backend.reset();
    suite.recorder.reset();
  });
  afterEach(() => {
    for (const client of suite.clients.splice(0)) client.close();
  });
  return suite;
}
