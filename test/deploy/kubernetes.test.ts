import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { agentDirPaths } from '../../src/agent/dir.js';
import { POSTGRES_URL_ENV, parseServerConfig, type ServerConfig } from '../../src/server/config.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { configFor, makeFixture, silentLogger, type Fixture } from '../server/helpers.js';
import { cliFlags, cliHelp, meshcfgInvocations, readRepoFile, ROOT } from './helpers.js';

// Manifests are untyped documents: read field by field, every expectation asserted.
type Doc = Record<string, any>;

const KUBE = 'deploy/kubernetes';

function loadManifests(dir: string): Map<string, Doc[]> {
  const files = new Map<string, Doc[]>();
  for (const name of readdirSync(join(ROOT, dir)).filter((n) => n.endsWith('.yaml'))) {
    const docs = parseAllDocuments(readRepoFile(`${dir}/${name}`));
    for (const doc of docs) assert.deepEqual(doc.errors, [], `${dir}/${name} parses`);
    files.set(name, docs.map((d) => d.toJS() as Doc).filter((d) => d !== null));
  }
  return files;
}

const find = (docs: Doc[], kind: string, name?: string): Doc => {
  const found = docs.find((d) => d['kind'] === kind && (name === undefined || d['metadata']?.['name'] === name));
  assert.ok(found, `a ${kind}${name === undefined ? '' : ` named ${name}`}`);
  return found;
};

/** A container's argv as the runtime builds it: command, or the image's ENTRYPOINT (meshcfg), then args. */
const argvOf = (c: Doc): string[] => [...((c['command'] as string[] | undefined) ?? ['meshcfg']), ...((c['args'] as string[] | undefined) ?? [])];

const podContainers = (workload: Doc): Doc[] => [...(workload['spec']['template']['spec']['initContainers'] ?? []), ...workload['spec']['template']['spec']['containers']];

const matches = (selector: Record<string, string>, labels: Record<string, string>): boolean => Object.entries(selector).every(([k, v]) => labels[k] === v);

