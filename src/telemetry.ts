/**
 * Internal events: each named function logs one sentence (rate-limited per event kind) and bumps
 * a counter with bounded tags. Library code reports through here and never calls `console`.
 * Hot loops sum per batch and report once.
 */

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

export interface LogRecord {
  level: LogLevel;
  component?: string;
  event: string;
  message: string;
}

export type LogWriter = (record: LogRecord) => void;

const LEVEL_RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

/** Same event kind and component logs at most once per this many ms (counters still count all). */
export const LOG_RATE_LIMIT_MS = 10_000;

/** Upper bounds, in seconds, of the buckets of every histogram recorded with `observe()`. */
export const HISTOGRAM_BUCKETS_SECONDS: readonly number[] = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** A histogram's state: `counts[i]` observations fell at or below bucket `i` only (not cumulative); the last entry is +Inf. */
export interface HistogramState {
  counts: number[];
  count: number;
  sum: number;
}

/** What the running topology registered about a component, for metric tags and per-type gauges. */
export interface ComponentInfo {
  kind: 'source' | 'transform' | 'sink';
  type: string;
  /** The component's parsed config (its type's own shape). */
  config: unknown;
  /** The global `data_dir`. */
  dataDir: string;
}

export class Telemetry {
  private readonly counters = new Map<string, number>();
  private readonly gaugeValues = new Map<string, number>();
  private readonly histogramValues = new Map<string, HistogramState>();
  /** Components of the running topology, by id; replaced on every (re)start. */
  readonly components = new Map<string, ComponentInfo>();
  private readonly lastLogged = new Map<string, number>();
  private readonly suppressed = new Map<string, number>();

  constructor(
    private readonly writer: LogWriter = stderrWriter,
    private readonly level: LogLevel = 'info',
    private readonly now: () => number = Date.now,
  ) {}

  /** Adds `by` to the counter `name{component}`. */
  count(name: string, component: string, by = 1): void {
    if (by === 0) return;
    const key = `${name}{component="${component}"}`;
    this.counters.set(key, (this.counters.get(key) ?? 0) + by);
  }

  counter(name: string, component: string): number {
    return this.counters.get(`${name}{component="${component}"}`) ?? 0;
  }

  /** Sum of `name` over every component. */
  total(name: string): number {
    let sum = 0;
    const prefix = `${name}{`;
    for (const [key, value] of this.counters) if (key.startsWith(prefix)) sum += value;
    return sum;
  }

  snapshot(): Record<string, number> {
    return Object.fromEntries(this.counters);
  }

  /** Sets the gauge `name{component}` to `value`. */
  gauge(name: string, component: string, value: number): void {
    this.gaugeValues.set(metricKey(name, component), value);
  }

  /** Records one observation (seconds) in the histogram `name{component}`; once per batch, never per line. */
  observe(name: string, component: string, value: number): void {
    const key = metricKey(name, component);
    let state = this.histogramValues.get(key);
    if (state === undefined) {
      state = { counts: new Array<number>(HISTOGRAM_BUCKETS_SECONDS.length + 1).fill(0), count: 0, sum: 0 };
      this.histogramValues.set(key, state);
    }
    let bucket = HISTOGRAM_BUCKETS_SECONDS.findIndex((bound) => value <= bound);
    if (bucket === -1) bucket = HISTOGRAM_BUCKETS_SECONDS.length;
    state.counts[bucket]! += 1;
    state.count += 1;
    state.sum += value;
  }

  /** Gauges, keyed like `snapshot()`. */
  gaugeSnapshot(): Record<string, number> {
    return Object.fromEntries(this.gaugeValues);
  }

  /** Histograms, keyed like `snapshot()`; copies. */
  histogramSnapshot(): Record<string, HistogramState> {
    const out: Record<string, HistogramState> = {};
    for (const [key, state] of this.histogramValues) out[key] = { counts: [...state.counts], count: state.count, sum: state.sum };
    return out;
  }

  /** Logs now, ignoring the rate limit: for start-up and shutdown lines. */
  log(level: LogLevel, event: string, message: string, component?: string): void {
    if (LEVEL_RANK[level] > LEVEL_RANK[this.level]) return;
    this.writer({ level, event, message, ...(component === undefined ? {} : { component }) });
  }

  /** Logs at most once per LOG_RATE_LIMIT_MS for the same event and component. */
  logLimited(level: LogLevel, event: string, message: string, component?: string): void {
    const key = `${event}/${component ?? ''}`;
    const at = this.now();
    const last = this.lastLogged.get(key);
    if (last !== undefined && at - last < LOG_RATE_LIMIT_MS) {
      this.suppressed.set(key, (this.suppressed.get(key) ?? 0) + 1);
      return;
    }
    const skipped = this.suppressed.get(key) ?? 0;
    this.suppressed.delete(key);
    this.lastLogged.set(key, at);
    const suffix = skipped > 0 ? ` (${skipped} similar messages suppressed)` : '';
    this.log(level, event, message + suffix, component);
  }
}

/** `name{component="id"}`: how every metric is keyed in the snapshots. */
export function metricKey(name: string, component: string): string {
  return `${name}{component="${component}"}`;
}

/** The inverse of `metricKey`. */
export function parseMetricKey(key: string): { name: string; component: string } {
  const open = key.indexOf('{component="');
  if (open === -1 || !key.endsWith('"}')) return { name: key, component: '' };
  return { name: key.slice(0, open), component: key.slice(open + '{component="'.length, -2) };
}

export function stderrWriter(record: LogRecord): void {
  const line = JSON.stringify({ time: new Date().toISOString(), ...record });
  process.stderr.write(line + '\n');
}

export function parseLogLevel(value: string | undefined): LogLevel | undefined {
  if (value === undefined) return undefined;
  const lower = value.toLowerCase();
  return lower === 'error' || lower === 'warn' || lower === 'info' || lower === 'debug' ? lower : undefined;
}

/** Counter names shared by every component (Vector's internal metric names). */
export const EVENTS_RECEIVED = 'component_received_events_total';
export const EVENTS_SENT = 'component_sent_events_total';
export const EVENT_BYTES_SENT = 'component_sent_event_bytes_total';
export const COMPONENT_ERRORS = 'component_errors_total';
/** Events a component gave up on against the user's wishes (undelivered, or dropped on error). */
export const EVENTS_DISCARDED = 'component_discarded_events_total';
/** Histogram: seconds a transform took for one batch (for `wasm`, queueing in the pool included). */
export const TRANSFORM_BATCH_SECONDS = 'transform_batch_duration_seconds';
/** Gauge: events handed to a sink and not yet acknowledged by it (Vector's name). */
export const BUFFER_EVENTS = 'buffer_events';
