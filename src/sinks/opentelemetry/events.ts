/**
 * Internal events of the opentelemetry sink: each bumps counters and logs one sentence,
 * rate-limited per event kind and component. Counter names follow Vector's internal metrics.
 */
import type { Telemetry } from '../../telemetry.js';

/** Records handed to the sink by `write()`. */
export const RECEIVED_EVENTS = 'component_received_events_total';
/** Records the collector accepted (2xx). */
export const SENT_EVENTS = 'component_sent_events_total';
/** Failed request attempts (each one, whether it is retried or not). */
export const ERRORS = 'component_errors_total';
/**
 * Records given up on, for any reason: the sum of the two below. The CLI's replay summary reads
 * this one to tell whether anything was lost.
 */
export const DISCARDED_EVENTS = 'component_discarded_events_total';
/** Records the collector refused permanently (4xx other than 408/429), or retries ran out. */
export const REJECTED_EVENTS = 'otlp_rejected_events_total';
/** Records still queued when a bounded stop gave up, or written after stop. */
export const UNDELIVERED_EVENTS = 'otlp_undelivered_events_total';

export function otlpEventsReceived(telemetry: Telemetry, component: string, count: number): void {
  telemetry.count(RECEIVED_EVENTS, component, count);
}

export function otlpEventsSent(telemetry: Telemetry, component: string, count: number): void {
  telemetry.count(SENT_EVENTS, component, count);
}

export function otlpSendFailed(
  telemetry: Telemetry,
  component: string,
  count: number,
  reason: string,
  attempt: number,
  delayMs: number,
): void {
  telemetry.count(ERRORS, component);
  telemetry.logLimited(
    'warn',
    'otlp_send_failed',
    `Sending ${count} records to the OTLP endpoint failed (attempt ${attempt}): ${reason}; retrying in ${delayMs} ms.`,
    component,
  );
}

export function otlpRecordsRejected(telemetry: Telemetry, component: string, count: number, reason: string): void {
  telemetry.count(ERRORS, component);
  telemetry.count(REJECTED_EVENTS, component, count);
  telemetry.count(DISCARDED_EVENTS, component, count);
  telemetry.logLimited(
    'error',
    'otlp_records_rejected',
    `Dropped ${count} records the OTLP endpoint will not accept: ${reason}.`,
    component,
  );
}

export function otlpRecordsUndelivered(telemetry: Telemetry, component: string, count: number, reason: string): void {
  telemetry.count(UNDELIVERED_EVENTS, component, count);
  telemetry.count(DISCARDED_EVENTS, component, count);
  telemetry.logLimited(
    'error',
    'otlp_records_undelivered',
    `${count} records were not delivered to the OTLP endpoint: ${reason}.`,
    component,
  );
}

export function otlpEncoderWithoutWasm(telemetry: Telemetry, component: string, problem: string): void {
  telemetry.log(
    'warn',
    'otlp_encoder_js_path',
    `The OTLP encoder's Rust fast path cannot be used (${problem}): records are encoded by the JavaScript path, at about twice the CPU.`,
    component,
  );
}

export function otlpSinkDisabled(telemetry: Telemetry, component: string): void {
  telemetry.log(
    'info',
    'otlp_sink_disabled',
    'The OTLP endpoint is empty: this sink is disabled and accepts every event without sending it.',
    component,
  );
}

/** Batches encoded on the main thread because the encoding pool could not (see pool.ts). */
export const MAIN_THREAD_ENCODED_BATCHES = 'otlp_main_thread_encoded_batches_total';

export function otlpEncodedOnMainThread(telemetry: Telemetry, component: string, reason: string, detail: string): void {
  telemetry.count(MAIN_THREAD_ENCODED_BATCHES, component);
  telemetry.logLimited(
    reason === 'worker_missing' ? 'warn' : 'error',
    'otlp_encoded_on_main_thread',
    `Encoding OTLP on the main thread (slower) because ${reason === 'worker_missing' ? 'the encoding worker is unavailable' : 'the encoding worker failed'}: ${detail}.`,
    component,
  );
}
