/**
 * Invariants of the deployment files: the Kubernetes manifests, the Dockerfile and the systemd
 * unit are parsed (not grepped) and checked against each other and against the config they ship.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import picomatch from 'picomatch';
import toml from 'toml';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { loadConfig } from '../src/config/load.js';
import { defaultRegistry } from '../src/registry.js';
import { DEFAULT_POD_LOG_DIRECTORY } from '../src/sources/kubernetes_logs/index.js';
import { wasmEncoderFile } from '../src/sinks/opentelemetry/wasm-encoder.js';
import { REPO_ROOT, runCli, tempDir } from './support/cli.js';
import { parseK8sConfig } from './support/k8s-harness.js';

const K8S_DIR = path.join(REPO_ROOT, 'deploy', 'kubernetes');

// Loose shapes of the Kubernetes objects read here; the test fails loudly if a path is missing.
type Manifest = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string }; [key: string]: any };

function loadManifests(): Map<string, Manifest[]> {
  const byFile = new Map<string, Manifest[]>();
  for (const name of readdirSync(K8S_DIR).filter((f) => f.endsWith('.yaml')).sort()) {
    const docs = parseAllDocuments(readFileSync(path.join(K8S_DIR, name), 'utf8'));
    const parsed: Manifest[] = [];
    for (const doc of docs) {
      expect(doc.errors.map((e) => `${name}: ${e.message}`)).toEqual([]);
      parsed.push(doc.toJS() as Manifest);
    }
    byFile.set(name, parsed);
  }
  return byFile;
}

const manifests = loadManifests();
const all = [...manifests.values()].flat();
function one(kind: string): Manifest {
  const found = all.filter((m) => m.kind === kind);
  expect(found.map((m) => m.metadata.name), `exactly one ${kind}`).toHaveLength(1);
  return found[0]!;
}

const daemonSet = one('DaemonSet');
const configMap = one('ConfigMap');
const podSpec = daemonSet.spec.template.spec;
const container = podSpec.containers[0];
const vectorToml: string = configMap.data['vector.toml'];
const config = toml.parse(vectorToml) as Record<string, any>;

/** `--flag value` from the container's args. */
function arg(flag: string): string | undefined {
  const args: string[] = container.args ?? [];
  const at = args.indexOf(flag);
  return at === -1 ? undefined : args[at + 1];
}

function mountFor(mountPath: string): { mount: any; volume: any } {
  const mounts: any[] = container.volumeMounts;
  // The deepest mount containing the path is the one that serves it.
  const candidates = mounts.filter((m) => mountPath === m.mountPath || mountPath.startsWith(`${m.mountPath.replace(/\/$/, '')}/`));
  expect(candidates, `a volume mounted over ${mountPath}`).not.toHaveLength(0);
  const mount = candidates.sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  const volume = podSpec.volumes.find((v: any) => v.name === mount.name);
  expect(volume, `volume ${mount.name}`).toBeDefined();
  return { mount, volume };
}

