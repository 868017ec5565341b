import { appendFile, mkdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_AUTO_PARTIAL_MERGE,
  DEFAULT_EXCLUDE_PATHS_GLOB_PATTERNS,
  DEFAULT_GLOB_MINIMUM_COOLDOWN_MS,
  DEFAULT_MAX_LINE_BYTES,
  DEFAULT_POD_LOG_DIRECTORY,
} from '../src/sources/kubernetes_logs/index.js';
import { checkpointsPath, loadCheckpoints } from '../src/sources/file/checkpoints.js';
import { fileTempDir } from './support/file-harness.js';
import { buildK8sSource, emittedLines, parseK8sConfig, writePodLog } from './support/k8s-harness.js';
import { pollUntil } from './support/poll.js';

const UID_A = '6f1c2b7e-0d3a-4c1e-9a59-1b2c3d4e5f60';
const UID_B = '0a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d';
const t = (n: number) => `2024-05-01T10:00:0${n}.123456789Z`;

describe('kubernetes_logs config', () => {
  it('has Vector defaults and builds the file source glob under pod_log_directory', () => {
    const { config, problems } = parseK8sConfig({ self_node_name: 'node-1' });
    expect(problems).toEqual([]);
    expect(config.podLogDirectory).toBe(DEFAULT_POD_LOG_DIRECTORY);
    expect(config.autoPartialMerge).toBe(DEFAULT_AUTO_PARTIAL_MERGE);
    expect(config.excludePathsGlobPatterns).toEqual([...DEFAULT_EXCLUDE_PATHS_GLOB_PATTERNS]);
    expect(config.selfNodeName).toBe('node-1');
    expect(config.file.include).toEqual(['/var/log/pods/*/*/*.log']);
    expect(config.file.exclude).toEqual(['/**/*.gz', '/**/*.tmp']);
    expect(config.file.maxLineBytes).toBe(DEFAULT_MAX_LINE_BYTES);
    expect(config.file.globMinimumCooldownMs).toBe(DEFAULT_GLOB_MINIMUM_COOLDOWN_MS);
    expect(config.file.readFrom).toBe('beginning');
  });

  it('maps options onto the file source; relative exclude globs are under the pod log directory', () => {
    const { config, problems } = parseK8sConfig({
      pod_log_directory: '/tmp/pods',
      exclude_paths_glob_patterns: ['kube-system_*/**', '/abs/**', '**/skip/**'],
      read_from: 'end',
      max_line_bytes: 100,
      data_dir: '/tmp/state',
      auto_partial_merge: false,
      max_merged_line_bytes: 1000,
    });
    expect(problems).toEqual([]);
    expect(config.file.include).toEqual(['/tmp/pods/*/*/*.log']);
    expect(config.file.exclude).toEqual(['/tmp/pods/kube-system_*/**', '/abs/**', '/**/skip/**']);
    expect(config.file.readFrom).toBe('end');
    expect(config.file.maxLineBytes).toBe(100);
    expect(config.file.dataDir).toBe('/tmp/state');
    expect(config.autoPartialMerge).toBe(false);
    expect(config.maxMergedLineBytes).toBe(1000);
  });

  it('reports every problem in one pass, API selectors included', () => {
    const { problems } = parseK8sConfig({
      extra_label_selector: 'app!=noisy',
      extra_field_selector: '',
      auto_partial_merge: 'yes',
      max_line_bytes: 0,
      read_from: 'middle',
      exclude_paths_glob_patterns: '**/x',
      self_node_nme: 'typo',
      kube_config_file: '/etc/kube',
      pod_annotation_fields: { pod_name: 'name' },
    });
    expect(problems).toEqual([
      'sources.k8s: "extra_label_selector" is not supported: logwasm does not select pods through the Kubernetes API (actual: "app!=noisy"); remove it, or use exclude_paths_glob_patterns on <namespace>_<pod>_<uid>/<container> paths',
      'sources.k8s: invalid value for "exclude_paths_glob_patterns": expected an array of strings, actual: "**/x"',
      'sources.k8s: invalid value for "read_from": expected one of "beginning", "end", actual: "middle"',
      'sources.k8s: invalid value for "max_line_bytes": expected a number >= 1, actual: 0',
      'sources.k8s: invalid value for "auto_partial_merge": expected true or false, actual: "yes"',
      'sources.k8s: unknown key "self_node_nme"',
    ]);
  });
});

