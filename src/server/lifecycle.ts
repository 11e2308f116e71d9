import type { Logger } from 'pino';
import type { SourceStatus } from '../source/index.js';
import type { ServerConfig } from './config.js';
import type { StartServerOptions } from './running.js';

/**
 * The server's shutdown steps, run in reverse of the order they were pushed (the store, pushed
 * first, closes last). A failing step is logged and the others still run. Run once.
 */
export class CleanupStack {
  private readonly steps: Array<() => Promise<void> | void> = [];
  private closing: Promise<void> | undefined;
  /** How long the gRPC drain may take; `close` sets it before the steps run. */
  deadlineMs = 5_000;

  constructor(private readonly logger: Logger) {}

  push(step: () => Promise<unknown> | unknown): void {
    this.steps.push(async () => {
      await step();
    });
  }

  /** A periodic check, stopped at shutdown; its timer does not keep the process alive. */
  every(ms: number, check: () => unknown): void {
    const timer = setInterval(() => void check(), ms);
    timer.unref();
    this.push(() => clearInterval(timer));
  }

  /** Graceful shutdown, once (later calls return the first one's promise): `first`, then every step, then the log is flushed. */
  close(deadlineMs: number, first: () => void): Promise<void> {
    this.deadlineMs = deadlineMs;
    this.closing ??= (async () => {
      this.logger.info({ event: 'shutdown' }, 'shutting down');
      first();
      await this.run();
      this.logger.info({ event: 'stopped' }, 'meshcfg server stopped');
      this.logger.flush();
    })();
    return this.closing;
  }

  async run(): Promise<void> {
    for (const step of this.steps.splice(0).reverse()) {
      try {
        await step();
      } catch (err) {
        this.logger.warn({ event: 'shutdown-step-failed', err }, 'a shutdown step failed');
      }
    }
  }
}

/** The poll interval, backing off exponentially (with jitter) while fetches fail, up to 5 minutes. */
export function pollDelay(intervalMs: number, status: SourceStatus): number {
  if (status.consecutiveFailures === 0) return intervalMs;
  const ceiling = Math.min(300_000, intervalMs * 2 ** Math.min(status.consecutiveFailures, 16));
  return Math.max(intervalMs, ceiling / 2 + Math.random() * (ceiling / 2));
}

/** What every wiring phase of `startServer` takes: the configuration, the options, and where shutdown steps go. */
export interface WiringContext {
  readonly config: ServerConfig;
  readonly options: StartServerOptions;
  readonly logger: Logger;
  readonly now: () => Date;
  /** Each phase pushes its steps in build order; they run in reverse (the store, pushed first, closes last). */
  readonly cleanups: CleanupStack;
}
