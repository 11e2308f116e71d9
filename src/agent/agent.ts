import { Sealed } from '../lib/index.js';
import { resolve } from 'node:path';
import { AgentError, errorMessage } from '../domain/errors.js';
import { BundleVerifier } from '../signing/index.js';
import { type AckMsg, DistributionRpc, fromGrpcError, parseServerAddress, pinnedCredentials, type ServerAddress, type ServerMessageMsg } from '../transport/index.js';
import { activeConfig, applyBundle, type ApplyResult, type IncomingBundle } from './apply.js';
import { Backoff, type BackoffOptions, sleep } from './backoff.js';
import { type AgentCredentials, loadAgentIdentity } from './dir.js';
import { type AgentLogger, silentLogger } from './logger.js';
import { checkOutputFile } from './output.js';
import { type Reloader, shellReloader } from './reload.js';
import { renewalDelay, renewCertificate } from './renew.js';

export const AGENT_VERSION = 'meshcfg-agent/0.1.0';

export type AgentMode = { readonly kind: 'stream' } | { readonly kind: 'poll'; readonly intervalMs: number };

export interface AgentOptions {
  /** The directory `meshcfg enroll` wrote. */
  readonly dir: string;
  /** The config file to keep (`--out`). */
  readonly out: string;
  /** `HOST:PORT`; default: the server in agent.json. */
  readonly server?: string;
  /** Default: stream. */
  readonly mode?: AgentMode;
  /** Reload command (`--exec`), run with `sh -c` and MESHCFG_FILE. */
  readonly exec?: string;
  /** Default 30 s. */
  readonly execTimeoutMs?: number;
  /** Replaces the shell reloader (tests). */
  readonly reloader?: Reloader;
  /** Aborting stops the agent gracefully: an in-flight apply finishes and is acked, then the stream closes. */
  readonly signal?: AbortSignal;
  readonly logger?: AgentLogger;
  readonly now?: () => Date;
  /** Deadline of unary RPCs (Fetch, Report, Renew). Default 15 s. */
  readonly rpcTimeoutMs?: number;
  /** Reconnect backoff. Default 500 ms doubling to 30 s, full jitter. */
  readonly backoff?: BackoffOptions;
  /** A stream open this long (or that delivered a message) counts as healthy and resets the backoff. Default 10 s. */
  readonly healthyAfterMs?: number;
  /** Told after each bundle is handled (tests, metrics). */
  readonly onApplied?: (result: ApplyResult) => void;
}

/**
 * Runs the reference agent until `signal` aborts. Resolves after a graceful stop; rejects only
 * when it cannot start (AgentError OUTPUT_INVALID / AGENT_DIR_INVALID / STATE_INVALID). Network
 * failures, refusals and local failures to apply never end it: they are logged, acked REJECTED
 * where a bundle was concerned, and retried.
 */
export async function runAgent(options: AgentOptions): Promise<void> {
  await checkOutputFile(resolve(options.out));
  const identity = await loadAgentIdentity(options.dir);
  const agent = new Agent(options, identity);
  await agent.run();
}

/** The composition of the pieces: identity, channel, apply path, stream or poll session, renewal. */
class Agent {
  private readonly options: AgentOptions;
  private readonly logger: AgentLogger;
  private readonly server: ServerAddress;
  private readonly signal: AbortSignal;
  private readonly now: () => Date;
  private readonly reloader: Reloader | undefined;
  private readonly file: string;
  /** Sealed, since it holds the agent's private key: logging the agent never shows it. */
  private sealedIdentity: Sealed<AgentCredentials>;
  private verifier: BundleVerifier;
  private rpc: DistributionRpc;
  /** Applies run one at a time, whichever session received them. */
  private applying: Promise<unknown> = Promise.resolve();
  /** Ends the current stream so the loop reconnects at once (after a renewal). */
  private restartStream: (() => void) | undefined;

  constructor(options: AgentOptions, identity: AgentCredentials) {
    this.options = options;
    this.logger = options.logger ?? silentLogger;
    this.signal = options.signal ?? new AbortController().signal;
    this.now = options.now ?? (() => new Date());
    this.sealedIdentity = new Sealed(identity);
    this.server = parseServerAddress(options.server ?? identity.config.server);
    this.file = resolve(options.out);
    this.reloader =
      options.reloader ??
      (options.exec === undefined
        ? undefined
        : shellReloader({ command: options.exec, ...(options.execTimeoutMs === undefined ? {} : { timeoutMs: options.execTimeoutMs }) }));
    this.verifier = new BundleVerifier({ trustedKeys: identity.signingKeyPem, now: () => this.now().getTime() });
    this.rpc = this.connect(identity);
  }

