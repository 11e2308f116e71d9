/**
 * `node --import tsx bench/fleet/profile-top.ts FILE.cpuprofile [--top N]`: where a V8 CPU profile
 * (from `npm run bench:fleet -- --cpu-prof DIR`) spends its time — self time by function and by
 * source file, idle and GC shown apart.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly children?: readonly number[];
}
interface Profile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

const [file] = process.argv.slice(2).filter((a) => !a.startsWith('--'));
if (file === undefined) {
  process.stderr.write('usage: profile-top.ts FILE.cpuprofile [--top N]\n');
  process.exit(2);
}
const topIndex = process.argv.indexOf('--top');
const top = topIndex === -1 ? 25 : Number(process.argv[topIndex + 1]);
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const self = new Map<number, number>();
profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));

const byFunction = new Map<string, number>();
const byFile = new Map<string, number>();
let total = 0;
for (const [id, us] of self) {
  const frame = byId.get(id)?.callFrame;
  if (frame === undefined) continue;
  total += us;
  const where = frame.url.replace(/^file:\/\//, '').replace(/.*\/node_modules\//, 'node_modules/').replace(/.*\/(dist|src)\//, '$1/');
  const name = `${frame.functionName || '(anonymous)'}  ${where}${where === '' ? '' : `:${frame.lineNumber + 1}`}`;
  byFunction.set(name, (byFunction.get(name) ?? 0) + us);
  const module = where === '' ? frame.functionName : where.replace(/^node_modules\/((?:@[^/]+\/)?[^/]+).*/, '$1');
  byFile.set(module, (byFile.get(module) ?? 0) + us);
}
const print = (title: string, map: Map<string, number>): void => {
  process.stdout.write(`\n${title}\n`);
  for (const [name, us] of [...map].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    process.stdout.write(`${(us / 1000).toFixed(0).padStart(8)} ms ${((100 * us) / total).toFixed(1).padStart(5)} %  ${name}\n`);
  }
};
process.stdout.write(`${file}: ${(total / 1000).toFixed(0)} ms sampled\n`);
print('self time by function', byFunction);
print('self time by file / package', byFile);
