import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isErrnoCode } from '../lib/index.js';
import { DemoError } from './errors.js';

/**
 * The demo folder (`.meshcfg-demo/` by default, git-ignored):
 *
 *   demo.json            marker: the scaffold below is complete (absent → rebuilt from scratch)
 *   demo.pid             the running `npm start`, so a second one on the same folder is refused
 *   keys/demo-signer     the SSH signing key (and .pub); allowed_signers trusts it
 *   config/              the signed config repository the server tracks
 *   server.yaml, data/   the server's configuration and data dir (CA, admin token, fleet.db)
 *   agents/<id>/         each agent's enrollment; proxy/<id>.json the config it keeps
 *   logs/                server.log, <id>.log, reloads.log
 */
export interface DemoLayout {
  readonly root: string;
  readonly marker: string;
  readonly pidFile: string;
  readonly keys: string;
  readonly allowedSigners: string;
  readonly repo: string;
  readonly serverConfig: string;
  readonly dataDir: string;
  readonly adminTokenFile: string;
  readonly logs: string;
  agentDir(id: string): string;
  agentOut(id: string): string;
}

export function demoLayout(root: string): DemoLayout {
  return {
    root,
    marker: join(root, 'demo.json'),
    pidFile: join(root, 'demo.pid'),
    keys: join(root, 'keys'),
    allowedSigners: join(root, 'allowed_signers'),
    repo: join(root, 'config'),
    serverConfig: join(root, 'server.yaml'),
    dataDir: join(root, 'data'),
    adminTokenFile: join(root, 'data', 'admin-token'),
    logs: join(root, 'logs'),
    agentDir: (id) => join(root, 'agents', id),
    agentOut: (id) => join(root, 'proxy', `${id}.json`),
  };
}

/** What `prepareFolder` found: a complete demo to reuse, or a folder to scaffold into. */
export type FolderState = { readonly kind: 'reuse' } | { readonly kind: 'fresh' };

const MARKER_VERSION = 1;

/**
 * Claims the folder for this run. Refuses a folder that holds something else (DIR_NOT_DEMO)
 * or that another live `npm start` uses (ALREADY_RUNNING); with `reset`, or when an earlier
 * run stopped before its scaffold was complete, empties it. Writes demo.pid.
 */
export async function prepareFolder(layout: DemoLayout, options: { reset: boolean; pid?: number }): Promise<FolderState> {
  const entries = await readdir(layout.root).catch((err: unknown) => {
    if (isErrnoCode(err, 'ENOENT')) return null;
    throw err;
  });
  const marker = await readMarker(layout.marker);
  if (entries !== null && entries.length > 0 && marker === 'absent' && !entries.includes('demo.pid')) {
    throw new DemoError({ code: 'DIR_NOT_DEMO', message: `${layout.root} is not empty and is not a meshcfg demo folder; choose another with --dir` });
  }
  const owner = await livePid(layout.pidFile);
  if (owner !== undefined && owner !== (options.pid ?? process.pid)) {
    throw new DemoError({ code: 'ALREADY_RUNNING', message: `a demo already runs on ${layout.root} (pid ${owner}): stop it (Ctrl-C in its terminal) first` });
  }
  const fresh = options.reset || marker !== 'complete';
  if (fresh && entries !== null) await rm(layout.root, { recursive: true, force: true });
  await mkdir(layout.root, { recursive: true, mode: 0o700 });
  await writeFile(layout.pidFile, `${options.pid ?? process.pid}\n`);
  return fresh ? { kind: 'fresh' } : { kind: 'reuse' };
}

/** Marks the scaffold complete: later runs reuse the folder. */
export async function markComplete(layout: DemoLayout): Promise<void> {
  await writeFile(layout.marker, `${JSON.stringify({ version: MARKER_VERSION, createdAt: new Date().toISOString() })}\n`);
}

/** Removes demo.pid if this process wrote it (a run refused with ALREADY_RUNNING leaves the owner's alone). */
export async function releaseFolder(layout: DemoLayout, pid: number = process.pid): Promise<void> {
  const text = await readFile(layout.pidFile, 'utf8').catch(() => '');
  if (Number(text.trim()) === pid) await rm(layout.pidFile, { force: true });
}

async function readMarker(path: string): Promise<'absent' | 'incomplete' | 'complete'> {
  try {
    const doc = JSON.parse(await readFile(path, 'utf8')) as { version?: unknown };
    return doc.version === MARKER_VERSION ? 'complete' : 'incomplete';
  } catch (err) {
    return isErrnoCode(err, 'ENOENT') ? 'absent' : 'incomplete';
  }
}

/** The pid in the pid file if that process still runs. */
async function livePid(path: string): Promise<number | undefined> {
  const text = await readFile(path, 'utf8').catch(() => '');
  const pid = Number(text.trim());
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (err) {
    return isErrnoCode(err, 'EPERM') ? pid : undefined;
  }
}
