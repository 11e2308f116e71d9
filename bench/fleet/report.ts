import type { Mode } from './protocol.js';
import { num, percentile, ratio, type Spread, spread } from './stats.js';

/** What one round measured on one side. */
export interface RoundFigures {
  /** From the first connect to all N connected, hello'd and holding their first payload. */
  readonly connectMs: number;
  /** Per agent, ascending: server-side start of the rollout → server-side receipt of the agent's ack. */
  readonly convergence: readonly number[];
  readonly rssPerAgentKiB: number;
  readonly cpuPerConnectMs: number;
  /** The load generator's CPU (all its processes) per connect: when it nears the server's, the generator bounds the connect phase. */
  readonly generatorCpuPerConnectMs: number;
  /** Kernel accept-queue overflows during the connect phase (system-wide; see procstat.listenOverflows). */
  readonly listenOverflows: number;
  readonly cpuPerRolloutMs: number;
  readonly loopDelayMaxMs: number;
  /** meshcfg: the server saw the new head → it published (verify, compile, sign). 0 for the floor. */
  readonly prepareMs: number;
  readonly cpuPerPollMs: number | undefined;
  readonly reconnects: number;
  readonly errors: Readonly<Record<string, number>>;
  /** meshcfg: failed TLS handshakes and refusals from the server's log. */
  readonly serverFailures: Readonly<Record<string, number>>;
  readonly medianBundleBytes: number;
}

/** 10,000 agents polling every 30 s: polls per second × CPU per poll, as a share of one core. */
export const POLL_FLEET = 10_000;
export const POLL_EVERY_S = 30;

interface SideSummary {
  readonly connectMs: Spread;
  readonly p50: Spread;
  readonly p99: Spread;
  readonly max: Spread;
  readonly rssPerAgentKiB: Spread;
  readonly cpuPerConnectMs: Spread;
  readonly generatorCpuPerConnectMs: Spread;
  readonly listenOverflows: Spread;
  readonly cpuPerRolloutMs: Spread;
  readonly loopDelayMaxMs: Spread;
  readonly prepareMs: Spread;
  readonly cpuPerPollMs: Spread;
  readonly pollCoreFraction: Spread;
  readonly reconnects: Spread;
}

function summarize(rounds: readonly RoundFigures[]): SideSummary {
  const of = (pick: (r: RoundFigures) => number): Spread => spread(rounds.map(pick));
  return {
    connectMs: of((r) => r.connectMs),
    p50: of((r) => percentile(r.convergence, 50)),
    p99: of((r) => percentile(r.convergence, 99)),
    max: of((r) => percentile(r.convergence, 100)),
    rssPerAgentKiB: of((r) => r.rssPerAgentKiB),
    cpuPerConnectMs: of((r) => r.cpuPerConnectMs),
    generatorCpuPerConnectMs: of((r) => r.generatorCpuPerConnectMs),
    listenOverflows: of((r) => r.listenOverflows),
    cpuPerRolloutMs: of((r) => r.cpuPerRolloutMs),
    loopDelayMaxMs: of((r) => r.loopDelayMaxMs),
    prepareMs: of((r) => r.prepareMs),
    cpuPerPollMs: of((r) => r.cpuPerPollMs ?? NaN),
    pollCoreFraction: of((r) => ((r.cpuPerPollMs ?? NaN) * (POLL_FLEET / POLL_EVERY_S)) / 1000),
    reconnects: of((r) => r.reconnects),
  };
}

function sideJson(s: SideSummary, mode: Mode): Record<string, unknown> {
  return {
    connectMs: num(s.connectMs.median, 1),
    convergenceMs: { p50: num(s.p50.median, 1), p99: num(s.p99.median, 1), max: num(s.max.median, 1) },
    rssPerAgentKiB: num(s.rssPerAgentKiB.median, 2),
    cpuPerConnectMs: num(s.cpuPerConnectMs.median, 3),
    cpuPerRolloutMs: num(s.cpuPerRolloutMs.median, 1),
    ...(mode === 'poll' ? { cpuPerPollMs: num(s.cpuPerPollMs.median, 4), pollCoreFraction10k: num(s.pollCoreFraction.median, 4) } : {}),
  };
}

export interface FleetResult {
  readonly json: Record<string, unknown>;
  readonly meshcfg: SideSummary;
  readonly floor: SideSummary;
}

