import assert from 'node:assert/strict';
import { posix } from 'node:path';
import { describe, it } from 'node:test';
import { parseDocument } from 'yaml';
import { agentDirPaths } from '../../src/agent/dir.js';
import { parseServerConfig } from '../../src/server/config.js';
import { cliFlags, meshcfgInvocations, readRepoFile } from './helpers.js';

/** A unit file: section → key → every value (keys may repeat, e.g. SystemCallFilter). */
type Unit = Map<string, Map<string, string[]>>;

function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section: Map<string, string[]> | undefined;
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = `${pending}${raw.trim()}`;
    pending = '';
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    if (line.endsWith('\\')) {
      pending = `${line.slice(0, -1)} `;
      continue;
    }
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = new Map();
      unit.set(header[1]!, section);
      continue;
    }
    const eq = line.indexOf('=');
    assert.ok(section && eq > 0, `a key=value line inside a section: ${line}`);
    const key = line.slice(0, eq).trim();
    section.set(key, [...(section.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return unit;
}

/** systemd's own word splitting for ExecStart, as far as our units use it: `${VAR}` stays one word. */
function execArgv(line: string, env: Readonly<Record<string, string>>): string[] {
  return line.split(/\s+/).map((w) => w.replace(/^\$\{(\w+)\}$/, (_, name: string) => {
    assert.ok(name in env, `${name} is set by the EnvironmentFile`);
    return env[name]!;
  }));
}

function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) env[m[1]!] = m[2]!;
  }
  return env;
}

const one = (unit: Unit, section: string, key: string): string => {
  const values = unit.get(section)?.get(key);
  assert.ok(values && values.length >= 1, `[${section}] ${key} is set`);
  return values[values.length - 1]!;
};

/** What every meshcfg unit must keep: no privilege, read-only system, state only in its StateDirectory. */
const HARDENING: Readonly<Record<string, string>> = {
  NoNewPrivileges: 'yes',
  ProtectSystem: 'strict',
  ProtectHome: 'yes',
  PrivateTmp: 'yes',
  PrivateDevices: 'yes',
  ProtectKernelTunables: 'yes',
  ProtectKernelModules: 'yes',
  ProtectControlGroups: 'yes',
  RestrictNamespaces: 'yes',
  RestrictSUIDSGID: 'yes',
  LockPersonality: 'yes',
  CapabilityBoundingSet: '',
  StateDirectoryMode: '0700',
  UMask: '0077',
};

describe('deploy/systemd', () => {
  for (const file of ['meshcfg-server.service', 'meshcfg-agent.service']) {
    describe(file, () => {
      const unit = parseUnit(readRepoFile(`deploy/systemd/${file}`));

      it('has the hardening systemd offers, a non-root user and a StateDirectory, and keeps the JIT working', () => {
        assert.deepEqual([...unit.keys()], ['Unit', 'Service', 'Install']);
        for (const [key, value] of Object.entries(HARDENING)) assert.equal(one(unit, 'Service', key), value, key);
        assert.ok(!['root', '0'].includes(one(unit, 'Service', 'User')));
        assert.ok(one(unit, 'Service', 'StateDirectory') !== '');
        // V8 needs writable+executable pages: MemoryDenyWriteExecute=yes would crash node.
        assert.equal(unit.get('Service')?.get('MemoryDenyWriteExecute'), undefined);
        assert.equal(one(unit, 'Service', 'KillSignal'), 'SIGTERM');
        assert.equal(one(unit, 'Service', 'RestartPreventExitStatus'), '2', 'exit 2 (refused to start) is not retried');
      });
    });
  }

  it('the server unit runs `meshcfg serve` with flags the CLI has, on a server.yaml whose dataDir is the StateDirectory', async () => {
    const unit = parseUnit(readRepoFile('deploy/systemd/meshcfg-server.service'));
    const argv = execArgv(one(unit, 'Service', 'ExecStart'), {});
    const [invocation] = meshcfgInvocations(argv);
    assert.deepEqual(invocation?.verb, ['serve']);
    const known = await cliFlags(['serve']);
    for (const flag of invocation!.flags) assert.ok(known.has(flag), `meshcfg serve has ${flag}`);

    const configPath = argv[argv.indexOf('--config') + 1]!;
    assert.equal(configPath, `/etc/${one(unit, 'Service', 'ConfigurationDirectory')}/server.yaml`);
    const config = parseServerConfig(parseDocument(readRepoFile('deploy/systemd/server.yaml')).toJS() as unknown, { baseDir: posix.dirname(configPath) });
    assert.equal(config.dataDir, `/var/lib/${one(unit, 'Service', 'StateDirectory')}`);
    assert.equal(posix.dirname(config.trust.allowedSigners), posix.dirname(configPath));
  });

  it('the agent unit runs `meshcfg agent` with flags the CLI has, once enrolled, with its identity in the StateDirectory', async () => {
    const unit = parseUnit(readRepoFile('deploy/systemd/meshcfg-agent.service'));
    const envFile = one(unit, 'Service', 'EnvironmentFile');
    assert.equal(envFile, '/etc/meshcfg/agent.env');
    const env = parseEnvFile(readRepoFile('deploy/systemd/agent.env'));
    const argv = execArgv(one(unit, 'Service', 'ExecStart'), env);
    const [invocation] = meshcfgInvocations(argv);
    assert.deepEqual(invocation?.verb, ['agent']);
    const known = await cliFlags(['agent']);
    for (const flag of invocation!.flags) assert.ok(known.has(flag), `meshcfg agent has ${flag}`);

    const dir = argv[argv.indexOf('--dir') + 1]!;
    assert.ok(dir.startsWith(`/var/lib/${one(unit, 'Service', 'StateDirectory')}/`));
    assert.equal(one(unit, 'Unit', 'ConditionPathExists'), agentDirPaths(dir).config, 'starts only once `meshcfg enroll` has written the agent directory');
    const out = argv[argv.indexOf('--out') + 1]!;
    const writable = (unit.get('Service')?.get('ReadWritePaths') ?? []).map((p) => p.replace(/^-/, ''));
    assert.ok(writable.includes(posix.dirname(out)), `the directory of --out (${out}) is writable under ProtectSystem=strict`);
    assert.ok(env['MESHCFG_RELOAD'] && argv[argv.indexOf('--exec') + 1] === env['MESHCFG_RELOAD'], 'the reload command is one argument');
  });
});
