import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DemoError } from './errors.js';

/** The real `meshcfg` binary of this checkout (bin/ → dist/), as users run it. */
export const MESHCFG_BIN = fileURLToPath(new URL('../../bin/meshcfg.js', import.meta.url));

export interface ChildExit {
  readonly name: string;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface SupervisedChild {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  readonly exited: Promise<ChildExit>;
}

/** How long a child gets after SIGTERM before SIGKILL. Above `meshcfg serve`'s default drain. */
const STOP_GRACE_MS = 15_000;

/**
 * Owns every long-running `meshcfg` process the demo starts. Output goes to a log file (the
 * child keeps writing there even if the demo's terminal goes away); `stopAll()` ends them in
 * order (agents first, so the server has no streams left to drain) and waits for each.
 * Contract: once `stopAll()` was called nothing new starts, so a Ctrl-C during set-up cannot
 * leave a process behind.
 */
export class Supervisor {
  private readonly running = new Map<string, { child: ChildProcess; handle: SupervisedChild; role: 'server' | 'agent' }>();
  private stopping = false;
  private unexpected: ((exit: ChildExit) => void) | undefined;
  private firstCrash: ChildExit | undefined;
  /** Resolves with the first child that exits while the demo is not stopping. */
  readonly unexpectedExit: Promise<ChildExit>;

  constructor(private readonly env: NodeJS.ProcessEnv = process.env) {
    this.unexpectedExit = new Promise((resolve) => (this.unexpected = resolve));
  }

  get stopped(): boolean {
    return this.stopping;
  }

  /** The first child that exited while the demo was not stopping, if any. */
  get crashed(): ChildExit | undefined {
    return this.firstCrash;
  }

  start(name: string, role: 'server' | 'agent', args: readonly string[], options: { logFile: string; cwd: string }): SupervisedChild {
    if (this.stopping) throw new DemoError({ code: 'INTERRUPTED', message: 'the demo is stopping' });
    const fd = openSync(options.logFile, 'w', 0o600);
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, [MESHCFG_BIN, ...args], { cwd: options.cwd, env: this.env, stdio: ['ignore', fd, fd] });
    } finally {
      closeSync(fd);
    }
    const exited = new Promise<ChildExit>((resolve) => {
      child.once('exit', (code, signal) => resolve({ name, code, signal }));
      child.once('error', () => resolve({ name, code: null, signal: null }));
    });
    const handle: SupervisedChild = { name, pid: child.pid ?? -1, logFile: options.logFile, exited };
    this.running.set(name, { child, handle, role });
    void exited.then((exit) => {
      this.running.delete(name);
      if (this.stopping) return;
      this.firstCrash ??= exit;
      this.unexpected?.(exit);
    });
    return handle;
  }

  /** Agents first, then the server; each SIGTERM, then SIGKILL after the grace. Resolves when all are gone. */
  async stopAll(): Promise<void> {
    this.stopping = true;
    const entries = [...this.running.values()];
    await Promise.all(entries.filter((e) => e.role === 'agent').map((e) => stopChild(e.child, e.handle)));
    await Promise.all(entries.filter((e) => e.role === 'server').map((e) => stopChild(e.child, e.handle)));
  }
}

async function stopChild(child: ChildProcess, handle: SupervisedChild): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
  await handle.exited;
  clearTimeout(timer);
}

/** Runs `meshcfg …args` to completion (enroll). Never rejects: the exit code is the answer. */
export function runMeshcfg(args: readonly string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MESHCFG_BIN, ...args], { encoding: 'utf8', env }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}
