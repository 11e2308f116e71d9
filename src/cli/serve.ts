import type { Command } from 'commander';
import { pino, type DestinationStream, type Level } from 'pino';
import { BaseError, errorMessage } from '../domain/errors.js';
import { loadServerConfig, startServer } from '../server/index.js';
import { parseDuration } from '../domain/duration.js';
import { type CliIo, ExitCode } from './io.js';
import { errnoCode } from '../lib/index.js';

interface ServeFlags {
  readonly config: string;
  readonly logLevel: string;
  readonly shutdownTimeout: string;
}

const LEVELS: readonly Level[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'];

export function registerServe(program: Command, io: CliIo, setExit: (code: number) => void): void {
  program
    .command('serve')
    .description('run the config distribution server (gRPC for agents, admin HTTP API)')
    .requiredOption('--config <file>', 'server.yaml')
    .option('--log-level <level>', `one of ${LEVELS.join(', ')}`, 'info')
    .option('--shutdown-timeout <duration>', 'on SIGTERM/SIGINT, how long open streams get to finish', '10s')
    .addHelpText(
      'after',
      '\nLogs are JSON lines (pino) on stdout; start-up failures are also summarised on stderr.\n' +
        'Stops gracefully on SIGTERM or SIGINT (a second signal cuts the drain short).\n' +
        'A signal during start-up ends it at once, killed by that signal (status 143 for SIGTERM).\n' +
        'Exit codes: 0 stopped by a signal, 2 refused to start (invalid config, data dir, allowed signers, address in use, usage).',
    )
    .action(async (flags: ServeFlags) => {
      const level = flags.logLevel as Level;
      const deadlineMs = parseDuration(flags.shutdownTimeout);
      if (!LEVELS.includes(level) || deadlineMs === undefined) {
        io.stderr.write(`meshcfg serve: ${!LEVELS.includes(level) ? `--log-level must be one of ${LEVELS.join(', ')}` : '--shutdown-timeout must be a duration like 10s'}\n`);
        setExit(ExitCode.refused);
        return;
      }
      const logger = pino({ name: 'meshcfg', level }, io.stdout as DestinationStream);

      // Handlers first: a signal during start-up stops the process, even if start-up never settles.
      let signalled: (signal: NodeJS.Signals) => void = () => undefined;
      const stopRequested = new Promise<NodeJS.Signals>((resolve) => (signalled = resolve));
      let signals = 0;
      let forceClose: (() => void) | undefined;
      const onSignal = (signal: NodeJS.Signals): void => {
        signals += 1;
        logger.info({ event: 'signal', signal }, signals === 1 ? 'stopping' : 'stopping now');
        if (signals === 1) signalled(signal);
        else forceClose?.();
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
      try {
        let server;
        try {
          const startup = loadServerConfig(flags.config).then((config) => startServer(config, { logger }));
          const first = await Promise.race([
            startup.then((running) => ({ kind: 'started', server: running }) as const),
            stopRequested.then((signal) => ({ kind: 'interrupted', signal }) as const),
          ]);
          if (first.kind === 'interrupted') {
            logger.warn({ event: 'start-interrupted', signal: first.signal }, 'stopped during start-up');
            logger.flush();
            io.stderr.write(`meshcfg serve: stopped by ${first.signal} during start-up\n`);
            endBySignal(first.signal, onSignal);
            return;
          }
          server = first.server;
        } catch (err) {
          if (!(err instanceof BaseError) && !isListenError(err)) throw err;
          const code = err instanceof BaseError ? err.code : (err as NodeJS.ErrnoException).code;
          logger.fatal({ event: 'start-failed', code }, errorMessage(err));
          logger.flush();
          io.stderr.write(`meshcfg serve: ${code}: ${errorMessage(err)}\n`);
          setExit(ExitCode.refused);
          return;
        }
        await stopRequested;
        const running = server;
        forceClose = () => void running.close(0);
        await running.close(deadlineMs);
        setExit(ExitCode.ok);
      } finally {
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
      }
    });
}

/**
 * Ends the process the way an unhandled signal does: at once, killed by that signal (shells
 * report 128+N). Start-up may be stuck in a system call that never returns — opening a FIFO,
 * a hung mount — and `process.exit()` would wait for that thread forever (libuv joins its
 * thread pool at exit). Nothing has been served yet, and every file start-up writes is
 * written atomically, so there is nothing to drain.
 */
function endBySignal(signal: NodeJS.Signals, ourHandler: (signal: NodeJS.Signals) => void): void {
  process.off('SIGTERM', ourHandler);
  process.off('SIGINT', ourHandler);
  process.kill(process.pid, signal);
}

/** The admin listener's bind errors come from node:net uncoded by meshcfg. */
function isListenError(err: unknown): boolean {
  const code = errnoCode(err);
  return code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL';
}
