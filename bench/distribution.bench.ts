/**
 * Distribution on loopback: a real `meshcfg serve` process, N agents streaming over real
 * mTLS from this process (raw gRPC clients: hello → bundle → ack, as the reference agent
 * does, without N extra Node processes), and new signed commits pushed to the served repo.
 *
 * Prints side by side: the server's resident memory idle (baseline, same run) and with N
 * connected agents, and the time from a commit landing in the repository to every agent's
 * ack (p50/p95/max of per-agent times, poll interval included).
 *
 *   npm run bench:distribution            # 1,000 agents
 *   BENCH_AGENTS=200 npm run bench:distribution
 */
import { credentials, type ClientDuplexStream, Metadata } from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openDataDir } from '../src/pki/index.js';
import { DistributionClient, type AgentMessageMsg, type ServerMessageMsg } from '../src/transport/proto.js';
import { GitRepo, makeSshSigner, tempDir, writeAllowedSigners } from '../test/helpers/git.js';
import { startGitHttpServer } from '../test/helpers/http-git-server.js';
import { freePort, MeshcfgProcess, waitFor } from '../test/helpers/process.js';
import { forgeCsr, rsaKey } from '../test/pki/helpers.js';
import { aid } from '../test/helpers/ids.js';

const AGENTS = Number(process.env['BENCH_AGENTS'] ?? 1000);
const COMMITS = Number(process.env['BENCH_COMMITS'] ?? 3);
const POLL = '100ms';

function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

type Stream = ClientDuplexStream<AgentMessageMsg, ServerMessageMsg>;

async function main(): Promise<void> {
  const tmp = tempDir('meshcfg-bench-dist-');
  const ids = Array.from({ length: AGENTS }, (_, i) => `agent-${String(i).padStart(5, '0')}`);
  const alice = makeSshSigner(tmp.path, 'alice@example.org');
  const allowed = writeAllowedSigners(join(tmp.path, 'allowed_signers'), [{ signer: alice }]);
  const repo = GitRepo.init(join(tmp.path, 'work'));
  const zones = ['pci', 'public', 'internal'];
  repo.write({
    'meshcfg.yaml': 'trustDomain: example.org\npolicy:\n  secureZones: [pci]\n',
    'inventory/fleet.yaml': `agents:\n${ids.map((id, i) => `  - { id: ${id}, labels: { zone: ${zones[i % 3]} } }`).join('\n')}\n`,
    'config/base/00.yaml': 'mtls: { mode: STRICT, minTlsVersion: "1.2" }\n',
  });
  repo.commit('fleet', alice);
  repo.git('clone', '-q', '--bare', repo.dir, join(tmp.path, 'served', 'config.git'));
  repo.git('remote', 'add', 'origin', join(tmp.path, 'served', 'config.git'));
  const http = await startGitHttpServer(join(tmp.path, 'served'));
  const ports = { grpc: await freePort(), admin: await freePort() };
  const config = join(tmp.path, 'server.yaml');
  const { writeFileSync } = await import('node:fs');
  writeFileSync(
    config,
    `trustDomain: example.org\nrepo: { url: "${http.url('config.git')}", branch: main, pollInterval: ${POLL} }\n` +
      `trust: { allowedSigners: "${allowed}" }\nlisten: { grpc: "127.0.0.1:${ports.grpc}", admin: "127.0.0.1:${ports.admin}" }\n` +
      'dataDir: ./data\ntls: { serverNames: [localhost, 127.0.0.1] }\n',
  );
  const server = new MeshcfgProcess(['serve', '--config', config]);
  const streams: Stream[] = [];
  try {
    await waitFor('serve ready', async () => (await fetch(`http://127.0.0.1:${ports.admin}/readyz`).catch(() => null))?.status === 200, 60_000);
    const pid = server.child.pid ?? 0;
    await new Promise((r) => setTimeout(r, 1_000));
    const idle = rssMiB(pid);

    // Certificates straight from the server's CA (an operator on the same host); one key for all.
    const dataDir = await openDataDir({ dataDir: join(tmp.path, 'data'), trustDomain: 'example.org', serverNames: ['localhost', '127.0.0.1'] });
    const key = rsaKey();
    const csrPem = forgeCsr(key);
    const ca = readFileSync(join(tmp.path, 'data', 'ca.crt'));
    process.stderr.write(`issuing ${AGENTS} agent certificates…\n`);
    const certs = ids.map((agentId) => dataDir.ca.issueAgentCertificate({ csrPem, agentId: aid(agentId) }).certPem);

    const acked = new Map<string, number>(); // agent → time of its last ack
    const ackedCommit = new Map<string, string>();
    process.stderr.write(`connecting ${AGENTS} streams…\n`);
    ids.forEach((agentId, i) => {
      const client = new DistributionClient(
        `127.0.0.1:${ports.grpc}`,
        credentials.createSsl(ca, Buffer.from(key.privateKeyPem), Buffer.from(certs[i] as string), { checkServerIdentity: () => undefined }),
      );
      const stream = (client as unknown as { Stream: (m: Metadata) => Stream }).Stream(new Metadata());
      stream.on('error', () => {});
      stream.on('data', (msg: ServerMessageMsg) => {
        const b = msg.bundle;
        if (!b) return;
        stream.write({ ack: { commit: b.commit, digest: b.digest, generation: b.generation, nonce: b.nonce, status: 'APPLIED', error: '', agent_id: agentId } });
        acked.set(agentId, performance.now());
        ackedCommit.set(agentId, b.commit);
      });
      stream.write({ hello: { active: null, agent_version: 'bench', agent_id: agentId } });
      streams.push(stream);
    });
    const head0 = repo.head();
    await waitFor('all agents on the first commit', () => ids.every((id) => ackedCommit.get(id) === head0), 120_000);
    await new Promise((r) => setTimeout(r, 1_000));
    const connected = rssMiB(pid);

    const latencies: number[] = [];
    for (let c = 0; c < COMMITS; c++) {
      repo.write({ 'config/base/10.yaml': `telemetry: { accessLog: ${c % 2 === 0} }\n` });
      const sha = repo.commit(`change ${c}`, alice);
      const landed = performance.now();
      repo.git('push', '-q', 'origin', 'HEAD:main');
      await waitFor(`all agents on commit ${c}`, () => ids.every((id) => ackedCommit.get(id) === sha), 120_000, 5);
      for (const id of ids) latencies.push((acked.get(id) ?? landed) - landed);
    }
    latencies.sort((a, b) => a - b);

    const row = (k: string, v: string): void => void process.stdout.write(`${k.padEnd(52)}${v}\n`);
    process.stdout.write(`\nmeshcfg distribution — ${AGENTS} streaming agents on loopback, ${COMMITS} commits, poll interval ${POLL}\n\n`);
    row('server RSS, idle (baseline, same run)', `${idle.toFixed(1)} MiB`);
    row(`server RSS, ${AGENTS} agents connected`, `${connected.toFixed(1)} MiB  (+${((connected - idle) * 1024 / AGENTS).toFixed(1)} KiB per agent)`);
    row('commit landed → agent ack, p50', `${percentile(latencies, 50).toFixed(0)} ms`);
    row('commit landed → agent ack, p95', `${percentile(latencies, 95).toFixed(0)} ms`);
    row('commit landed → agent ack, max', `${percentile(latencies, 100).toFixed(0)} ms`);
  } finally {
    for (const s of streams) s.cancel();
    await server.stop();
    await http.close();
    tmp.cleanup();
  }
}

await main();
