/**
 * The `kubernetes_logs` source: tails the kubelet's pod log files with the file source, decodes
 * each line (CRI or Docker json-file), merges partial lines, and emits the containers' messages
 * in batches that carry the pod and container (from the path) and the stream (from the line).
 *
 * Acknowledgements: a raw batch of the file source is acknowledged when every batch made from it
 * is, and, if it holds pieces of a partial message still waiting for its end, only once the batch
 * that completes (or flushes) that message is acknowledged. A restart therefore re-reads an
 * unfinished partial message from its first piece instead of sending its tail alone.
 */
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Source, SourceContext, SourceType } from '../../components.js';
import { ConfigReader } from '../../config/reader.js';
import type { ConfigProblem } from '../../errors.js';
import type { BatchMeta, KubernetesMeta, LineBatch } from '../../event.js';
import { fileSource, parseFileSourceConfig, type FileSourceConfig, type FileSourceInternals } from '../file/index.js';
import {
  API_RETRY_MAX_MS,
  API_RETRY_MIN_MS,
  DEFAULT_DELAY_DELETION_MS,
  PodMetadataWatcher,
  SERVICE_ACCOUNT_DIR,
  inClusterEndpoint,
} from './api.js';
import { ContainerLogDecoder, type Carry, type Lines } from './decoder.js';
import * as events from './events.js';
import type { ContainerStream } from './parser.js';
import { parsePodLogPath } from './path.js';

/**
 * Where the kubelet writes pod logs. `pod_log_directory` is a logwasm option (Vector has it fixed)
 * so tests and unusual nodes can point the source elsewhere; the layout below it must be the
 * kubelet's `<namespace>_<pod>_<uid>/<container>/<n>.log`.
 */
export const DEFAULT_POD_LOG_DIRECTORY = '/var/log/pods';
/** Merge CRI `P` lines and Docker pieces without a final newline into one message. Vector's default. */
export const DEFAULT_AUTO_PARTIAL_MERGE = true;
/** Files never read: compressed and temporary rotations. Vector's default. */
export const DEFAULT_EXCLUDE_PATHS_GLOB_PATTERNS: readonly string[] = ['**/*.gz', '**/*.tmp'];
/** Raw lines (with their CRI prefix or JSON wrapping) longer than this are discarded. Vector's default. */
export const DEFAULT_MAX_LINE_BYTES = 32_768;
/** Minimum time between two rescans of the pod log directory (new files are also seen by a watcher). Vector's default. */
export const DEFAULT_GLOB_MINIMUM_COOLDOWN_MS = 60_000;
/** Where to start a file without a checkpoint. Vector's default. */
export const DEFAULT_READ_FROM = 'beginning';
/** Vector's default for `max_read_bytes`. */
export const DEFAULT_MAX_READ_BYTES = 2048;
/** The environment variable `self_node_name` defaults to, as in Vector (set it from `spec.nodeName`). */
export const SELF_NODE_NAME_ENV = 'VECTOR_SELF_NODE_NAME';
/**
 * A partial message whose end has not arrived after this long is sent on its own (counted and
 * logged). Runtimes write all pieces of one message together, so this only fires for a container
 * that died mid-message or a file that stopped mid-message; without it the batches holding the
 * pieces would never be acknowledged.
 */
export const PARTIAL_FLUSH_TIMEOUT_MS = 5000;

/**
 * `kubernetes_api` (logwasm): `auto` enriches batches with pod metadata from the API when it can
 * find one (`api_endpoint`, or the in-cluster service) and `self_node_name` is set; `off` never
 * calls it.
 */
export const DEFAULT_KUBERNETES_API = 'auto';

/** Vector options that select pods through the Kubernetes API, which logwasm does not support. */
const API_FILTER_KEYS = ['extra_label_selector', 'extra_field_selector', 'extra_namespace_label_selector'] as const;
/** Vector options about API enrichment that logwasm does not implement: accepted, no effect. */
const API_ENRICHMENT_KEYS = [
  'kube_config_file',
  'use_apiserver_cache',
  'pod_annotation_fields',
  'namespace_annotation_fields',
  'node_annotation_fields',
  'insert_namespace_fields',
];

export interface KubernetesLogsConfig {
  /** The node's name; used as the batches' `host` (in a pod, os.hostname() is the pod's name). */
  selfNodeName: string | undefined;
  podLogDirectory: string;
  excludePathsGlobPatterns: string[];
  autoPartialMerge: boolean;
  maxMergedLineBytes: number | undefined;
  /** The file source's config that tails the pod log files. */
  file: FileSourceConfig;
  /** Pod metadata from the Kubernetes API; undefined when off, or no endpoint is known. */
  api: KubernetesApiConfig | undefined;
  /** Why `api` is undefined, for the start-up log. */
  apiOffReason: string;
  /** Not config keys: knobs for tests. */
  internal: KubernetesLogsInternals;
}

