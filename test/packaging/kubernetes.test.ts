/**
 * The Kubernetes manifests in packaging/kubernetes/ cannot be applied here (no cluster, no
 * container runtime): this test parses them and checks that the wiring agrees with the agent's
 * config, as the agent would enforce it at start. The agent's config (validated by the agent's own
 * loader) names the socket; its directory must be one the agent may own inside a volume both
 * sides mount at the same path; the socket group must be the group the client processes carry;
 * the provider's openssl.cnf must name the same socket and allow the agent's uid; the probes must
 * hit the metrics listener; the agent must use workload identity (sidecar and DaemonSet).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { parseConfigObject } from '../../src/config/load.js';
import type { AkvConfig } from '../../src/config/types.js';
import { REPO_ROOT } from '../helpers/emulator.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function load(name: string): Obj[] {
  const text = readFileSync(join(REPO_ROOT, 'packaging', 'kubernetes', name), 'utf8');
  return parseAllDocuments(text).map((d) => {
    assert.equal(d.errors.length, 0, `${name}: ${d.errors.map((e) => e.message).join('; ')}`);
    return d.toJS() as Obj;
  });
}

const byKind = (docs: Obj[], kind: string, name?: string): Obj => {
  const found = docs.find(
    (d) => d.kind === kind && (name === undefined || d.metadata.name === name),
  );
  assert.ok(found, `${kind} ${name ?? ''} is in the manifest`);
  return found;
};

/** The agent config a ConfigMap holds, through the agent's own strict loader. */
function agentConfig(docs: Obj[], configMap: string): AkvConfig {
  const cm = byKind(docs, 'ConfigMap', configMap);
  return parseConfigObject(JSON.parse(cm.data['config.json'] as string), configMap, {});
}

/** `key = value` settings of the [akv_sect] section of an openssl.cnf. */
function akvSection(cnf: string): Record<string, string> {
  const section = /\[akv_sect\]\n([\s\S]*?)(\n\[|$)/.exec(cnf)?.[1] ?? '';
  return Object.fromEntries(
    section
      .split('\n')
      .map((l) => /^\s*(\w+)\s*=\s*(.+?)\s*$/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [m[1]!, m[2]!]),
  );
}

/**
 * The init container copies akv_provider.so from OpenSSL's modules directory as `openssl version
 * -m` reports it (no architecture triplet written down): the command, run here by sh with the
 * real openssl and `cp` replaced by `echo cp`, names this machine's modules directory.
 */
function checkProviderCopy(copy: Obj): void {
  const script = (copy.command as string[]).at(-1)!;
  assert.doesNotMatch(script, /x86_64|aarch64|-linux-gnu/, 'no architecture in the path');
  const r = spawnSync('sh', ['-c', script.replace(/(^|&& )cp /, '$1echo cp ')], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  const modulesDir = /MODULESDIR: "([^"]+)"/.exec(
    spawnSync('openssl', ['version', '-m'], { encoding: 'utf8' }).stdout,
  )![1];
  assert.equal(r.stdout.trim(), `cp ${modulesDir}/akv_provider.so /opt/akv-provider/`);
}

const containers = (pod: Obj): Obj[] => [...(pod.initContainers ?? []), ...pod.containers];
const container = (pod: Obj, name: string): Obj => {
  const c = containers(pod).find((x) => x.name === name);
  assert.ok(c, `container ${name}`);
  return c;
};
const mountOf = (c: Obj, volume: string): Obj | undefined =>
  (c.volumeMounts as Obj[] | undefined)?.find((m) => m.name === volume);
const volumeOf = (pod: Obj, name: string): Obj => {
  const v = (pod.volumes as Obj[]).find((x) => x.name === name);
  assert.ok(v, `volume ${name}`);
  return v;
};

/** The volume mounted at the longest mount path that contains `path`, in container `c`. */
function volumeHolding(c: Obj, path: string): Obj {
  const mounts = (c.volumeMounts as Obj[]).filter(
    (m) => path === m.mountPath || path.startsWith(`${m.mountPath}/`),
  );
  mounts.sort((a, b) => b.mountPath.length - a.mountPath.length);
  assert.ok(mounts[0], `${c.name} mounts a volume holding ${path}`);
  return mounts[0];
}

