import { relative, resolve } from 'node:path';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { type CliIo, ExitCode } from '../cli/index.js';
import { errorMessage } from '../domain/errors.js';
import { DEMO_DEFAULT_PORTS, type RunningDemo, startDemo } from './demo.js';
import { DemoError } from './errors.js';
import { demoLayout, type DemoLayout, releaseFolder } from './folder.js';
import { MESHCFG_BIN, Supervisor } from './processes.js';
import { DEMO_CANARY_BAKE } from './repository.js';

export const DEFAULT_DEMO_DIR = '.meshcfg-demo';

/** The line the demo prints once every agent is SYNCED (tests wait for it). */
export const SYNCED_LINE = 'fleet SYNCED';

interface DemoFlags {
  readonly dir: string;
  readonly reset?: boolean;
  readonly grpcPort?: number;
  readonly adminPort?: number;
}

const portNumber = (text: string): number => {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 1 || port > 65_535) throw new InvalidArgumentError('expected a port number 1–65535');
  return port;
};

/**
 * `npm start`: the whole system on one machine with no set-up — a signed demo repository,
 * `meshcfg serve` on SQLite and three enrolled `meshcfg agent` processes. Runs until Ctrl-C
 * (SIGINT) or SIGTERM, then stops every process it started and returns 0. A second composition
 * root beside `src/cli/` (the demo drives the real CLI processes, it does not replace them).
 */
export async function main(argv: readonly string[], io: CliIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const program = new Command('npm start --')
    .description('run a complete local meshcfg demo: signed repository, server, three agents')
    .option('--dir <dir>', 'the demo folder (created once, reused by later runs)', DEFAULT_DEMO_DIR)
    .option('--reset', 'delete the demo folder first and start afresh')
    .option('--grpc-port <port>', `agent gRPC port (default ${DEMO_DEFAULT_PORTS.grpc}, or the next free one)`, portNumber)
    .option('--admin-port <port>', `admin API port (default ${DEMO_DEFAULT_PORTS.admin}, or the next free one)`, portNumber)
    .addHelpText('after', '\nNeeds git and ssh-keygen on PATH. Ctrl-C stops the server and every agent, and exits 0.')
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .exitOverride();
  let flags: DemoFlags;
  try {
    program.parse([...argv]);
    flags = program.opts<DemoFlags>();
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? ExitCode.ok : ExitCode.refused;
    throw err;
  }

  const layout = demoLayout(resolve(flags.dir));
  const supervisor = new Supervisor();
  const stop = new AbortController();
  const stopped = new Promise<void>((resolveStop) => stop.signal.addEventListener('abort', () => resolveStop(), { once: true }));
  const onSignal = (): void => {
    if (stop.signal.aborted) return;
    io.stdout.write('\nstopping the demo (agents, then the server)…\n');
    stop.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const started = Date.now();
  try {
    const demo = await startDemo({
      layout,
      reset: flags.reset === true,
      ports: { grpc: flags.grpcPort ?? DEMO_DEFAULT_PORTS.grpc, admin: flags.adminPort ?? DEMO_DEFAULT_PORTS.admin },
      explicitPorts: { grpc: flags.grpcPort !== undefined, admin: flags.adminPort !== undefined },
      supervisor,
      signal: stop.signal,
      onProgress: (line) => io.stdout.write(`${line}\n`),
    });
    io.stdout.write(banner(demo, layout, (Date.now() - started) / 1000));
    const outcome = await Promise.race([stopped.then(() => null), supervisor.unexpectedExit]);
    if (outcome === null) return ExitCode.ok;
    // Exit 0 means the child was signalled (a Ctrl-C reaches the whole process group and may
    // reach a child before this process): a stop, not a crash.
    if (outcome.code === 0) return ExitCode.ok;
    io.stderr.write(`npm start: ${outcome.name === 'server' ? 'SERVER_FAILED' : 'AGENT_FAILED'}: ${outcome.name} exited (${outcome.signal ?? `code ${outcome.code}`}); see ${layout.logs}/${outcome.name}.log. Stopping the demo.\n`);
    return ExitCode.refused;
  } catch (err) {
    if (stop.signal.aborted) return ExitCode.ok;
    if (!(err instanceof DemoError)) {
      io.stderr.write(`npm start: ${errorMessage(err)}\n`);
      return ExitCode.internal;
    }
    io.stderr.write(`npm start: ${err.code}: ${err.message}\n`);
    return ExitCode.refused;
  } finally {
    await supervisor.stopAll();
    await releaseFolder(layout);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (stop.signal.aborted) io.stdout.write('demo stopped: the server and every agent have exited\n');
  }
}

/** What the user needs once the fleet is up: the links, the token and commands to try. */
function banner(demo: RunningDemo, layout: DemoLayout, seconds: number): string {
  const here = (path: string): string => {
    const rel = relative(process.cwd(), path);
    return rel !== '' && !rel.startsWith('..') ? rel : path;
  };
  const shellQuote = (s: string): string => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
  return [
    '',
    `${SYNCED_LINE}: ${demo.agents.length} agents (${demo.agents.join(', ')}) on commit ${demo.commit.slice(0, 7)} — up in ${seconds.toFixed(1)} s${demo.reused ? ' (reused the demo folder)' : ''}`,
    '',
    `  dashboard:    ${demo.adminUrl}/#token=${demo.adminToken}`,
    '                (opens signed in: the fleet, the rollout and its waves, live)',
    `  admin token:  ${demo.adminToken}`,
    `  admin API:    ${demo.adminUrl}     agents' gRPC: ${demo.grpcAddress}`,
    `  logs:         ${here(layout.logs)}/   agent config files: ${here(layout.root)}/proxy/`,
    '',
    'In another terminal:',
    '',
    `  alias meshcfg=${shellQuote(`node ${MESHCFG_BIN}`)}    # or \`npm link\` once`,
    `  export MESHCFG_ADMIN=${demo.adminUrl} MESHCFG_ADMIN_TOKEN=${demo.adminToken}`,
    '  meshcfg status',
    '  meshcfg rollout status',
    '',
    'Make a signed change (this clone signs every commit with the demo key) and watch the waves:',
    '',
    `  cd ${shellQuote(layout.repo)}`,
    "  printf 'telemetry: { accessLog: false, metrics: true }\\n' > config/base/50-access-log-off.yaml",
    '  git add -A && git commit -S -m "access log off"',
    `  meshcfg rollout status     # canary (edge-1) first; the rest after a ${DEMO_CANARY_BAKE} bake`,
    '',
    'Revert it (a signed `git revert`, expedited to every agent at once):',
    '',
    '  git revert --no-edit HEAD',
    '  meshcfg status',
    '',
    'Ctrl-C stops the server and the agents. `npm start` again reuses this demo; `npm start -- --reset` starts afresh.',
    '',
  ].join('\n');
}
