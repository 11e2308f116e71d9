import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The built binary (bin/meshcfg.js → dist/), as users run it. `npm test` builds before testing. */
export const BIN = fileURLToPath(new URL('../../bin/meshcfg.js', import.meta.url));

export interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `meshcfg ...args` to completion; never rejects (the exit code is part of the result). */
export function meshcfg(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}
