import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type sendUnaryData,
  Server,
  ServerCredentials,
  type ServerDuplexStream,
  type ServerUnaryCall,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { canonicalBytes } from '../../src/lib/index.js';
import { sha256Digest } from '../../src/lib/index.js';
import type { Digest } from '../../src/domain/types.js';
import { type DataDir, openDataDir } from '../../src/pki/data-dir.js';
import { BundleSigner, encodeDelivery } from '../../src/signing/index.js';
import {
  type AckMsg,
  type AgentMessageMsg,
  type BundleMsg,
  distributionService,
  type EnrollRequestMsg,
  type EnrollResponseMsg,
  enrollmentService,
  type FetchRequestMsg,
  type FetchResponseMsg,
  type RenewRequestMsg,
  type ServerMessageMsg,
} from '../../src/transport/proto.js';
import { aid, cid } from '../helpers/ids.js';
import type { AgentId } from '../../src/domain/types.js';

export const COMMIT_1 = 'a'.repeat(40);
export const COMMIT_2 = 'b'.repeat(40);
export const COMMIT_3 = 'c'.repeat(40);

export function p256(): { privateKey: KeyObject; publicKey: KeyObject; publicKeyPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { privateKey, publicKey, publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

export function configBytes(agent: string, version: number): Uint8Array {
  return canonicalBytes({ agent, version, routes: [{ destination: 'payments', timeoutMs: 250 }] });
}

export interface Fleet {
  /** Signs a generation for every agent in `versions` (agent → config version) and returns each agent's bundle message. */
  sign(generation: number, commit: string, versions: Record<string, number>): Record<string, BundleMsg>;
}

/** A real BundleSigner over a P-256 key: each call signs one generation for a small fleet. */
export function fleetSigner(privateKey: KeyObject | string, now: () => number = Date.now, ttlMs = 60 * 60 * 1000): Fleet {
  const signer = new BundleSigner({ privateKey, now, ttlMs });
  let nonce = 0;
  return {
    sign(generation, commit, versions) {
      const bytesOf = new Map<string, Uint8Array>();
      const agents: { agentId: AgentId; digest: Digest }[] = [];
      for (const [agentId, version] of Object.entries(versions)) {
        const bytes = configBytes(agentId, version);
        bytesOf.set(agentId, bytes);
        agents.push({ agentId: aid(agentId), digest: sha256Digest(bytes) });
      }
      const signed = signer.signGeneration({ generation, commit: cid(commit), agents });
      const out: Record<string, BundleMsg> = {};
      for (const { agentId, digest } of agents) {
        const delivery = signed.forAgent(aid(agentId));
        if (delivery === undefined) throw new Error(`no delivery for ${agentId}`);
        nonce += 1;
        out[agentId] = {
          commit,
          digest,
          generation,
          bytes: Buffer.from(bytesOf.get(agentId) as Uint8Array),
          signature: encodeDelivery(delivery),
          nonce: `n-${nonce}`,
          baseline: false,
        };
      }
      return out;
    },
  };
}

export async function tempDir(prefix = 'meshcfg-agent-'): Promise<{ path: string; remove(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

// ---- A tiny real gRPC server for client-side tests ----

export interface TestServerHandlers {
  enroll?(request: EnrollRequestMsg, dataDir: DataDir): EnrollResponseMsg | { code: number; details: string };
  renew?(request: RenewRequestMsg, dataDir: DataDir, peerAgentId: string | undefined): EnrollResponseMsg | { code: number; details: string };
  stream?(call: ServerDuplexStream<AgentMessageMsg, ServerMessageMsg>): void;
  fetch?(request: FetchRequestMsg): FetchResponseMsg;
  report?(ack: AckMsg): void;
}

export interface TestServer {
  readonly dataDir: DataDir;
  readonly port: number;
  readonly address: string;
  close(): Promise<void>;
}

/**
 * A real grpc-js server with a certificate from `openDataDir` (the server's own data directory
 * code), serving whatever handlers a test gives. `requireClientCert` decides whether the TLS
 * layer asks for and verifies client certificates (Enroll needs none; Renew and Distribution do).
 */
export async function startTestServer(options: {
  dataDirPath: string;
  requireClientCert: boolean;
  handlers: TestServerHandlers;
  dataDir?: DataDir;
  serverNames?: string[];
}): Promise<TestServer> {
  const dataDir =
    options.dataDir ??
    (await openDataDir({ dataDir: options.dataDirPath, trustDomain: 'example.org', serverNames: options.serverNames ?? ['localhost', '127.0.0.1'] }));
  const server = new Server();
  const { handlers } = options;
  const answer = <T>(callback: sendUnaryData<T>, result: T | { code: number; details: string }): void => {
    if (typeof (result as { code?: unknown }).code === 'number' && 'details' in (result as object)) {
      const { code, details } = result as { code: number; details: string };
      callback({ code, details, name: 'Error', message: details });
    } else callback(null, result as T);
  };
  const enrollment: UntypedServiceImplementation = {
    Enroll: (call: ServerUnaryCall<EnrollRequestMsg, EnrollResponseMsg>, callback: sendUnaryData<EnrollResponseMsg>) => {
      if (handlers.enroll === undefined) return callback({ code: 12, details: 'unimplemented', name: 'Error', message: 'unimplemented' });
      answer(callback, handlers.enroll(call.request, dataDir));
    },
    Renew: (call: ServerUnaryCall<RenewRequestMsg, EnrollResponseMsg>, callback: sendUnaryData<EnrollResponseMsg>) => {
      if (handlers.renew === undefined) return callback({ code: 12, details: 'unimplemented', name: 'Error', message: 'unimplemented' });
      const peer = call.getAuthContext().sslPeerCertificate;
      const uri = /URI:spiffe:\/\/example\.org\/agent\/([a-z0-9-]+)/.exec(peer?.subjectaltname ?? '')?.[1];
      answer(callback, handlers.renew(call.request, dataDir, uri));
    },
  };
  const distribution: UntypedServiceImplementation = {
    Stream: (call: ServerDuplexStream<AgentMessageMsg, ServerMessageMsg>) => {
      if (handlers.stream === undefined) return call.end();
      handlers.stream(call);
    },
    Fetch: (call: ServerUnaryCall<FetchRequestMsg, FetchResponseMsg>, callback: sendUnaryData<FetchResponseMsg>) => {
      callback(null, handlers.fetch?.(call.request) ?? { not_modified: true });
    },
    Report: (call: ServerUnaryCall<AckMsg, Record<string, never>>, callback: sendUnaryData<Record<string, never>>) => {
      handlers.report?.(call.request);
      callback(null, {});
    },
  };
  server.addService(enrollmentService, enrollment);
  server.addService(distributionService, distribution);
  const credentials = ServerCredentials.createSsl(
    Buffer.from(dataDir.ca.certificatePem),
    [{ private_key: Buffer.from(dataDir.serverKey.export({ type: 'pkcs8', format: 'pem' })), cert_chain: Buffer.from(dataDir.serverCertPem) }],
    options.requireClientCert,
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', credentials, (err, bound) => (err === null ? resolve(bound) : reject(err))),
  );
  return {
    dataDir,
    port,
    address: `127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 2_000).unref();
      }),
  };
}

/** The standard Enroll handler: one good token for edge-1, UNAUTHENTICATED otherwise. */
export function enrollWithToken(goodToken: string, agentId = 'edge-1'): NonNullable<TestServerHandlers['enroll']> {
  return (request, dataDir) => {
    if (request.token !== goodToken) return { code: 16, details: 'enrollment token unknown, expired or used' };
    const issued = dataDir.ca.issueAgentCertificate({ csrPem: Buffer.from(request.csr_pem).toString('utf8'), agentId: aid(agentId) });
    return {
      certificate_pem: Buffer.from(issued.certPem),
      ca_pem: Buffer.from(dataDir.ca.certificatePem),
      signing_key_pem: Buffer.from(dataDir.signingPublicKeyPem),
      agent_id: agentId,
      expires_at: issued.notAfter.toISOString(),
    };
  };
}
