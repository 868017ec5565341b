/**
 * The unit that moves through the pipeline: lines of one file, kept as bytes.
 *
 * Lines are never turned into JS strings on the hot path. `data` holds every line's bytes back to
 * back (no delimiters); line `i` is `data.subarray(offsets[i], offsets[i + 1])`, so `offsets` has
 * `count + 1` entries and starts at 0. `data.buffer` may be transferred to a worker thread, after
 * which the sender's view is detached: a batch is owned by exactly one consumer at a time.
 */
export interface LineBatch {
  data: Uint8Array;
  offsets: Uint32Array;
  meta: BatchMeta;
}

/** What every line of a batch shares: Vector's file-source event fields. */
export interface BatchMeta {
  /** Id of the source component that read the lines. */
  sourceId: string;
  /** Vector's `source_type` field (`file`, `kubernetes_logs`, ...). */
  sourceType: string;
  /** Absolute path of the file the lines came from. */
  file: string;
  /** Vector's `host` field: the machine's hostname. */
  host: string;
  /** When the lines were read, milliseconds since the Unix epoch. */
  timestampMs: number;
  /**
   * `text`: each line is an opaque message. `json`: a transform rewrote the lines; a line that
   * parses as a JSON object is a structured record, any other line is still a plain message.
   */
  format: 'text' | 'json';
  /**
   * Set by the `kubernetes_logs` source: the container the lines came from (one batch is one log
   * file, so one container). The OTLP sink maps these to `k8s.namespace.name`, `k8s.pod.name`,
   * `k8s.pod.uid` and `k8s.container.name`.
   */
  kubernetes?: KubernetesMeta;
  /**
   * Set by the `kubernetes_logs` source: the container stream every line of the batch was written
   * to (the source splits batches by stream). Vector's `stream` field; OTLP `log.iostream`.
   */
  stream?: 'stdout' | 'stderr';
}

/**
 * Vector's `kubernetes.*` event fields. The first four come from the pod log path and are always
 * set; the optional ones come from the Kubernetes API, when the source can reach it and knows the
 * pod (OTLP: `k8s.pod.label.<key>`, `k8s.pod.annotation.<key>`, `k8s.node.name`, `container.image.name`).
 */
export interface KubernetesMeta {
  pod_namespace: string;
  pod_name: string;
  pod_uid: string;
  container_name: string;
  pod_labels?: Readonly<Record<string, string>>;
  pod_annotations?: Readonly<Record<string, string>>;
  pod_node_name?: string;
  container_image?: string;
}

export function lineCount(batch: LineBatch): number {
  return batch.offsets.length - 1;
}

export function lineAt(batch: LineBatch, index: number): Uint8Array {
  return batch.data.subarray(batch.offsets[index], batch.offsets[index + 1]);
}

/** Lines back to back with their offsets; for tests and slow paths, not for the tailer's hot loop. */
export function packLines(lines: readonly Uint8Array[]): { data: Uint8Array; offsets: Uint32Array } {
  let total = 0;
  for (const line of lines) total += line.byteLength;
  const data = new Uint8Array(total);
  const offsets = new Uint32Array(lines.length + 1);
  let at = 0;
  lines.forEach((line, i) => {
    data.set(line, at);
    at += line.byteLength;
    offsets[i + 1] = at;
  });
  return { data, offsets };
}

/** Builds a batch from byte lines; for tests and slow paths, not for the tailer's hot loop. */
export function batchFromLines(lines: readonly Uint8Array[], meta: BatchMeta): LineBatch {
  return { ...packLines(lines), meta };
}

/**
 * A `format: 'json'` line as a structured record: the object it parses to, or undefined when it
 * is not a JSON object (then it is a plain message).
 */
export function parseJsonObject(text: string): Record<string, unknown> | undefined {
  // Cheap pre-check so plain text lines do not pay for a thrown SyntaxError.
  let i = 0;
  while (i < text.length && (text.charCodeAt(i) === 0x20 || text.charCodeAt(i) === 0x09)) i++;
  if (text.charCodeAt(i) !== 0x7b /* { */) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** A copy that owns its own buffer, for handing the same batch to a second consumer. */
export function cloneBatch(batch: LineBatch): LineBatch {
  return { data: batch.data.slice(), offsets: batch.offsets.slice(), meta: { ...batch.meta } };
}
