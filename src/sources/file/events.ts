import type { Telemetry } from '../../telemetry.js';

/**
 * The file source's internal events: each logs one sentence (rate-limited) and bumps a counter.
 * Counter names are listed in docs/sources/file.md.
 */

function reason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const message = err instanceof Error ? err.message : String(err);
  return code !== undefined && !message.includes(code) ? `${code}: ${message}` : message;
}

export function linesReceived(t: Telemetry, id: string, lines: number, bytes: number): void {
  t.count('component_received_events_total', id, lines);
  t.count('component_received_bytes_total', id, bytes);
}

export function fileAdded(t: Telemetry, id: string, file: string, position: number, why: string): void {
  t.count('files_added_total', id);
  t.log('debug', 'file_added', `Found file ${file}, reading from offset ${position} (${why}).`, id);
}

export function fileUnwatched(t: Telemetry, id: string, file: string): void {
  t.count('files_unwatched_total', id);
  t.log('debug', 'file_unwatched', `Stopped watching file ${file}: read to its end after it left the matched paths.`, id);
}

export function fileOpenFailed(t: Telemetry, id: string, file: string, err: unknown): void {
  t.count('file_open_errors_total', id);
  t.logLimited('error', 'file_open_failed', `Cannot open file ${file}, skipping it: ${reason(err)}.`, id);
}

export function fileReadFailed(t: Telemetry, id: string, file: string, err: unknown): void {
  t.count('file_read_errors_total', id);
  t.logLimited('error', 'file_read_failed', `Cannot read file ${file}, will retry from its last offset: ${reason(err)}.`, id);
}

export function fileTruncated(t: Telemetry, id: string, file: string): void {
  t.count('files_truncated_total', id);
  t.logLimited('info', 'file_truncated', `File ${file} is shorter than what was read: truncated, reading it from the start.`, id);
}

export function linesTooLong(t: Telemetry, id: string, file: string, lines: number, max: number): void {
  t.count('file_lines_discarded_total', id, lines);
  t.logLimited('warn', 'line_too_long', `Discarded ${lines} line(s) of ${file} longer than max_line_bytes = ${max}.`, id);
}

export function checkpointsUnusable(t: Telemetry, id: string, problem: string): void {
  t.count('checkpoint_errors_total', id);
  t.logLimited('error', 'checkpoints_unusable', `${problem}; ignoring it and falling back to read_from.`, id);
}

export function checkpointWriteFailed(t: Telemetry, id: string, file: string, err: unknown): void {
  t.count('checkpoint_errors_total', id);
  t.logLimited('error', 'checkpoint_write_failed', `Cannot write checkpoints to ${file}, will retry: ${reason(err)}.`, id);
}

export function globFailed(t: Telemetry, id: string, err: unknown): void {
  t.count('file_glob_errors_total', id);
  t.logLimited('error', 'glob_failed', `Cannot list files matching include: ${reason(err)}.`, id);
}

export function watcherFailed(t: Telemetry, id: string, err: unknown): void {
  t.count('file_watch_errors_total', id);
  t.logLimited('warn', 'watch_failed', `File watcher error, relying on periodic rescans: ${reason(err)}.`, id);
}

export function emitFailed(t: Telemetry, id: string, file: string, err: unknown): void {
  t.count('file_emit_errors_total', id);
  t.logLimited(
    'error',
    'emit_failed',
    `Downstream rejected a batch of ${file}; its checkpoint will not advance past it (re-read on restart): ${reason(err)}.`,
    id,
  );
}

export function vectorCheckpointsImported(t: Telemetry, id: string, file: string, entries: number): void {
  t.count('checkpoints_imported_total', id, entries);
  t.log('info', 'vector_checkpoints_imported', `Imported ${entries} checkpoint(s) from Vector's ${file}; it will be rewritten in logwasm's format.`, id);
}

export function fileTooShort(t: Telemetry, id: string, file: string): void {
  t.count('files_waiting_fingerprint_total', id);
  t.log('debug', 'file_too_short', `File ${file} is shorter than its fingerprint (fingerprint.lines); waiting for it to grow.`, id);
}

export function fileDuplicate(t: Telemetry, id: string, file: string, other: string): void {
  t.count('files_duplicate_fingerprint_total', id);
  t.logLimited('info', 'file_duplicate', `File ${file} has the same fingerprint (first lines) as ${other}: treated as the same file and not read.`, id);
}

export function rotateWaitElapsed(t: Telemetry, id: string, file: string, secs: number): void {
  t.count('files_rotate_wait_elapsed_total', id);
  t.logLimited('warn', 'rotate_wait_elapsed', `Stopped reading rotated file ${file}: rotate_wait_secs = ${secs} elapsed.`, id);
}

export function fileRemoved(t: Telemetry, id: string, file: string): void {
  t.count('files_removed_total', id);
  t.log('info', 'file_removed', `Removed file ${file}: read to its end and unchanged for remove_after_secs.`, id);
}

export function fileRemoveFailed(t: Telemetry, id: string, file: string, err: unknown): void {
  t.count('file_remove_errors_total', id);
  t.logLimited('error', 'file_remove_failed', `Cannot remove file ${file}, will retry: ${reason(err)}.`, id);
}

export function fileLostWhileClosed(t: Telemetry, id: string, file: string): void {
  t.count('files_lost_while_closed_total', id);
  t.logLimited(
    'warn',
    'file_lost_while_closed',
    `File ${file} was closed while idle (open file limit) and moved out of the matched paths before it could be reopened; lines written after it was closed were not read.`,
    id,
  );
}

export function fileFoundByInode(t: Telemetry, id: string, file: string, movedTo: string): void {
  t.count('files_found_by_inode_total', id);
  t.logLimited('info', 'file_found_by_inode', `File ${file}, closed while idle (open file limit), was found renamed to ${movedTo}: read to its end.`, id);
}
