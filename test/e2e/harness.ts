import { createHash } from 'node:crypto';
import { credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DistributionClient, EnrollmentClient } from '../../src/transport/proto.js';
import { meshcfg, type Run } from '../helpers/cli.js';
import { after, before } from 'node:test';
import { GitRepo, makeSshSigner, type SshSigner, tempDir, writeAllowedSigners } from '../helpers/git.js';
import { startGitHttpServer, type GitHttpServer } from '../helpers/http-git-server.js';
import { freePort, MeshcfgProcess, waitFor } from '../helpers/process.js';

/** How long one admin API request may take before the test fails naming it (the server answers in milliseconds). */
const REQUEST_TIMEOUT_MS = 20_000;

/**
 * A real meshcfg deployment on loopback for end-to-end tests: a signed config repository
 * served over smart HTTP, `meshcfg serve` as its own process, and agents enrolled and run
 * with the real CLI.
 */

export const INVENTORY = `agents:
  - { id: edge-1, labels: { zone: pci, env: prod, ring: canary } }
  - { id: edge-2, labels: { zone: public, env: prod } }
  - { id: edge-3, labels: { zone: public, env: prod } }
  - { id: edge-4, labels: { zone: public, env: staging } }
`;

export const CONFIG_FILES: Readonly<Record<string, string>> = {
  'meshcfg.yaml': 'trustDomain: example.org\npolicy:\n  secureZones: [pci]\n  allowedDestinations: ["**.svc.cluster.local"]\n',
  'inventory/edge.yaml': INVENTORY,
  'config/base/00-mtls.yaml': 'mtls: { mode: STRICT, minTlsVersion: "1.2" }\nidentity: { trustDomain: example.org }\n',
  'baseline/00-safe.yaml': 'mtls: { mode: STRICT, minTlsVersion: "1.3" }\n',
};

export function sha256File(path: string): string {
  return `sha256:${createHash('sha256').update(readFileSync(path)).digest('hex')}`;
}

export interface AgentView {
  id: string;
  state: string;
  desired: { commit: string; digest: string; generation: number; baseline?: boolean } | null;
  active: { commit: string; digest: string; generation: number; at: string } | null;
  connected: boolean;
  wave?: string;
  quarantine?: { since: string; reason: string; by: string } | null;
  lastRejection?: { commit: string; digest: string; error: string; at: string } | null;
  certExpiry: string | null;
  lastSeen: string | null;
}

export class Deployment {
  server: MeshcfgProcess | null = null;
  readonly agents = new Map<string, MeshcfgProcess>();
  /** `trust.keyValidity` written to server.yaml; null leaves the server's default. */
  keyValidity: 'now' | 'commit-time' | null = null;

  constructor(
    readonly root: string,
    readonly work: GitRepo,
    readonly bareDir: string,
    readonly repoUrl: string,
    readonly signer: SshSigner,
    readonly allowedSigners: string,
    readonly ports: { grpc: number; admin: number },
    private readonly http: GitHttpServer | null = null,
  ) {}

  /**
   * A deployment under `root`: a signer allowed by the trust policy, a working repository
   * with `files` committed (signed), its bare clone served over smart HTTP, and free ports.
   * The server is not started. `stopAll()` also stops the HTTP server.
   */
  static async create(root: string, files: Readonly<Record<string, string>>): Promise<{ deployment: Deployment; first: string }> {
    const alice = makeSshSigner(root, 'alice@example.org');
    const allowed = writeAllowedSigners(join(root, 'allowed_signers'), [{ signer: alice }]);
    const seed = GitRepo.init(join(root, 'seed'));
    seed.write(files);
    const first = seed.commit('first config', alice);
    const bare = join(root, 'served', 'config.git');
    seed.git('clone', '-q', '--bare', seed.dir, bare);
    seed.git('remote', 'add', 'origin', bare);
    const http = await startGitHttpServer(join(root, 'served'));
    const ports = { grpc: await freePort(), admin: await freePort() };
    return { deployment: new Deployment(root, seed, bare, http.url('config.git'), alice, allowed, ports, http), first };
  }

  get dataDir(): string {
    return join(this.root, 'data');
  }

  get configPath(): string {
    return join(this.root, 'server.yaml');
  }