describe('deploy/kubernetes manifests', () => {
  it('every file parses, and kustomization.yaml lists all the others', () => {
    const kustomization = manifests.get('kustomization.yaml')![0]!;
    expect([...kustomization.resources].sort()).toEqual([...manifests.keys()].filter((f) => f !== 'kustomization.yaml').sort());
    for (const m of all.filter((x) => x.kind !== 'Kustomization')) {
      expect(m.apiVersion, `${m.kind} apiVersion`).toMatch(/^(v1|apps\/v1|rbac\.authorization\.k8s\.io\/v1)$/);
      expect(m.metadata.name).toBeTruthy();
    }
  });

  it('namespaced objects live in the Namespace the manifests create', () => {
    const namespace = one('Namespace').metadata.name;
    for (const m of all.filter((x) => ['ServiceAccount', 'ConfigMap', 'DaemonSet'].includes(x.kind))) {
      expect(m.metadata.namespace, `${m.kind}/${m.metadata.name}`).toBe(namespace);
    }
  });

  it('RBAC: the DaemonSet runs as the bound ServiceAccount, which may only read pods and nodes', () => {
    const sa = one('ServiceAccount');
    const role = one('ClusterRole');
    const binding = one('ClusterRoleBinding');
    expect(podSpec.serviceAccountName).toBe(sa.metadata.name);
    // The token is how the source authenticates to list and watch pods.
    expect(podSpec.automountServiceAccountToken ?? sa.automountServiceAccountToken ?? true).toBe(true);
    expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role.metadata.name });
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: sa.metadata.namespace }]);
    for (const rule of role.rules) {
      expect(rule.apiGroups).toEqual(['']);
      for (const verb of rule.verbs) expect(['get', 'list', 'watch']).toContain(verb);
      for (const resource of rule.resources) expect(['pods', 'nodes']).toContain(resource);
    }
  });

  it('the config file the container is given comes from the ConfigMap', () => {
    const configPath = arg('--config')!;
    expect(configPath).toBeDefined();
    const { mount, volume } = mountFor(configPath);
    expect(volume.configMap.name).toBe(configMap.metadata.name);
    expect(path.posix.relative(mount.mountPath, configPath)).toBe('vector.toml');
    expect(mount.readOnly).toBe(true);
  });

  it('the pod log directory is mounted read-only from the host', () => {
    const sources = Object.values(config.sources as Record<string, any>).filter((s) => s.type === 'kubernetes_logs');
    expect(sources).toHaveLength(1);
    const podLogs: string = sources[0].pod_log_directory ?? DEFAULT_POD_LOG_DIRECTORY;
    const { mount, volume } = mountFor(podLogs);
    expect(mount.readOnly).toBe(true);
    expect(volume.hostPath.path).toBe(mount.mountPath);
  });

  it('data_dir (checkpoints) is a writable hostPath, so checkpoints outlive the pod', () => {
    const { mount, volume } = mountFor(config.data_dir);
    expect(mount.readOnly ?? false).toBe(false);
    expect(volume.hostPath).toBeDefined();
    expect(volume.hostPath.type).toBe('DirectoryOrCreate');
  });

  it('only data_dir and /tmp are writable; the root filesystem is read-only, no privileges', () => {
    const writable = container.volumeMounts.filter((m: any) => !m.readOnly).map((m: any) => m.mountPath);
    expect(writable.sort()).toEqual([config.data_dir, '/tmp'].sort());
    const sc = container.securityContext;
    expect(sc.readOnlyRootFilesystem).toBe(true);
    expect(sc.allowPrivilegeEscalation).toBe(false);
    expect(sc.capabilities.drop).toEqual(['ALL']);
    expect(sc.capabilities.add).toBeUndefined();
    expect(sc.privileged ?? false).toBe(false);
  });

  it('liveness and readiness probes GET /health on the api port, which listens beyond loopback', () => {
    expect(config.api.enabled).toBe(true);
    const [host, port] = (config.api.address as string).split(/:(?=\d+$)/);
    // The kubelet probes the pod IP: an api bound to 127.0.0.1 would fail every probe.
    expect(host).toBe('0.0.0.0');
    for (const probe of [container.livenessProbe, container.readinessProbe]) {
      expect(probe.httpGet.path).toBe('/health');
      const probePort = typeof probe.httpGet.port === 'number' ? probe.httpGet.port : container.ports.find((p: any) => p.name === probe.httpGet.port)?.containerPort;
      expect(probePort).toBe(Number(port));
    }
  });

  it('terminationGracePeriodSeconds is longer than the graceful shutdown limit', () => {
    // Set explicitly, so the grace period and the limit are read side by side.
    const limit = Number(arg('--graceful-shutdown-limit-secs'));
    expect(limit).toBeGreaterThan(0);
    expect(podSpec.terminationGracePeriodSeconds).toBeGreaterThan(limit);
  });

  it('has resource requests and limits for cpu and memory', () => {
    for (const kind of ['requests', 'limits']) {
      expect(container.resources[kind].cpu, `${kind}.cpu`).toBeTruthy();
      expect(container.resources[kind].memory, `${kind}.memory`).toBeTruthy();
    }
  });

  it('every ${VAR} of the config is set in the container env; the node name comes from spec.nodeName', () => {
    const referenced = [...vectorToml.matchAll(/\$\{([A-Z0-9_]+)(?::?-[^}]*)?\}/g)].map((m) => m[1]);
    const env = new Map<string, any>(container.env.map((e: any) => [e.name, e]));
    for (const name of referenced) expect(env.has(name), `env ${name}`).toBe(true);
    expect(env.get('VECTOR_SELF_NODE_NAME').valueFrom.fieldRef.fieldPath).toBe('spec.nodeName');
  });

  it("the source excludes logwasm's own pods, and reads others", () => {
    const source = Object.values(config.sources as Record<string, any>).find((s) => s.type === 'kubernetes_logs');
    const { config: parsed, problems } = parseK8sConfig(Object.fromEntries(Object.entries(source).filter(([k]) => k !== 'type')));
    expect(problems).toEqual([]);
    const excluded = picomatch(parsed.file.exclude, { dot: true });
    const own = `${DEFAULT_POD_LOG_DIRECTORY}/${daemonSet.metadata.namespace}_logwasm-x7k2p_0a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d/logwasm/0.log`;
    const other = `${DEFAULT_POD_LOG_DIRECTORY}/shop_cart-7d9f_6f1c2b7e-0d3a-4c1e-9a59-1b2c3d4e5f60/app/0.log`;
    expect(excluded(own)).toBe(true);
    expect(excluded(other)).toBe(false);
    expect(excluded(`${other}.20240501-100000.gz`)).toBe(true);
  });

  it('the wasm module the config names is the one the image ships', () => {
    const modules = Object.values(config.transforms as Record<string, any>).filter((t) => t.type === 'wasm').map((t) => t.module as string);
    expect(modules).not.toHaveLength(0);
    const shipped = dockerfileStages().at(-1)!.copies.map((c) => path.posix.resolve(dockerfileStages().at(-1)!.workdir, c.to));
    for (const module of modules) expect(shipped).toContain(module);
  });

  it('the ConfigMap config passes `logwasm validate` (needs the build)', async () => {
    const dir = await tempDir('logwasm-deploy-');
    const file = path.join(dir, 'vector.toml');
    await writeFile(file, vectorToml);
    // The container env, with a stand-in for the downward API's node name.
    const env: NodeJS.ProcessEnv = {};
    for (const e of container.env) env[e.name] = e.value ?? 'node-1';
    const run = await runCli(['validate', '--config', file], { env });
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
  });
});

