import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { cliFlags, meshcfgInvocations, readRepoFile, ROOT } from './helpers.js';

interface Instruction {
  readonly op: string;
  readonly args: string;
}

interface Stage {
  readonly from: string;
  readonly name: string | null;
  readonly instructions: Instruction[];
}

/** Dockerfile → stages of instructions (comments dropped, `\` continuations joined). Docker itself is not available here. */
function parseDockerfile(text: string): { args: Instruction[]; stages: Stage[] } {
  const logical: string[] = [];
  let current = '';
  for (const raw of text.split('\n')) {
    if (/^\s*#/.test(raw) && current === '') continue;
    if (/^\s*#/.test(raw)) continue;
    const line = raw.replace(/\s+$/, '');
    if (line.endsWith('\\')) {
      current += `${line.slice(0, -1)} `;
      continue;
    }
    current += line;
    if (current.trim() !== '') logical.push(current.trim());
    current = '';
  }
  const args: Instruction[] = [];
  const stages: Stage[] = [];
  for (const line of logical) {
    const [, op = '', rest = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    const instruction = { op: op.toUpperCase(), args: rest };
    if (instruction.op === 'FROM') {
      const [from = '', as, name] = rest.split(/\s+/);
      stages.push({ from, name: as?.toUpperCase() === 'AS' ? (name ?? null) : null, instructions: [] });
    } else if (stages.length === 0) {
      args.push(instruction);
    } else {
      stages[stages.length - 1]!.instructions.push(instruction);
    }
  }
  return { args, stages };
}

const runs = (stage: Stage): string[] => stage.instructions.filter((i) => i.op === 'RUN').map((i) => i.args);
const jsonArgs = (stage: Stage, op: string): unknown => {
  const found = stage.instructions.filter((i) => i.op === op);
  assert.equal(found.length, 1, `one ${op} in the final stage`);
  return JSON.parse(found[0]!.args) as unknown;
};

describe('deploy/Dockerfile', () => {
  const { stages } = parseDockerfile(readRepoFile('deploy/Dockerfile'));
  const final = stages[stages.length - 1]!;
  const stageNamed = (name: string): Stage | undefined => stages.find((s) => s.name === name);
  const copiesFrom = (stage: Stage): Array<{ from: string; src: string; dest: string }> =>
    stage.instructions
      .filter((i) => i.op === 'COPY' && i.args.startsWith('--from='))
      .map((i) => {
        const [flag = '', src = '', dest = ''] = i.args.split(/\s+/);
        return { from: flag.slice('--from='.length), src, dest };
      });

  it('is multi-stage: a build stage with the dev dependencies that compiles dist/', () => {
    assert.ok(stages.length >= 2);
    const build = stages.find((s) => runs(s).some((r) => /\bnpm run build\b/.test(r)));
    assert.ok(build?.name, 'a named stage runs `npm run build`');
    assert.ok(runs(build).some((r) => /\bnpm ci\b/.test(r) && !r.includes('--omit=dev')), 'it installs the dev dependencies (TypeScript)');
    assert.ok(copiesFrom(final).some((c) => c.from === build.name && /\/dist\/?$/.test(c.src)), 'the final stage takes dist/ from it');
  });

  it('runs with production dependencies only (npm ci --omit=dev) and no TypeScript build in the final image', () => {
    const nodeModules = copiesFrom(final).find((c) => /node_modules\/?$/.test(c.src));
    assert.ok(nodeModules, 'the final stage copies node_modules from a stage');
    const deps = stageNamed(nodeModules.from);
    assert.ok(deps && runs(deps).some((r) => /\bnpm ci\b.*--omit=dev/.test(r)), `stage ${nodeModules.from} runs npm ci --omit=dev`);
    assert.ok(!runs(final).some((r) => /\bnpm (ci|install|run build)\b/.test(r)));
  });

  it('copies into the final image what the code loads at run time, from paths that exist', () => {
    const plain = final.instructions.filter((i) => i.op === 'COPY' && !i.args.startsWith('--from='));
    const sources = plain.flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    for (const needed of ['package.json', 'bin', 'proto']) assert.ok(sources.includes(needed), `COPY ${needed}`);
    for (const src of sources) assert.ok(existsSync(join(ROOT, src)), `${src} exists in the repository`);
    const ignored = readRepoFile('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
    for (const src of [...sources, 'src', 'package-lock.json', 'tsconfig.json']) assert.ok(!ignored.includes(src), `.dockerignore keeps ${src}`);
    for (const kept of ['node_modules', 'dist', '.git', '.meshcfg-demo']) assert.ok(ignored.includes(kept), `.dockerignore drops ${kept}`);
  });

  it('runs as a non-root numeric user', () => {
    const users = final.instructions.filter((i) => i.op === 'USER').map((i) => i.args);
    assert.equal(users.length, 1);
    const uid = Number(users[0]!.split(':')[0]);
    assert.ok(Number.isInteger(uid) && uid > 0, `USER ${users[0]} is a non-zero uid`);
  });

  it('has ENTRYPOINT ["meshcfg"] resolving to the package bin, and CMD serve --config with flags the CLI has', async () => {
    assert.deepEqual(jsonArgs(final, 'ENTRYPOINT'), ['meshcfg']);
    const pkg = JSON.parse(readRepoFile('package.json')) as { bin: Record<string, string> };
    assert.ok(runs(final).some((r) => r.includes(`ln -s /opt/meshcfg/${pkg.bin['meshcfg']} /usr/local/bin/meshcfg`)), 'meshcfg on PATH is the package bin');
    const cmd = jsonArgs(final, 'CMD') as string[];
    assert.deepEqual(cmd, ['serve', '--config', '/etc/meshcfg/server.yaml']);
    const [invocation] = meshcfgInvocations(['meshcfg', ...cmd]);
    const known = await cliFlags(invocation!.verb);
    for (const flag of invocation!.flags) assert.ok(known.has(flag), `meshcfg serve has ${flag}`);
  });

  it('health-checks /healthz on the exposed admin port', () => {
    const exposed = final.instructions.filter((i) => i.op === 'EXPOSE').flatMap((i) => i.args.split(/\s+/));
    const check = final.instructions.find((i) => i.op === 'HEALTHCHECK');
    const url = /http:\/\/127\.0\.0\.1:(\d+)(\/\w+)/.exec(check?.args ?? '');
    assert.ok(url, 'HEALTHCHECK fetches a local URL');
    assert.ok(exposed.includes(url[1]!), `port ${url[1]} is exposed`);
    assert.equal(url[2], '/healthz');
  });
});
