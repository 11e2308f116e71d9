/**
 * The meshcfg side of the fleet benchmark: a signed config repository served over smart HTTP,
 * a real `meshcfg serve` process reading it, and what the server itself says about a rollout —
 * when it accepted and published a commit (its pino log) and when it recorded each agent's
 * APPLIED ack (the `at` column of fleet.db's acks table, read after the round).
 */
import Database from 'better-sqlite3';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GitRepo, makeSshSigner, type SshSigner, writeAllowedSigners } from '../../test/helpers/git.js';
import { type GitHttpServer, startGitHttpServer } from '../../test/helpers/http-git-server.js';
import { freePort, MeshcfgProcess, waitFor } from '../../test/helpers/process.js';

/** `tls.serverNames` of the benchmark's server. */
export const SERVER_NAMES = ['localhost', '127.0.0.1'] as const;

/** Repository poll interval: short so rounds start quickly; it is not part of any figure. */
const POLL_INTERVAL = '200ms';

/** One pino line the benchmark reads. */
interface LogEvent {
  readonly event?: string;
  readonly time: number;
  readonly commit?: string;
  readonly head?: string;
  readonly generation?: number;
  readonly reason?: string;
  /** `fetch` events: how long the fetch took. */
  readonly ms?: number;
  /** `tls-handshake-failed` events. */
  readonly detail?: string;
  /** `connect-failures` events: failures by reason since the previous summary. */
  readonly counts?: Record<string, number>;
}

/** Server-side refusals and failed handshakes: why agents' connections failed, as the server saw it. */
const FAILURE_EVENTS = ['tls-handshake-failed', 'unauthorized'];

/**
 * ~4 KiB per agent bundle (the issue's target payload): a realistic document — mTLS, a few
 * dozen routes with headers and retries, authz rules — rather than padding.
 */
function baseConfig(): string {
  const routes = Array.from({ length: 14 }, (_, i) =>
    [
      `  - name: svc-${String(i).padStart(2, '0')}`,
      `    destination: "svc-${i}.internal.example.org:${8000 + i}"`,
      `    protocol: ${['http1', 'http2', 'grpc'][i % 3]}`,
      `    timeoutMs: ${1000 + i * 50}`,
      `    retries: { attempts: ${1 + (i % 3)}, perTryTimeoutMs: ${200 + i} }`,
      `    headers: { x-route: "svc-${i}", x-team: "team-${i % 5}" }`,
    ].join('\n'),
  );
  return [
    'mtls: { mode: STRICT, minTlsVersion: "1.2" }',
    'routes:',
    ...routes,
    'authz:',
    '  - { action: ALLOW, from: ["spiffe://example.org/agent/*"], paths: ["/api/*", "/healthz"] }',
    '  - { action: DENY, from: ["*"], paths: ["/admin/*"] }',
    '',
  ].join('\n');
}

/** The fleet benchmark's repository: `agentIds` in three zones, one ~4 KiB document each. */
export function fleetFiles(agentIds: readonly string[]): Map<string, string> {
  const zones = ['public', 'internal', 'edge'];
  return new Map([
    ['meshcfg.yaml', 'trustDomain: example.org\npolicy:\n  secureZones: [pci]\n'],
    ['inventory/fleet.yaml', `agents:\n${agentIds.map((id, i) => `  - { id: ${id}, labels: { zone: ${zones[i % 3]} } }`).join('\n')}\n`],
    ['config/base/00.yaml', baseConfig()],
    ['config/base/10.yaml', 'telemetry: { accessLog: false, metrics: true }\n'],
  ]);
}

export class MeshcfgSide {
  readonly dataDir: string;
  private readonly repo: GitRepo;
  private readonly signer: SshSigner;
  private readonly http: GitHttpServer;
  private readonly config: string;
  readonly ports: { readonly grpc: number; readonly admin: number };
  private server: MeshcfgProcess | undefined;
  private events: LogEvent[] = [];
  private changes = 0;
  private failures = new Map<string, number>();

