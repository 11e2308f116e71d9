/**
 * One load-generator process: a share of the simulated fleet. Each simulated agent has its own
 * certificate (its own SPIFFE id), its own channel (its own secure context, so grpc-js never
 * shares a subchannel between agents), says hello, verifies every delivery with the reference
 * agent's own check (`verifyIncoming`: signature, identity, commit, digest, generation,
 * expiry), acks it, and reconnects with the reference agent's backoff when a stream fails —
 * counting why. The same process drives the floor server (target `floor`) with the same
 * channels and the same loop; only the messages differ.
 */
import { Client, type ClientDuplexStream, Metadata, type ServiceError, status as GrpcStatus } from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { Backoff, sleep, verifyIncoming } from '../../src/agent/index.js';
import type { AgentId } from '../../src/domain/types.js';
import { parsePin } from '../../src/pki/pin.js';
import { BundleVerifier, type RunningConfig } from '../../src/signing/index.js';
import { CHANNEL_OPTIONS, DistributionRpc, fromGrpcError, parseServerAddress, pinnedCredentials } from '../../src/transport/client.js';
import type { AckMsg, BundleMsg, ServerMessageMsg } from '../../src/transport/proto.js';
import {
  FLOOR_ECHO,
  FLOOR_HELLO,
  FLOOR_PAYLOAD,
  FLOOR_SERVICE,
  floorFrame,
  type FromWorker,
  parseFloorFrame,
  type SimAgentSpec,
  type ToWorker,
  type WorkerReport,
  type WorkerSetup,
} from './protocol.js';

const AGENT_VERSION = 'meshcfg-bench-agent/0.1.0';
/** The floor client holds "no sequence yet" as this (the floor's sequences start at 0). */
const NO_SEQ = 0xffffffff;
const raw = (b: Buffer): Buffer => b;

interface Counters {
  connected: number;
  acked: Map<string, number>;
  rejected: Map<string, number>;
  errors: Map<string, number>;
  reconnects: number;
  notModified: number;
  bundleSizes: number[];
}

const counters: Counters = { connected: 0, acked: new Map(), rejected: new Map(), errors: new Map(), reconnects: 0, notModified: 0, bundleSizes: [] };
const bump = (map: Map<string, number>, key: string): void => void map.set(key, (map.get(key) ?? 0) + 1);

/** What goes wrong, short enough to be a counter key: the agent's error code and grpc-js's detail. */
function failureKey(err: unknown): string {
  const agentError = fromGrpcError(err, 'stream');
  const detail = (err as Partial<ServiceError>).details ?? (err instanceof Error ? err.message : String(err));
  const grpcCode = (err as Partial<ServiceError>).code;
  // grpc-js puts timestamps and durations into some details: drop them so equal failures count under one key.
  const stable = detail.replace(/\s*\(?\d{4}-\d\d-\d\dT[\d:.]+Z\)?/g, '').replace(/ Resolution note:.*$/, '').replace('Last error: Error: ', 'Last error: ').replace(/\d+(?:\.\d+)?s\b/g, 'Ns');
  return `${agentError.code}${grpcCode === undefined ? '' : ` (${GrpcStatus[grpcCode] ?? grpcCode})`}: ${stable.slice(0, 80)}`;
}

/** One simulated agent: connect, hello, verify, ack; reconnect with backoff until stopped. */
abstract class SimAgent {
  protected stopped = false;
  /** Whether this connection already counted as connected (first answer received). */
  protected counted = false;
  protected readonly backoff = new Backoff();
  /** Aborted by stop(): ends a backoff or poll-interval sleep at once. */
  protected readonly abort = new AbortController();
  private loop: Promise<void> | undefined;

  constructor(
    protected readonly spec: SimAgentSpec,
    protected readonly setup: WorkerSetup,
  ) {}

  start(): void {
    this.stopped = false;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.interrupt();
    await this.loop;
    this.close();
  }

  protected markConnected(): void {
    if (this.counted) return;
    this.counted = true;
    counters.connected += 1;
  }

  protected unmarkConnected(): void {
    if (!this.counted) return;
    this.counted = false;
    counters.connected -= 1;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const outcome = this.setup.mode === 'stream' ? await this.streamOnce() : await this.pollOnce();
      if (this.stopped) return;
      if (outcome.kind === 'failed') {
        bump(counters.errors, outcome.key);
        counters.reconnects += 1;
        this.unmarkConnected();
        await sleep(this.backoff.next(), this.abort.signal);
      } else if (this.setup.mode === 'poll') {
        this.backoff.reset();
        await sleep(this.setup.pollIntervalMs * (0.9 + Math.random() * 0.2), this.abort.signal);
      } else {
        // The server ended the stream cleanly: reconnect after a short jittered pause, as the agent does.
        counters.reconnects += 1;
        this.unmarkConnected();
        await sleep(this.backoff.next(), this.abort.signal);
      }
    }
  }

  protected interrupt(): void {
    this.abort.abort();
  }

  protected abstract streamOnce(): Promise<{ kind: 'ended' } | { kind: 'failed'; key: string }>;
  protected abstract pollOnce(): Promise<{ kind: 'ok' } | { kind: 'failed'; key: string }>;
  protected abstract close(): void;
}

