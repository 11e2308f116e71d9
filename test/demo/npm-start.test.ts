import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { meshcfg } from '../helpers/cli.js';
import { tempDir } from '../helpers/git.js';
import { freePort, waitFor } from '../helpers/process.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** `npm start -- …args` from the checkout, as a newcomer runs it, with its output kept. */
class NpmStart {
  readonly child: ChildProcess;
  out = '';
  err = '';
  readonly exited: Promise<number | null>;
  readonly startedAt = Date.now();

  constructor(args: readonly string[]) {
    this.child = spawn('npm', ['start', '--', ...args], { cwd: ROOT, env: process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout?.setEncoding('utf8').on('data', (s: string) => (this.out += s));
    this.child.stderr?.setEncoding('utf8').on('data', (s: string) => (this.err += s));
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
  }

  /** Resolves with the seconds it took to print the SYNCED line; fails if the demo exits first. */
  async synced(timeoutMs: number): Promise<number> {
    await waitFor(
      'the demo to print "fleet SYNCED"',
      () => {
        if (this.child.exitCode !== null) throw new Error(`npm start exited ${this.child.exitCode}:\n${this.out}\n${this.err}`);
        return this.out.includes('fleet SYNCED');
      },
      timeoutMs,
      100,
    );
    return (Date.now() - this.startedAt) / 1000;
  }

  /** Ctrl-C as npm receives it. Resolves with npm's exit code (SIGKILL after 60 s so a hang fails the test, not the suite). */
  async interrupt(): Promise<number | null> {
    this.child.kill('SIGINT');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 60_000);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }
}

/** Every process below `pid` now (children, grandchildren …), from /proc. */
function descendants(pid: number): number[] {
  const parentOf = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid …; comm may contain spaces and parentheses: read after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parentOf.set(Number(entry), ppid);
    } catch {
      // exited while we looked
    }
  }
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const parent = queue.shift()!;
    for (const [child, ppid] of parentOf) {
      if (ppid === parent) {
        found.push(child);
        queue.push(child);
      }
    }
  }
  return found;
}

/** Gone, or a zombie nobody reaped yet (it runs nothing any more). */
function isGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return '';
  }
}

/** The demo's copy-paste block that starts after `heading`: its indented lines up to the next blank one. */
function printedCommands(out: string, heading: string): string[] {
  const lines = out.split('\n');
  const start = lines.findIndex((l) => l.startsWith(heading));
  assert.ok(start >= 0, `the demo prints "${heading}"`);
  const block: string[] = [];
  for (const line of lines.slice(start + 2)) {
    if (line.trim() === '') break;
    block.push(line.trim());
  }
  return block;
}

interface AgentItem {
  id: string;
  state: string;
  active: { commit: string } | null;
}