  get adminUrl(): string {
    return `http://127.0.0.1:${this.ports.admin}`;
  }

  get grpcAddress(): string {
    return `127.0.0.1:${this.ports.grpc}`;
  }

  /** More top-level lines for server.yaml (e.g. `enrollment: { certificateTtl: 1m }`), written by the next `startServer`. */
  readonly extraConfig: string[] = [];

  /** Environment of the next `startServer` (e.g. `MESHCFG_POSTGRES_URL`), over the test's own. */
  readonly serverEnv: Record<string, string> = {};

  writeConfig(): void {
    writeFileSync(
      this.configPath,
      [
        ...this.extraConfig,
        'trustDomain: example.org',
        `repo: { url: "${this.repoUrl}", branch: main, pollInterval: 200ms }`,
        `trust: { allowedSigners: "${this.allowedSigners}"${this.keyValidity === null ? '' : `, keyValidity: ${this.keyValidity}`} }`,
        `listen: { grpc: "${this.grpcAddress}", admin: "127.0.0.1:${this.ports.admin}" }`,
        'dataDir: ./data',
        'tls: { serverNames: [localhost, 127.0.0.1] }',
        '',
      ].join('\n'),
    );
  }

  async startServer(): Promise<void> {
    this.writeConfig();
    this.server = new MeshcfgProcess(['serve', '--config', this.configPath], this.serverEnv);
    await waitFor(
      'the server to be ready',
      async () => {
        if (this.server?.child.exitCode !== null) throw new Error(`serve exited: ${this.server?.stderr}`);
        const res = await fetch(`${this.adminUrl}/readyz`).catch(() => null);
        return res?.status === 200;
      },
      30_000,
    );
  }

  async stopServer(): Promise<number | null> {
    const code = (await this.server?.stop()) ?? null;
    this.server = null;
    return code;
  }

  /** `kill -9` of the server: no shutdown step runs. Resolves when the process is gone. */
  async killServer(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (server === null || server.child.exitCode !== null || server.child.signalCode !== null) return;
    server.child.kill('SIGKILL');
    await server.exited;
  }

  /** Runs `meshcfg <args> --admin … --admin-token-file …` (operator verbs). */
  operator(...args: string[]): Promise<Run> {
    return meshcfg(...args, '--admin', this.adminUrl, '--admin-token-file', join(this.dataDir, 'admin-token'));
  }

  adminToken(): string {
    return readFileSync(join(this.dataDir, 'admin-token'), 'utf8').trim();
  }

  async admin<T>(path: string, init: RequestInit = {}): Promise<{ status: number; body: T }> {
    const res = await fetch(`${this.adminUrl}${path}`, {
      // A server that never answers fails the test here, naming the request, instead of at the suite's timeout.
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      ...init,
      headers: { authorization: `Bearer ${this.adminToken()}`, 'content-type': 'application/json', ...(init.headers ?? {}) },
    }).catch((err: unknown) => {
      throw new Error(`${init.method ?? 'GET'} ${path}: ${(err as Error).message}\n${this.serverLogTail()}`, { cause: err });
    });
    const text = await res.text();
    return { status: res.status, body: (text && res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text) as T };
  }

  async agentView(id: string): Promise<AgentView | undefined> {
    const { body } = await this.admin<AgentView[]>('/api/v1/agents');
    return body.find((a) => a.id === id);
  }