class MeshcfgAgent extends SimAgent {
  private readonly rpc: DistributionRpc;
  private current: (RunningConfig & { commit: string }) | null = null;
  private call: ReturnType<DistributionRpc['stream']> | undefined;

  constructor(
    spec: SimAgentSpec,
    setup: WorkerSetup,
    private readonly verifier: BundleVerifier,
    keyPem: string,
  ) {
    super(spec, setup);
    const credentials = pinnedCredentials({ trust: { kind: 'ca', caPem: setup.caPem }, keyPem, certPem: spec.certPem, pins: [parsePin(setup.pin)] });
    this.rpc = new DistributionRpc(parseServerAddress(setup.address), credentials);
  }

  /** The reference agent's check, then the ack it would send. */
  private handle(bundle: BundleMsg): AckMsg {
    if (counters.bundleSizes.length < 200) counters.bundleSizes.push(bundle.bytes.length + Buffer.byteLength(bundle.signature));
    const checked = verifyIncoming(bundle, { verifier: this.verifier, agentId: this.spec.agentId as AgentId, current: this.current });
    const base = { nonce: bundle.nonce, agent_id: this.spec.agentId };
    if (checked.kind === 'refused') {
      bump(counters.rejected, `${bundle.generation}:${checked.code}`);
      return { ...base, commit: bundle.commit, digest: bundle.digest, generation: bundle.generation, status: 'REJECTED', error: `${checked.code}: ${checked.message}` };
    }
    const { commit, digest, generation } = checked.delivery;
    this.current = { commit, digest, generation };
    bump(counters.acked, String(generation));
    return { ...base, commit, digest, generation, status: 'APPLIED', error: '' };
  }

  protected streamOnce(): Promise<{ kind: 'ended' } | { kind: 'failed'; key: string }> {
    return new Promise((resolve) => {
      const call = this.rpc.stream();
      this.call = call;
      let settled = false;
      const settle = (outcome: { kind: 'ended' } | { kind: 'failed'; key: string }): void => {
        if (settled) return;
        settled = true;
        this.call = undefined;
        resolve(outcome);
      };
      call.on('data', (message: ServerMessageMsg) => {
        if (message.bundle === undefined || message.bundle === null) return;
        this.backoff.reset();
        const ack = this.handle(message.bundle);
        this.markConnected();
        if (!call.writableEnded && !call.destroyed) call.write({ ack });
      });
      call.on('error', (err: unknown) => settle(this.stopped ? { kind: 'ended' } : { kind: 'failed', key: failureKey(err) }));
      call.on('status', (status: { code: number }) => {
        if (status.code === 0) settle({ kind: 'ended' });
      });
      const active = this.current === null ? null : { commit: this.current.commit, digest: this.current.digest, generation: this.current.generation };
      call.write({ hello: { active, agent_version: AGENT_VERSION, agent_id: this.spec.agentId } });
    });
  }

  protected async pollOnce(): Promise<{ kind: 'ok' } | { kind: 'failed'; key: string }> {
    try {
      const active = this.current === null ? null : { commit: this.current.commit, digest: this.current.digest, generation: this.current.generation };
      const response = await this.rpc.fetch({ if_none_match: this.current?.digest ?? '', active, agent_id: this.spec.agentId });
      if (response.bundle === undefined || response.bundle === null) {
        counters.notModified += 1;
        this.markConnected();
        return { kind: 'ok' };
      }
      const ack = this.handle(response.bundle);
      await this.rpc.report(ack);
      this.markConnected();
      return { kind: 'ok' };
    } catch (err) {
      return { kind: 'failed', key: failureKey((err as { cause?: unknown }).cause ?? err) };
    }
  }

  protected override interrupt(): void {
    super.interrupt();
    const call = this.call;
    if (call !== undefined) {
      call.end();
      call.cancel();
    }
  }

  protected close(): void {
    this.rpc.close();
  }
}

class FloorAgent extends SimAgent {
  private readonly client: Client;
  private held = NO_SEQ;
  private call: ClientDuplexStream<Buffer, Buffer> | undefined;
  private readonly id: Buffer;

  constructor(spec: SimAgentSpec, setup: WorkerSetup, keyPem: string) {
    super(spec, setup);
    const credentials = pinnedCredentials({ trust: { kind: 'ca', caPem: setup.caPem }, keyPem, certPem: spec.certPem, pins: [parsePin(setup.pin)] });
    this.client = new Client(parseServerAddress(setup.address).target, credentials, CHANNEL_OPTIONS);
    this.id = Buffer.from(spec.agentId);
  }

