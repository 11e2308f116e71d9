import type { Command } from 'commander';
import { type AgentMode, runAgent } from '../agent/index.js';
import { AgentError, errorMessage } from '../domain/errors.js';
import { agentLogger, parseInterval } from './agent-log.js';
import { type CliIo, ExitCode } from './io.js';

interface AgentFlags {
  readonly server?: string;
  readonly dir: string;
  readonly out: string;
  readonly poll?: string;
  readonly exec?: string;
  readonly execTimeout: string;
  readonly timeout: string;
}

export function registerAgent(program: Command, io: CliIo, setExit: (code: number) => void): void {
  program
    .command('agent')
    .description('run the reference agent: receive signed bundles, verify, write --out atomically, reload, acknowledge')
    .requiredOption('--dir <dir>', 'the agent directory written by `meshcfg enroll`')
    .requiredOption('--out <file>', 'the config file to keep (written with exactly the bundle bytes)')
    .option('--server <host:port>', 'the server to connect to (default: the one in <dir>/agent.json)')
    .option('--poll <interval>', 'poll every interval (e.g. 5s) instead of keeping a stream open')
    .option('--exec <cmd>', 'reload command, run with `sh -c` after each new file (MESHCFG_FILE is its path); non-zero exit puts the previous file back')
    .option('--exec-timeout <duration>', 'kill the reload command after this long and count it as failed', '30s')
    .option('--timeout <duration>', 'deadline of each unary call (fetch, report, renew)', '15s')
    .addHelpText(
      'after',
      '\nLogs are JSON lines on stderr (MESHCFG_LOG_LEVEL=debug for more). SIGTERM/SIGINT finish the\n' +
        'apply in progress, close the stream and exit 0. A bundle that cannot be written or reloaded is\n' +
        'answered REJECTED with the error; the agent keeps running.\n\n' +
        'Exit codes: 0 stopped by a signal, 2 cannot start (not enrolled, --out cannot be written, bad flags), 70 internal error.',
    )
    .action(async (flags: AgentFlags) => {
      const fail = (code: string, message: string): void => {
        io.stderr.write(`meshcfg agent: ${code}: ${message}\n`);
        setExit(ExitCode.refused);
      };
      let mode: AgentMode = { kind: 'stream' };
      if (flags.poll !== undefined) {
        const intervalMs = parseInterval(flags.poll);
        if (intervalMs === undefined) return fail('USAGE', `--poll is not an interval like 5s: ${JSON.stringify(flags.poll)}`);
        mode = { kind: 'poll', intervalMs };
      }
      const execTimeoutMs = parseInterval(flags.execTimeout);
      if (execTimeoutMs === undefined) return fail('USAGE', `--exec-timeout is not a duration like 30s: ${JSON.stringify(flags.execTimeout)}`);
      const rpcTimeoutMs = parseInterval(flags.timeout);
      if (rpcTimeoutMs === undefined) return fail('USAGE', `--timeout is not a duration like 15s: ${JSON.stringify(flags.timeout)}`);

      const stop = new AbortController();
      const onSignal = (): void => stop.abort();
      process.once('SIGTERM', onSignal);
      process.once('SIGINT', onSignal);
      try {
        await runAgent({
          dir: flags.dir,
          out: flags.out,
          ...(flags.server === undefined ? {} : { server: flags.server }),
          mode,
          ...(flags.exec === undefined ? {} : { exec: flags.exec }),
          execTimeoutMs,
          rpcTimeoutMs,
          signal: stop.signal,
          logger: agentLogger(io, 'meshcfg-agent'),
        });
        setExit(ExitCode.ok);
      } catch (err) {
        if (err instanceof AgentError) return fail(err.code, errorMessage(err));
        throw err;
      } finally {
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
      }
    });
}
