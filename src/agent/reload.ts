import { spawn } from 'node:child_process';

/** The outcome of the reload command, as a value: a failure is an answer to the server, not a crash. */
export type ReloadResult =
  | { readonly kind: 'ok' }
  | { readonly kind: 'failed'; readonly error: string };

/** Runs the reload command after a new file is in place. */
export type Reloader = (file: string) => Promise<ReloadResult>;

export interface ShellReloaderOptions {
  /** Run with `sh -c`; `MESHCFG_FILE` holds the path of the config file. */
  readonly command: string;
  /** Killed (SIGKILL) after this long and counted as failed. Default 30 s. */
  readonly timeoutMs?: number;
  readonly env?: NodeJS.ProcessEnv;
}

/** How much of the command's stderr goes into the REJECTED ack (the tail: errors come last). */
const MAX_ERROR_CHARS = 2048;

export function shellReloader(options: ShellReloaderOptions): Reloader {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const baseEnv = options.env ?? process.env;
  return (file) =>
    new Promise((resolve) => {
      let stderr = '';
      let timedOut = false;
      // Its own process group, so a timeout kills what the shell started too (a lingering
      // grandchild would hold stderr open and the agent would wait on it).
      const child = spawn('sh', ['-c', options.command], {
        env: { ...baseEnv, MESHCFG_FILE: file },
        stdio: ['ignore', 'ignore', 'pipe'],
        detached: true,
      });
      const timer = setTimeout(() => {
        timedOut = true;
        try {
          if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
      }, timeoutMs);
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (chunk: string) => {
        stderr = (stderr + chunk).slice(-MAX_ERROR_CHARS);
      });
      child.once('error', (err) => {
        clearTimeout(timer);
        resolve({ kind: 'failed', error: `reload command could not start: ${err.message}` });
      });
      child.once('close', (code, signal) => {
        clearTimeout(timer);
        if (code === 0 && !timedOut) {
          resolve({ kind: 'ok' });
          return;
        }
        const how = timedOut ? `killed after the ${timeoutMs} ms timeout` : signal !== null ? `killed by ${signal}` : `exit ${code}`;
        const text = stderr.trim();
        resolve({ kind: 'failed', error: `reload command failed (${how})${text === '' ? '' : `: ${text}`}` });
      });
    });
}