function checkAgentContainer(pod: Obj, agent: Obj, config: AkvConfig, configMap: string): void {
  // AKV_CONFIG names the file the ConfigMap volume provides.
  const env = Object.fromEntries((agent.env as Obj[]).map((e) => [e.name, e.value]));
  const configMount = volumeHolding(agent, env.AKV_CONFIG);
  assert.equal(volumeOf(pod, configMount.name).configMap?.name, configMap);
  assert.equal(join(configMount.mountPath, 'config.json'), env.AKV_CONFIG);
  // The socket's directory is the agent's own (it creates or owns it), inside a mounted volume,
  // never the volume's root (an emptyDir is world-writable; the agent refuses such a directory).
  const socketMount = volumeHolding(agent, config.socket);
  assert.notEqual(dirname(config.socket), socketMount.mountPath, 'the socket is in a subdirectory');
  // socketGroup is the agent's own group (it may hand the socket only to a group it is in).
  assert.match(config.socketGroup ?? '', /^\d+$/, 'a numeric group: the same in every image');
  assert.equal(String(agent.securityContext.runAsGroup), config.socketGroup);
  assert.equal(agent.securityContext.readOnlyRootFilesystem, true);
  assert.deepEqual(agent.securityContext.capabilities.drop, ['ALL']);
  // The probes reach the metrics listener.
  const port = Number(config.metricsListen?.split(':').at(-1));
  const named = (agent.ports as Obj[]).find((p) => p.containerPort === port);
  assert.ok(named, `the agent container exposes metricsListen's port ${port}`);
  assert.equal(agent.livenessProbe.httpGet.path, '/healthz');
  assert.equal(agent.readinessProbe.httpGet.path, '/readyz');
  for (const probe of [agent.livenessProbe, agent.readinessProbe])
    assert.equal(probe.httpGet.port, named.name);
  assert.ok(Object.keys(config.vaults).length > 0, '/readyz has an HSM to check');
  assert.equal(config.credential.type, 'default', 'DefaultAzureCredential: workload identity');
}

function checkClient(
  pod: Obj,
  client: Obj,
  config: AkvConfig,
  agentUid: number,
  cnf: string,
  groups: number[],
): void {
  const akv = akvSection(cnf);
  assert.equal(
    akv.agent_socket,
    config.socket,
    "the provider's agent_socket is the agent's socket",
  );
  assert.equal(akv.agent_user, String(agentUid), 'the provider accepts the agent uid');
  assert.equal(akv.autostart, 'no');
  assert.ok(groups.includes(Number(config.socketGroup)), 'the client carries the socket group');
  volumeHolding(client, config.socket); // the client mounts the socket's volume
  const module = volumeHolding(client, akv.module!);
  assert.equal(module.readOnly, true);
  assert.ok(mountOf(client, module.name), 'the provider module is mounted');
}

describe('sidecar.yaml: nginx + agent in one pod, socket in an emptyDir', () => {
  const docs = load('sidecar.yaml');
  const config = agentConfig(docs, 'web-akv-agent');
  const deployment = byKind(docs, 'Deployment', 'web');
  const pod = deployment.spec.template.spec as Obj;
  const agent = container(pod, 'akv-agent');
  const nginx = container(pod, 'nginx');

  test('the agent: config from the ConfigMap, socket directory, group, probes', () => {
    checkAgentContainer(pod, agent, config, 'web-akv-agent');
    assert.equal(agent.restartPolicy, 'Always', 'a native sidecar: nginx starts after it');
    assert.deepEqual(agent.startupProbe.exec.command, ['/usr/bin/akv', 'ping', '--quiet']);
    assert.equal(
      pod.securityContext.fsGroup,
      Number(config.socketGroup),
      'fsGroup is the socket group',
    );
  });

  test('nginx and the agent share the socket volume at the same path', () => {
    const a = volumeHolding(agent, config.socket);
    const n = volumeHolding(nginx, config.socket);
    assert.equal(a.name, n.name);
    assert.equal(a.mountPath, n.mountPath);
    assert.ok(volumeOf(pod, a.name).emptyDir !== undefined, 'an emptyDir');
  });

  test("nginx's openssl.cnf names the agent's socket and uid; OPENSSL_CONF points at it", () => {
    const cnfMap = byKind(docs, 'ConfigMap', 'web-openssl');
    const env = Object.fromEntries((nginx.env as Obj[]).map((e) => [e.name, e.value]));
    const cnfMount = volumeHolding(nginx, env.OPENSSL_CONF);
    assert.equal(volumeOf(pod, cnfMount.name).configMap?.name, 'web-openssl');
    const cnf = cnfMap.data[env.OPENSSL_CONF.slice(cnfMount.mountPath.length + 1)] as string;
    checkClient(pod, nginx, config, agent.securityContext.runAsUser, cnf, [
      pod.securityContext.fsGroup,
    ]);
    // The provider copied by the init container is where openssl.cnf loads it from.
    const copy = container(pod, 'akv-provider');
    assert.equal(mountOf(copy, 'akv-provider')?.mountPath, dirname(akvSection(cnf).module!));
  });

  test('the agent uses Azure Workload Identity', () => {
    assert.equal(deployment.spec.template.metadata.labels['azure.workload.identity/use'], 'true');
    const sa = byKind(docs, 'ServiceAccount', pod.serviceAccountName);
    assert.ok(sa.metadata.annotations['azure.workload.identity/client-id']);
  });
});