describe('npm start (the local demo)', { timeout: 400_000 }, () => {
  const tmp = tempDir('meshcfg-npm-start-');
  const dir = join(tmp.path, 'demo');
  let ports: { grpc: number; admin: number };
  const running: NpmStart[] = [];
  after(async () => {
    for (const run of running) if (run.child.exitCode === null) await run.interrupt();
    tmp.cleanup();
  });

  const adminFlags = (): string[] => ['--admin', `http://127.0.0.1:${ports.admin}`, '--admin-token-file', join(dir, 'data', 'admin-token')];
  const agents = async (): Promise<AgentItem[]> => {
    const run = await meshcfg('status', '--json', ...adminFlags());
    assert.equal(run.code, 0, run.stderr);
    return JSON.parse(run.stdout) as AgentItem[];
  };

  it('on a first run creates the demo, enrolls three agents, and prints the dashboard link, the token and commands once SYNCED (within 2 minutes)', async () => {
    ports = { grpc: await freePort(), admin: await freePort() };
    const demo = new NpmStart(['--dir', dir, '--grpc-port', String(ports.grpc), '--admin-port', String(ports.admin)]);
    running.push(demo);
    const seconds = await demo.synced(120_000);
    assert.ok(seconds < 120, `first run took ${seconds} s`);

    for (const step of ['generating signing key…', 'enrolling agents 1/3', 'enrolling agents 3/3', 'waiting for every agent to be SYNCED…']) {
      assert.ok(demo.out.includes(step), `progress line "${step}"`);
    }
    const token = readFileSync(join(dir, 'data', 'admin-token'), 'utf8').trim();
    assert.ok(demo.out.includes(`http://127.0.0.1:${ports.admin}/#token=${token}\n`), 'the dashboard link carries the admin token');
    const page = await fetch(`http://127.0.0.1:${ports.admin}/`);
    assert.equal(page.status, 200, 'the link opens the dashboard page');
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(demo.out, new RegExp(`admin token: +${token}\n`));

    const listed = await agents();
    assert.deepEqual(listed.map((a) => [a.id, a.state]).sort(), [['edge-1', 'SYNCED'], ['edge-2', 'SYNCED'], ['edge-3', 'SYNCED']]);
    for (const id of ['edge-1', 'edge-2', 'edge-3']) assert.ok(existsSync(join(dir, 'proxy', `${id}.json`)), `${id} wrote its config file`);
    assert.ok(readFileSync(join(dir, 'logs', 'reloads.log'), 'utf8').includes('reloaded'), 'each agent ran its reload command');
  });

  it('the printed change reaches the canary wave first, and the printed revert reaches every agent', async () => {
    const demo = running[0]!;
    const change = printedCommands(demo.out, 'Make a signed change').filter((l) => !l.startsWith('meshcfg'));
    const before = (await agents()).find((a) => a.id === 'edge-2')?.active?.commit;
    execFileSync('sh', ['-c', change.join(' && ')], { stdio: 'pipe' });
    const head = execFileSync('git', ['-C', join(dir, 'config'), 'rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
    await waitFor('the canary to apply the signed change', async () => (await agents()).find((a) => a.id === 'edge-1')?.active?.commit === head, 30_000, 200);
    const rest = (await agents()).filter((a) => a.id !== 'edge-1');
    assert.deepEqual(rest.map((a) => a.active?.commit), [before, before], 'the rest wave waits for the canary bake');

    const revert = printedCommands(demo.out, 'Revert it').filter((l) => !l.startsWith('meshcfg'));
    execFileSync('sh', ['-c', [`cd ${join(dir, 'config')}`, ...revert].join(' && ')], { stdio: 'pipe' });
    const reverted = execFileSync('git', ['-C', join(dir, 'config'), 'rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
    await waitFor('every agent SYNCED on the revert', async () => (await agents()).every((a) => a.state === 'SYNCED' && a.active?.commit === reverted), 30_000, 200);
  });

  it('Ctrl-C stops the server and every agent, exits 0 and leaves nothing running', async () => {
    const demo = running[0]!;
    const children = descendants(demo.child.pid!);
    assert.ok(children.filter((pid) => commandOf(pid).includes('meshcfg.js')).length >= 4, `server and three agents run: ${children.map(commandOf).join('; ')}`);
    assert.equal(await demo.interrupt(), 0, demo.err);
    await waitFor('every process the demo started to be gone', () => children.every(isGone), 10_000);
    assert.ok(demo.out.includes('demo stopped'));
    assert.ok(!existsSync(join(dir, 'demo.pid')));
  });

  it('a second run reuses the demo folder and is SYNCED within 20 seconds; Ctrl-C again leaves nothing running', async () => {
    const demo = new NpmStart(['--dir', dir, '--grpc-port', String(ports.grpc), '--admin-port', String(ports.admin)]);
    running.push(demo);
    const seconds = await demo.synced(20_000);
    assert.ok(seconds < 20, `second run took ${seconds} s`);
    assert.ok(demo.out.includes('reusing the demo'));
    assert.ok(!demo.out.includes('generating signing key') && !demo.out.includes('enrolling agents'), 'nothing is created again');
    const children = descendants(demo.child.pid!);
    assert.equal(await demo.interrupt(), 0, demo.err);
    await waitFor('every process the demo started to be gone', () => children.every(isGone), 10_000);
  });

  it('reports an agent that cannot start with AGENT_FAILED, naming its log, and stops everything else', async () => {
    chmodSync(join(dir, 'agents', 'edge-2', 'agent.key'), 0o644); // meshcfg agent refuses a key others can read
    try {
      const demo = new NpmStart(['--dir', dir, '--grpc-port', String(ports.grpc), '--admin-port', String(ports.admin)]);
      running.push(demo);
      // Every process it starts, sampled until it exits (it stops on its own). A child is
      // first seen with its parent's command line, before it execs: keep the latest one read.
      const seen = new Map<number, string>();
      const sampler = setInterval(() => {
        for (const pid of descendants(demo.child.pid!)) {
          const command = commandOf(pid);
          if (command !== '' || !seen.has(pid)) seen.set(pid, command);
        }
      }, 50);
      const code = await demo.exited;
      clearInterval(sampler);
      const children = [...seen.keys()];
      assert.equal(code, 2);
      const commands = [...seen.values()];
      assert.ok(commands.some((c) => c.includes(' serve ')) && commands.some((c) => c.includes('agents/edge-1')), `the server and the other agents had started: ${commands.join('; ')}`);
      assert.match(demo.err, /npm start: AGENT_FAILED: edge-2 exited .*edge-2\.log/);
      assert.ok(!demo.out.includes('fleet SYNCED'));
      await waitFor('every process the demo started to be gone', () => children.every(isGone), 10_000);
    } finally {
      chmodSync(join(dir, 'agents', 'edge-2', 'agent.key'), 0o600);
    }
  });

  it('refuses a port that is taken, naming it with PORT_IN_USE, and starts nothing', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const address = taken.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    try {
      const other = join(tmp.path, 'other');
      const demo = new NpmStart(['--dir', other, '--grpc-port', String(await freePort()), '--admin-port', String(port)]);
      running.push(demo);
      assert.equal(await demo.exited, 2);
      assert.match(demo.err, /npm start: PORT_IN_USE: /);
      assert.ok(!existsSync(join(other, 'logs', 'server.log')), 'no server was started');
    } finally {
      taken.close();
    }
  });
});