/** The JSON of the issue's contract: medians over the rounds, and meshcfg/floor ratios of them. */
export function buildResult(input: { agents: number; mode: Mode; rounds: number; meshcfg: readonly RoundFigures[]; floor: readonly RoundFigures[] }): FleetResult {
  const meshcfg = summarize(input.meshcfg);
  const floor = summarize(input.floor);
  const ratios: Record<string, number | null> = {
    convergenceMax: num(ratio(meshcfg.max.median, floor.max.median), 2),
    rssPerAgent: num(ratio(meshcfg.rssPerAgentKiB.median, floor.rssPerAgentKiB.median), 2),
    cpuPerConnect: num(ratio(meshcfg.cpuPerConnectMs.median, floor.cpuPerConnectMs.median), 2),
  };
  if (input.mode === 'poll') ratios['cpuPerPoll'] = num(ratio(meshcfg.cpuPerPollMs.median, floor.cpuPerPollMs.median), 2);
  return {
    meshcfg,
    floor,
    json: { agents: input.agents, mode: input.mode, rounds: input.rounds, meshcfg: sideJson(meshcfg, input.mode), floor: sideJson(floor, input.mode), ratios },
  };
}

function cell(s: Spread, digits: number, rounds: number): string {
  if (!Number.isFinite(s.median)) return '—';
  const f = (v: number): string => v.toFixed(digits);
  return rounds > 1 ? `${f(s.median)} [${f(s.min)}–${f(s.max)}]` : f(s.median);
}

export function printTable(
  result: FleetResult,
  context: { agents: number; mode: Mode; rounds: number; workers: number; payloadBytes: number; meshcfg: readonly RoundFigures[]; floor: readonly RoundFigures[] },
): void {
  const { meshcfg: m, floor: f } = result;
  const r = context.rounds;
  const rows: Array<[string, string, string, string]> = [];
  const row = (label: string, pick: (s: SideSummary) => Spread, digits: number, withRatio = true): void => {
    const ratioText = withRatio ? ratio(pick(m).median, pick(f).median) : NaN;
    rows.push([label, cell(pick(m), digits, r), cell(pick(f), digits, r), Number.isFinite(ratioText) ? `${ratioText.toFixed(2)}×` : '']);
  };
  row('connect phase, all N hello\'d (ms)', (s) => s.connectMs, 0);
  row('convergence p50 (ms)', (s) => s.p50, 0);
  row('convergence p99 (ms)', (s) => s.p99, 0);
  row('convergence max (ms)', (s) => s.max, 0);
  row('server RSS per connected agent (KiB)', (s) => s.rssPerAgentKiB, 1);
  row('server CPU per connect (ms)', (s) => s.cpuPerConnectMs, 2);
  row('load generator CPU per connect (ms)', (s) => s.generatorCpuPerConnectMs, 2, false);
  row('server CPU per rollout (ms)', (s) => s.cpuPerRolloutMs, 0);
  row('longest event-loop stall in rollout (ms)', (s) => s.loopDelayMaxMs, 0);
  row('new head seen → published (ms)', (s) => s.prepareMs, 0, false);
  row('reconnects (stream errors, failed polls)', (s) => s.reconnects, 0, false);
  row('accept-queue overflows in connect (kernel)', (s) => s.listenOverflows, 0, false);
  if (context.mode === 'poll') {
    row('server CPU per not-modified poll (ms)', (s) => s.cpuPerPollMs, 3);
    row(`${POLL_FLEET} agents every ${POLL_EVERY_S} s (share of one core)`, (s) => s.pollCoreFraction, 3);
  }
  const head: [string, string, string, string] = ['', 'meshcfg', 'floor (bare grpc-js)', 'meshcfg/floor'];
  const widths = [0, 1, 2, 3].map((i) => Math.max(...[head, ...rows].map((cols) => cols[i]?.length ?? 0)));
  const line = (cols: readonly string[]): string => `${cols.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ')}\n`;
  let out = `\nbench:fleet — ${context.agents} agents, ${context.mode} mode, ${r} round(s)${r > 1 ? ', median [min–max] over rounds' : ''}; ` +
    `payload ${context.payloadBytes} B; ${context.workers} load-generator processes\n\n`;
  out += line(head);
  for (const cols of rows) out += line(cols);
  const errors = new Map<string, number>();
  for (const round of [...context.meshcfg.map((x) => ['meshcfg', x] as const), ...context.floor.map((x) => ['floor', x] as const)]) {
    for (const [k, v] of Object.entries(round[1].errors)) errors.set(`${round[0]}: ${k}`, (errors.get(`${round[0]}: ${k}`) ?? 0) + v);
  }
  const failures = new Map<string, number>();
  for (const round of context.meshcfg) for (const [k, v] of Object.entries(round.serverFailures)) failures.set(k, (failures.get(k) ?? 0) + v);
  if (failures.size > 0) out += `\nmeshcfg server log, failed handshakes and refusals (all rounds):\n${[...failures].map(([k, v]) => `  ${v}× ${k}`).join('\n')}\n`;
  if (errors.size > 0) out += `\nstream errors and failed polls (all rounds):\n${[...errors].map(([k, v]) => `  ${v}× ${k}`).join('\n')}\n`;
  process.stdout.write(out);
}