  async metric(name: string, labels: string): Promise<number> {
    const res = await fetch(`${this.adminUrl}/metrics`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) }).catch((err: unknown) => {
      throw new Error(`GET /metrics: ${(err as Error).message}\n${this.serverLogTail()}`, { cause: err });
    });
    const text = await res.text();
    const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
    return line ? Number(line.split(' ').pop()) : 0;
  }

  /** The last lines the server logged (for a failure message). */
  serverLogTail(lines = 40): string {
    const server = this.server;
    if (server === null) return '(no server running)';
    return `server log (last ${lines} lines):\n${`${server.stdout}${server.stderr}`.trimEnd().split('\n').slice(-lines).join('\n')}`;
  }

  async pin(): Promise<string> {
    const run = await meshcfg('ca', 'pin', '--data-dir', this.dataDir);
    if (run.code !== 0) throw new Error(`ca pin failed: ${run.stderr}`);
    return run.stdout.trim();
  }

  async token(agentId: string, ttl = '1h'): Promise<string> {
    const run = await meshcfg(
      'token', 'create', agentId, '--ttl', ttl, '--admin', this.adminUrl, '--admin-token-file', join(this.dataDir, 'admin-token'),
    );
    if (run.code !== 0) throw new Error(`token create failed: ${run.stderr}`);
    return run.stdout.trim();
  }

  agentDir(id: string): string {
    return join(this.root, 'agents', id);
  }

  agentFile(id: string): string {
    return join(this.root, 'agents', `${id}.json`);
  }

  async enroll(id: string, options: { token?: string; pin?: string; dir?: string } = {}): Promise<Run> {
    return meshcfg(
      'enroll',
      '--server', this.grpcAddress,
      '--pin', options.pin ?? (await this.pin()),
      '--token', options.token ?? (await this.token(id)),
      '--dir', options.dir ?? this.agentDir(id),
    );
  }

  /** `meshcfg agent` for an enrolled agent; `out` defaults to {@link agentFile}. */
  startAgent(id: string, extra: readonly string[] = [], env: NodeJS.ProcessEnv = {}, out: string = this.agentFile(id)): MeshcfgProcess {
    const agent = new MeshcfgProcess(['agent', '--server', this.grpcAddress, '--dir', this.agentDir(id), '--out', out, ...extra], env);
    this.agents.set(id, agent);
    return agent;
  }

  /**
   * Commits (signed unless `signer` is null) in the working clone and pushes to the served
   * repository. `date` sets the author and committer dates (a backdated commit).
   */
  push(files: Readonly<Record<string, string>>, message: string, signer: SshSigner | null = this.signer, options: { readonly date?: string } = {}): string {
    this.work.write(files);
    const sha = this.work.commit(message, signer ?? undefined, [], options);
    this.work.git('push', '-q', '--force', 'origin', 'HEAD:main');
    return sha;
  }

  /** Waits until the agent's file holds the digest the server wants it to have for `commit`. */
  async waitSynced(id: string, commit: string, timeoutMs = 20_000): Promise<AgentView> {
    return waitFor(
      `${id} to be SYNCED on ${commit.slice(0, 12)}`,
      async () => {
        const view = await this.agentView(id);
        if (view?.state !== 'SYNCED' || view.active?.commit !== commit) return undefined;
        if (!existsSync(this.agentFile(id)) || sha256File(this.agentFile(id)) !== view.desired?.digest) return undefined;
        return view;
      },
      timeoutMs,
    );
  }

  /** Replicas made from this deployment: `stopAll` stops them first (their files live under its root). */
  private readonly replicas: Deployment[] = [];

  async stopAll(): Promise<void> {
    await Promise.all(this.replicas.map((r) => r.stopAll()));
    await Promise.all([...this.agents.values()].map((a) => a.stop()));
    await this.stopServer();
    await this.http?.close();
  }

  /**
   * Another replica of this deployment's server under `<root>/<name>`: the same repository,
   * trust policy, server.yaml extras and environment (so the same PostgreSQL), its own ports,
   * and a copy of this one's data directory (CA, server key, signing key, admin token — "a data
   * directory copied from the first replica is a valid start for the next one"). Start this
   * deployment's server once first, so the data directory exists. Not started.
   */
  async replica(name: string): Promise<Deployment> {
    const root = join(this.root, name);
    const ports = { grpc: await freePort(), admin: await freePort() };
    const replica = new Deployment(root, this.work, this.bareDir, this.repoUrl, this.signer, this.allowedSigners, ports);
    replica.keyValidity = this.keyValidity;
    replica.extraConfig.push(...this.extraConfig);
    Object.assign(replica.serverEnv, this.serverEnv);
    cpSync(this.dataDir, replica.dataDir, { recursive: true });
    this.replicas.push(replica);
    return replica;
  }
}

