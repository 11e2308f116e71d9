import type { ServerDuplexStream } from '@grpc/grpc-js';
import type { AgentIdentity, Delivery, DistributionBackend } from './backend.js';
import { checkEchoedAgentId } from './identity.js';
import { ackReport, activeReport, bundleMessage } from './messages.js';
import type { AgentMessageMsg, ServerMessageMsg } from './proto.js';
import { grpcError, type UnauthorizedRefusal, Status } from './status.js';

/**
 * One `Distribution.Stream` call of an authenticated agent: hello, then deliveries down and
 * acks up, until either side ends it.
 */

/**
 * At most one message in flight and one waiting, the latest winning: a newer delivery makes an
 * older unsent one pointless, so a slow reader costs one pending message, never a queue
 * (go-control-plane answers a watch with the latest snapshot the same way).
 *
 * "In flight" lasts until grpc-js has handed the message to HTTP/2 (the write callback), which
 * waits for the peer's flow-control window — stricter than `write()`'s return value, which
 * only turns false after 16 buffered objects.
 */
export class LatestWinsWriter<T> {
  private inFlight = false;
  private pending: T | undefined;
  private closed = false;
  private writtenCount = 0;
  private supersededCount = 0;
  private readonly write: (message: T, done: () => void) => void;

  constructor(write: (message: T, done: () => void) => void) {
    this.write = write;
  }

  /** Messages handed to the stream so far. */
  get written(): number {
    return this.writtenCount;
  }

  /** Messages dropped unsent because a newer one arrived while they waited. */
  get superseded(): number {
    return this.supersededCount;
  }

  push(message: T): void {
    if (this.closed) return;
    if (this.inFlight) {
      if (this.pending !== undefined) this.supersededCount += 1;
      this.pending = message;
      return;
    }
    this.send(message);
  }

  close(): void {
    this.closed = true;
    this.pending = undefined;
  }

  private send(message: T): void {
    this.inFlight = true;
    this.writtenCount += 1;
    this.write(message, () => {
      this.inFlight = false;
      const next = this.pending;
      this.pending = undefined;
      if (next !== undefined && !this.closed) this.send(next);
    });
  }
}

/** What a stream needs from the server around it. */
export interface StreamContext {
  readonly backend: DistributionBackend;
  readonly helloTimeoutMs: number;
  readonly now: () => Date;
  /** Re-checks the caller (certificate expiry, revocation) before each delivery and ack. */
  readonly reauthorize: (identity: AgentIdentity) => UnauthorizedRefusal | undefined;
  /** Counts, logs and turns a refusal into the status to end the call with. */
  readonly refuse: (refusal: UnauthorizedRefusal) => Error;
  /** Something unexpected (a backend that threw): logged, and the call ends with INTERNAL. */
  readonly failed: (err: unknown, what: string) => void;
  /** No hello came within `helloTimeoutMs` (the stream is ended DEADLINE_EXCEEDED). */
  readonly helloTimedOut?: () => void;
  /** Hello accepted: the agent is subscribed. */
  readonly opened: (stream: AgentStream) => void;
  /** Called once for every stream, `wasOpen` when `opened` was called for it. */
  readonly closed: (stream: AgentStream, wasOpen: boolean) => void;
}

export type AgentStreamCall = ServerDuplexStream<AgentMessageMsg, ServerMessageMsg>;

