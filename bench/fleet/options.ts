import type { Mode } from './protocol.js';

export const USAGE = `Usage: npm run bench:fleet -- [--agents N] [--rounds R] [--mode stream|poll] [--json FILE]

meshcfg at fleet scale, side by side with a bare grpc-js floor (same TLS, same load generator).

  --agents N            simulated agents (default 1000)
  --rounds R            rounds per side; figures are the median and range over them (default 3)
  --mode stream|poll    agents hold a config stream, or poll Fetch (default stream)
  --json FILE           write the result as JSON
  --workers W           load-generator processes (default 2; 4 above 5,000 agents)
  --poll-interval MS    poll mode: each agent's poll interval, ±10 % jitter (default 1000)
  --poll-window MS      poll mode: length of the idle window that measures not-modified polls (default 5000)
  --key-pool K          RSA keys shared by the agents' certificates (default 8)
  --connect-timeout MS  per round (default max(120000, 30 × N))
  --converge-timeout MS per round (default max(120000, 20 × N))
  --cpu-prof DIR        V8 CPU profile of meshcfg serve (as node --cpu-prof), one file per round in DIR
  --keep                keep the work directory (repository, data dir, server log)
  --help                this text

Progress goes to stderr; the table to stdout. Exit status 1 when any agent failed to connect
or converge within the timeouts (the table and JSON are still written).
`;

export interface Options {
  readonly agents: number;
  readonly rounds: number;
  readonly mode: Mode;
  readonly json: string | undefined;
  readonly workers: number;
  readonly pollIntervalMs: number;
  readonly pollWindowMs: number;
  readonly keyPool: number;
  readonly connectTimeoutMs: number;
  readonly convergeTimeoutMs: number;
  readonly startTimeoutMs: number;
  readonly keep: boolean;
  readonly cpuProfileDir: string | undefined;
}

export type ParsedOptions = { readonly kind: 'run'; readonly options: Options } | { readonly kind: 'help' } | { readonly kind: 'invalid'; readonly message: string };

export function parseOptions(argv: readonly string[]): ParsedOptions {
  const values = new Map<string, string>();
  const flags = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--help' || arg === '-h') return { kind: 'help' };
    if (arg === '--keep') {
      flags.add('keep');
      continue;
    }
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (match === null) return { kind: 'invalid', message: `unexpected argument ${JSON.stringify(arg)}` };
    const name = match[1] as string;
    const value = match[2] ?? argv[++i];
    if (value === undefined) return { kind: 'invalid', message: `--${name} needs a value` };
    values.set(name, value);
  }
  const known = ['cpu-prof', 'agents', 'rounds', 'mode', 'json', 'workers', 'poll-interval', 'poll-window', 'key-pool', 'connect-timeout', 'converge-timeout'];
  for (const name of values.keys()) if (!known.includes(name)) return { kind: 'invalid', message: `unknown option --${name}` };
  const int = (name: string, fallback: number, min: number): number | string => {
    const text = values.get(name);
    if (text === undefined) return fallback;
    const value = Number(text);
    return Number.isSafeInteger(value) && value >= min ? value : `--${name} must be an integer >= ${min}, got ${JSON.stringify(text)}`;
  };
  const agents = int('agents', 1000, 1);
  const mode = values.get('mode') ?? 'stream';
  if (mode !== 'stream' && mode !== 'poll') return { kind: 'invalid', message: `--mode must be stream or poll, got ${JSON.stringify(mode)}` };
  if (typeof agents === 'string') return { kind: 'invalid', message: agents };
  const rest = {
    rounds: int('rounds', 3, 1),
    workers: int('workers', agents > 5000 ? 4 : 2, 1),
    pollIntervalMs: int('poll-interval', 1000, 100),
    pollWindowMs: int('poll-window', 5000, 500),
    keyPool: int('key-pool', 8, 1),
    connectTimeoutMs: int('connect-timeout', Math.max(120_000, 30 * agents), 1000),
    convergeTimeoutMs: int('converge-timeout', Math.max(120_000, 20 * agents), 1000),
  };
  for (const value of Object.values(rest)) if (typeof value === 'string') return { kind: 'invalid', message: value };
  const r = rest as { [K in keyof typeof rest]: number };
  return {
    kind: 'run',
    options: {
      agents,
      mode,
      json: values.get('json'),
      ...r,
      workers: Math.min(r.workers, agents),
      startTimeoutMs: Math.max(60_000, 20 * agents),
      keep: flags.has('keep'),
      cpuProfileDir: values.get('cpu-prof'),
    },
  };
}