  async run(): Promise<void> {
    const identity = this.sealedIdentity.open();
    this.logger.info(
      { agentId: identity.agentId, server: this.server.target, out: this.file, mode: this.options.mode?.kind ?? 'stream', certExpiry: identity.notAfter.toISOString() },
      'agent starting',
    );
    if (identity.notAfter.getTime() <= this.now().getTime()) {
      this.logger.error({ certExpiry: identity.notAfter.toISOString() }, 'the agent certificate has expired: the server will refuse it; run `meshcfg enroll` with a new token');
    }
    const renewal = this.renewLoop();
    try {
      const mode = this.options.mode ?? { kind: 'stream' };
      switch (mode.kind) {
        case 'stream':
          await this.streamLoop();
          break;
        case 'poll':
          await this.pollLoop(mode.intervalMs);
          break;
        default: {
          const never: never = mode;
          throw new Error(`unexpected mode ${JSON.stringify(never)}`);
        }
      }
    } finally {
      await this.applying;
      await renewal;
      this.rpc.close();
      this.logger.info({}, 'agent stopped');
    }
  }

  private connect(identity: AgentCredentials): DistributionRpc {
    const credentials = pinnedCredentials({
      trust: { kind: 'ca', caPem: identity.caPem },
      keyPem: identity.keyPem,
      certPem: identity.certPem,
      pins: identity.config.pins,
      onPinMismatch: (host) => this.logger.error({ server: host }, 'the server key matches none of the pinned keys: refusing to connect'),
    });
    return new DistributionRpc(this.server, credentials, this.options.rpcTimeoutMs === undefined ? {} : { timeoutMs: this.options.rpcTimeoutMs });
  }

  /** Serialises applies. applyBundle answers local failures itself; what still throws here is a bug, logged, unacked. */
  private apply(bundle: IncomingBundle): Promise<ApplyResult | undefined> {
    const run = this.applying.then(async () => {
      try {
        const result = await applyBundle(bundle, {
          verifier: this.verifier,
          agentId: this.sealedIdentity.open().agentId,
          file: this.file,
          stateFile: this.sealedIdentity.open().paths.state,
          ...(this.reloader === undefined ? {} : { reload: this.reloader }),
          now: this.now,
          logger: this.logger,
        });
        this.options.onApplied?.(result);
        return result;
      } catch (err) {
        this.logger.error({ err: errorMessage(err), commit: bundle.commit, generation: bundle.generation }, 'applying the bundle failed locally');
        return undefined;
      }
    });
    this.applying = run;
    return run;
  }

  private async hello(): Promise<{ active: { commit: string; digest: string; generation: number } | null }> {
    return { active: await activeConfig(this.file, this.sealedIdentity.open().paths.state) };
  }

  private logFailure(err: AgentError, delayMs: number): void {
    const fields = { code: err.code, err: err.message, retryInMs: delayMs };
    switch (err.code) {
      case 'UNAUTHENTICATED':
        this.logger.error(fields, 'the server refused this agent (UNAUTHENTICATED): its certificate is unknown, expired, revoked or from another CA; re-enroll if it persists');
        return;
      case 'PERMISSION_DENIED':
        this.logger.error(fields, 'the server refused this agent (PERMISSION_DENIED): not in the inventory, revoked (enroll again with a new token), its certificate replaced by a renewal, or an identity mismatch');
        return;
      case 'PIN_MISMATCH':
        this.logger.error(fields, 'the server key matches none of the pinned keys: not connecting');
        return;
      default:
        this.logger.warn(fields, 'connection to the server failed; retrying');
    }
  }

  // ---- Streaming ----

  private async streamLoop(): Promise<void> {
    const backoff = new Backoff(this.options.backoff);
    while (!this.signal.aborted) {
      const outcome = await this.streamOnce();
      if (this.signal.aborted) return;
      if (outcome.kind === 'restart') continue;
      if (outcome.healthy) backoff.reset();
      const delay = backoff.next();
      if (outcome.kind === 'failed') this.logFailure(outcome.error, delay);
      else this.logger.info({ retryInMs: delay }, 'the server closed the stream; reconnecting');
      await sleep(delay, this.signal);
    }
  }

