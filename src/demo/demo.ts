import { X509Certificate } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AdminClient, AdminClientError } from '../cli/index.js';
import { errorMessage } from '../domain/errors.js';
import { readServerPin } from '../pki/index.js';
import { DemoError } from './errors.js';
import { type DemoLayout, markComplete, prepareFolder } from './folder.js';
import { choosePort } from './ports.js';
import { runMeshcfg, type Supervisor } from './processes.js';
import { checkPrerequisites, createRepository, createSigner, DEMO_AGENTS, type DemoAgent } from './repository.js';

export const DEMO_DEFAULT_PORTS = { grpc: 7443, admin: 7080 } as const;

export interface DemoOptions {
  readonly layout: DemoLayout;
  readonly reset: boolean;
  readonly ports: { readonly grpc: number; readonly admin: number };
  /** Which ports the user chose: those must be free; defaults move to the next free port. */
  readonly explicitPorts: { readonly grpc: boolean; readonly admin: boolean };
  readonly agents?: readonly DemoAgent[];
  readonly supervisor: Supervisor;
  /** Ctrl-C: every wait ends, nothing new starts. */
  readonly signal: AbortSignal;
  /** One line per long step ("generating signing key…"). */
  readonly onProgress: (line: string) => void;
  /** How long the fleet gets to become SYNCED. Default 90 s. */
  readonly syncTimeoutMs?: number;
}

export interface RunningDemo {
  readonly adminUrl: string;
  readonly grpcAddress: string;
  readonly adminToken: string;
  /** The accepted commit every agent is SYNCED on. */
  readonly commit: string;
  readonly agents: readonly string[];
  readonly reused: boolean;
}

/** The agents' reload command: always succeeds, and leaves a trace per reload. Runs in the demo folder. */
const RELOAD_COMMAND = 'echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) reloaded $MESHCFG_FILE" >> logs/reloads.log';

/** An agent certificate closer than this to its expiry is replaced by a fresh enrollment. */
const MIN_CERT_LIFETIME_MS = 3_600_000;

/**
 * Brings up the demo fleet, each step the way the README's walk-through does it by hand:
 * signed repository, `meshcfg serve`, a token per agent from the admin API, `meshcfg enroll`
 * against the server's pin, `meshcfg agent` with a reload command; then waits until every
 * agent is SYNCED. Reuses whatever an earlier run left (key, repository, data dir,
 * enrollments), so a second start only starts processes.
 */
export async function startDemo(options: DemoOptions): Promise<RunningDemo> {
  const { layout, supervisor, signal, onProgress: progress } = options;
  const agents = options.agents ?? DEMO_AGENTS;
  const checkAborted = (): void => {
    if (signal.aborted) throw new DemoError({ code: 'INTERRUPTED', message: 'interrupted' });
  };

  await checkPrerequisites();
  const folder = await prepareFolder(layout, { reset: options.reset });
  if (folder.kind === 'fresh') {
    progress(`creating the demo in ${layout.root}`);
    progress('generating signing key…');
    const signer = await createSigner(layout.keys, layout.allowedSigners);
    checkAborted();
    progress(`creating the signed config repository (${agents.length} agents; waves: canary, rest; a baseline)…`);
    await createRepository(layout.repo, signer);
    checkAborted();
    await markComplete(layout);
  } else {
    progress(`reusing the demo in ${layout.root} (npm start -- --reset starts afresh)`);
  }
  await mkdir(layout.logs, { recursive: true });
  await mkdir(join(layout.root, 'proxy'), { recursive: true });

  const grpc = await choosePort('grpc', options.ports.grpc, options.explicitPorts.grpc);
  const admin = await choosePort('admin', options.ports.admin, options.explicitPorts.admin, [grpc.port]);
  for (const [what, choice] of [['gRPC', grpc], ['admin', admin]] as const) {
    if (choice.movedFrom !== undefined) progress(`port ${choice.movedFrom} (${what}) is taken: using ${choice.port}`);
  }
  const grpcAddress = `127.0.0.1:${grpc.port}`;
  const adminUrl = `http://127.0.0.1:${admin.port}`;
  await writeFile(layout.serverConfig, serverYaml(grpcAddress, `127.0.0.1:${admin.port}`));

  progress(`starting meshcfg serve (gRPC ${grpcAddress}, admin ${adminUrl}, SQLite in ${layout.dataDir})…`);
  const server = supervisor.start('server', 'server', ['serve', '--config', layout.serverConfig], { logFile: join(layout.logs, 'server.log'), cwd: layout.root });
  let serverExited = false;
  void server.exited.then(() => (serverExited = true));
  await waitUntil('the server to accept the first commit', signal, 60_000, async () => {
    if (serverExited) throw new DemoError({ code: 'SERVER_FAILED', message: `meshcfg serve exited: ${await lastError(server.logFile, 'meshcfg serve:')} (log: ${server.logFile})` });
    const res = await fetch(`${adminUrl}/readyz`, { signal: AbortSignal.timeout(2_000) }).catch(() => null);
    return res?.status === 200;
  }, () => new DemoError({ code: 'SERVER_FAILED', message: `meshcfg serve did not become ready within 60 s; see ${server.logFile}` }));

  const adminToken = (await readFile(layout.adminTokenFile, 'utf8')).trim();
  const client = new AdminClient(adminUrl, adminToken);
  const pin = await readServerPin(layout.dataDir);
  const toEnroll: DemoAgent[] = [];
  for (const agent of agents) if (!(await isEnrolled(layout, agent.id, pin))) toEnroll.push(agent);
  for (const [i, agent] of toEnroll.entries()) {
    checkAborted();
    progress(`enrolling agents ${i + 1}/${toEnroll.length} (${agent.id})…`);
    await enrollAgent(layout, agent.id, client, pin, grpcAddress);
  }

  for (const [i, agent] of agents.entries()) {
    checkAborted();
    progress(`starting agents ${i + 1}/${agents.length} (${agent.id})…`);
    supervisor.start(
      agent.id,
      'agent',
      ['agent', '--dir', layout.agentDir(agent.id), '--out', layout.agentOut(agent.id), '--server', grpcAddress, '--exec', RELOAD_COMMAND],
      { logFile: join(layout.logs, `${agent.id}.log`), cwd: layout.root },
    );
  }

  progress('waiting for every agent to be SYNCED…');
  const syncTimeoutMs = options.syncTimeoutMs ?? 90_000;
  let lastStates = '';
  await waitUntil('the fleet to be SYNCED', signal, syncTimeoutMs, async () => {
    const crashed = supervisor.crashed;
    if (crashed !== undefined) {
      throw new DemoError({ code: crashed.name === 'server' ? 'SERVER_FAILED' : 'AGENT_FAILED', message: `${crashed.name} exited (${crashed.signal ?? `code ${crashed.code}`}); see ${join(layout.logs, `${crashed.name}.log`)}` });
    }
    const listed = (await client.request('GET', '/api/v1/agents').catch(() => [])) as Array<{ id?: unknown; state?: unknown; connected?: unknown }>;
    const mine = agents.map((a) => listed.find((l) => l.id === a.id));
    lastStates = agents.map((a, i) => `${a.id}=${String(mine[i]?.state ?? 'unknown')}`).join(', ');
    return mine.every((a) => a?.state === 'SYNCED' && a.connected === true);
  }, () => new DemoError({ code: 'AGENT_FAILED', message: `the fleet is not SYNCED after ${syncTimeoutMs / 1000} s (${lastStates}); see ${layout.logs}` }));

  const source = (await client.request('GET', '/api/v1/source')) as { accepted?: unknown };
  return {
    adminUrl,
    grpcAddress,
    adminToken,
    commit: typeof source.accepted === 'string' ? source.accepted : '',
    agents: agents.map((a) => a.id),
    reused: folder.kind === 'reuse',
  };
}