export interface KubernetesApiConfig {
  endpoint: string;
  tokenFile: string | undefined;
  caFile: string | undefined;
  nodeName: string;
  delayDeletionMs: number;
}

export interface KubernetesLogsInternals {
  partialFlushTimeoutMs: number;
  apiRetryMinMs: number;
  apiRetryMaxMs: number;
}

export function parseKubernetesLogsConfig(reader: ConfigReader): KubernetesLogsConfig {
  reader.accept('type', ...API_ENRICHMENT_KEYS);
  for (const key of API_FILTER_KEYS) {
    const value = reader.string(key);
    if (value !== undefined && value.trim() !== '') {
      reader.problem(
        `"${key}" is not supported: logwasm does not select pods through the Kubernetes API (actual: ${JSON.stringify(value)}); remove it, or use exclude_paths_glob_patterns on <namespace>_<pod>_<uid>/<container> paths`,
      );
    }
  }
  const selfNodeName = reader.string('self_node_name') ?? process.env[SELF_NODE_NAME_ENV];
  const podLogDirectory = path.resolve(reader.string('pod_log_directory', DEFAULT_POD_LOG_DIRECTORY));
  const exclude = reader.stringArray('exclude_paths_glob_patterns', [...DEFAULT_EXCLUDE_PATHS_GLOB_PATTERNS]);
  const maxMerged = reader.number('max_merged_line_bytes', undefined, { integer: true, min: 1 });
  const dataDir = reader.string('data_dir');
  const apiMode = reader.oneOf('kubernetes_api', ['auto', 'off'] as const, DEFAULT_KUBERNETES_API);
  const apiEndpoint = reader.string('api_endpoint');
  if (apiEndpoint !== undefined && !/^https?:\/\/[^/]/.test(apiEndpoint)) {
    reader.problem(`invalid value for "api_endpoint": expected an http:// or https:// URL, actual: ${JSON.stringify(apiEndpoint)}`);
  }
  const delayDeletionMs = reader.number('delay_deletion_ms', DEFAULT_DELAY_DELETION_MS, { integer: true, min: 0 });
  // The file source's own parser fills in whatever it adds later; the values were checked above.
  const fileTable = {
    type: 'file',
    include: [path.posix.join(toPosix(podLogDirectory), '*', '*', '*.log')],
    exclude: exclude.map((g) => absoluteGlob(g, podLogDirectory)),
    read_from: reader.oneOf('read_from', ['beginning', 'end'] as const, DEFAULT_READ_FROM),
    ignore_checkpoints: reader.boolean('ignore_checkpoints', false),
    max_line_bytes: reader.number('max_line_bytes', DEFAULT_MAX_LINE_BYTES, { integer: true, min: 1 }),
    max_read_bytes: reader.number('max_read_bytes', DEFAULT_MAX_READ_BYTES, { integer: true, min: 1 }),
    glob_minimum_cooldown_ms: reader.number('glob_minimum_cooldown_ms', DEFAULT_GLOB_MINIMUM_COOLDOWN_MS, { integer: true, min: 0 }),
    ...(dataDir === undefined ? {} : { data_dir: dataDir }),
  };
  const inner: ConfigProblem[] = [];
  const file = parseFileSourceConfig(new ConfigReader(reader.component, fileTable, inner));
  for (const p of inner) reader.problem(`tailing ${podLogDirectory}: ${p.message}`);
  const nodeName = selfNodeName === undefined || selfNodeName === '' ? undefined : selfNodeName;
  const endpoint = apiEndpoint ?? inClusterEndpoint(process.env);
  let api: KubernetesApiConfig | undefined;
  let apiOffReason = '';
  if (apiMode === 'off') apiOffReason = 'kubernetes_api = "off"';
  else if (endpoint === undefined) apiOffReason = 'no api_endpoint and not running in a pod (KUBERNETES_SERVICE_HOST unset)';
  else if (nodeName === undefined) apiOffReason = `self_node_name is not set (nor ${SELF_NODE_NAME_ENV})`;
  else {
    // The service account's files, when mounted; an explicit http:// endpoint (kubectl proxy) needs none.
    const tokenFile = path.join(SERVICE_ACCOUNT_DIR, 'token');
    const caFile = path.join(SERVICE_ACCOUNT_DIR, 'ca.crt');
    api = {
      endpoint,
      tokenFile: existsSync(tokenFile) ? tokenFile : undefined,
      caFile: existsSync(caFile) ? caFile : undefined,
      nodeName,
      delayDeletionMs,
    };
  }
  return {
    selfNodeName: nodeName,
    podLogDirectory,
    excludePathsGlobPatterns: exclude,
    autoPartialMerge: reader.boolean('auto_partial_merge', DEFAULT_AUTO_PARTIAL_MERGE),
    maxMergedLineBytes: maxMerged,
    file,
    api,
    apiOffReason,
    internal: { partialFlushTimeoutMs: PARTIAL_FLUSH_TIMEOUT_MS, apiRetryMinMs: API_RETRY_MIN_MS, apiRetryMaxMs: API_RETRY_MAX_MS },
  };
}

