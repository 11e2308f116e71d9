/**
 * The floor: a bare @grpc/grpc-js server with meshcfg's TLS settings (mTLS required, TLS 1.2+,
 * the same RSA server certificate from the same CA) and the same RPC shapes — a bidi stream, a
 * unary poll and a unary report — that writes one payload of the median meshcfg bundle size to
 * every stream and waits for an application-level echo. No git, no signing, no per-agent
 * bundles, no state: what the transport alone costs. Runs in its own process (forked by the
 * benchmark) so its RSS and CPU can be read from /proc like `meshcfg serve`'s.
 */
import { type ServerDuplexStream, type ServerUnaryCall, type sendUnaryData, Server, ServerCredentials, type ServiceDefinition } from '@grpc/grpc-js';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import {
  FLOOR_ECHO,
  FLOOR_HELLO,
  FLOOR_NOT_MODIFIED,
  FLOOR_PAYLOAD,
  FLOOR_SERVICE,
  type FloorSetup,
  type FromFloor,
  floorFrame,
  parseFloorFrame,
  type ToFloor,
} from './protocol.js';

const raw = (b: Buffer): Buffer => b;
const method = (path: string, requestStream: boolean, responseStream: boolean): ServiceDefinition[string] => ({
  path,
  requestStream,
  responseStream,
  requestSerialize: raw,
  requestDeserialize: raw,
  responseSerialize: raw,
  responseDeserialize: raw,
});
const floorService: ServiceDefinition = {
  Stream: method(FLOOR_SERVICE.stream, true, true),
  Poll: method(FLOOR_SERVICE.poll, false, false),
  Report: method(FLOOR_SERVICE.report, false, false),
};

type Call = ServerDuplexStream<Buffer, Buffer>;

const send = (message: FromFloor): void => void process.send?.(message);

let payloadBytes = 4096;
let seq = 0;
let startedAt = 0;
/** The first echo of the current sequence per agent id (echoes are keyed like meshcfg's acks). */
let echoes = new Map<string, number>();
const streams = new Set<Call>();
const loop = monitorEventLoopDelay({ resolution: 10 });
loop.enable();

function recordEcho(seqEchoed: number, agent: string): void {
  if (seqEchoed === seq && !echoes.has(agent)) echoes.set(agent, Date.now());
}

function start(setup: FloorSetup): void {
  const server = new Server({
    // meshcfg's server channel options (src/transport/server.ts).
    'grpc.max_concurrent_streams': 16,
    'grpc.keepalive_time_ms': 120_000,
    'grpc.keepalive_timeout_ms': 20_000,
  });
  server.addService(floorService, {
    Stream: (call: Call) => {
      streams.add(call);
      call.on('data', (frame: Buffer) => {
        const message = parseFloorFrame(frame);
        if (message.kind === FLOOR_HELLO) {
          // Like meshcfg answering a hello with the agent's bundle.
          call.write(floorFrame(FLOOR_PAYLOAD, seq, payloadBytes));
        } else if (message.kind === FLOOR_ECHO) {
          recordEcho(message.seq, message.body.toString());
        }
      });
      const drop = (): void => void streams.delete(call);
      call.on('end', () => {
        drop();
        call.end();
      });
      call.on('error', drop);
      call.on('cancelled', drop);
    },
    Poll: (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
      const message = parseFloorFrame(call.request);
      // The client names the sequence it holds (like If-None-Match); a client that holds nothing asks with 0xffffffff.
      callback(null, message.seq === seq ? floorFrame(FLOOR_NOT_MODIFIED, seq, 0) : floorFrame(FLOOR_PAYLOAD, seq, payloadBytes));
    },
    Report: (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
      const message = parseFloorFrame(call.request);
      recordEcho(message.seq, message.body.toString());
      callback(null, Buffer.alloc(0));
    },
  });
  const credentials = ServerCredentials.createSsl(Buffer.from(setup.caPem), [{ private_key: Buffer.from(setup.keyPem), cert_chain: Buffer.from(setup.certPem) }], true);
  server.bindAsync('127.0.0.1:0', credentials, (err, port) => {
    if (err !== null) throw err;
    send({ type: 'listening', port });
  });
}

process.on('message', (message: ToFloor) => {
  switch (message.type) {
    case 'setup':
      start(message.setup);
      return;
    case 'payload':
      payloadBytes = message.bytes;
      return;
    case 'broadcast': {
      seq = message.seq;
      echoes = new Map();
      startedAt = Date.now();
      const frame = floorFrame(FLOOR_PAYLOAD, seq, payloadBytes);
      for (const call of streams) call.write(frame);
      return;
    }
    case 'report':
      send({ type: 'report', seq: message.seq, startedAt, echoes: message.seq === seq ? [...echoes.values()] : [], loopDelayMaxMs: loop.max / 1e6, streams: streams.size });
      return;
    case 'reset-loop-delay':
      loop.reset();
      return;
    default: {
      const never: never = message;
      throw new Error(`unexpected message ${JSON.stringify(never)}`);
    }
  }
});
process.on('disconnect', () => process.exit(0));
