import type { Telemetry } from '../../telemetry.js';

/**
 * The kubernetes_logs source's own internal events (file events come from the file source it
 * wraps). Each logs one sentence, rate-limited, and bumps a counter; listed in
 * docs/sources/kubernetes_logs.md.
 */

export function linesUnparsed(t: Telemetry, id: string, file: string, lines: number): void {
  t.count('kubernetes_parse_errors_total', id, lines);
  t.count('component_errors_total', id, lines);
  t.logLimited(
    'warn',
    'container_line_unparsed',
    `${lines} line(s) of ${file} are neither CRI nor Docker json-file; forwarding them unchanged, without stream.`,
    id,
  );
}

export function partialFlushed(t: Telemetry, id: string, file: string, why: string): void {
  t.count('kubernetes_partial_lines_flushed_total', id);
  t.logLimited(
    'warn',
    'partial_line_flushed',
    `Sent the unfinished partial line of ${file} on its own (${why}); its continuation will arrive as a separate line.`,
    id,
  );
}

export function mergedLineTooLong(t: Telemetry, id: string, file: string, max: number): void {
  t.count('kubernetes_merged_lines_discarded_total', id);
  t.count('component_discarded_events_total', id);
  t.logLimited('warn', 'merged_line_too_long', `Discarded a merged line of ${file} longer than max_merged_line_bytes = ${max}.`, id);
}

export function pathUnrecognized(t: Telemetry, id: string, file: string): void {
  t.count('kubernetes_unrecognized_paths_total', id);
  t.logLimited(
    'warn',
    'pod_log_path_unrecognized',
    `Cannot read namespace, pod and container from ${file} (expected <namespace>_<pod>_<uid>/<container>/<n>.log); forwarding its lines without kubernetes fields.`,
    id,
  );
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function apiRequestFailed(t: Telemetry, id: string, err: unknown, retryInMs: number): void {
  t.count('kubernetes_api_errors_total', id);
  t.count('component_errors_total', id);
  t.logLimited(
    'warn',
    'kubernetes_api_failed',
    `Kubernetes API request failed, retrying in ${retryInMs} ms; batches carry path fields only for pods not yet known: ${reason(err)}.`,
    id,
  );
}

export function apiSynced(t: Telemetry, id: string, pods: number): void {
  t.count('kubernetes_api_lists_total', id);
  t.log('debug', 'kubernetes_api_synced', `Listed ${pods} pod(s) of this node from the Kubernetes API.`, id);
}

export function apiDisabled(t: Telemetry, id: string, why: string): void {
  t.log('info', 'kubernetes_api_disabled', `No Kubernetes API enrichment: ${why}. Batches carry the fields of the log paths.`, id);
}