  private constructor(options: { dataDir: string; repo: GitRepo; signer: SshSigner; http: GitHttpServer; config: string; ports: { grpc: number; admin: number } }) {
    this.dataDir = options.dataDir;
    this.repo = options.repo;
    this.signer = options.signer;
    this.http = options.http;
    this.config = options.config;
    this.ports = options.ports;
  }

  /**
   * Builds the repository (`files`: path → content; default the fleet benchmark's, an inventory
   * of `agentIds` with ~4 KiB bundles) and the server config under `dir`.
   */
  static async create(dir: string, agentIds: readonly string[], options: { readonly files?: ReadonlyMap<string, string>; readonly trustDomain?: string } = {}): Promise<MeshcfgSide> {
    const trustDomain = options.trustDomain ?? 'example.org';
    const signer = makeSshSigner(dir, 'bench@example.org');
    const allowed = writeAllowedSigners(join(dir, 'allowed_signers'), [{ signer }]);
    const repo = GitRepo.init(join(dir, 'work'));
    repo.write(Object.fromEntries(options.files ?? fleetFiles(agentIds)));
    repo.commit('fleet', signer);
    repo.git('clone', '-q', '--bare', repo.dir, join(dir, 'served', 'config.git'));
    repo.git('remote', 'add', 'origin', join(dir, 'served', 'config.git'));
    const http = await startGitHttpServer(join(dir, 'served'));
    const ports = { grpc: await freePort(), admin: await freePort() };
    const config = join(dir, 'server.yaml');
    writeFileSync(
      config,
      `trustDomain: ${trustDomain}\nrepo: { url: "${http.url('config.git')}", branch: main, pollInterval: ${POLL_INTERVAL} }\n` +
        `trust: { allowedSigners: "${allowed}" }\nlisten: { grpc: "127.0.0.1:${ports.grpc}", admin: "127.0.0.1:${ports.admin}" }\n` +
        `dataDir: ${join(dir, 'data')}\ntls: { serverNames: [${SERVER_NAMES.join(', ')}] }\n`,
    );
    return new MeshcfgSide({ dataDir: join(dir, 'data'), repo, signer, http, config, ports });
  }

  get pid(): number {
    const pid = this.server?.child.pid;
    if (pid === undefined) throw new Error('meshcfg serve is not running');
    return pid;
  }

  get address(): string {
    return `127.0.0.1:${this.ports.grpc}`;
  }

