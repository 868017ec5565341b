/**
 * Turns logwasm's telemetry (src/telemetry.ts: counters, gauges and histograms keyed by
 * component) into Vector-shaped metric events, the `internal_metrics` source's output.
 *
 * The event shape is Vector's native JSON for metrics:
 *   {"name":"component_received_events_total","namespace":"vector","kind":"absolute",
 *    "tags":{"component_id":"in","component_kind":"source","component_type":"file"},
 *    "timestamp":"...","counter":{"value":42}}
 * with `gauge: {value}` or `aggregated_histogram: {buckets: [{upper_limit, count}], count, sum}`
 * (bucket counts are per bucket, not cumulative, as in Vector) in place of `counter`.
 *
 * Telemetry counts errors per component only, plus per-kind counters kept by each component; the
 * table below maps those to Vector's `error_type` tag on `component_errors_total`. Errors counted
 * in `component_errors_total` that no per-kind counter explains are tagged `unclassified`.
 */
import { stat } from 'node:fs/promises';
import { checkpointsPath, loadCheckpoints } from '../file/checkpoints.js';
import { fingerprintKey, fingerprintOf } from '../file/fingerprint.js';
import type { FileSourceConfig } from '../file/index.js';
import {
  BUFFER_EVENTS,
  COMPONENT_ERRORS,
  EVENTS_DISCARDED,
  HISTOGRAM_BUCKETS_SECONDS,
  parseMetricKey,
  type Telemetry,
} from '../../telemetry.js';

export interface MetricEvent {
  name: string;
  namespace: string;
  kind: 'absolute';
  tags: Record<string, string>;
  timestamp: string;
  counter?: { value: number };
  gauge?: { value: number };
  aggregated_histogram?: { buckets: { upper_limit: number; count: number }[]; count: number; sum: number };
}

/** Gauge: bytes of a file not yet acknowledged downstream, from the file source's last written checkpoint. */
export const CHECKPOINT_LAG_BYTES = 'checkpoint_lag_bytes';

/**
 * Per-kind error counters and the `error_type` each stands for. `inErrors`: the component also
 * counts these in `component_errors_total` (so they are part of it, not added to it).
 */
const ERROR_COUNTERS: { match: (name: string) => string | undefined; inErrors: boolean }[] = [
  { match: prefixed('wasm_line_failures_total_'), inErrors: true },
  { match: prefixed('file_sink_errors_total_'), inErrors: true },
  { match: exact('file_open_errors_total', 'open_failed'), inErrors: false },
  { match: exact('file_read_errors_total', 'read_failed'), inErrors: false },
  { match: exact('checkpoint_errors_total', 'checkpoint_failed'), inErrors: false },
  { match: exact('file_glob_errors_total', 'glob_failed'), inErrors: false },
  { match: exact('file_watch_errors_total', 'watch_failed'), inErrors: false },
  { match: exact('file_emit_errors_total', 'emit_failed'), inErrors: false },
  { match: exact('otlp_rejected_events_total', 'request_rejected'), inErrors: true },
];

/** Counters of events a component discarded on purpose (filtering), reported with `intentional="true"`. */
const INTENTIONAL_DISCARDS = ['wasm_plugin_dropped_total'];
/** Counters of events lost against the user's wishes that are not already in `component_discarded_events_total`. */
const UNINTENDED_DISCARDS = ['file_lines_discarded_total'];

function prefixed(prefix: string): (name: string) => string | undefined {
  return (name) => (name.startsWith(prefix) ? name.slice(prefix.length) : undefined);
}
function exact(counter: string, type: string): (name: string) => string | undefined {
  return (name) => (name === counter ? type : undefined);
}

export interface CollectOptions {
  namespace: string;
  /** Tags added to every metric (`host`, `pid` when configured). */
  extraTags: Record<string, string>;
  now?: Date;
}