function serverYaml(grpc: string, admin: string): string {
  return [
    '# Written by npm start on every run (the ports may change). See the README, "server.yaml".',
    'trustDomain: example.org',
    'repo: { url: ./config, branch: main, pollInterval: 1s }',
    'trust: { allowedSigners: ./allowed_signers }',
    `listen: { grpc: "${grpc}", admin: "${admin}" }`,
    'dataDir: ./data',
    'tls: { serverNames: [localhost, 127.0.0.1] }',
    '',
  ].join('\n');
}

/** Enrolled for this server (its pin) with a certificate that is not about to expire. */
async function isEnrolled(layout: DemoLayout, id: string, pin: string): Promise<boolean> {
  try {
    const config = JSON.parse(await readFile(join(layout.agentDir(id), 'agent.json'), 'utf8')) as { pins?: unknown };
    if (!Array.isArray(config.pins) || !config.pins.includes(pin)) return false;
    const cert = new X509Certificate(await readFile(join(layout.agentDir(id), 'agent.crt')));
    return Date.parse(cert.validTo) - Date.now() > MIN_CERT_LIFETIME_MS;
  } catch {
    return false;
  }
}

/** A one-time token from the admin API, then the real `meshcfg enroll` (token via the environment, not argv). */
async function enrollAgent(layout: DemoLayout, id: string, client: AdminClient, pin: string, grpcAddress: string): Promise<void> {
  // A stale enrollment and the file it produced would otherwise show up as drift.
  await rm(layout.agentDir(id), { recursive: true, force: true });
  await rm(layout.agentOut(id), { force: true });
  let token: string;
  try {
    const created = (await client.request('POST', '/api/v1/tokens', { agentId: id, ttl: '10m' })) as { token?: unknown };
    if (typeof created.token !== 'string') throw new Error('the admin API answered without a token');
    token = created.token;
  } catch (err) {
    const detail = err instanceof AdminClientError ? err.message : errorMessage(err);
    throw new DemoError({ code: 'ENROLL_FAILED', message: `cannot create an enrollment token for ${id}: ${detail}`, cause: err });
  }
  await mkdir(join(layout.root, 'agents'), { recursive: true, mode: 0o700 });
  const result = await runMeshcfg(['enroll', '--server', grpcAddress, '--pin', pin, '--dir', layout.agentDir(id)], { ...process.env, MESHCFG_ENROLL_TOKEN: token });
  if (result.code !== 0) {
    throw new DemoError({ code: 'ENROLL_FAILED', message: `meshcfg enroll ${id} exited ${result.code}: ${result.stderr.trim().split('\n').pop() ?? ''}` });
  }
}

/** Polls `probe` every 200 ms until true; throws `onTimeout()` after `timeoutMs`, stops early on abort. */
async function waitUntil(what: string, signal: AbortSignal, timeoutMs: number, probe: () => Promise<boolean>, onTimeout: () => Error): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (signal.aborted) throw new DemoError({ code: 'INTERRUPTED', message: `interrupted while waiting for ${what}` });
    if (await probe()) return;
    if (Date.now() > deadline) throw onTimeout();
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The last line of a log that starts with `prefix` (the CLI's one-line summary of a failure). */
async function lastError(logFile: string, prefix: string): Promise<string> {
  const text = await readFile(logFile, 'utf8').catch(() => '');
  const line = text.split('\n').reverse().find((l) => l.startsWith(prefix));
  return line === undefined ? 'see its log' : line.slice(prefix.length).trim();
}

