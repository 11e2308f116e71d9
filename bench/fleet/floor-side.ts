import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../../test/helpers/process.js';
import type { FloorSetup, FromFloor, ToFloor } from './protocol.js';

const FLOOR_SERVER = fileURLToPath(new URL('./floor-server.ts', import.meta.url));

/** The floor server process, driven over IPC. */
export class FloorSide {
  private child: ChildProcess | undefined;
  private port = 0;
  private lastReport: Extract<FromFloor, { type: 'report' }> | undefined;

  constructor(private readonly setup: FloorSetup) {}

  get pid(): number {
    const pid = this.child?.pid;
    if (pid === undefined) throw new Error('the floor server is not running');
    return pid;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const child = fork(FLOOR_SERVER, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child = child;
    this.port = 0;
    child.on('message', (message: FromFloor) => {
      if (message.type === 'listening') this.port = message.port;
      else this.lastReport = message;
    });
    this.send({ type: 'setup', setup: this.setup });
    await waitFor('the floor server to listen', () => this.port !== 0, 30_000, 20);
  }

  send(message: ToFloor): void {
    this.child?.send(message);
  }

  /** The server's view of sequence `seq`: when it began writing it and each agent's echo. */
  async report(seq: number): Promise<Extract<FromFloor, { type: 'report' }>> {
    this.lastReport = undefined;
    this.send({ type: 'report', seq });
    return waitFor('the floor server to report', () => this.lastReport, 30_000, 5);
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child === undefined || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
    this.child = undefined;
  }
}
