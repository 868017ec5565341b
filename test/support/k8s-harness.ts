/**
 * Helpers for the kubernetes_logs tests: a temp directory laid out like the kubelet's
 * /var/log/pods, a source built from a config table, and readers of what it emitted.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { onTestFinished } from 'vitest';
import type { RunMode } from '../../src/components.js';
import { ConfigReader, type ConfigTable } from '../../src/config/reader.js';
import type { ConfigProblem } from '../../src/errors.js';
import type { LineBatch } from '../../src/event.js';
import {
  kubernetesLogsSource,
  type KubernetesLogsConfig,
  type KubernetesLogsInternals,
  type KubernetesLogsSource,
} from '../../src/sources/kubernetes_logs/index.js';
import type { FileSourceInternals } from '../../src/sources/file/index.js';
import { Telemetry, type LogRecord } from '../../src/telemetry.js';
import { RecordingDownstream } from './file-harness.js';

export function parseK8sConfig(table: ConfigTable): { config: KubernetesLogsConfig; problems: string[] } {
  const problems: ConfigProblem[] = [];
  const reader = new ConfigReader('sources.k8s', { type: 'kubernetes_logs', ...table }, problems);
  const config = kubernetesLogsSource.parse(reader);
  reader.finish();
  return { config, problems: problems.map((p) => `${p.component}: ${p.message}`) };
}

/** `<root>/<namespace>_<pod>_<uid>/<container>/<name>` with the given content; returns the path. */
export async function writePodLog(
  root: string,
  pod: { namespace: string; name: string; uid: string; container: string; file?: string },
  content: string | Uint8Array,
): Promise<string> {
  const dir = path.join(root, `${pod.namespace}_${pod.name}_${pod.uid}`, pod.container);
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, pod.file ?? '0.log');
  await writeFile(file, content);
  return file;
}

export interface K8sHarness {
  source: KubernetesLogsSource;
  downstream: RecordingDownstream;
  telemetry: Telemetry;
  logs: LogRecord[];
}

/** A real source over `root`; stopped after the test if the test did not. */
export function buildK8sSource(
  root: string,
  options: {
    dataDir: string;
    mode?: RunMode;
    table?: ConfigTable;
    fileInternal?: Partial<FileSourceInternals>;
    internal?: Partial<KubernetesLogsInternals>;
  },
): K8sHarness {
  // Hermetic unless a test points it at its own API server: CI may itself run in a pod.
  const api = options.table?.api_endpoint === undefined ? { kubernetes_api: 'off' } : {};
  const { config, problems } = parseK8sConfig({ pod_log_directory: root, glob_minimum_cooldown_ms: 50, ...api, ...options.table });
  if (problems.length > 0) throw new Error(`bad test config: ${problems.join('; ')}`);
  config.file.internal = { ...config.file.internal, pollIntervalMs: 20, checkpointIntervalMs: 50, ...options.fileInternal };
  config.internal = { ...config.internal, ...options.internal };
  const logs: LogRecord[] = [];
  const telemetry = new Telemetry((r) => logs.push(r), 'debug');
  const downstream = new RecordingDownstream();
  const source = kubernetesLogsSource.build(config, {
    id: 'k8s',
    dataDir: options.dataDir,
    mode: options.mode ?? 'tail',
    telemetry,
    emit: downstream.emit,
  }) as KubernetesLogsSource;
  onTestFinished(async () => {
    downstream.releaseAll();
    await source.stop();
  });
  return { source, downstream, telemetry, logs };
}

export interface EmittedLine {
  text: string;
  stream: string | undefined;
  pod: string | undefined;
  container: string | undefined;
}

/** Every emitted line with the batch fields it came with (decoded: tests only). */
export function emittedLines(batches: readonly LineBatch[]): EmittedLine[] {
  const decoder = new TextDecoder();
  const out: EmittedLine[] = [];
  for (const b of batches) {
    for (let i = 0; i + 1 < b.offsets.length; i++) {
      out.push({
        text: decoder.decode(b.data.subarray(b.offsets[i], b.offsets[i + 1])),
        stream: b.meta.stream,
        pod: b.meta.kubernetes === undefined ? undefined : `${b.meta.kubernetes.pod_namespace}/${b.meta.kubernetes.pod_name}`,
        container: b.meta.kubernetes?.container_name,
      });
    }
  }
  return out;
}