interface Stage {
  from: string;
  name: string | undefined;
  workdir: string;
  runs: string[];
  copies: Array<{ from: string | undefined; to: string; sources: string[] }>;
  user: string | undefined;
  entrypoint: string[] | undefined;
  env: Map<string, string>;
}

/**
 * How the `logwasm` bin starts node, from its `#!` line (src/cli.ts): the environment it sets and
 * node's flags. Every other way the deployment files start logwasm must do the same.
 */
function binLaunch(): { env: Map<string, string>; nodeFlags: string[] } {
  const shebang = readFileSync(path.join(REPO_ROOT, 'src', 'cli.ts'), 'utf8').split('\n')[0]!;
  const words = /^#!\/usr\/bin\/env -S (.*)$/.exec(shebang)![1]!.split(/\s+/);
  const node = words.indexOf('node');
  const env = new Map(words.slice(0, node).map((w) => w.split('=') as [string, string]));
  return { env, nodeFlags: words.slice(node + 1) };
}

/** The Dockerfile's stages, instruction by instruction (line continuations joined, comments dropped). */
function dockerfileStages(): Stage[] {
  const text = readFileSync(path.join(REPO_ROOT, 'deploy', 'Dockerfile'), 'utf8');
  const lines = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const line of lines) {
    const [instruction, ...rest] = line.split(/\s+/);
    const value = rest.join(' ');
    const stage = stages.at(-1);
    switch (instruction!.toUpperCase()) {
      case 'ARG': {
        const [k, v] = value.split('=');
        if (v !== undefined) args.set(k!, v);
        break;
      }
      case 'FROM': {
        const [image, as, name] = value.replace(/\$\{(\w+)\}/g, (_, k: string) => args.get(k) ?? '').split(/\s+/);
        stages.push({ from: image!, name: as?.toUpperCase() === 'AS' ? name : undefined, workdir: '/', runs: [], copies: [], user: undefined, entrypoint: undefined, env: new Map() });
        break;
      }
      case 'WORKDIR':
        stage!.workdir = path.posix.resolve(stage!.workdir, value);
        break;
      case 'RUN':
        stage!.runs.push(value);
        break;
      case 'COPY': {
        const parts = value.split(/\s+/);
        const from = parts.find((p) => p.startsWith('--from='))?.slice('--from='.length);
        const paths = parts.filter((p) => !p.startsWith('--'));
        stage!.copies.push({ from, to: paths.at(-1)!, sources: paths.slice(0, -1) });
        break;
      }
      case 'USER':
        stage!.user = value;
        break;
      case 'ENV': {
        for (const assignment of value.split(/\s+/)) {
          const eq = assignment.indexOf('=');
          stage!.env.set(assignment.slice(0, eq), assignment.slice(eq + 1));
        }
        break;
      }
      case 'ENTRYPOINT':
        stage!.entrypoint = JSON.parse(value) as string[];
        break;
      default:
        break;
    }
  }
  return stages;
}

