/**
 * Internal events of the wasm transform: each logs one sentence (rate-limited) and bumps counters.
 * Called once per batch with sums, never per line.
 */
import type { Telemetry } from '../../telemetry.js';
import type { LineFailure } from '../../wasm-memory/runner.js';

/** Lines that failed in the plugin or in the pool (every code); Vector's name. */
export const COMPONENT_ERRORS_TOTAL = 'component_errors_total';
/** Lines lost on purpose by policy (`drop_on_error`); Vector's name. */
export const COMPONENT_DISCARDED_EVENTS_TOTAL = 'component_discarded_events_total';
/** Lines the plugin dropped itself (status 1): filtering, not an error. */
export const WASM_PLUGIN_DROPPED_TOTAL = 'wasm_plugin_dropped_total';
/** Per failure code: `wasm_line_failures_total_trap`, `..._plugin_error`, `..._worker_failed`, ... */
export const WASM_LINE_FAILURES_PREFIX = 'wasm_line_failures_total_';

/** What happened to the failed lines, for the log line. */
export type FailurePolicy = 'forwarded' | 'dropped' | 'rerouted';

export function pluginLinesFailed(
  telemetry: Telemetry,
  component: string,
  failures: readonly LineFailure[],
  lines: number,
  policy: FailurePolicy,
  firstError: string | undefined,
): void {
  if (failures.length === 0) return;
  telemetry.count(COMPONENT_ERRORS_TOTAL, component, failures.length);
  const byCode = new Map<string, number>();
  for (const failure of failures) byCode.set(failure.code, (byCode.get(failure.code) ?? 0) + 1);
  for (const [code, n] of byCode) telemetry.count(WASM_LINE_FAILURES_PREFIX + code, component, n);
  if (policy === 'dropped') telemetry.count(COMPONENT_DISCARDED_EVENTS_TOTAL, component, failures.length);
  const first = failures[0]!;
  telemetry.logLimited(
    'error',
    'wasm_plugin_failed',
    `${failures.length} of ${lines} lines failed in the plugin (first: line ${first.index}, ${first.code}: ${firstError ?? 'no detail'}); originals ${policy}`,
    component,
  );
}

/** Batches whose worker hung or died and that were retried line by line. */
export const WASM_BATCH_RETRIES_TOTAL = 'wasm_batch_retries_total';

export function batchRetried(telemetry: Telemetry, component: string, lines: number, reason: 'timeout' | 'worker_failed', error: unknown): void {
  telemetry.count(WASM_BATCH_RETRIES_TOTAL, component, 1);
  const what = reason === 'timeout' ? 'did not finish in time; its worker was terminated' : 'was lost with its worker';
  telemetry.logLimited('error', 'wasm_worker_failed', `a batch of ${lines} lines ${what} (${String(error)}); retrying it one line at a time`, component);
}

export function pluginDropped(telemetry: Telemetry, component: string, dropped: number): void {
  telemetry.count(WASM_PLUGIN_DROPPED_TOTAL, component, dropped);
}

/** A WASI guest wrote to stdout/stderr (captured, never passed to the agent's own streams). */
export function guestWrote(telemetry: Telemetry, component: string, text: string): void {
  telemetry.count(WASM_GUEST_OUTPUT_TOTAL, component, 1);
  telemetry.logLimited('info', 'wasm_guest_output', `the plugin wrote: ${text.trimEnd()}`, component);
}

/** Batches in which a WASI guest wrote to stdout/stderr. */
export const WASM_GUEST_OUTPUT_TOTAL = 'wasm_guest_output_total';

/** Hot reloads that switched to a new module. */
export const WASM_MODULE_RELOADS_TOTAL = 'wasm_module_reloads_total';
/** Changed module files refused on reload (the old module kept running). */
export const WASM_RELOAD_REFUSED_TOTAL = 'wasm_reload_refused_total';

export function moduleReloaded(telemetry: Telemetry, component: string, from: string, to: string): void {
  telemetry.count(WASM_MODULE_RELOADS_TOTAL, component, 1);
  telemetry.log('info', 'wasm_module_reloaded', `module reloaded: sha256 ${from} -> ${to}; new batches use it`, component);
}

export function reloadRefused(telemetry: Telemetry, component: string, reason: string): void {
  telemetry.count(WASM_RELOAD_REFUSED_TOTAL, component, 1);
  telemetry.logLimited('error', 'wasm_reload_refused', `the changed module was refused, the old one keeps running: ${reason}`, component);
}