describe('kubernetes_logs source on a /var/log/pods tree', () => {
  it('reads CRI and Docker files, merges partials, splits by stream, and tags pod and container', async () => {
    const root = await fileTempDir();
    const dataDir = await fileTempDir();
    await writePodLog(
      root,
      { namespace: 'shop', name: 'cart-7d9f', uid: UID_A, container: 'app' },
      [
        `${t(1)} stdout F {"msg":"started"}`,
        `${t(2)} stderr P warn: disk `,
        `${t(2)} stdout P big `,
        `${t(2)} stderr F almost full`,
        `${t(3)} stdout P json `,
        `${t(3)} stdout F line ünï 😀`,
        'garbage that is not CRI',
        '',
      ].join('\n'),
    );
    await writePodLog(
      root,
      { namespace: 'kube-system', name: 'dns-1', uid: UID_B, container: 'coredns' },
      [
        '{"log":"docker says hi\\n","stream":"stdout","time":"2024-05-01T10:00:00Z"}',
        '{"log":"split ","stream":"stderr","time":"2024-05-01T10:00:00Z"}',
        '{"log":"in two\\n","stream":"stderr","time":"2024-05-01T10:00:00Z"}',
        '',
      ].join('\n'),
    );
    // Rotated and temporary files are excluded by default.
    await writePodLog(root, { namespace: 'shop', name: 'cart-7d9f', uid: UID_A, container: 'app', file: '0.log.gz' }, `${t(1)} stdout F from gz\n`);
    await writePodLog(root, { namespace: 'shop', name: 'cart-7d9f', uid: UID_A, container: 'app', file: '1.log.tmp' }, `${t(1)} stdout F from tmp\n`);

    const { source, downstream, telemetry } = buildK8sSource(root, { dataDir, mode: 'replay', table: { self_node_name: 'node-7' } });
    await source.start();
    await source.finished();

    const lines = emittedLines(downstream.batches);
    const byPod = (pod: string) => lines.filter((l) => l.pod === pod).map(({ text, stream, container }) => ({ text, stream, container }));
    expect(byPod('shop/cart-7d9f')).toEqual([
      { text: '{"msg":"started"}', stream: 'stdout', container: 'app' },
      { text: 'big json line ünï 😀', stream: 'stdout', container: 'app' },
      { text: 'warn: disk almost full', stream: 'stderr', container: 'app' },
      { text: 'garbage that is not CRI', stream: undefined, container: 'app' },
    ]);
    expect(byPod('kube-system/dns-1')).toEqual([
      { text: 'docker says hi', stream: 'stdout', container: 'coredns' },
      { text: 'split in two', stream: 'stderr', container: 'coredns' },
    ]);
    expect(lines).toHaveLength(6);
    for (const batch of downstream.batches) {
      expect(batch.meta.sourceType).toBe('kubernetes_logs');
      expect(batch.meta.host).toBe('node-7');
      expect(batch.meta.sourceId).toBe('k8s');
    }
    const dns = downstream.batches.find((b) => b.meta.kubernetes?.pod_name === 'dns-1')!;
    expect(dns.meta.kubernetes).toEqual({ pod_namespace: 'kube-system', pod_name: 'dns-1', pod_uid: UID_B, container_name: 'coredns' });
    expect(dns.meta.file).toBe(path.join(root, `kube-system_dns-1_${UID_B}`, 'coredns', '0.log'));
    expect(telemetry.counter('kubernetes_parse_errors_total', 'k8s')).toBe(1);
  });

  it('tails: a partial line read in one turn is merged with its end written later', async () => {
    const root = await fileTempDir();
    const dataDir = await fileTempDir();
    const file = await writePodLog(root, { namespace: 'ns', name: 'p', uid: UID_A, container: 'c' }, `${t(1)} stdout F before\n`);
    const { source, downstream, telemetry } = buildK8sSource(root, { dataDir });
    await source.start();
    await pollUntil('the first line', () => emittedLines(downstream.batches).length === 1, {
      describe: () => JSON.stringify(emittedLines(downstream.batches)),
    });
    await appendFile(file, `${t(2)} stdout P first half é`);
    await appendFile(file, '\n');
    // The file source has read (and passed on) the partial line before its end exists.
    await pollUntil('the partial line read', () => telemetry.counter('component_received_events_total', 'k8s') >= 2, {
      describe: () => `${telemetry.counter('component_received_events_total', 'k8s')} raw lines read`,
    });
    expect(emittedLines(downstream.batches).map((l) => l.text)).toEqual(['before']);
    await appendFile(file, `${t(3)} stdout F , second half\n`);
    await pollUntil('the merged line', () => emittedLines(downstream.batches).length === 2, {
      describe: () => JSON.stringify(emittedLines(downstream.batches)),
    });
    expect(emittedLines(downstream.batches).map((l) => l.text)).toEqual(['before', 'first half é, second half']);
    expect(telemetry.counter('kubernetes_partial_lines_flushed_total', 'k8s')).toBe(0);
  });

  it('sends a partial line whose end never comes on its own after the flush timeout, counted', async () => {
    const root = await fileTempDir();
    const dataDir = await fileTempDir();
    await writePodLog(root, { namespace: 'ns', name: 'p', uid: UID_A, container: 'c' }, `${t(1)} stdout F ok\n${t(2)} stderr P died mid-`);
    await appendFile(path.join(root, `ns_p_${UID_A}`, 'c', '0.log'), '\n');
    const { source, downstream, telemetry, logs } = buildK8sSource(root, { dataDir, mode: 'replay', internal: { partialFlushTimeoutMs: 100 } });
    await source.start();
    // Replay only finishes once every batch is acknowledged: the held one needs the flush.
    await source.finished();
    expect(emittedLines(downstream.batches).map((l) => [l.text, l.stream])).toEqual([
      ['ok', 'stdout'],
      ['died mid-', 'stderr'],
    ]);
    expect(telemetry.counter('kubernetes_partial_lines_flushed_total', 'k8s')).toBe(1);
    expect(logs.some((r) => r.event === 'partial_line_flushed')).toBe(true);
  });

  it('holds the raw batch of a partial line until the merged line is acknowledged (checkpoint stays before it)', async () => {
    const root = await fileTempDir();
    const dataDir = await fileTempDir();
    const fileA = await writePodLog(root, { namespace: 'ns', name: 'a', uid: UID_A, container: 'c' }, `${t(1)} stdout P part-\n`);
    const { source, downstream, telemetry } = buildK8sSource(root, { dataDir, internal: { partialFlushTimeoutMs: 60_000 } });
    downstream.hold();
    await source.start();
    await pollUntil('the partial line read', () => telemetry.counter('component_received_events_total', 'k8s') >= 1);
    expect(downstream.batches).toHaveLength(0);
    // A second file, acknowledged at once, proves checkpoints were written after the partial was read.
    const lineB = `${t(1)} stdout F b\n`;
    const fileB = await writePodLog(root, { namespace: 'ns', name: 'b', uid: UID_B, container: 'c' }, lineB);
    await pollUntil('the line of b', () => downstream.batches.length === 1, { describe: () => `${downstream.batches.length} batches` });
    downstream.release();
    const positions = async () => {
      const { checkpoints } = await loadCheckpoints(checkpointsPath(dataDir, 'k8s'));
      return new Map([...checkpoints.values()].map((c) => [c.path, c.position]));
    };
    const seen = await pollUntil('b checkpointed', async () => ((await positions()).get(fileB) === lineB.length ? positions() : undefined), {
      describe: () => 'no checkpoint for b at its end yet',
    });
    expect(seen.get(fileA)).toBe(0);

    await appendFile(fileA, `${t(2)} stdout F end\n`);
    await pollUntil('the merged line', () => downstream.batches.length === 2, { describe: () => `${downstream.batches.length} batches` });
    expect(emittedLines(downstream.batches).map((l) => l.text)).toEqual(['b', 'part-end']);
    downstream.releaseAll();
    const sizeA = (await stat(fileA)).size;
    await pollUntil('a checkpointed at its end once the merged line is acknowledged', async () => (await positions()).get(fileA) === sizeA, {
      describe: () => `a not at ${sizeA} yet`,
    });
  });

  it('stop() sends a held partial line on its own instead of waiting for its end', async () => {
    const root = await fileTempDir();
    const dataDir = await fileTempDir();
    const file = await writePodLog(root, { namespace: 'ns', name: 'p', uid: UID_A, container: 'c' }, `${t(1)} stdout P cut at shutdown\n`);
    const { source, downstream, telemetry } = buildK8sSource(root, { dataDir, internal: { partialFlushTimeoutMs: 600_000 } });
    await source.start();
    await pollUntil('the partial line read', () => telemetry.counter('component_received_events_total', 'k8s') >= 1);
    expect(downstream.batches).toHaveLength(0);
    // Without the flush, stop() would wait forever for the held batch's acknowledgement.
    await source.stop();
    expect(emittedLines(downstream.batches).map((l) => l.text)).toEqual(['cut at shutdown']);
    expect(telemetry.counter('kubernetes_partial_lines_flushed_total', 'k8s')).toBe(1);
    const { checkpoints } = await loadCheckpoints(checkpointsPath(dataDir, 'k8s'));
    expect([...checkpoints.values()].map((c) => c.position)).toEqual([(await stat(file)).size]);
  });

  it('flushes the oldest partial line when held batches would fill the delivery window', async () => {
    const root = await fileTempDir();
    const dataDir = await fileTempDir();
    // A window of 2 batches: at most 1 may be held for an unfinished message.
    const a = await writePodLog(root, { namespace: 'ns', name: 'a', uid: UID_A, container: 'c' }, `${t(1)} stdout P a-start\n`);
    const { source, downstream, telemetry } = buildK8sSource(root, {
      dataDir,
      fileInternal: { maxInFlightBatches: 2 },
      internal: { partialFlushTimeoutMs: 600_000 },
    });
    await source.start();
    await pollUntil('a read', () => telemetry.counter('component_received_events_total', 'k8s') >= 1);
    expect(downstream.batches).toHaveLength(0);
    await writePodLog(root, { namespace: 'ns', name: 'b', uid: UID_B, container: 'c' }, `${t(1)} stdout P b-start\n`);
    await pollUntil('a flushed when b is held too', () => downstream.batches.length === 1, {
      describe: () => JSON.stringify(emittedLines(downstream.batches)),
    });
    expect(emittedLines(downstream.batches).map((l) => [l.pod, l.text])).toEqual([['ns/a', 'a-start']]);
    expect(telemetry.counter('kubernetes_partial_lines_flushed_total', 'k8s')).toBe(1);
    // The window is not jammed: a's continuation is still read (as its own line), and b merges.
    await appendFile(a, `${t(2)} stdout F a-end\n`);
    await appendFile(path.join(root, `ns_b_${UID_B}`, 'c', '0.log'), `${t(2)} stdout F b-end\n`);
    await pollUntil('both continuations', () => downstream.batches.length === 3, {
      describe: () => JSON.stringify(emittedLines(downstream.batches)),
    });
    expect(emittedLines(downstream.batches).map((l) => [l.pod, l.text]).sort()).toEqual([
      ['ns/a', 'a-end'],
      ['ns/a', 'a-start'],
      ['ns/b', 'b-startb-end'],
    ]);
  });

  it('forwards lines of a file outside the pod layout without kubernetes fields, counted', async () => {
    const root = await fileTempDir();
    const dataDir = await fileTempDir();
    await mkdir(path.join(root, 'not-a-pod-dir', 'c'), { recursive: true });
    await writeFile(path.join(root, 'not-a-pod-dir', 'c', '0.log'), `${t(1)} stdout F orphan\n`);
    const { source, downstream, telemetry } = buildK8sSource(root, { dataDir, mode: 'replay' });
    await source.start();
    await source.finished();
    expect(emittedLines(downstream.batches)).toEqual([{ text: 'orphan', stream: 'stdout', pod: undefined, container: undefined }]);
    expect(telemetry.counter('kubernetes_unrecognized_paths_total', 'k8s')).toBe(1);
  });

  it('skips files under excluded namespaces', async () => {
    const root = await fileTempDir();
    const dataDir = await fileTempDir();
    await writePodLog(root, { namespace: 'kube-system', name: 'noisy', uid: UID_B, container: 'c' }, `${t(1)} stdout F excluded\n`);
    await writePodLog(root, { namespace: 'apps', name: 'web', uid: UID_A, container: 'c' }, `${t(1)} stdout F kept\n`);
    const { source, downstream, telemetry } = buildK8sSource(root, { dataDir, mode: 'replay', table: { exclude_paths_glob_patterns: ['kube-system_*/**'] } });
    await source.start();
    await source.finished();
    expect(emittedLines(downstream.batches).map((l) => l.text)).toEqual(['kept']);
    expect(telemetry.counter('files_added_total', 'k8s')).toBe(1);
  });
});