describe('deploy/Dockerfile', () => {
  const stages = dockerfileStages();
  const final = stages.at(-1)!;

  it('is multi-stage, every stage on Node 24 slim', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const stage of stages) expect(stage.from).toMatch(/^node:24(\.\d+)*-[a-z]+-slim(@sha256:[0-9a-f]{64})?$/);
  });

  it('the final stage installs production dependencies only and compiles nothing', () => {
    expect(final.runs.some((r) => /\bnpm ci\b.*--omit=dev/.test(r))).toBe(true);
    for (const run of final.runs) {
      expect(run).not.toMatch(/\b(apt-get|apk|gcc|g\+\+|make|build-essential|python3?|tsc|cargo|rustc|npm run build)\b/);
      // `prepare` runs tsc, which is a dev dependency: scripts must be off for a production install.
      if (/\bnpm (ci|install)\b/.test(run)) expect(run).toContain('--ignore-scripts');
    }
  });

  it('the final stage takes the compiled code from the build stage, not the sources', () => {
    const build = stages.find((s) => s.runs.some((r) => r.includes('npm run build')))!;
    expect(build).toBeDefined();
    const dist = final.copies.find((c) => c.from === build.name);
    expect(dist?.sources).toEqual([path.posix.join(build.workdir, 'dist')]);
    for (const copy of final.copies.filter((c) => c.from === undefined)) {
      for (const source of copy.sources) expect(source).not.toMatch(/^(src|\.)$/);
    }
  });

  it('runs as a non-root user and starts the CLI', () => {
    expect(final.user).toBeDefined();
    expect(['root', '0']).not.toContain(final.user);
    expect(final.entrypoint).toEqual(['node', ...binLaunch().nodeFlags, path.posix.join(final.workdir, 'dist/cli.js')]);
  });

  it('starts node as the logwasm bin does: its environment and its node flags', () => {
    const { env, nodeFlags } = binLaunch();
    expect(nodeFlags).toContain('--max-semi-space-size=1');
    for (const [name, value] of env) expect(final.env.get(name), name).toBe(value);
  });

  it("ships the OTLP encoder's wasm where the compiled code looks for it", () => {
    const relative = path.relative(REPO_ROOT, wasmEncoderFile()).split(path.sep).join('/');
    const copy = final.copies.find((c) => c.from === undefined && c.sources.includes(relative));
    expect(copy, relative).toBeDefined();
    expect(path.posix.resolve(final.workdir, copy!.to)).toBe(path.posix.join(final.workdir, relative));
  });
});

