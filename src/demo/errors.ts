import { BaseError } from '../domain/errors.js';

/** Why `npm start` (the local demo) could not bring the fleet up. Each names what the user can do. */
export const DEMO_ERROR_CODES = [
  /** `git` or `ssh-keygen` is not on PATH (the demo signs its repository with the real CLIs). */
  'PREREQUISITE_MISSING',
  /** `--dir` exists, is not empty and is not a demo folder: nothing is touched. */
  'DIR_NOT_DEMO',
  /** Another `npm start` runs on the same folder. */
  'ALREADY_RUNNING',
  /** A port given with `--grpc-port`/`--admin-port` is taken (default ports move to the next free one). */
  'PORT_IN_USE',
  /** Creating the key or the signed repository failed. */
  'SCAFFOLD_FAILED',
  /** `meshcfg serve` exited or did not become ready. */
  'SERVER_FAILED',
  /** A token could not be created or `meshcfg enroll` failed. */
  'ENROLL_FAILED',
  /** A `meshcfg agent` exited, or the fleet did not reach SYNCED in time. */
  'AGENT_FAILED',
  /** Ctrl-C during set-up (not a failure: the demo stops cleanly and exits 0). */
  'INTERRUPTED',
] as const;

export type DemoErrorCode = (typeof DEMO_ERROR_CODES)[number];

export class DemoError extends BaseError<DemoErrorCode> {}
