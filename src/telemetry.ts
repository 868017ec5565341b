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

export class Telemetry {
  private readonly counters = new Map<string, number>();
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
