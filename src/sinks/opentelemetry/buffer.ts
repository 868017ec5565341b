/**
 * The opentelemetry sink's `buffer` table (Vector's buffer options) and the counters and logs of
 * what the buffer and the collector's responses do to records. User docs:
 * docs/sinks/opentelemetry.md, "Buffer".
 *
 * `buffer.type = "memory"` is the only type implemented: its `max_events` is the number of records
 * waiting for a request, on top of those in the requests being sent (`batch.max_events` ×
 * `request.concurrency`). `when_full = "block"` makes `write()` wait (backpressure reaches the
 * file source, which stops reading); `"drop_newest"` drops the write's records, counted.
 * `buffer.type = "disk"` (`max_size` bytes, required as in Vector): records are appended to segment
 * files under `<data_dir>/<sink id>/buffer/` (disk-buffer.ts) and acknowledged to the source once
 * synced there; a sender feeds them to the delivery queue and deletes a segment once the collector
 * accepted all of it. `when_full` is `block` only for disk.
 */
import type { ConfigReader } from '../../config/reader.js';
import type { Telemetry } from '../../telemetry.js';
import { DISCARDED_EVENTS, ERRORS } from './events.js';

export const BUFFER_TYPES = ['memory', 'disk'] as const;
export const BUFFER_WHEN_FULL = ['block', 'drop_newest'] as const;
export type BufferWhenFull = (typeof BUFFER_WHEN_FULL)[number];

/** `buffer.max_events`: records waiting for a request slot before `when_full` applies; Vector's default. */
export const DEFAULT_BUFFER_MAX_EVENTS = 500;
/** `buffer.when_full`: wait for room (backpressure), as Vector's default. */
export const DEFAULT_BUFFER_WHEN_FULL: BufferWhenFull = 'block';

/**
 * Smallest `buffer.max_size` accepted. Vector requires about 256 MiB; logwasm accepts from 1 MiB
 * (small buffers are useful in tests and on small nodes).
 */
export const MIN_DISK_BUFFER_MAX_SIZE = 1024 * 1024;

export interface BufferConfig {
  type: 'memory' | 'disk';
  /** Memory: records waiting for a request slot. Disk: the in-memory queue in front of requests. */
  maxEvents: number;
  whenFull: BufferWhenFull;
  /** Disk only: most bytes of segment files. */
  maxSizeBytes?: number;
}

/** Reads `buffer` (absent: a memory buffer with the defaults). */
export function parseBufferConfig(reader: ConfigReader): BufferConfig {
  const fallback: BufferConfig = {
    type: 'memory',
    maxEvents: DEFAULT_BUFFER_MAX_EVENTS,
    whenFull: DEFAULT_BUFFER_WHEN_FULL,
  };
  if (!reader.has('buffer')) return fallback;
  const buffer = reader.table('buffer');
  const type = buffer.oneOf('type', BUFFER_TYPES, 'memory');
  const whenFull = buffer.oneOf('when_full', BUFFER_WHEN_FULL, DEFAULT_BUFFER_WHEN_FULL);
  if (type === 'disk') {
    if (!buffer.has('max_size')) buffer.problem('missing required key "buffer.max_size" (bytes) for buffer.type "disk"');
    const maxSizeBytes =
      buffer.number('max_size', MIN_DISK_BUFFER_MAX_SIZE, { integer: true, min: MIN_DISK_BUFFER_MAX_SIZE }) ??
      MIN_DISK_BUFFER_MAX_SIZE;
    if (whenFull !== 'block') buffer.problem('invalid value for "buffer.when_full": only "block" with buffer.type "disk"');
    buffer.finish();
    return { type: 'disk', maxEvents: DEFAULT_BUFFER_MAX_EVENTS, whenFull: 'block', maxSizeBytes };
  }
  const maxEvents =
    buffer.number('max_events', DEFAULT_BUFFER_MAX_EVENTS, { integer: true, min: 1 }) ?? DEFAULT_BUFFER_MAX_EVENTS;
  buffer.finish();
  return { type: 'memory', maxEvents, whenFull };
}

/** Records dropped because the buffer was full and `when_full = "drop_newest"` (Vector's name). */
export const BUFFER_DISCARDED_EVENTS = 'buffer_discarded_events_total';
/** Records a 2xx response said it rejected (OTLP partial success `rejected_log_records`). */
export const PARTIAL_SUCCESS_REJECTED_EVENTS = 'otlp_partial_success_rejected_events_total';
/** 429/503 responses that carried a readable Retry-After, and gRPC failures with a RetryInfo. */
export const RETRY_AFTER_RESPONSES = 'otlp_retry_after_responses_total';

export function otlpBufferDropped(telemetry: Telemetry, component: string, count: number): void {
  telemetry.count(BUFFER_DISCARDED_EVENTS, component, count);
  telemetry.count(DISCARDED_EVENTS, component, count);
  telemetry.logLimited(
    'warn',
    'otlp_buffer_full_dropped',
    `Dropped ${count} records: the buffer is full and buffer.when_full is "drop_newest".`,
    component,
  );
}

export function otlpPartialSuccess(telemetry: Telemetry, component: string, rejected: number, message: string): void {
  if (rejected > 0) {
    telemetry.count(PARTIAL_SUCCESS_REJECTED_EVENTS, component, rejected);
    telemetry.count(DISCARDED_EVENTS, component, rejected);
  }
  telemetry.logLimited(
    rejected > 0 ? 'error' : 'warn',
    'otlp_partial_success',
    `The OTLP endpoint accepted a request only in part: ${rejected} records rejected` +
      (message === '' ? '.' : `: ${message.slice(0, 200)}.`),
    component,
  );
}

/** `status`: an HTTP status (with Retry-After), or a gRPC one such as `gRPC UNAVAILABLE` (with RetryInfo). */
export function otlpRetryAfter(telemetry: Telemetry, component: string, status: number | string, delayMs: number): void {
  telemetry.count(RETRY_AFTER_RESPONSES, component);
  const hint = typeof status === 'number' ? 'Retry-After' : 'RetryInfo';
  telemetry.logLimited(
    'warn',
    'otlp_retry_after',
    `The OTLP endpoint answered ${status} with ${hint}: no retry before ${delayMs} ms from now.`,
    component,
  );
}

/** Frames of the disk buffer skipped because they were truncated or failed their CRC (per segment). */
export const DISK_BUFFER_CORRUPT_SEGMENTS = 'otlp_disk_buffer_corrupt_segments_total';

export function otlpDiskBufferCorrupt(
  telemetry: Telemetry,
  component: string,
  file: string,
  offset: number,
  reason: string,
): void {
  telemetry.count(DISK_BUFFER_CORRUPT_SEGMENTS, component);
  telemetry.count(ERRORS, component);
  telemetry.logLimited(
    'error',
    'otlp_disk_buffer_corrupt',
    `Disk buffer segment ${file} is corrupt at byte ${offset} (${reason}): the rest of it is skipped.`,
    component,
  );
}
