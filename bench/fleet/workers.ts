import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { FromWorker, ToWorker, WorkerReport, WorkerSetup } from './protocol.js';

const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));

/** The sum of every worker's counters. */
export interface FleetReport {
  readonly agents: number;
  readonly connected: number;
  readonly acked: ReadonlyMap<string, number>;
  readonly rejected: ReadonlyMap<string, number>;
  readonly errors: ReadonlyMap<string, number>;
  readonly reconnects: number;
  readonly notModified: number;
  readonly bundleSizes: readonly number[];
}

/** The load generator's processes (forked with tsx), driven over IPC one request at a time. */
export class WorkerPool {
  private readonly children: ChildProcess[];
  private readonly waiting = new Map<ChildProcess, Array<(message: FromWorker) => void>>();

  constructor(count: number) {
    this.children = Array.from({ length: count }, () =>
      fork(WORKER, [], { execArgv: ['--import', 'tsx', '--no-deprecation', '--max-old-space-size=4096'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }),
    );
    for (const child of this.children) {
      this.waiting.set(child, []);
      child.on('message', (message: FromWorker) => {
        if (message.type === 'fatal') {
          process.stderr.write(`load generator ${child.pid} failed: ${message.error}\n`);
          return;
        }
        this.waiting.get(child)?.shift()?.(message);
      });
    }
  }

  get size(): number {
    return this.children.length;
  }

  get pids(): number[] {
    return this.children.map((c) => c.pid ?? 0);
  }

  private ask(child: ChildProcess, message: ToWorker): Promise<FromWorker> {
    return new Promise((resolve, reject) => {
      this.waiting.get(child)?.push(resolve);
      child.send(message, (err) => {
        if (err !== null) reject(err);
      });
    });
  }

  async setup(setups: readonly WorkerSetup[]): Promise<void> {
    await Promise.all(this.children.map((child, i) => this.ask(child, { type: 'setup', setup: setups[i] as WorkerSetup })));
  }

  connect(): void {
    for (const child of this.children) child.send({ type: 'connect' } satisfies ToWorker);
  }

  resetPolls(): void {
    for (const child of this.children) child.send({ type: 'reset-polls' } satisfies ToWorker);
  }

  async disconnect(): Promise<void> {
    await Promise.all(this.children.map((child) => this.ask(child, { type: 'disconnect' })));
  }

  async report(): Promise<FleetReport> {
    const replies = await Promise.all(this.children.map((child) => this.ask(child, { type: 'report' })));
    const reports = replies.flatMap((r) => (r.type === 'report' ? [r.report] : []));
    const sum = (pick: (r: WorkerReport) => Record<string, number>): Map<string, number> => {
      const total = new Map<string, number>();
      for (const r of reports) for (const [k, v] of Object.entries(pick(r))) total.set(k, (total.get(k) ?? 0) + v);
      return total;
    };
    return {
      agents: reports.reduce((n, r) => n + r.agents, 0),
      connected: reports.reduce((n, r) => n + r.connected, 0),
      acked: sum((r) => r.acked),
      rejected: sum((r) => r.rejected),
      errors: sum((r) => r.errors),
      reconnects: reports.reduce((n, r) => n + r.reconnects, 0),
      notModified: reports.reduce((n, r) => n + r.notModified, 0),
      bundleSizes: reports.flatMap((r) => r.bundleSizes),
    };
  }

  close(): void {
    for (const child of this.children) child.kill();
  }
}