export const kubernetesLogsSource: SourceType<KubernetesLogsConfig> = {
  kind: 'source',
  type: 'kubernetes_logs',
  parse: parseKubernetesLogsConfig,
  build: (config, context) => new KubernetesLogsSource(config, context),
};

/** Vector matches these globs against full paths; `**\/x` stays general, other relative ones are under the pod log directory. */
function absoluteGlob(pattern: string, root: string): string {
  if (pattern.startsWith('/')) return pattern;
  if (pattern.startsWith('**')) return `/${pattern}`;
  return path.posix.join(toPosix(root), pattern);
}

function toPosix(p: string): string {
  return path.sep === '/' ? p : p.split(path.sep).join('/');
}

const STREAMS: readonly ContainerStream[] = ['stdout', 'stderr'];
/** Decoders kept for files without a carry are forgotten past this many (pods come and go). */
const MAX_IDLE_FILE_STATES = 4096;

interface FileState {
  decoder: ContainerLogDecoder;
  kubernetes: KubernetesMeta | undefined;
  /** Meta of the file's last batch, for messages flushed outside a batch. */
  lastMeta: BatchMeta;
}

export class KubernetesLogsSource implements Source {
  private readonly id: string;
  /** The file source tailing the pod logs (built through its registered type, its stable interface). */
  private readonly files: Source;
  private readonly states = new Map<string, FileState>();
  private readonly host: string;
  /** Most raw batches held for unfinished partial messages before the oldest one is flushed. */
  private readonly maxHeld: number;
  private held = 0;
  private stopping = false;
  private readonly pods: PodMetadataWatcher | null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly config: KubernetesLogsConfig,
    private readonly context: SourceContext,
  ) {
    this.id = context.id;
    this.host = config.selfNodeName ?? os.hostname();
    const internal: FileSourceInternals = config.file.internal;
    // Held batches occupy the file source's in-flight window; holding at most half of it leaves
    // room to read the lines that end the partial messages, so the window can never jam.
    this.maxHeld = Math.max(1, Math.floor(internal.maxInFlightBatches / 2));
    this.files = fileSource.build(config.file, { ...context, emit: (batch) => this.onRawBatch(batch) });
    this.pods =
      config.api === undefined
        ? null
        : new PodMetadataWatcher(
            { ...config.api, retryMinMs: config.internal.apiRetryMinMs, retryMaxMs: config.internal.apiRetryMaxMs },
            context.telemetry,
            context.id,
          );
  }

  async start(): Promise<void> {
    // The first list (or its failure) comes before the first files, so their batches are enriched.
    if (this.pods === null) events.apiDisabled(this.context.telemetry, this.id, this.config.apiOffReason);
    else await this.pods.start();
    await this.files.start();
    const every = Math.max(10, Math.floor(this.config.internal.partialFlushTimeoutMs / 4));
    this.timer = setInterval(() => this.flushStale(), every);
  }

  finished(): Promise<void> {
    return this.files.finished();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    // The file source waits for its batches to be acknowledged; held ones only are once their
    // partial message is sent, so send what is carried now (later batches flush at once).
    this.flushAll('shutting down');
    await this.files.stop();
    await this.pods?.stop();
  }

  private stateFor(meta: BatchMeta): FileState {
    let state = this.states.get(meta.file);
    if (state === undefined) {
      if (this.states.size >= MAX_IDLE_FILE_STATES) this.forgetIdle();
      const kubernetes = parsePodLogPath(meta.file) ?? undefined;
      if (kubernetes === undefined) events.pathUnrecognized(this.context.telemetry, this.id, meta.file);
      state = {
        decoder: new ContainerLogDecoder({ autoPartialMerge: this.config.autoPartialMerge, maxMergedLineBytes: this.config.maxMergedLineBytes }),
        kubernetes,
        lastMeta: meta,
      };
      this.states.set(meta.file, state);
    }
    state.lastMeta = meta;
    return state;
  }

  private forgetIdle(): void {
    for (const [file, state] of this.states) {
      if (state.decoder.carry('stdout') === null && state.decoder.carry('stderr') === null) this.states.delete(file);
    }
  }

  private metaFor(state: FileState, stream: ContainerStream | undefined): BatchMeta {
    const { stream: _ignored, kubernetes: _none, ...base } = state.lastMeta;
    return {
      ...base,
      sourceType: 'kubernetes_logs',
      host: this.host,
      ...(state.kubernetes === undefined ? {} : { kubernetes: this.enrich(state.kubernetes) }),
      ...(stream === undefined ? {} : { stream }),
    };
  }

  /** The path's fields plus what the API knows about the pod, if anything. */
  private enrich(kubernetes: KubernetesMeta): KubernetesMeta {
    const pod = this.pods?.get(kubernetes.pod_uid);
    if (pod === undefined) return kubernetes;
    const image = pod.images.get(kubernetes.container_name);
    return {
      ...kubernetes,
      pod_labels: pod.labels,
      pod_annotations: pod.annotations,
      ...(pod.nodeName === undefined ? {} : { pod_node_name: pod.nodeName }),
      ...(image === undefined ? {} : { container_image: image }),
    };
  }

  private send(lines: Lines, meta: BatchMeta): Promise<void> {
    try {
      return this.context.emit({ data: lines.data, offsets: lines.offsets, meta });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Handles one batch of raw lines from the file source; the returned promise is its acknowledgement. */
  private onRawBatch(batch: LineBatch): Promise<void> {
    const state = this.stateFor(batch.meta);
    const decoded = state.decoder.decode(batch.data, batch.offsets, Date.now());
    const sends: Promise<void>[] = [];
    for (const stream of STREAMS) {
      const lines = decoded[stream];
      if (lines !== null) sends.push(this.send(lines, this.metaFor(state, stream)));
    }
    if (decoded.unparsed !== null) {
      events.linesUnparsed(this.context.telemetry, this.id, batch.meta.file, decoded.unparsed.offsets.length - 1);
      sends.push(this.send(decoded.unparsed, this.metaFor(state, undefined)));
    }
    for (let i = 0; i < decoded.discarded; i++) {
      events.mergedLineTooLong(this.context.telemetry, this.id, batch.meta.file, this.config.maxMergedLineBytes ?? 0);
    }
    const sent = Promise.all(sends).then(() => undefined);
    for (const carry of decoded.completed) this.release(carry, sent);
    const waits = [sent, ...decoded.open.map((carry) => this.hold(carry))];
    if (this.stopping) {
      this.flushFile(state, 'shutting down');
    } else {
      while (this.held > this.maxHeld && this.flushOldest()) {
        // Each round ends one carry and releases the batches holding it.
      }
    }
    return Promise.all(waits).then(() => undefined);
  }

  /** A promise that settles when `carry` ends and the batch carrying its message is acknowledged. */
  private hold(carry: Carry): Promise<void> {
    this.held++;
    return new Promise<void>((resolve, reject) => {
      carry.waiters.push((sent) => sent.then(resolve, reject));
    });
  }

  private release(carry: Carry, sent: Promise<void>): void {
    this.held -= carry.waiters.length;
    for (const waiter of carry.waiters.splice(0)) waiter(sent);
  }

  private flushCarry(state: FileState, stream: ContainerStream, why: string): void {
    const flushed = state.decoder.flush(stream);
    if (flushed === null) return;
    let sent: Promise<void> = Promise.resolve();
    if (flushed.message === null) {
      events.mergedLineTooLong(this.context.telemetry, this.id, state.lastMeta.file, this.config.maxMergedLineBytes ?? 0);
    } else {
      events.partialFlushed(this.context.telemetry, this.id, state.lastMeta.file, why);
      sent = this.send(flushed.message, this.metaFor(state, stream));
    }
    this.release(flushed.carry, sent);
  }

  private flushFile(state: FileState, why: string): void {
    for (const stream of STREAMS) this.flushCarry(state, stream, why);
  }

  private flushAll(why: string): void {
    for (const state of this.states.values()) this.flushFile(state, why);
  }

  /** Flushes the carry that started first. Returns false when there is none. */
  private flushOldest(): boolean {
    let oldest: { state: FileState; stream: ContainerStream; at: number } | null = null;
    for (const state of this.states.values()) {
      for (const stream of STREAMS) {
        const carry = state.decoder.carry(stream);
        if (carry !== null && carry.waiters.length > 0 && (oldest === null || carry.startedAtMs < oldest.at)) {
          oldest = { state, stream, at: carry.startedAtMs };
        }
      }
    }
    if (oldest === null) return false;
    this.flushCarry(oldest.state, oldest.stream, 'too many batches held waiting for partial lines to end');
    return true;
  }

  private flushStale(): void {
    const limit = Date.now() - this.config.internal.partialFlushTimeoutMs;
    for (const state of this.states.values()) {
      for (const stream of STREAMS) {
        const carry = state.decoder.carry(stream);
        if (carry !== null && carry.startedAtMs <= limit) {
          this.flushCarry(state, stream, `its end did not arrive within ${this.config.internal.partialFlushTimeoutMs} ms`);
        }
      }
    }
  }
}
