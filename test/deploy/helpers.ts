import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { meshcfg } from '../helpers/cli.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Verbs whose first argument is a sub-verb (`rollout status`, `token create`, `ca pin`). */
const GROUPS = new Set(['rollout', 'token', 'ca']);

export interface Invocation {
  /** `['serve']`, `['token', 'create']`. */
  readonly verb: readonly string[];
  /** Every `--flag` given, without its value. */
  readonly flags: readonly string[];
}

/**
 * The `meshcfg` invocations in a command line: an argv (`['meshcfg', 'serve', '--config', …]`)
 * or a shell script inside one (`sh -c '… && exec meshcfg enroll --pin "$PIN" …'`).
 */
export function meshcfgInvocations(argv: readonly string[]): Invocation[] {
  const isShell = (argv[0] === 'sh' || argv[0] === '/bin/sh') && argv[1] === '-c';
  const words = isShell ? shellWords(argv[2] ?? '') : [...argv];
  const found: Invocation[] = [];
  words.forEach((word, i) => {
    if (word !== 'meshcfg' && !word.endsWith('/meshcfg')) return;
    const verb: string[] = [];
    const first = words[i + 1];
    if (first === undefined || first.startsWith('-')) return;
    verb.push(first);
    const second = words[i + 2];
    if (GROUPS.has(first) && second !== undefined) verb.push(second);
    const flags: string[] = [];
    for (const w of words.slice(i + 1 + verb.length)) {
      if (['&&', '||', ';', '|'].includes(w)) break;
      if (w.startsWith('--')) flags.push(w.split('=')[0]!);
    }
    found.push({ verb, flags });
  });
  return found;
}

/** Whitespace-separated words with quotes removed and `;`/`&&`/`||` split off (enough for our manifests). */
function shellWords(script: string): string[] {
  return script
    .replace(/(&&|\|\||;)/g, ' $1 ')
    .split(/\s+/)
    .filter((w) => w !== '')
    .map((w) => w.replace(/^["']|["']$/g, ''));
}

const helpCache = new Map<string, Promise<Set<string>>>();

/** The long options `meshcfg <verb> --help` lists (the CLI's truth, so a renamed flag fails). */
export function cliFlags(verb: readonly string[]): Promise<Set<string>> {
  const key = verb.join(' ');
  let cached = helpCache.get(key);
  if (cached === undefined) {
    cached = meshcfg(...verb, '--help').then((run) => {
      if (run.code !== 0) throw new Error(`meshcfg ${key} --help exited ${run.code}: ${run.stderr}`);
      return new Set([...run.stdout.matchAll(/^\s+(?:-\w, )?(--[a-z][\w-]*)/gm)].map((m) => m[1]!));
    });
    helpCache.set(key, cached);
  }
  return cached;
}

/** The full help text of a verb (for environment variables it documents). */
export async function cliHelp(verb: readonly string[]): Promise<string> {
  const run = await meshcfg(...verb, '--help');
  return run.stdout;
}

export function readRepoFile(path: string): string {
  return readFileSync(`${ROOT}/${path}`, 'utf8');
}