/** Every metric in `telemetry` now, as events. */
export async function collectMetrics(telemetry: Telemetry, options: CollectOptions): Promise<MetricEvent[]> {
  const timestamp = (options.now ?? new Date()).toISOString();
  const events: MetricEvent[] = [];
  const push = (name: string, component: string, extra: Record<string, string>, value: Pick<MetricEvent, 'counter' | 'gauge' | 'aggregated_histogram'>): void => {
    events.push({ name, namespace: options.namespace, kind: 'absolute', tags: { ...tagsOf(telemetry, component), ...options.extraTags, ...extra }, timestamp, ...value });
  };

  // Per component: typed errors and discards, gathered before the plain counters are emitted.
  const errors = new Map<string, { raw: number; typed: Map<string, number>; included: number }>();
  const discards = new Map<string, { intended: number; unintended: number }>();
  const errorsOf = (c: string) => errors.get(c) ?? (errors.set(c, { raw: 0, typed: new Map(), included: 0 }), errors.get(c)!);
  const discardsOf = (c: string) => discards.get(c) ?? (discards.set(c, { intended: 0, unintended: 0 }), discards.get(c)!);

  for (const [key, value] of Object.entries(telemetry.snapshot())) {
    const { name, component } = parseMetricKey(key);
    if (name === COMPONENT_ERRORS) {
      errorsOf(component).raw += value;
      continue;
    }
    if (name === EVENTS_DISCARDED) {
      discardsOf(component).unintended += value;
      continue;
    }
    for (const rule of ERROR_COUNTERS) {
      const type = rule.match(name);
      if (type === undefined) continue;
      const entry = errorsOf(component);
      entry.typed.set(type, (entry.typed.get(type) ?? 0) + value);
      if (rule.inErrors) entry.included += value;
    }
    if (INTENTIONAL_DISCARDS.includes(name)) discardsOf(component).intended += value;
    if (UNINTENDED_DISCARDS.includes(name)) discardsOf(component).unintended += value;
    push(name, component, {}, { counter: { value } });
  }
  for (const [component, entry] of errors) {
    for (const [type, value] of entry.typed) push(COMPONENT_ERRORS, component, { error_type: type }, { counter: { value } });
    const rest = entry.raw - entry.included;
    if (rest > 0) push(COMPONENT_ERRORS, component, { error_type: 'unclassified' }, { counter: { value: rest } });
  }
  for (const [component, entry] of discards) {
    if (entry.intended > 0) push(EVENTS_DISCARDED, component, { intentional: 'true' }, { counter: { value: entry.intended } });
    if (entry.unintended > 0) push(EVENTS_DISCARDED, component, { intentional: 'false' }, { counter: { value: entry.unintended } });
  }

  for (const [key, value] of Object.entries(telemetry.gaugeSnapshot())) {
    const { name, component } = parseMetricKey(key);
    push(name, component, {}, { gauge: { value } });
  }
  for (const [key, state] of Object.entries(telemetry.histogramSnapshot())) {
    const { name, component } = parseMetricKey(key);
    const bounds = [...HISTOGRAM_BUCKETS_SECONDS, Number.POSITIVE_INFINITY];
    const buckets = bounds.map((upper_limit, i) => ({ upper_limit, count: state.counts[i] ?? 0 }));
    push(name, component, {}, { aggregated_histogram: { buckets, count: state.count, sum: state.sum } });
  }
  for (const lag of await checkpointLags(telemetry)) {
    push(CHECKPOINT_LAG_BYTES, lag.component, { file: lag.file }, { gauge: { value: lag.bytes } });
  }
  return events;
}

/** `parse.dropped` -> component `parse`, output `dropped`; kind and type from the running topology. */
function tagsOf(telemetry: Telemetry, component: string): Record<string, string> {
  let id = component;
  let output: string | undefined;
  const dot = component.lastIndexOf('.');
  if (!telemetry.components.has(component) && dot > 0 && telemetry.components.has(component.slice(0, dot))) {
    id = component.slice(0, dot);
    output = component.slice(dot + 1);
  }
  const info = telemetry.components.get(id);
  return {
    component_id: id,
    ...(info === undefined ? {} : { component_kind: info.kind, component_type: info.type }),
    ...(output === undefined ? {} : { output }),
  };
}

/**
 * Checkpoint lag of every file source of the running topology: for each file in its last written
 * checkpoints (refreshed every second in tail mode; replay writes none), the file's current size
 * minus the checkpointed position, when the path still holds the same file. For a gzip file the
 * size is compressed and the position is not, so its lag reads 0 once it is partly read.
 */
export async function checkpointLags(telemetry: Telemetry): Promise<{ component: string; file: string; bytes: number }[]> {
  const out: { component: string; file: string; bytes: number }[] = [];
  for (const [id, info] of telemetry.components) {
    if (info.kind !== 'source' || info.type !== 'file') continue;
    const config = info.config as FileSourceConfig;
    const loaded = await loadCheckpoints(checkpointsPath(config.dataDir ?? info.dataDir, id));
    for (const [key, checkpoint] of loaded.checkpoints) {
      try {
        const stats = await stat(checkpoint.path, { bigint: true });
        // A device+inode checkpoint for a path now holding another file is that other file's business.
        if (checkpoint.fingerprint.strategy === 'device_and_inode' && fingerprintKey(fingerprintOf(stats)) !== key) continue;
        out.push({ component: id, file: checkpoint.path, bytes: Math.max(Number(stats.size) - checkpoint.position, 0) });
      } catch {
        // Gone or rotated away: its lag is not a file's anymore.
      }
    }
  }
  return out;
}

// Re-exported for the source's docs and tests.
export { BUFFER_EVENTS };