/** meshcfg.yaml with a canary wave and the rest; any rejection halts; reverts are expedited. */
export function rolloutMeshcfg(canaryBake?: string): string {
  return [
    'trustDomain: example.org',
    'policy:',
    '  secureZones: [pci]',
    '  allowedDestinations: ["**.svc.cluster.local"]',
    'rollout:',
    '  waves:',
    `    - { name: canary, match: { ring: canary }${canaryBake === undefined ? '' : `, bake: ${canaryBake}`} }`,
    '    - { name: rest, percent: 100 }',
    '  successRatio: 1',
    '  maxNackRatio: 0',
    '  expediteReverts: true',
    '',
  ].join('\n');
}

/** The body of `GET /api/v1/rollout`. */
export interface RolloutView {
  commit: string | null;
  previous: string | null;
  state: string;
  waves: Array<{ name: string; agents: number; applied: number; rejected: number; pending: number; state: string; startedAt: string | null; completedAt: string | null }>;
  window: { open: boolean; nextOpen: string | null };
}

/** `git revert --no-edit <commit>`, signed like every commit, pushed to the served repository. */
export function pushRevert(d: Deployment, commit: string): string {
  d.work.git('-c', 'gpg.format=ssh', '-c', `user.signingkey=${d.signer.privateKeyPath}`, 'revert', '--no-edit', '-S', commit);
  d.work.git('push', '-q', '--force', 'origin', 'HEAD:main');
  return d.work.head();
}

/** An agent's client credentials: what `meshcfg enroll` wrote in its directory, or a certificate a test obtained. */
export interface AgentCredentials {
  readonly keyPem: string;
  readonly certPem: string;
}

export function credentialsIn(dir: string): AgentCredentials {
  return { keyPem: readFileSync(join(dir, 'agent.key'), 'utf8'), certPem: readFileSync(join(dir, 'agent.crt'), 'utf8') };
}

/**
 * One unary call to the real server with an agent's client certificate (trusting the server's
 * CA, no pin): the error it ended with, or its response.
 */
export function callAs<Res>(
  d: Deployment,
  agent: AgentCredentials,
  service: 'Distribution' | 'Enrollment',
  method: string,
  request: object,
): Promise<{ readonly error: ServiceError } | { readonly error: null; readonly response: Res }> {
  const ca = readFileSync(join(d.dataDir, 'ca.crt'));
  const Client = service === 'Distribution' ? DistributionClient : EnrollmentClient;
  const client = new Client(d.grpcAddress, credentials.createSsl(ca, Buffer.from(agent.keyPem), Buffer.from(agent.certPem), { checkServerIdentity: () => undefined }), {
    'grpc.use_local_subchannel_pool': 1,
  });
  return new Promise((resolve) => {
    (client as unknown as Record<string, (...args: unknown[]) => void>)[method]?.call(
      client,
      request,
      new Metadata(),
      { deadline: Date.now() + 10_000 },
      (err: ServiceError | null, response: Res) => {
        client.close();
        resolve(err === null ? { error: null, response } : { error: err });
      },
    );
  });
}

/** What `useDeployment` gives a suite. `deployment` and `first` exist once its `before` ran. */
export interface DeploymentSuite {
  /** The suite's temporary directory (removed after the suite). */
  readonly root: string;
  readonly deployment: Deployment;
  /** The first (signed, accepted) commit. */
  readonly first: string;
}

/**
 * The set-up every end-to-end suite shares, registered as the suite's first hooks: a temporary
 * directory, the signed repository served over smart HTTP, `configure` (server.yaml extras and
 * the like), the real server started; after the suite every process stopped and the directory
 * removed. A suite's own `before` runs after this one.
 */
export function useDeployment(prefix: string, files: Readonly<Record<string, string>>, configure?: (d: Deployment) => void): DeploymentSuite {
  const tmp = tempDir(prefix);
  let created: { deployment: Deployment; first: string } | undefined;
  before(async () => {
    created = await Deployment.create(tmp.path, files);
    configure?.(created.deployment);
    await created.deployment.startServer();
  });
  after(async () => {
    await created?.deployment.stopAll();
    tmp.cleanup();
  });
  const ready = (): { deployment: Deployment; first: string } => {
    if (created === undefined) throw new Error('useDeployment: read the deployment inside a test or a later hook');
    return created;
  };
  return {
    root: tmp.path,
    get deployment() {
      return ready().deployment;
    },
    get first() {
      return ready().first;
    },
  };
}