/** A systemd unit: sections of keys, each key with every value it was given (order kept). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      current = new Map();
      sections.set(header[1]!, current);
      continue;
    }
    const eq = line.indexOf('=');
    if (current === undefined || eq === -1) throw new Error(`not a unit file line: ${line}`);
    const key = line.slice(0, eq).trim();
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return sections;
}

describe('deploy/systemd/logwasm.service', () => {
  const unit = parseUnit(readFileSync(path.join(REPO_ROOT, 'deploy', 'systemd', 'logwasm.service'), 'utf8'));
  const service = unit.get('Service')!;
  const get = (key: string): string | undefined => service.get(key)?.at(-1);
  const execStart = get('ExecStart')!.split(/\s+/);
  const flag = (name: string) => execStart[execStart.indexOf(name) + 1];

  it('starts node as the logwasm bin does: its environment and its node flags', () => {
    const { env, nodeFlags } = binLaunch();
    const cli = execStart.findIndex((word) => word.endsWith('/dist/cli.js'));
    expect(execStart.slice(1, cli)).toEqual(nodeFlags);
    const environment = new Map((service.get('Environment') ?? []).map((e) => e.split('=') as [string, string]));
    for (const [name, value] of env) expect(environment.get(name), name).toBe(value);
  });

  it('has Unit, Service and Install sections', () => {
    expect([...unit.keys()]).toEqual(['Unit', 'Service', 'Install']);
    expect(unit.get('Install')!.get('WantedBy')).toEqual(['multi-user.target']);
  });

  it('restarts on failure, but not on a bad config (exit 78)', () => {
    expect(get('Restart')).toBe('on-failure');
    expect(get('RestartPreventExitStatus')?.split(/\s+/)).toContain('78');
  });

  it('keeps checkpoints in its StateDirectory, and the documented config points data_dir there', () => {
    expect(get('StateDirectory')).toBe('logwasm');
    const doc = readFileSync(path.join(REPO_ROOT, 'docs', 'deploy', 'hosts.md'), 'utf8');
    const blocks = [...doc.matchAll(/```toml\n([\s\S]*?)```/g)].map((m) => toml.parse(m[1]!) as Record<string, unknown>);
    const withDataDir = blocks.filter((b) => b.data_dir !== undefined);
    expect(withDataDir).not.toHaveLength(0);
    for (const block of withDataDir) expect(block.data_dir).toBe('/var/lib/logwasm');
  });

  it('reads its config from the ConfigurationDirectory and drains within TimeoutStopSec', () => {
    expect(flag('--config')).toBe(`/etc/${get('ConfigurationDirectory')}/vector.toml`);
    const limit = Number(flag('--graceful-shutdown-limit-secs'));
    expect(limit).toBeGreaterThan(0);
    expect(Number.parseInt(get('TimeoutStopSec')!, 10)).toBeGreaterThan(limit);
    expect(get('KillSignal')).toBe('SIGTERM');
    expect(get('ExecReload')).toMatch(/kill -HUP \$MAINPID$/);
  });

  it('is hardened: read-only system and logs, no new privileges, no capabilities', () => {
    expect(get('ProtectSystem')).toBe('strict');
    expect(service.get('ReadOnlyPaths')?.join(' ').split(/\s+/)).toContain('/var/log');
    expect(get('NoNewPrivileges')).toBe('yes');
    expect(get('CapabilityBoundingSet')).toBe('');
    expect(get('PrivateTmp')).toBe('yes');
    expect(get('ProtectHome')).toBe('yes');
    // Blocked system calls fail with EPERM instead of killing the process (Node probes some at start).
    expect(get('SystemCallErrorNumber')).toBe('EPERM');
    // V8 compiles JIT and WebAssembly code into writable-then-executable memory.
    expect(get('MemoryDenyWriteExecute')).not.toBe('yes');
  });
});

describe('deploy docs examples', () => {
  const tomlBlocks = (file: string): string[] =>
    [...readFileSync(path.join(REPO_ROOT, file), 'utf8').matchAll(/```toml\n([\s\S]*?)```/g)].map((m) => m[1]!);

  it('every config in docs/deploy/hosts.md loads', () => {
    const blocks = tomlBlocks('docs/deploy/hosts.md');
    expect(blocks.length).toBeGreaterThanOrEqual(2);
    for (const text of blocks) {
      const loaded = loadConfig(['example.toml'], defaultRegistry(), { env: { OTLP_ENDPOINT: 'http://127.0.0.1:4318' }, readText: () => text });
      expect(loaded.dataDir).toBe('/var/lib/logwasm');
    }
  });

  it('the source example in docs/sources/kubernetes_logs.md parses', () => {
    const [text] = tomlBlocks('docs/sources/kubernetes_logs.md');
    const table = (toml.parse(text!.replace('${VECTOR_SELF_NODE_NAME}', 'node-1')) as { sources: Record<string, Record<string, unknown>> }).sources.kubernetes!;
    const { type, ...rest } = table;
    expect(type).toBe('kubernetes_logs');
    expect(parseK8sConfig(rest).problems).toEqual([]);
  });
});