  /** One stream, from hello to its end. Never rejects. */
  private streamOnce(): Promise<
    { readonly kind: 'ended'; readonly healthy: boolean } | { readonly kind: 'failed'; readonly healthy: boolean; readonly error: AgentError } | { readonly kind: 'restart' }
  > {
    return new Promise((resolveOutcome) => {
      const call = this.rpc.stream();
      let healthy = false;
      let closing: 'stop' | 'restart' | undefined;
      let settled = false;
      /** Bundles arrive faster than they apply only if the server moves on: keep the newest. */
      let pending: IncomingBundle | undefined;
      let draining: Promise<void> | undefined;
      const healthyTimer = setTimeout(() => {
        healthy = true;
      }, this.options.healthyAfterMs ?? 10_000);

      const settle = (outcome: Parameters<typeof resolveOutcome>[0]): void => {
        if (settled) return;
        settled = true;
        clearTimeout(healthyTimer);
        this.signal.removeEventListener('abort', onAbort);
        this.restartStream = undefined;
        // An apply already running finishes (its ack may be lost; the next hello says what runs).
        void Promise.resolve(draining).then(() => resolveOutcome(outcome));
      };

      const sendAck = (ack: AckMsg): Promise<void> =>
        new Promise((done) => {
          if (settled || call.writableEnded || call.destroyed) {
            done();
            return;
          }
          call.write({ ack }, () => done());
        });

      const drain = async (): Promise<void> => {
        while (pending !== undefined) {
          const bundle = pending;
          pending = undefined;
          const result = await this.apply(bundle);
          if (result !== undefined) await sendAck(result.ack);
        }
        draining = undefined;
      };

      const close = (how: 'stop' | 'restart'): void => {
        if (closing !== undefined) return;
        closing = how;
        pending = undefined;
        // Graceful: the in-flight apply and its ack go out first, then we half-close and cancel.
        void Promise.resolve(draining).then(() => {
          call.end();
          setTimeout(() => call.cancel(), 1_000).unref();
        });
      };
      const onAbort = (): void => close('stop');
      this.signal.addEventListener('abort', onAbort, { once: true });
      this.restartStream = () => close('restart');

      call.on('data', (message: ServerMessageMsg) => {
        healthy = true;
        if (closing !== undefined || message.bundle === undefined || message.bundle === null) return;
        if (pending !== undefined) this.logger.info({ superseded: pending.generation, by: message.bundle.generation }, 'a newer bundle superseded one not yet applied');
        pending = message.bundle;
        draining ??= drain();
      });
      call.on('error', (err: unknown) => {
        if (closing !== undefined) {
          settle(closing === 'restart' ? { kind: 'restart' } : { kind: 'ended', healthy });
          return;
        }
        settle({ kind: 'failed', healthy, error: fromGrpcError(err, 'config stream') });
      });
      // grpc-js emits 'error' for a non-OK status and 'status' for every one: OK is a clean end.
      call.on('status', (status: { code: number }) => {
        if (status.code === 0) settle(closing === 'restart' ? { kind: 'restart' } : { kind: 'ended', healthy });
      });

      void this.hello().then(
        (hello) => {
          if (closing !== undefined || settled) return;
          call.write({ hello: { active: hello.active, agent_version: AGENT_VERSION, agent_id: this.sealedIdentity.open().agentId } });
          this.logger.info({ server: this.server.target, active: hello.active }, 'stream opened, hello sent');
        },
        (err: unknown) => {
          this.logger.error({ err: errorMessage(err) }, 'cannot read the running config for hello');
          close('stop');
          settle({ kind: 'failed', healthy: false, error: err instanceof AgentError ? err : new AgentError({ code: 'STATE_INVALID', message: errorMessage(err), cause: err }) });
        },
      );
    });
  }

  // ---- Polling ----

  private async pollLoop(intervalMs: number): Promise<void> {
    const backoff = new Backoff(this.options.backoff);
    while (!this.signal.aborted) {
      let delay: number;
      try {
        await this.pollOnce();
        backoff.reset();
        // ±10 % so a fleet started together drifts apart.
        delay = intervalMs * (0.9 + Math.random() * 0.2);
      } catch (err) {
        const error = err instanceof AgentError ? err : fromGrpcError(err, 'poll');
        delay = Math.max(backoff.next(), Math.min(intervalMs, 1_000));
        this.logFailure(error, delay);
      }
      await sleep(delay, this.signal);
    }
  }

  private async pollOnce(): Promise<void> {
    const { active } = await this.hello();
    const response = await this.rpc.fetch({ if_none_match: active?.digest ?? '', active, agent_id: this.sealedIdentity.open().agentId });
    if (response.bundle === undefined || response.bundle === null) {
      this.logger.debug({ digest: active?.digest ?? '' }, 'not modified');
      return;
    }
    const result = await this.apply(response.bundle);
    if (result !== undefined) await this.rpc.report(result.ack);
  }

  // ---- Certificate renewal ----

  private async renewLoop(): Promise<void> {
    const retry = new Backoff({ initialMs: 5_000, maxMs: 5 * 60_000 });
    while (!this.signal.aborted) {
      await sleep(renewalDelay(this.sealedIdentity.open(), this.now()), this.signal);
      if (this.signal.aborted) return;
      try {
        const renewed = await renewCertificate(this.sealedIdentity.open(), {
          server: this.server,
          ...(this.options.rpcTimeoutMs === undefined ? {} : { timeoutMs: this.options.rpcTimeoutMs }),
        });
        this.sealedIdentity = new Sealed(renewed);
        const old = this.rpc;
        this.rpc = this.connect(renewed);
        this.restartStream?.();
        // The old channel may still carry the stream being closed; give it time to finish.
        setTimeout(() => old.close(), 5_000).unref();
        retry.reset();
        this.logger.info({ certExpiry: renewed.notAfter.toISOString() }, 'certificate renewed');
      } catch (err) {
        const delay = retry.next();
        const error = err instanceof AgentError ? err : fromGrpcError(err, 'certificate renewal');
        this.logger.error({ code: error.code, err: error.message, retryInMs: delay, certExpiry: this.sealedIdentity.open().notAfter.toISOString() }, 'certificate renewal failed');
        await sleep(delay, this.signal);
      }
    }
  }
}