describe('deploy/kubernetes (server)', () => {
  const files = loadManifests(KUBE);
  const all = [...files.values()].flat();
  const deployment = find(all, 'Deployment', 'meshcfg');
  const pod = deployment['spec']['template']['spec'];
  const server = pod['containers'].find((c: Doc) => c['name'] === 'meshcfg') as Doc;
  const portNumber = (name: string): number => server['ports'].find((p: Doc) => p['name'] === name)['containerPort'];
  const mountPath = (volume: string): string => server['volumeMounts'].find((m: Doc) => m['name'] === volume)['mountPath'];
  const volume = (name: string): Doc => pod['volumes'].find((v: Doc) => v['name'] === name);

  /** server.yaml from the ConfigMap, with the repository URL the init container puts in, through the real parser. */
  const serverConfig = (): ServerConfig => {
    const template = find(all, 'ConfigMap', 'meshcfg-server')['data']['server.yaml'] as string;
    const url = find(all, 'Secret', 'meshcfg-repo')['stringData']['url'] as string;
    const rendered = template.replace('__REPO_URL__', () => JSON.stringify(url));
    const doc = parseAllDocuments(rendered)[0]!.toJS() as unknown;
    return parseServerConfig(doc, { baseDir: '/', source: 'server.yaml' });
  };

  it('every manifest parses, has a kind and a name, and the kustomization lists exactly the manifests', () => {
    for (const doc of all) {
      assert.equal(typeof doc['apiVersion'], 'string');
      assert.equal(typeof doc['kind'], 'string');
      if (doc['kind'] !== 'Kustomization') assert.equal(typeof doc['metadata']?.['name'], 'string');
    }
    const kustomization = find(files.get('kustomization.yaml')!, 'Kustomization');
    assert.deepEqual([...kustomization['resources']].sort(), [...files.keys()].filter((n) => n !== 'kustomization.yaml').sort());
  });

  it('server.yaml in the ConfigMap is valid for the real parser, and its ports, data dir and allowed-signers path match the pod', () => {
    const config = serverConfig();
    assert.equal(config.listen.grpc.port, portNumber('grpc'));
    assert.equal(config.listen.admin.port, portNumber('admin'));
    assert.match(config.repo.url, /^https:\/\//);
    const data = mountPath('data');
    assert.ok(config.dataDir.startsWith(`${data}/`), `dataDir ${config.dataDir} is below the volume's root ${data} (the server keeps it 0700)`);
    assert.equal(volume('data')['persistentVolumeClaim']['claimName'], find(all, 'PersistentVolumeClaim')['metadata']['name']);
    const signers = volume('allowed-signers')['secret']['secretName'];
    const key = posix.basename(config.trust.allowedSigners);
    assert.equal(posix.dirname(config.trust.allowedSigners), mountPath('allowed-signers'));
    assert.ok(key in find(all, 'Secret', signers)['stringData'], `Secret ${signers} has the key ${key}`);
    const grpcService = find(all, 'Service', 'meshcfg-grpc');
    assert.ok(config.tls.serverNames.includes(`meshcfg-grpc.${find(all, 'Kustomization')['namespace']}.svc`), 'the certificate names the Service agents dial');
    assert.equal(grpcService['spec']['ports'][0]['port'], config.listen.grpc.port);
  });

  it('the server container runs `meshcfg serve` with flags the CLI has, reading the server.yaml the init container renders', async () => {
    const [invocation] = meshcfgInvocations(argvOf(server));
    assert.deepEqual(invocation?.verb, ['serve']);
    const known = await cliFlags(['serve']);
    for (const flag of invocation!.flags) assert.ok(known.has(flag), `meshcfg serve has ${flag}`);
    const configPath = server['args'][server['args'].indexOf('--config') + 1] as string;
    assert.equal(dirname(configPath), mountPath('config'));
    const render = pod['initContainers'].find((c: Doc) => c['name'] === 'render-config') as Doc;
    assert.ok(render['command'].join(' ').includes(`'${configPath}'`), 'the init container writes that file');
    assert.equal(deployment['spec']['replicas'], 1);
    assert.equal(deployment['spec']['strategy']['type'], 'Recreate');
  });

  it('every container image is the meshcfg image the kustomization pins to the package version', () => {
    const { version } = JSON.parse(readRepoFile('package.json')) as { version: string };
    const image = find(all, 'Kustomization')['images'].find((i: Doc) => i['name'] === 'meshcfg');
    assert.equal(image['newTag'], version);
    for (const c of podContainers(deployment)) assert.equal(c['image'], `meshcfg:${version}`);
  });

  it('is hardened: non-root, read-only root file system, no privilege escalation, all capabilities dropped, resource requests', () => {
    assert.equal(pod['securityContext']['runAsNonRoot'], true);
    assert.ok(pod['securityContext']['runAsUser'] > 0);
    assert.equal(pod['securityContext']['seccompProfile']['type'], 'RuntimeDefault');
    assert.equal(pod['automountServiceAccountToken'], false);
    for (const c of podContainers(deployment)) {
      assert.equal(c['securityContext']['readOnlyRootFilesystem'], true, c['name']);
      assert.equal(c['securityContext']['allowPrivilegeEscalation'], false, c['name']);
      assert.deepEqual(c['securityContext']['capabilities']['drop'], ['ALL'], c['name']);
      assert.ok(c['resources']['requests']['cpu'] && c['resources']['requests']['memory'], `${c['name']} requests resources`);
    }
  });

  it('exposes gRPC and admin as Services whose target ports are the container ports, and selects the server pod', () => {
    const labels = deployment['spec']['template']['metadata']['labels'];
    for (const [name, port] of [['meshcfg-grpc', 'grpc'], ['meshcfg-admin', 'admin']] as const) {
      const service = find(all, 'Service', name);
      assert.ok(matches(service['spec']['selector'], labels), `${name} selects the server pod`);
      assert.equal(service['spec']['ports'][0]['targetPort'], port);
    }
    const pdb = find(all, 'PodDisruptionBudget');
    assert.ok(matches(pdb['spec']['selector']['matchLabels'], labels));
  });

  it('admits agents to gRPC and only the monitoring namespace to the admin port', () => {
    const policy = find(all, 'NetworkPolicy');
    assert.ok(matches(policy['spec']['podSelector']['matchLabels'], deployment['spec']['template']['metadata']['labels']));
    assert.deepEqual(policy['spec']['policyTypes'], ['Ingress']);
    const rules = policy['spec']['ingress'] as Doc[];
    assert.equal(rules.length, 2);
    const byPort = (port: string): Doc => rules.find((r) => r['ports'].some((p: Doc) => p['port'] === port))!;
    assert.deepEqual(byPort('grpc')['from'][0]['podSelector']['matchLabels'], { 'meshcfg.io/agent': 'true' });
    assert.deepEqual(byPort('admin')['from'], [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }]);
    for (const rule of rules) for (const p of rule['ports']) assert.ok(portNumber(p['port']) > 0, `${p['port']} is a container port`);
  });

  it('the ServiceMonitor scrapes the admin Service port', () => {
    const monitor = find(all, 'ServiceMonitor');
    const admin = find(all, 'Service', 'meshcfg-admin');
    assert.ok(matches(monitor['spec']['selector']['matchLabels'], admin['metadata']['labels']));
    assert.ok(!matches(monitor['spec']['selector']['matchLabels'], find(all, 'Service', 'meshcfg-grpc')['metadata']['labels']), 'not the gRPC Service');
    assert.equal(monitor['spec']['endpoints'][0]['port'], admin['spec']['ports'][0]['name']);
  });

  describe('the probe and scrape paths, asked of a real server', () => {
    let fixture: Fixture;
    let running: RunningServer;
    before(async () => {
      fixture = makeFixture();
      running = await startServer(configFor(fixture), { logger: silentLogger });
      assert.equal((await running.syncNow()).kind, 'accepted');
    });
    after(async () => {
      await running.close();
      fixture.cleanup();
    });

    it('readiness is /readyz and liveness /healthz on the admin port, and both answer 200 without a token', async () => {
      assert.equal(server['readinessProbe']['httpGet']['path'], '/readyz');
      assert.equal(server['livenessProbe']['httpGet']['path'], '/healthz');
      for (const probe of [server['readinessProbe'], server['livenessProbe']]) {
        assert.equal(probe['httpGet']['port'], 'admin');
        assert.equal((await fetch(`${running.adminUrl}${probe['httpGet']['path']}`)).status, 200);
      }
    });

    it('the ServiceMonitor path serves Prometheus metrics without a token', async () => {
      const path = find(all, 'ServiceMonitor')['spec']['endpoints'][0]['path'];
      const res = await fetch(`${running.adminUrl}${path}`);
      assert.equal(res.status, 200);
      assert.match(await res.text(), /^# HELP meshcfg_/m);
    });
  });
});

describe('deploy/kubernetes/agent-example', () => {
  const server = [...loadManifests(KUBE).values()].flat();
  const files = loadManifests(`${KUBE}/agent-example`);
  const all = [...files.values()].flat();
  const workload = find(all, 'Deployment');
  const pod = workload['spec']['template']['spec'];
  const containers = podContainers(workload);
  const named = (name: string): Doc => containers.find((c) => c['name'] === name)!;
  const mountOf = (c: Doc, path: string): Doc | undefined =>
    (c['volumeMounts'] as Doc[]).find((m) => path === m['mountPath'] || path.startsWith(`${m['mountPath']}/`));

  it('the kustomization lists the manifest, and every meshcfg flag is one the CLI has', async () => {
    const kustomization = find(files.get('kustomization.yaml')!, 'Kustomization');
    assert.deepEqual(kustomization['resources'], ['agent-example.yaml']);
    const verbs: string[] = [];
    for (const c of containers.filter((c) => c['image'].startsWith('meshcfg:'))) {
      for (const invocation of meshcfgInvocations(argvOf(c))) {
        verbs.push(invocation.verb.join(' '));
        const known = await cliFlags(invocation.verb);
        for (const flag of invocation.flags) assert.ok(known.has(flag), `meshcfg ${invocation.verb.join(' ')} has ${flag}`);
      }
    }
    assert.deepEqual(verbs.sort(), ['agent', 'enroll']);
  });

  it('enrolls in an init container from a token Secret (the variable `meshcfg enroll` reads) against the server Service', async () => {
    const enroll = pod['initContainers'].find((c: Doc) => c['name'] === 'meshcfg-enroll') as Doc;
    const script = argvOf(enroll)[2]!;
    const tokenEnv = enroll['env'].find((e: Doc) => e['valueFrom']?.['secretKeyRef']);
    assert.equal(tokenEnv['name'], 'MESHCFG_ENROLL_TOKEN');
    assert.ok((await cliHelp(['enroll'])).includes(tokenEnv['name']), 'meshcfg enroll documents the variable');
    const grpc = find(server, 'Service', 'meshcfg-grpc');
    const namespace = find(server, 'Kustomization')['namespace'];
    assert.ok(script.includes(`--server ${grpc['metadata']['name']}.${namespace}.svc:${grpc['spec']['ports'][0]['port']}`));
    // Enrolled once: the test is on the file `meshcfg enroll` writes last.
    const dir = /--dir (\S+)/.exec(script)![1]!;
    assert.ok(script.includes(`test -f ${agentDirPaths(dir).config}`));
    const agent = named('meshcfg-agent');
    assert.equal(agent['args'][agent['args'].indexOf('--dir') + 1], dir);
    assert.equal(mountOf(enroll, dir)?.['name'], mountOf(agent, dir)?.['name'], 'the agent reads the enrollment the init container wrote');
  });

  it('shares the config file with the proxy through an emptyDir, read-only for the proxy', () => {
    const agent = named('meshcfg-agent');
    const out = agent['args'][agent['args'].indexOf('--out') + 1] as string;
    const shared = mountOf(agent, out)!;
    const proxyMount = mountOf(named('proxy'), out);
    assert.equal(proxyMount?.['name'], shared['name']);
    assert.equal(proxyMount?.['readOnly'], true);
    assert.ok(pod['volumes'].find((v: Doc) => v['name'] === shared['name'])['emptyDir'] !== undefined);
    assert.ok(agent['args'].includes('--exec'), 'the agent reloads the proxy');
  });

  it('carries the label the server NetworkPolicy admits to gRPC, and is hardened', () => {
    const policy = find(server, 'NetworkPolicy');
    const rule = policy['spec']['ingress'].find((r: Doc) => r['ports'].some((p: Doc) => p['port'] === 'grpc'));
    assert.ok(matches(rule['from'][0]['podSelector']['matchLabels'], workload['spec']['template']['metadata']['labels']));
    assert.equal(pod['securityContext']['runAsNonRoot'], true);
    for (const c of containers) {
      assert.equal(c['securityContext']['readOnlyRootFilesystem'], true, c['name']);
      assert.equal(c['securityContext']['allowPrivilegeEscalation'], false, c['name']);
    }
  });
});

const isObject = (v: unknown): v is Doc => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNamedList = (v: unknown): v is Doc[] => Array.isArray(v) && v.every((x) => isObject(x) && typeof x['name'] === 'string');

/**
 * Kustomize's strategic-merge patch, as far as the HA patch uses it: mappings merge key by
 * key, lists of named items (containers, env, volumes) merge by `name`, `null` deletes a key,
 * anything else replaces. (`kubectl kustomize deploy/kubernetes-ha` renders the same; the
 * tests do not need kubectl.)
 */
function strategicMerge(base: Doc, patch: Doc): Doc {
  const out: Doc = { ...base };
  for (const [key, value] of Object.entries(patch)) {
    const current = out[key];
    if (value === null) delete out[key];
    else if (isNamedList(value) && isNamedList(current)) {
      const merged = current.map((item) => {
        const p = value.find((v) => v['name'] === item['name']);
        return p === undefined ? item : strategicMerge(item, p);
      });
      for (const p of value) if (!current.some((item) => item['name'] === p['name'])) merged.push(p);
      out[key] = merged;
    } else if (isObject(value) && isObject(current)) out[key] = strategicMerge(current, value);
    else out[key] = value;
  }
  return out;
}

describe('deploy/kubernetes-ha (three replicas on PostgreSQL)', () => {
  const HA = 'deploy/kubernetes-ha';
  const base = [...loadManifests(KUBE).values()].flat();
  const files = loadManifests(HA);
  const kustomization = find(files.get('kustomization.yaml')!, 'Kustomization');
  const patches = (kustomization['patches'] as Doc[]).map((p) => files.get(p['path'] as string)![0]!);
  const deleted = patches.filter((p) => p['$patch'] === 'delete');
  // The overlay as kustomize renders it: the base's resources, patched, without the deleted ones, plus the overlay's own.
  const all: Doc[] = [
    ...base
      .filter((d) => d['kind'] !== 'Kustomization')
      .filter((d) => !deleted.some((p) => p['kind'] === d['kind'] && p['metadata']['name'] === d['metadata']['name']))
      .map((d) => patches.filter((p) => p['$patch'] === undefined && p['kind'] === d['kind'] && p['metadata']['name'] === d['metadata']['name']).reduce(strategicMerge, d)),
    ...(kustomization['resources'] as string[]).filter((r) => r.endsWith('.yaml')).flatMap((r) => files.get(r)!),
  ];
  const deployment = find(all, 'Deployment', 'meshcfg');
  const pod = deployment['spec']['template']['spec'];
  const server = pod['containers'].find((c: Doc) => c['name'] === 'meshcfg') as Doc;
  const copyKeys = pod['initContainers'].find((c: Doc) => c['name'] === 'copy-keys') as Doc;
  const mount = (c: Doc, volume: string): Doc => c['volumeMounts'].find((m: Doc) => m['name'] === volume);

  it('builds on the single-replica manifests, and uses every file of its directory', () => {
    assert.deepEqual(kustomization['resources'], ['../kubernetes', 'secrets.yaml']);
    assert.equal(kustomization['namespace'], find(base, 'Kustomization')['namespace']);
    const used = [...kustomization['resources'], ...(kustomization['patches'] as Doc[]).map((p) => p['path'])];
    assert.deepEqual([...files.keys()].filter((n) => n !== 'kustomization.yaml').sort(), used.filter((r: string) => r.endsWith('.yaml')).sort());
    for (const patch of patches) assert.ok(base.some((d) => d['kind'] === patch['kind'] && d['metadata']['name'] === patch['metadata']['name']), `${patch['kind']} ${patch['metadata']['name']} is in the base`);
  });

  it('runs 3 replicas, at most one per node, with rolling updates', () => {
    assert.equal(deployment['spec']['replicas'], 3);
    assert.equal(deployment['spec']['strategy']['type'], 'RollingUpdate');
    const [term] = pod['affinity']['podAntiAffinity']['requiredDuringSchedulingIgnoredDuringExecution'] as Doc[];
    assert.equal(term!['topologyKey'], 'kubernetes.io/hostname');
    assert.deepEqual(term!['labelSelector']['matchLabels'], deployment['spec']['template']['metadata']['labels']);
    assert.ok(find(all, 'PodDisruptionBudget')['spec']['maxUnavailable'] < 3);
  });

  it('gives the server the PostgreSQL URL from a Secret, in the variable the config parser reads, and the real parser takes it', () => {
    const env = (server['env'] as Doc[]).find((e) => e['name'] === POSTGRES_URL_ENV);
    assert.ok(env, `the server container sets ${POSTGRES_URL_ENV}`);
    const ref = env['valueFrom']['secretKeyRef'];
    const url = find(all, 'Secret', ref['name'])['stringData'][ref['key']] as string;
    const template = find(all, 'ConfigMap', 'meshcfg-server')['data']['server.yaml'] as string;
    const repo = find(all, 'Secret', 'meshcfg-repo')['stringData']['url'] as string;
    const doc = parseAllDocuments(template.replace('__REPO_URL__', () => JSON.stringify(repo)))[0]!.toJS() as unknown;
    const config = parseServerConfig(doc, { baseDir: '/', source: 'server.yaml', env: { [POSTGRES_URL_ENV]: url } });
    assert.deepEqual(config.state, { kind: 'postgres', url, from: POSTGRES_URL_ENV });
  });

  it('keeps no fleet state on a volume: the data dir is a per-pod emptyDir and the PersistentVolumeClaim is gone', () => {
    const data = pod['volumes'].find((v: Doc) => v['name'] === 'data') as Doc;
    assert.ok(data['emptyDir'] !== undefined);
    assert.equal(data['persistentVolumeClaim'], undefined);
    assert.equal(all.filter((d) => d['kind'] === 'PersistentVolumeClaim').length, 0);
  });

  describe('the key material, from one Secret', () => {
    let fixture: Fixture;
    let running: RunningServer;
    let created: string[];
    before(async () => {
      fixture = makeFixture();
      running = await startServer(configFor(fixture), { logger: silentLogger });
      created = readdirSync(fixture.dataDir).sort();
    });
    after(async () => {
      await running.close();
      fixture.cleanup();
    });

    it('copy-keys copies every file a first start puts in the data dir except the SQLite store, into the data dir server.yaml names', () => {
      const script = copyKeys['command'].join(' ') as string;
      const names = JSON.parse(/for \(const name of (\[[^\]]*\])/.exec(script)![1]!.replaceAll("'", '"')) as string[];
      assert.deepEqual([...names].sort(), created.filter((n) => !/^fleet\.db(-wal|-shm)?$/.test(n)));
      const template = find(all, 'ConfigMap', 'meshcfg-server')['data']['server.yaml'] as string;
      const dataDir = /dataDir: (\S+)/.exec(template)![1]!;
      assert.ok(script.includes(`const dir = '${dataDir}'`));
      assert.ok(dataDir.startsWith(`${mount(copyKeys, 'data')['mountPath']}/`));
      assert.equal(mount(copyKeys, 'data')['mountPath'], mount(server, 'data')['mountPath'], 'the server reads what the init container wrote');
      assert.ok(script.includes(`'${mount(copyKeys, 'keys')['mountPath']}/'`));
      const keys = pod['volumes'].find((v: Doc) => v['name'] === 'keys') as Doc;
      assert.equal(keys['secret']['secretName'], 'meshcfg-keys');
      assert.ok(!all.some((d) => d['kind'] === 'Secret' && d['metadata']['name'] === 'meshcfg-keys'), 'the keys Secret is created by hand, never applied from git');
    });

    it('every container is the pinned image and hardened', () => {
      const { version } = JSON.parse(readRepoFile('package.json')) as { version: string };
      for (const c of podContainers(deployment)) {
        assert.equal(c['image'], `meshcfg:${version}`, c['name']);
        assert.equal(c['securityContext']['readOnlyRootFilesystem'], true, c['name']);
        assert.equal(c['securityContext']['allowPrivilegeEscalation'], false, c['name']);
        assert.deepEqual(c['securityContext']['capabilities']['drop'], ['ALL'], c['name']);
      }
    });
  });
});