describe('daemonset.yaml: one agent per node, socket on a hostPath', () => {
  const docs = load('daemonset.yaml');
  const config = agentConfig(docs, 'akv-node-agent');
  const ds = byKind(docs, 'DaemonSet', 'akv-node-agent');
  const pod = ds.spec.template.spec as Obj;
  const agent = container(pod, 'akv-agent');

  test('the agent: config, socket directory given to its uid, group, probes', () => {
    checkAgentContainer(pod, agent, config, 'akv-node-agent');
    const hostMount = volumeHolding(agent, config.socket);
    const host = volumeOf(pod, hostMount.name).hostPath;
    assert.ok(host, 'a hostPath volume');
    assert.equal(host.path, hostMount.mountPath, 'mounted at the same path as on the node');
    const init = container(pod, 'socket-dir');
    const { runAsUser, runAsGroup } = agent.securityContext;
    assert.equal(
      init.command.join(' '),
      `sh -c install -d -o ${runAsUser} -g ${runAsGroup} -m 0750 ${dirname(config.socket)}`,
      "the init container gives the socket's directory to the agent",
    );
    assert.equal(ds.spec.template.metadata.labels['azure.workload.identity/use'], 'true');
  });

  test('a workload pod mounts the node socket directory read-only with the socket group', () => {
    const shop = byKind(docs, 'Deployment', 'shop').spec.template.spec as Obj;
    const nginx = container(shop, 'nginx');
    const mount = volumeHolding(nginx, config.socket);
    assert.equal(mount.mountPath, dirname(config.socket));
    assert.equal(mount.readOnly, true);
    assert.equal(volumeOf(shop, mount.name).hostPath.path, dirname(config.socket));
    const cnf = byKind(docs, 'ConfigMap', 'shop-openssl').data['openssl.cnf'] as string;
    checkClient(
      shop,
      nginx,
      config,
      agent.securityContext.runAsUser,
      cnf,
      shop.securityContext.supplementalGroups,
    );
  });
});

test('the container image runs the agent as the uid and group the manifests name', () => {
  const dockerfile = readFileSync(join(REPO_ROOT, 'packaging', 'container', 'Dockerfile'), 'utf8');
  assert.match(dockerfile, /groupadd --system --gid 10001 akv/);
  assert.match(dockerfile, /useradd --system --uid 10001 --gid akv/);
  assert.match(dockerfile, /^USER akv$/m);
  assert.match(dockerfile, /^ENTRYPOINT \["\/usr\/bin\/akv"\]$/m);
  for (const file of ['sidecar.yaml', 'daemonset.yaml']) {
    const agents = load(file)
      .filter((d) => d.kind === 'Deployment' || d.kind === 'DaemonSet')
      .flatMap((d) => containers(d.spec.template.spec as Obj))
      .filter((c) => c.name === 'akv-agent');
    for (const c of agents) assert.equal(c.securityContext.runAsUser, 10001);
  }
  // The image's own config validates and agrees with its socket group.
  const own = parseConfigObject(
    JSON.parse(readFileSync(join(REPO_ROOT, 'packaging', 'container', 'config.json'), 'utf8')),
    'packaging/container/config.json',
    {},
  );
  assert.equal(own.socketGroup, 'akv');
});

test('every init container that copies the provider finds it where openssl says, on any architecture', () => {
  let checked = 0;
  for (const file of ['sidecar.yaml', 'daemonset.yaml'])
    for (const doc of load(file)) {
      const pod = doc.spec?.template?.spec as Obj | undefined;
      for (const c of (pod?.initContainers ?? []) as Obj[])
        if (c.name === 'akv-provider') {
          checkProviderCopy(c);
          checked++;
        }
    }
  assert.equal(checked, 2, 'one in each manifest');
});

test('the Dockerfile pins its base images by digest', () => {
  const text = readFileSync(join(REPO_ROOT, 'packaging', 'container', 'Dockerfile'), 'utf8');
  const args = Object.fromEntries(
    [...text.matchAll(/^ARG (\w+)=(\S+)$/gm)].map((m) => [m[1]!, m[2]!]),
  );
  const froms = [...text.matchAll(/^FROM (\S+)/gm)].map((m) =>
    m[1]!.replace(/^\$\{(\w+)\}$/, (_, name: string) => args[name] ?? name),
  );
  assert.ok(froms.length >= 2, froms.join(' '));
  for (const f of froms) assert.match(f, /^[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}$/, f);
});