  private receive(frame: Buffer): Buffer | undefined {
    const message = parseFloorFrame(frame);
    if (message.kind !== FLOOR_PAYLOAD) return undefined;
    if (counters.bundleSizes.length < 200) counters.bundleSizes.push(frame.length);
    this.held = message.seq;
    bump(counters.acked, String(message.seq));
    return floorFrame(FLOOR_ECHO, message.seq, this.id);
  }

  protected streamOnce(): Promise<{ kind: 'ended' } | { kind: 'failed'; key: string }> {
    return new Promise((resolve) => {
      const call = this.client.makeBidiStreamRequest(FLOOR_SERVICE.stream, raw, raw, new Metadata(), {});
      this.call = call;
      let settled = false;
      const settle = (outcome: { kind: 'ended' } | { kind: 'failed'; key: string }): void => {
        if (settled) return;
        settled = true;
        this.call = undefined;
        resolve(outcome);
      };
      call.on('data', (frame: Buffer) => {
        const echo = this.receive(frame);
        if (echo === undefined) return;
        this.backoff.reset();
        this.markConnected();
        if (!call.writableEnded && !call.destroyed) call.write(echo);
      });
      call.on('error', (err: unknown) => settle(this.stopped ? { kind: 'ended' } : { kind: 'failed', key: failureKey(err) }));
      call.on('status', (status: { code: number }) => {
        if (status.code === 0) settle({ kind: 'ended' });
      });
      call.write(floorFrame(FLOOR_HELLO, this.held, this.id));
    });
  }

  private unary(path: string, request: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(path, raw, raw, request, new Metadata(), { deadline: Date.now() + 15_000 }, (err, response) => {
        if (err !== null) reject(err);
        else resolve(response ?? Buffer.alloc(0));
      });
    });
  }

  protected async pollOnce(): Promise<{ kind: 'ok' } | { kind: 'failed'; key: string }> {
    try {
      const response = await this.unary(FLOOR_SERVICE.poll, floorFrame(FLOOR_HELLO, this.held, this.id));
      const echo = this.receive(response);
      if (echo === undefined) counters.notModified += 1;
      else await this.unary(FLOOR_SERVICE.report, echo);
      this.markConnected();
      return { kind: 'ok' };
    } catch (err) {
      return { kind: 'failed', key: failureKey(err) };
    }
  }

  protected override interrupt(): void {
    super.interrupt();
    const call = this.call;
    if (call !== undefined) {
      call.end();
      call.cancel();
    }
  }

  protected close(): void {
    this.client.close();
  }
}

let setup: WorkerSetup | undefined;
let specs: readonly SimAgentSpec[] = [];
let agents: SimAgent[] = [];
const send = (message: FromWorker): void => void process.send?.(message);

function report(): WorkerReport {
  return {
    agents: specs.length,
    connected: counters.connected,
    acked: Object.fromEntries(counters.acked),
    rejected: Object.fromEntries(counters.rejected),
    errors: Object.fromEntries(counters.errors),
    reconnects: counters.reconnects,
    notModified: counters.notModified,
    bundleSizes: counters.bundleSizes,
  };
}

async function connect(): Promise<void> {
  if (setup === undefined) throw new Error('connect before setup');
  const s = setup;
  // A fresh fleet each round: agents hold nothing and the counters start over.
  counters.connected = 0;
  counters.acked = new Map();
  counters.rejected = new Map();
  counters.errors = new Map();
  counters.reconnects = 0;
  counters.notModified = 0;
  const verifier = new BundleVerifier({ trustedKeys: s.signingKeyPem });
  agents = specs.map((spec) => {
    const keyPem = s.keys[spec.key] as string;
    return s.target === 'meshcfg' ? new MeshcfgAgent(spec, s, verifier, keyPem) : new FloorAgent(spec, s, keyPem);
  });
  const gap = agents.length > 0 ? s.rampMs / agents.length : 0;
  for (const [i, agent] of agents.entries()) {
    agent.start();
    // Yield now and then so a storm of 5,000 connects does not starve the IPC channel.
    if (gap > 0) await sleep(gap);
    else if (i % 200 === 199) await new Promise((r) => setImmediate(r));
  }
}

process.on('message', (message: ToWorker) => {
  const fail = (err: unknown): void => send({ type: 'fatal', error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  switch (message.type) {
    case 'setup':
      setup = message.setup;
      specs = JSON.parse(readFileSync(message.setup.agentsFile, 'utf8')) as SimAgentSpec[];
      send({ type: 'ready' });
      return;
    case 'connect':
      connect().catch(fail);
      return;
    case 'disconnect':
      Promise.all(agents.map((agent) => agent.stop()))
        .then(() => {
          agents = [];
          send({ type: 'disconnected' });
        })
        .catch(fail);
      return;
    case 'reset-polls':
      counters.notModified = 0;
      return;
    case 'report':
      send({ type: 'report', report: report() });
      return;
    default: {
      const never: never = message;
      fail(new Error(`unexpected message ${JSON.stringify(never)}`));
    }
  }
});
process.on('disconnect', () => process.exit(0));