  /** Starts `meshcfg serve` and resolves once /readyz answers 200 (a commit is published). */
  async start(timeoutMs: number, options: { readonly cpuProfileDir?: string } = {}): Promise<void> {
    this.events = [];
    this.failures = new Map();
    // node refuses --cpu-prof in NODE_OPTIONS: a preload profiles through the inspector instead.
    const env =
      options.cpuProfileDir === undefined
        ? {}
        : { NODE_OPTIONS: `--import ${fileURLToPath(new URL('./cpu-profile-preload.mjs', import.meta.url))}`, MESHCFG_BENCH_CPU_PROF_DIR: options.cpuProfileDir };
    const server = new MeshcfgProcess(['serve', '--config', this.config], env);
    this.server = server;
    let partial = '';
    server.child.stdout?.on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        // Only the few events the benchmark reads are parsed; per-agent lines are skipped cheaply.
        const failure = FAILURE_EVENTS.find((kind) => line.includes(`"event":"${kind}"`));
        if (line.includes('"event":"connect-failures"')) {
          // The server's rate-limited summary (one line per 10 s with the counts by reason).
          const event = JSON.parse(line) as LogEvent;
          for (const [reason, n] of Object.entries(event.counts ?? {})) this.failures.set(`connect-failed ${reason}`, (this.failures.get(`connect-failed ${reason}`) ?? 0) + n);
          continue;
        }
        if (failure !== undefined) {
          const event = JSON.parse(line) as LogEvent;
          const key = `${failure} ${event.detail ?? event.reason ?? ''}`.trim();
          this.failures.set(key, (this.failures.get(key) ?? 0) + 1);
          continue;
        }
        if (!line.includes('"event":"published"') && !line.includes('"event":"fetch"') && !line.includes('"event":"commit-refused"')) continue;
        try {
          this.events.push(JSON.parse(line) as LogEvent);
        } catch {
          // not a JSON line
        }
      }
    });
    await waitFor(
      'meshcfg serve ready',
      async () => {
        if (server.child.exitCode !== null) throw new Error(`meshcfg serve exited ${server.child.exitCode}: ${server.stderr.slice(-2000)}`);
        const refused = this.events.find((e) => e.event === 'commit-refused');
        if (refused !== undefined) throw new Error(`meshcfg refused the benchmark's commit: ${JSON.stringify(refused).slice(0, 600)}`);
        return (await fetch(`http://127.0.0.1:${this.ports.admin}/readyz`).catch(() => null))?.status === 200;
      },
      timeoutMs,
      100,
    );
  }

  async stop(): Promise<void> {
    await this.server?.stop(15_000);
    this.server = undefined;
  }

  /** Server log tail, for a failure report. */
  get logTail(): string {
    return `${this.server?.stdout.slice(-3000) ?? ''}${this.server?.stderr.slice(-3000) ?? ''}`;
  }

  /**
   * A new signed commit pushed to the served repository: `files` written, or by default a change
   * of the fleet benchmark's telemetry file that changes every agent's bundle.
   */
  pushChange(files?: Readonly<Record<string, string>>): string {
    this.changes += 1;
    this.repo.write(files ?? { 'config/base/10.yaml': `telemetry: { accessLog: ${this.changes % 2 === 1}, metrics: true }\n# change ${this.changes}\n` });
    const sha = this.repo.commit(`change ${this.changes}`, this.signer);
    this.repo.git('push', '-q', 'origin', 'HEAD:main');
    return sha;
  }

  /** The server's `published` event for `commit` (reason commit), once it was logged. */
  async published(commit: string, timeoutMs: number): Promise<{ readonly at: number; readonly generation: number; readonly headSeenAt: number | undefined }> {
    const event = await waitFor(`meshcfg to publish ${commit.slice(0, 12)}`, () => this.events.find((e) => e.event === 'published' && e.commit === commit), timeoutMs, 20);
    const head = this.events.find((e) => e.event === 'fetch' && e.head === commit);
    return { at: event.time, generation: event.generation ?? 0, headSeenAt: head?.time };
  }

  /** Failed TLS handshakes (by detail) and refused agents (by reason) the server logged since it started. */
  serverFailures(): Record<string, number> {
    return Object.fromEntries(this.failures);
  }

  /** How long the server's fetch of `commit` took (its `fetch` event), ms; NaN when not logged. */
  fetchMs(commit: string): number {
    return this.events.find((e) => e.event === 'fetch' && e.head === commit)?.ms ?? NaN;
  }

  /** The generation the running server publishes now (its last `published` event). */
  currentGeneration(): number | undefined {
    return [...this.events].reverse().find((e) => e.event === 'published')?.generation;
  }

  /** Epoch ms at which the server recorded each agent's first APPLIED ack of `generation`. */
  ackTimes(generation: number): number[] {
    const db = new Database(join(this.dataDir, 'fleet.db'), { readonly: true, fileMustExist: true });
    try {
      const rows = db
        .prepare("SELECT MIN(at) AS at FROM acks WHERE generation = ? AND status = 'APPLIED' GROUP BY agent_id")
        .all(generation) as Array<{ at: number }>;
      return rows.map((r) => r.at);
    } finally {
      db.close();
    }
  }

  /** The longest event-loop delay since the previous scrape (prom-client resets it on each /metrics read), ms. */
  async loopDelayMaxMs(): Promise<number> {
    const text = await (await fetch(`http://127.0.0.1:${this.ports.admin}/metrics`)).text();
    const value = /^nodejs_eventloop_lag_max_seconds(?:\{[^}]*\})? ([0-9.eE+-]+)$/m.exec(text)?.[1];
    return value === undefined ? NaN : Number(value) * 1000;
  }

  readCaPem(): string {
    return readFileSync(join(this.dataDir, 'ca.crt'), 'utf8');
  }

  async close(): Promise<void> {
    await this.stop();
    await this.http.close();
  }
}