/** setTimeout's delay is a signed 32-bit millisecond count; longer timers fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class AgentStream {
  readonly identity: AgentIdentity;
  private readonly call: AgentStreamCall;
  private readonly context: StreamContext;
  private readonly writer: LatestWinsWriter<ServerMessageMsg>;
  private state: 'awaiting-hello' | 'open' | 'closed' = 'awaiting-hello';
  private unsubscribe: (() => void) | undefined;
  private helloTimer: NodeJS.Timeout | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;

  constructor(call: AgentStreamCall, identity: AgentIdentity, context: StreamContext) {
    this.call = call;
    this.identity = identity;
    this.context = context;
    this.writer = new LatestWinsWriter((message, done) => {
      call.write(message, done);
    });
  }

  /** Whether hello was received and the agent is subscribed. */
  get isOpen(): boolean {
    return this.state === 'open';
  }

  start(): void {
    const call = this.call;
    call.on('data', (message: AgentMessageMsg) => this.guard('a message', () => this.onMessage(message)));
    call.on('end', () => this.close());
    call.on('cancelled', () => this.teardown());
    call.on('error', () => this.teardown());
    call.on('close', () => this.teardown());
    this.helloTimer = setTimeout(() => {
      this.context.helloTimedOut?.();
      this.close(grpcError(Status.DEADLINE_EXCEEDED, `no hello within ${this.context.helloTimeoutMs} ms`));
    }, this.context.helloTimeoutMs);
    this.helloTimer.unref();
  }

  /** Ends the call — with `status` when given, else OK — and releases everything it holds. */
  close(status?: Error): void {
    if (this.state === 'closed') return;
    this.teardown();
    if (status === undefined) this.call.end();
    else this.call.emit('error', status);
  }

  private teardown(): void {
    if (this.state === 'closed') return;
    const wasOpen = this.state === 'open';
    this.state = 'closed';
    this.writer.close();
    clearTimeout(this.helloTimer);
    clearTimeout(this.expiryTimer);
    const unsubscribe = this.unsubscribe;
    this.unsubscribe = undefined;
    // Runs inside grpc-js event handlers: a throwing backend is logged, never rethrown.
    try {
      unsubscribe?.();
    } catch (err) {
      this.context.failed(err, 'unsubscribe');
    }
    try {
      this.context.closed(this, wasOpen);
    } catch (err) {
      this.context.failed(err, 'the end of a stream');
    }
  }

  private onMessage(message: AgentMessageMsg): void {
    if (this.state === 'closed') return;
    if (this.state === 'awaiting-hello') {
      if (message.kind !== 'hello' || message.hello === null || message.hello === undefined) {
        this.close(grpcError(Status.INVALID_ARGUMENT, 'the first message of a stream must be hello'));
        return;
      }
      this.onHello(message.hello);
      return;
    }
    switch (message.kind) {
      case 'hello':
        this.close(grpcError(Status.INVALID_ARGUMENT, 'hello may be sent once, first'));
        return;
      case 'ack':
        if (message.ack === null || message.ack === undefined) break;
        this.onAck(message.ack);
        return;
      case undefined:
        break;
      default: {
        const never: never = message.kind;
        throw new Error(`unexpected agent message ${String(never)}`);
      }
    }
    this.close(grpcError(Status.INVALID_ARGUMENT, 'an agent message must carry hello or ack'));
  }

  private onHello(hello: NonNullable<AgentMessageMsg['hello']>): void {
    const mismatch = checkEchoedAgentId(this.identity, hello.agent_id, 'hello');
    if (mismatch !== undefined) {
      this.close(this.context.refuse(mismatch));
      return;
    }
    const active = activeReport(hello.active);
    if (!active.ok) {
      this.close(this.context.refuse({ ...active.refusal, agentId: this.identity.agentId }));
      return;
    }
    clearTimeout(this.helloTimer);
    const { backend } = this.context;
    const judged = backend.reportActive(this.identity, active.value);
    this.state = 'open';
    this.context.opened(this);
    this.armExpiry();
    // Nothing is sent before the report is judged: a drifting agent's first bundle is the baseline.
    if (judged === undefined) this.subscribe();
    else {
      judged.then(
        () => this.guard('a delivery', () => this.subscribe()),
        (err: unknown) => this.guard('the hello', () => {
          throw err;
        }),
      );
    }
  }

  private subscribe(): void {
    if (!this.isOpen) return;
    const unsubscribe = this.context.backend.watch(this.identity.agentId, (delivery) => this.guard('a delivery', () => this.onDelivery(delivery)));
    // The listener may have closed the stream synchronously (a refusal on the first delivery).
    if (!this.isOpen) unsubscribe();
    else this.unsubscribe = unsubscribe;
  }

  private onDelivery(delivery: Delivery): void {
    if (this.state !== 'open') return;
    const refusal = this.context.reauthorize(this.identity);
    if (refusal !== undefined) {
      this.close(this.context.refuse(refusal));
      return;
    }
    this.writer.push({ bundle: bundleMessage(delivery) });
  }

  private onAck(ack: NonNullable<AgentMessageMsg['ack']>): void {
    const refusal = this.context.reauthorize(this.identity) ?? checkEchoedAgentId(this.identity, ack.agent_id, 'ack');
    if (refusal !== undefined) {
      this.close(this.context.refuse(refusal));
      return;
    }
    const report = ackReport(ack);
    if (report === undefined) {
      this.close(grpcError(Status.INVALID_ARGUMENT, 'ack status must be APPLIED or REJECTED'));
      return;
    }
    if (!report.ok) {
      this.close(this.context.refuse({ ...report.refusal, agentId: this.identity.agentId }));
      return;
    }
    // A stale outcome (an answer to a superseded delivery) is the backend's to ignore; the stream goes on.
    this.context.backend.ack(this.identity, report.value);
  }

  /**
   * Asks again whether the caller may load config (its identity was revoked, its certificate
   * replaced) and ends the stream, refused, when not. True when the stream was ended.
   */
  recheck(): boolean {
    if (this.state !== 'open') return false;
    const refusal = this.context.reauthorize(this.identity);
    if (refusal === undefined) return false;
    this.close(this.context.refuse(refusal));
    return true;
  }

  /** A connection may outlive its certificate: the stream ends when the certificate does. */
  private armExpiry(): void {
    const remaining = this.identity.notAfter.getTime() - this.context.now().getTime();
    if (remaining > MAX_TIMER_MS) return;
    this.expiryTimer = setTimeout(
      () => {
        const refusal = this.context.reauthorize(this.identity);
        if (refusal !== undefined) this.close(this.context.refuse(refusal));
        else this.armExpiry();
      },
      Math.max(0, remaining) + 1,
    );
    this.expiryTimer.unref();
  }

  /** Event handlers must not throw into grpc-js: a failing backend ends this stream, not the process. */
  private guard(what: string, step: () => void): void {
    try {
      step();
    } catch (err) {
      this.context.failed(err, what);
      this.close(grpcError(Status.INTERNAL, `internal error while handling ${what}`));
    }
  }
}
