/**
 * Source benchmark: `npm run bench:source [-- --rounds R]`.
 *
 * A real `meshcfg serve` on a 2,000-file repository describing 10,000 agents (bench:compile's
 * generated fleet, with more per-agent files), served over smart HTTP by `git http-backend`.
 * Each round pushes one signed commit and reads from the server's own log how long it took to
 * fetch the new head (the `fetch` event's `ms`) and from seeing it to publishing it — trust gate,
 * compile of 10,000 bundles, signing, snapshot — plus the server's CPU for the round and its
 * longest event-loop stall. Two kinds of commit alternate: one service overlay changed (a few
 * hundred agents' bundles change) and a base file changed (every bundle changes).
 */
import { FLEET_TRUST_DOMAIN, generateFleetFiles } from './fixtures/fleet-files.js';
import { MeshcfgSide } from './fleet/meshcfg-side.js';
import { cpuMs, rssKiB } from './fleet/procstat.js';
import { spread } from './fleet/stats.js';
import { tempDir } from '../test/helpers/git.js';

const AGENTS = 10_000;
/** 5 + 20 inventory files + 500 overlays + 1,475 agent files = 2,000 files. */
const AGENT_FILES = 1_475;

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const value = i === -1 ? undefined : Number(process.argv[i + 1]);
  return value !== undefined && Number.isSafeInteger(value) && value > 0 ? value : fallback;
}

const log = (line: string): void => void process.stderr.write(`[bench:source] ${line}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const rounds = flag('rounds', 3);
  const files = generateFleetFiles({ agents: AGENTS, agentFiles: AGENT_FILES });
  const tmp = tempDir('meshcfg-bench-source-');
  const overlay = [...files.keys()].find((path) => path.includes('-svc-svc-07')) as string;
  log(`${files.size} files, ${AGENTS} agents; work dir ${tmp.path}`);
  const side = await MeshcfgSide.create(tmp.path, [], { files, trustDomain: FLEET_TRUST_DOMAIN });
  const rows: Array<{ kind: string; fetchMs: number; prepareMs: number; cpuMs: number; loopMs: number }> = [];
  try {
    const t0 = performance.now();
    await side.start(600_000);
    log(`server ready (first commit fetched, verified, compiled, published) in ${((performance.now() - t0) / 1000).toFixed(1)} s; RSS ${(rssKiB(side.pid) / 1024).toFixed(0)} MiB`);
    await sleep(1_000);
    const idle0 = cpuMs(side.pid);
    await sleep(3_000);
    const idleRate = (cpuMs(side.pid) - idle0) / 3_000;
    for (let r = 1; r <= rounds * 2; r++) {
      const kind = r % 2 === 1 ? 'one overlay' : 'a base file';
      const change =
        r % 2 === 1
          ? { [overlay]: `${files.get(overlay) ?? ''}\n# change ${r}\n`.replace(/timeoutMs: (\d+)/, (_, ms: string) => `timeoutMs: ${Number(ms) + r}`) }
          : { 'config/base/20-telemetry.yaml': `telemetry:\n  accessLog: { enabled: true, format: json }\n  metrics: { enabled: true, port: ${9090 + r} }\n` };
      await side.loopDelayMaxMs();
      const cpu0 = cpuMs(side.pid);
      const start = performance.now();
      const sha = side.pushChange(change);
      const published = await side.published(sha, 600_000);
      const cpu = cpuMs(side.pid) - cpu0 - idleRate * (performance.now() - start);
      const loopMs = await side.loopDelayMaxMs();
      const fetchMs = side.fetchMs(sha);
      const prepareMs = published.headSeenAt === undefined ? NaN : published.at - published.headSeenAt;
      rows.push({ kind, fetchMs, prepareMs, cpuMs: cpu, loopMs });
      log(`commit ${r} (${kind}): fetch ${fetchMs} ms, new head → published ${prepareMs} ms, server CPU ${cpu.toFixed(0)} ms, longest event-loop stall ${loopMs.toFixed(0)} ms`);
      await sleep(1_000);
    }
    const out = (label: string, values: number[]): string => {
      const s = spread(values);
      return `${label.padEnd(50)}${s.median.toFixed(0)} ms  [${s.min.toFixed(0)}–${s.max.toFixed(0)}]\n`;
    };
    let text = `\nmeshcfg source — ${files.size} files, ${AGENTS} agents, smart HTTP (git http-backend), ${rounds} commit(s) of each kind; median [range]\n\n`;
    for (const kind of ['one overlay', 'a base file']) {
      const of = rows.filter((row) => row.kind === kind);
      text += `commit changing ${kind}:\n`;
      text += out('  fetch of the new head over smart HTTP', of.map((row) => row.fetchMs));
      text += out('  new head → published (verify, compile, sign)', of.map((row) => row.prepareMs));
      text += out('  server CPU for the commit', of.map((row) => row.cpuMs));
      text += out('  longest event-loop stall', of.map((row) => row.loopMs));
    }
    text += `server RSS with the 10,000-agent snapshot: ${(rssKiB(side.pid) / 1024).toFixed(0)} MiB\n`;
    process.stdout.write(text);
  } finally {
    await side.close();
    tmp.cleanup();
  }
}

await main();
