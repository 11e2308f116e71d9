/**
 * `npm run bench:fleet -- --agents N [--rounds R] [--mode stream|poll] [--json FILE]`
 *
 * meshcfg at fleet scale, side by side with a bare grpc-js floor on the same machine, in the
 * same run, driven by the same load generator. See bench/fleet/README.md and the README's
 * "Performance" section for what each figure means.
 */
import { createPublicKey } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateRsaKeyPair } from '../../src/pki/ca.js';
import { openDataDir, readServerPin } from '../../src/pki/data-dir.js';
import { tempDir } from '../../test/helpers/git.js';
import { waitFor } from '../../test/helpers/process.js';
import { issueFleetCertificates } from './certs.js';
import { FloorSide } from './floor-side.js';
import { MeshcfgSide, SERVER_NAMES } from './meshcfg-side.js';
import { cpuMs, listenOverflows, rssKiB } from './procstat.js';
import type { Mode, Target, WorkerSetup } from './protocol.js';
import { type Options, parseOptions, USAGE } from './options.js';
import { buildResult, printTable, type RoundFigures } from './report.js';
import { percentile } from './stats.js';
import { type FleetReport, WorkerPool } from './workers.js';

const log = (line: string): void => void process.stderr.write(`[bench:fleet ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** How long the idle server's background CPU rate (repository polling) is measured, per round. */
const IDLE_WINDOW_MS = 1_500;

/** What went wrong in a round, for the summary and the exit code. */
const incomplete: string[] = [];

function describeErrors(report: FleetReport): string {
  const errors = [...report.errors].sort((a, b) => b[1] - a[1]);
  const rejected = [...report.rejected];
  return [
    `reconnects ${report.reconnects}`,
    ...errors.slice(0, 6).map(([k, v]) => `${v}× ${k}`),
    ...rejected.slice(0, 4).map(([k, v]) => `${v}× rejected ${k}`),
  ].join('; ');
}

interface SideDriver {
  readonly target: Target;
  readonly pid: number;
  readonly address: string;
  /** Starts the server and points the load generator at it. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** The key of the first payload in the load generator's `acked` counters. */
  initialKey(): string;
  /** Starts one rollout; resolves with the key agents ack it under and when the server began it. */
  rollout(round: number): Promise<{ readonly key: string; readonly startedAt: number; readonly prepareMs: number }>;
  /** Server-side receipt time of each agent's ack/echo of `key`. */
  ackTimes(key: string): Promise<number[]>;
  resetLoopDelay(): Promise<void>;
  loopDelayMaxMs(): Promise<number>;
  /** What the server logged about failed handshakes and refusals this round. */
  serverFailures(): Record<string, number>;
}

class Harness {
  private readonly pool: WorkerPool;

  constructor(
    private readonly options: Options,
    workers: number,
  ) {
    this.pool = new WorkerPool(workers);
  }

  private async waitFleet(what: string, done: (r: FleetReport) => boolean, timeoutMs: number): Promise<{ report: FleetReport; ok: boolean }> {
    const deadline = Date.now() + timeoutMs;
    let lastLog = 0;
    for (;;) {
      const report = await this.pool.report();
      if (done(report)) return { report, ok: true };
      if (Date.now() - lastLog > 2_000) {
        lastLog = Date.now();
        log(`${what}: connected ${report.connected}/${report.agents}; ${describeErrors(report)}`);
      }
      if (Date.now() > deadline) return { report, ok: false };
      await sleep(100);
    }
  }

  async setupWorkers(setups: WorkerSetup[]): Promise<void> {
    await this.pool.setup(setups);
  }

  /** One round against one side: connect all N, one rollout, (poll mode) an idle polling window; then disconnect. */
  async round(side: SideDriver, round: number): Promise<RoundFigures> {
    const { agents: n, mode } = this.options;
    const label = `${side.target} round ${round}`;
    await side.start();
    const pid = side.pid;
    // Idle: the process as it stands before any agent, and its background CPU rate (repository polling).
    await sleep(1_000);
    const idleRss = rssKiB(pid);
    const idleCpu0 = cpuMs(pid);
    await sleep(IDLE_WINDOW_MS);
    const idleCpuRate = (cpuMs(pid) - idleCpu0) / IDLE_WINDOW_MS;

    log(`${label}: connecting ${n} agents (${mode})`);
    const cpu0 = cpuMs(pid);
    const generatorCpu = (): number => this.pool.pids.reduce((sum, p) => sum + cpuMs(p), 0);
    const generator0 = generatorCpu();
    const overflows0 = listenOverflows();
    const t0 = performance.now();
    this.pool.connect();
    const initial = side.initialKey();
    const connect = await this.waitFleet(`${label} connect`, (r) => r.connected >= n && (r.acked.get(initial) ?? 0) >= n, this.options.connectTimeoutMs);
    const connectMs = performance.now() - t0;
    const generatorConnectCpu = generatorCpu() - generator0;
    const overflows = listenOverflows() - overflows0;
    if (!connect.ok) incomplete.push(`${label}: only ${connect.report.connected}/${n} connected within ${this.options.connectTimeoutMs} ms (${describeErrors(connect.report)})`);
    // Let the initial acks land and the heap settle before reading RSS.
    await sleep(1_500);
    const connectCpu = Math.max(0, cpuMs(pid) - cpu0 - idleCpuRate * (performance.now() - t0));
    const connectedRss = rssKiB(pid);
    const connectedCount = Math.max(1, Math.min(n, connect.report.connected));
    log(`${label}: ${connect.report.connected} connected in ${connectMs.toFixed(0)} ms; ${describeErrors(connect.report)}`);

    // One rollout: from the server starting it to the server holding every agent's ack.
    await side.resetLoopDelay();
    const cpu1 = cpuMs(pid);
    const t1 = performance.now();
    const rollout = await side.rollout(round);
    const converge = await this.waitFleet(`${label} rollout`, (r) => (r.acked.get(rollout.key) ?? 0) >= n, this.options.convergeTimeoutMs);
    let times = await side.ackTimes(rollout.key);
    if (converge.ok) {
      // The load generator has sent every ack; give the server a moment to record the last ones.
      await waitFor(`${label}: the server to record ${n} acks`, async () => (times = await side.ackTimes(rollout.key)).length >= n, 60_000, 100).catch(() => undefined);
    } else {
      incomplete.push(`${label}: only ${converge.report.acked.get(rollout.key) ?? 0}/${n} acked the rollout within ${this.options.convergeTimeoutMs} ms (${describeErrors(converge.report)})`);
    }
    // Clamped: at small N the idle correction can exceed the 10 ms tick resolution.
    const rolloutCpu = Math.max(0, cpuMs(pid) - cpu1 - idleCpuRate * (performance.now() - t1));
    const loopDelayMaxMs = await side.loopDelayMaxMs();
    const convergence = times.map((t) => t - rollout.startedAt).sort((a, b) => a - b);
    if (times.length < n) incomplete.push(`${label}: the server recorded ${times.length}/${n} acks of the rollout`);
    log(`${label}: converged ${times.length}/${n}, max ${percentile(convergence, 100).toFixed(0)} ms; longest event-loop stall ${loopDelayMaxMs.toFixed(0)} ms`);

    let cpuPerPollMs: number | undefined;
    if (mode === 'poll') {
      // An idle window: every poll is answered not-modified.
      this.pool.resetPolls();
      await sleep(200);
      const before = await this.pool.report();
      const cpu2 = cpuMs(pid);
      const t2 = performance.now();
      await sleep(this.options.pollWindowMs);
      const after = await this.pool.report();
      const polls = after.notModified - before.notModified;
      cpuPerPollMs = polls > 0 ? (cpuMs(pid) - cpu2 - idleCpuRate * (performance.now() - t2)) / polls : NaN;
      log(`${label}: ${polls} not-modified polls, ${cpuPerPollMs.toFixed(3)} ms CPU each`);
    }

    const serverFailures = side.serverFailures();
    await this.pool.disconnect();
    await side.stop();
    return {
      connectMs,
      convergence,
      // Per agent actually connected: a round that timed out with part of the fleet still counts right.
      rssPerAgentKiB: (connectedRss - idleRss) / connectedCount,
      cpuPerConnectMs: connectCpu / connectedCount,
      generatorCpuPerConnectMs: generatorConnectCpu / connectedCount,
      listenOverflows: overflows,
      cpuPerRolloutMs: rolloutCpu,
      loopDelayMaxMs,
      prepareMs: rollout.prepareMs,
      cpuPerPollMs,
      reconnects: converge.report.reconnects,
      errors: Object.fromEntries(converge.report.errors),
      serverFailures,
      medianBundleBytes: percentile([...converge.report.bundleSizes].sort((a, b) => a - b), 50),
    };
  }

  close(): void {
    this.pool.close();
  }
}

function workerSetups(options: {
  target: Target;
  mode: Mode;
  address: string;
  caPem: string;
  pin: string;
  signingKeyPem: string;
  keys: string[];
  files: string[];
  pollIntervalMs: number;
}): WorkerSetup[] {
  return options.files.map((agentsFile) => ({
    target: options.target,
    mode: options.mode,
    address: options.address,
    caPem: options.caPem,
    pin: options.pin,
    signingKeyPem: options.signingKeyPem,
    keys: options.keys,
    agentsFile,
    pollIntervalMs: options.pollIntervalMs,
    rampMs: 0,
  }));
}

async function main(): Promise<number> {
  const parsed = parseOptions(process.argv.slice(2));
  if (parsed.kind === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  if (parsed.kind === 'invalid') {
    process.stderr.write(`bench:fleet: ${parsed.message}\n\n${USAGE}`);
    return 2;
  }
  const options = parsed.options;
  const n = options.agents;
  const workers = options.workers;
  const tmp = tempDir('meshcfg-bench-fleet-');
  const ids = Array.from({ length: n }, (_, i) => `agent-${String(i).padStart(5, '0')}`);
  log(`${n} agents, ${options.rounds} round(s), ${options.mode} mode, ${workers} load-generator processes; work dir ${tmp.path}`);

  const meshcfg = await MeshcfgSide.create(tmp.path, ids);
  let harness: Harness | undefined;
  try {
    // The data dir (CA, server key and certificate, signing key) made by the code `meshcfg serve`
    // runs at start; the benchmark then issues the fleet's certificates from that CA, as an
    // operator on the server's host could. The server finds and keeps all of it.
    await openDataDir({ dataDir: meshcfg.dataDir, trustDomain: 'example.org', serverNames: [...SERVER_NAMES] });
    const keys = await Promise.all(Array.from({ length: options.keyPool }, () => generateRsaKeyPair()));
    const issuedAt = performance.now();
    const files = await issueFleetCertificates({ dataDir: meshcfg.dataDir, agentIds: ids, keys, outDir: tmp.path, shards: workers });
    log(`issued ${n} agent certificates in ${((performance.now() - issuedAt) / 1000).toFixed(1)} s (node:crypto signer, ${options.keyPool} RSA keys shared)`);
    const caPem = meshcfg.readCaPem();
    const pin = await readServerPin(meshcfg.dataDir);
    const signingKeyPem = createPublicKey(readFileSync(join(meshcfg.dataDir, 'signing-key.pem'), 'utf8')).export({ type: 'spki', format: 'pem' }).toString();
    const common = { mode: options.mode, caPem, pin, signingKeyPem, keys: keys.map((k) => k.privateKeyPem), files, pollIntervalMs: options.pollIntervalMs };

    harness = new Harness(options, workers);
    const meshcfgRounds: RoundFigures[] = [];
    const meshcfgDriver: SideDriver = {
      target: 'meshcfg',
      get pid() {
        return meshcfg.pid;
      },
      address: meshcfg.address,
      start: () => meshcfg.start(options.startTimeoutMs, options.cpuProfileDir === undefined ? {} : { cpuProfileDir: options.cpuProfileDir }),
      stop: () => meshcfg.stop(),
      initialKey: () => String(meshcfg.currentGeneration() ?? ''),
      rollout: async () => {
        const sha = meshcfg.pushChange();
        const published = await meshcfg.published(sha, 120_000);
        return { key: String(published.generation), startedAt: published.at, prepareMs: published.headSeenAt === undefined ? NaN : published.at - published.headSeenAt };
      },
      ackTimes: async (key) => meshcfg.ackTimes(Number(key)),
      resetLoopDelay: async () => void (await meshcfg.loopDelayMaxMs()),
      loopDelayMaxMs: () => meshcfg.loopDelayMaxMs(),
      serverFailures: () => meshcfg.serverFailures(),
    };
    await harness.setupWorkers(workerSetups({ ...common, target: 'meshcfg', address: meshcfg.address }));
    for (let r = 1; r <= options.rounds; r++) meshcfgRounds.push(await harness.round(meshcfgDriver, r));

    // The floor: the same TLS material (server certificate and key from the data dir, the same CA).
    const floor = new FloorSide({ caPem, certPem: readFileSync(join(meshcfg.dataDir, 'server.crt'), 'utf8'), keyPem: readFileSync(join(meshcfg.dataDir, 'server.key'), 'utf8') });
    const payloadBytes = Math.round(percentile(meshcfgRounds.map((r) => r.medianBundleBytes).sort((a, b) => a - b), 50)) || 4096;
    log(`floor payload: ${payloadBytes} bytes (the median meshcfg bundle)`);
    const floorRounds: RoundFigures[] = [];
    const floorDriver: SideDriver = {
      target: 'floor',
      get pid() {
        return floor.pid;
      },
      get address() {
        return floor.address;
      },
      start: async () => {
        await floor.start();
        floor.send({ type: 'payload', bytes: payloadBytes });
        // The floor listens on a new port each start.
        await harness?.setupWorkers(workerSetups({ ...common, target: 'floor', address: floor.address }));
      },
      stop: () => floor.stop(),
      initialKey: () => '0',
      rollout: async (round) => {
        floor.send({ type: 'broadcast', seq: round });
        const report = await floor.report(round);
        return { key: String(round), startedAt: report.startedAt, prepareMs: NaN };
      },
      ackTimes: async (key) => [...(await floor.report(Number(key))).echoes],
      resetLoopDelay: async () => floor.send({ type: 'reset-loop-delay' }),
      loopDelayMaxMs: async () => (await floor.report(-1)).loopDelayMaxMs,
      serverFailures: () => ({}),
    };
    for (let r = 1; r <= options.rounds; r++) floorRounds.push(await harness.round(floorDriver, r));

    const result = buildResult({ agents: n, mode: options.mode, rounds: options.rounds, meshcfg: meshcfgRounds, floor: floorRounds });
    printTable(result, { agents: n, mode: options.mode, rounds: options.rounds, workers, meshcfg: meshcfgRounds, floor: floorRounds, payloadBytes });
    if (options.json !== undefined) {
      writeFileSync(options.json, `${JSON.stringify(result.json, null, 2)}\n`);
      log(`wrote ${options.json}`);
    }
    if (incomplete.length > 0) {
      process.stderr.write(`\nNOT EVERY AGENT CONVERGED:\n${incomplete.map((line) => `  - ${line}`).join('\n')}\n`);
      return 1;
    }
    return 0;
  } catch (err) {
    process.stderr.write(`bench:fleet failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n${meshcfg.logTail}\n`);
    return 1;
  } finally {
    harness?.close();
    await meshcfg.close();
    if (!options.keep) tmp.cleanup();
  }
}

process.exitCode = await main();
