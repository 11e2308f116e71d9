import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The built binary (bin/meshcfg.js → dist/), as users run it. `npm test` builds before testing. */
export const BIN = fileURLToPath(new URL('../../bin/meshcfg.js', import.meta.url));

export interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** A command still running after this is killed, and the run says so (every verb is done in seconds). */
const RUN_TIMEOUT_MS = 120_000;

/** Runs `meshcfg ...args` to completion; never rejects (the exit code is part of the result). */
export function meshcfg(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: RUN_TIMEOUT_MS }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      const killed = err?.killed === true ? `\n(meshcfg ${args[0] ?? ''} was still running after ${RUN_TIMEOUT_MS / 1000} s and was killed)` : '';
      resolve({ code, stdout, stderr: `${stderr}${killed}` });
    });
  });
}
