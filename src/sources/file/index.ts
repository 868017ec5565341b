import os from 'node:os';
import path from 'node:path';
import { watch, type BigIntStats, type FSWatcher } from 'node:fs';
import { readdir, stat, unlink } from 'node:fs/promises';
import picomatch from 'picomatch';
import type { Source, SourceContext, SourceType } from '../../components.js';
import { isTable, show, type ConfigReader } from '../../config/reader.js';
import { packLines, type LineBatch } from '../../event.js';
import { Checkpointer, checkpointsPath, loadCheckpoints } from './checkpoints.js';
import { Discovery } from './discovery.js';
import * as events from './events.js';
import { CHARSET_LABELS, encodeDelimiter, lineToUtf8, parseCharset, type Charset } from './encoding.js';
import {
  DEFAULT_FINGERPRINT,
  DEFAULT_FINGERPRINT_IGNORED_HEADER_BYTES,
  DEFAULT_FINGERPRINT_LINES,
  inodeKey,
  type FingerprintOptions,
} from './fingerprint.js';
import { LineAggregator, MULTILINE_MODES, type MultilineConfig } from './multiline.js';
import type { SplitPiece, SplitResult } from './lines.js';
import { FileTailer, findByInode, openFingerprinted, type SizeChange } from './tailer.js';

/** Where to start a file that has no checkpoint and existed at start-up. Vector's default. */
export const DEFAULT_READ_FROM = 'beginning';
/** Lines longer than this many bytes (without the delimiter) are discarded, with a counted warning. Vector's default. */
export const DEFAULT_MAX_LINE_BYTES = 102_400;
/**
 * Vector's default for `max_read_bytes`, the bytes read from one file before moving to the next.
 * logwasm always reads at least one READ_CHUNK_BYTES chunk per file per turn, so the default
 * means one chunk per turn; a larger value reads several chunks of a busy file per turn.
 */
export const DEFAULT_MAX_READ_BYTES = 2048;
/**
 * Bytes asked of the OS per read. Much larger than Vector's 2048 for throughput, and large enough
 * that a read of typical ~200-byte lines fills whole batches of MAX_BATCH_LINES: the lines after
 * the last whole batch of a read go out as a smaller batch, and each batch costs a task on every
 * thread downstream (256 KiB reads made ~1,650 batches per million lines, 1 MiB ~1,030 with
 * 1000-line batches, ~410 with 2500: two batches of about equal size per read of ~216-byte lines).
 */
export const READ_CHUNK_BYTES = 1024 * 1024;
/** Minimum time between two scans of the include globs. Vector's default. */
export const DEFAULT_GLOB_MINIMUM_COOLDOWN_MS = 1000;
/** Vector's default line delimiter. */
export const DEFAULT_LINE_DELIMITER = '\n';
/** Vector's default field name for the file path. */
export const DEFAULT_FILE_KEY = 'file';
/** Vector's default field name for the host (the global log schema's `host_key`). */
export const DEFAULT_HOST_KEY = 'host';
/**
 * Most lines in one batch. Every batch costs about a millisecond of CPU across the threads it
 * crosses (two worker tasks, a request, their promises and their garbage), whatever its size: on
 * the 1M-line file_wasm_otlp benchmark, 2000 instead of 1000 took ~10 % off the wall time, 2500
 * ~8 % more, each for ~5 MiB more peak RSS (5000: ~20 MiB). The OTLP sink's `batch.max_events`
 * default matches it, so that a batch is one request.
 */
export const MAX_BATCH_LINES = 2500;
/**
 * Batches of this source in flight downstream at most; when reached, reading pauses
 * (backpressure). 6 of MAX_BATCH_LINES: 15,000 lines, about the 16,000 that 16 batches of 1000
 * were; on the 1M-line benchmark twice that many lines in flight ran no faster and took 5-8 MiB
 * more peak RSS.
 */
export const MAX_IN_FLIGHT_BATCHES = 6;
/**
 * Bytes of lines of this source in flight downstream at most; when reached, reading pauses like
 * at MAX_IN_FLIGHT_BATCHES. The batch count alone lets memory grow with line length (6 batches
 * of 2500 lines of up to max_line_bytes); this keeps peak RSS flat whatever the lines. 8 MiB is
 * about 15 batches of the benchmark's 216-byte lines, so the batch count binds first there.
 */
export const MAX_IN_FLIGHT_BYTES = 8 * 1024 * 1024;
/** How often open files are checked for new data, rotation and truncation, besides watch events. */
export const POLL_INTERVAL_MS = 250;
/**
 * How often the files are walked instead while all of them are quiet: none read for
 * IDLE_AFTER_MS, none poked, draining or waiting to reopen, no partial line or multiline event
 * waiting to be flushed, no `remove_after_secs`. Each idle file's own checks come only every
 * IDLE_CHECK_MS anyway; walking 1,000 quiet files four times a second was a third of their idle
 * CPU. A watch event still wakes a file at once; only what an event missed waits up to this long.
 */
export const QUIET_POLL_INTERVAL_MS = 1000;
/**
 * A last line without its delimiter is sent once the file has been quiet (no new bytes) for this
 * long, as if the delimiter had come: the issue's "emitted after a quiet period". Bytes appended to
 * it later start a new line. Not a Vector option.
 */
export const PARTIAL_LINE_FLUSH_MS = 5000;
/** How often changed checkpoints are written. */
export const CHECKPOINT_INTERVAL_MS = 1000;

/** Vector's default for `rotate_wait_secs` (u64::MAX): a rotated file is kept open until read to its end. */
export const DEFAULT_ROTATE_WAIT_SECS = Number.POSITIVE_INFINITY;
/** Vector's default `encoding.charset`: bytes are passed as they are. */
export const DEFAULT_CHARSET: Charset = 'utf-8';
/**
 * Open descriptors at most, over all files of a source. Beyond it, files idle the longest are
 * closed (their state kept) and reopened by path when they change. Not a Vector option.
 */
export const MAX_OPEN_FILES = 512;
/** A file with no new data for this long is idle: read only on a watch event or a size check. */
export const IDLE_AFTER_MS = 2000;
/**
 * Safety net for idle files (no new data for IDLE_AFTER_MS): how often each one's size, inode and
 * truncation are checked by polling. Changes are normally seen at once through the watch events
 * (inotify, one watcher per base directory), which wake the tailer of the file that changed; this
 * poll only catches what an event missed (a lost or coalesced event, a file system without
 * inotify such as NFS). Worst-case latency for such a missed change: IDLE_CHECK_MS plus one
 * POLL_INTERVAL_MS. Busy files are checked every POLL_INTERVAL_MS. Checks are spread over the
 * interval (each file keeps its own phase), so 1,000 idle files cost about 33 stats a second.
 */
export const IDLE_CHECK_MS = 30_000;
/**
 * Safety net for new files: at most this long between two full expansions of the include globs.
 * In between, the periodic rescan (every `glob_minimum_cooldown_ms`) expands the globs only when
 * a watched directory's mtime changed; watch events for a new file always rescan at once. A full
 * expansion of 1,000 files costs the idle process 30-60 ms of CPU (its code is cold by then):
 * once a minute, Fluent Bit's default `Refresh_Interval`, rather than twice.
 */
export const GLOB_FULL_RESCAN_MS = 60_000;

export interface FileSourceConfig {
  include: string[];
  exclude: string[];
  readFrom: 'beginning' | 'end';
  ignoreCheckpoints: boolean;
  maxLineBytes: number;
  maxReadBytes: number;
  globMinimumCooldownMs: number;
  lineDelimiter: string;
  hostKey: string;
  fileKey: string;
  /** Stored; the event field name is fixed for now (see docs). Undefined: no offset field. */
  offsetKey: string | undefined;
  /** Per-source override of the global `data_dir`. */
  dataDir: string | undefined;
  fingerprint: FingerprintOptions;
  /** Files last modified longer ago than this are not read. */
  ignoreOlderSecs: number | undefined;
  /** Delete a file this long after it was read to its end with nothing new written. */
  removeAfterSecs: number | undefined;
  /** Keep reading a file that left the matched paths for at most this long. */
  rotateWaitSecs: number;
  oldestFirst: boolean;
  multiline: MultilineConfig | undefined;
  charset: Charset;
  /** Internal knobs for tests and benchmarks (shrink them to hit chunk and batch edges). */
  internal: FileSourceInternals;
}

/** What one check of `tick` found: see `checkOpen`. */
type CheckOutcome = 'same' | 'changed' | 'moved';

export interface FileSourceInternals {
  readChunkBytes: number;
  maxBatchLines: number;
  maxInFlightBatches: number;
  maxInFlightBytes: number;
  pollIntervalMs: number;
  quietPollIntervalMs: number;
  checkpointIntervalMs: number;
  maxOpenFiles: number;
  idleAfterMs: number;
  idleCheckMs: number;
  partialLineFlushMs: number;
}

export const DEFAULT_INTERNALS: FileSourceInternals = {
  readChunkBytes: READ_CHUNK_BYTES,
  maxBatchLines: MAX_BATCH_LINES,
  maxInFlightBatches: MAX_IN_FLIGHT_BATCHES,
  maxInFlightBytes: MAX_IN_FLIGHT_BYTES,
  pollIntervalMs: POLL_INTERVAL_MS,
  quietPollIntervalMs: QUIET_POLL_INTERVAL_MS,
  checkpointIntervalMs: CHECKPOINT_INTERVAL_MS,
  maxOpenFiles: MAX_OPEN_FILES,
  idleAfterMs: IDLE_AFTER_MS,
  idleCheckMs: IDLE_CHECK_MS,
  partialLineFlushMs: PARTIAL_LINE_FLUSH_MS,
};

/** Vector options of the file source that logwasm does not implement: naming one is a config error. */
export const UNSUPPORTED_OPTIONS: Readonly<Record<string, string>> = {
  ignore_not_found: 'missing include paths are always ignored',
  start_at_beginning: 'deprecated in Vector; use read_from',
  internal_metrics: 'per-file metrics are not implemented',
  framing: 'not a file source option',
  decoding: 'not a file source option',
};

/**
 * Event field names are fixed for now (batches carry the file and host once, as metadata): the
 * Vector default is accepted, any other name is refused rather than silently ignored.
 */
function fixedFieldName(reader: ConfigReader, key: string, fixed: string): string {
  const value = reader.string(key, fixed);
  if (value !== fixed) {
    reader.problem(`"${key}" = ${JSON.stringify(value)} is not supported yet: the field is always named "${fixed}"`);
  }
  return fixed;
}

/** `offset_key`: no per-line offset field yet, so any value is refused. */
function unsupportedFieldName(reader: ConfigReader, key: string): undefined {
  const value = reader.string(key);
  if (value !== undefined) reader.problem(`"${key}" is not supported yet: events carry no offset field`);
  return undefined;
}

export function parseFileSourceConfig(reader: ConfigReader): FileSourceConfig {
  reader.accept('type');
  if (!reader.has('include')) reader.problem('missing required key "include"');
  const include = reader.stringArray('include');
  if (reader.has('include') && include.length === 0) reader.problem('invalid value for "include": expected at least one path or glob, actual: []');
  const lineDelimiter = reader.string('line_delimiter', DEFAULT_LINE_DELIMITER);
  if (lineDelimiter.length === 0) reader.problem('invalid value for "line_delimiter": expected a non-empty string, actual: ""');
  const dataDir = reader.string('data_dir');
  for (const [key, why] of Object.entries(UNSUPPORTED_OPTIONS)) {
    if (reader.has(key)) {
      reader.accept(key);
      reader.problem(`unsupported option "${key}": ${why}`);
    }
  }
  const acks = reader.raw('acknowledgements');
  if (acks !== undefined) {
    const enabled = typeof acks === 'boolean' ? acks : isTable(acks) ? acks.enabled : acks;
    const extra = isTable(acks) ? Object.keys(acks).filter((k) => k !== 'enabled') : [];
    if (enabled !== true && enabled !== undefined) {
      reader.problem(`unsupported value for "acknowledgements": the file source always waits for acknowledgements before checkpointing, actual: ${show(acks)}`);
    }
    for (const k of extra) reader.problem(`unknown key "acknowledgements.${k}"`);
  }
  const encoding = reader.table('encoding');
  const charsetLabel = encoding.string('charset', DEFAULT_CHARSET);
  const charset = parseCharset(charsetLabel);
  if (charset === undefined) encoding.problem(`unsupported value for "encoding.charset": expected one of ${Object.keys(CHARSET_LABELS).map((c) => `"${c}"`).join(', ')}, actual: ${show(charsetLabel)}`);
  encoding.finish();
  return {
    include,
    exclude: reader.stringArray('exclude'),
    readFrom: reader.oneOf('read_from', ['beginning', 'end'] as const, DEFAULT_READ_FROM),
    ignoreCheckpoints: reader.boolean('ignore_checkpoints', false),
    maxLineBytes: reader.number('max_line_bytes', DEFAULT_MAX_LINE_BYTES, { integer: true, min: 1 }),
    maxReadBytes: reader.number('max_read_bytes', DEFAULT_MAX_READ_BYTES, { integer: true, min: 1 }),
    globMinimumCooldownMs: reader.number('glob_minimum_cooldown_ms', DEFAULT_GLOB_MINIMUM_COOLDOWN_MS, { integer: true, min: 0 }),
    lineDelimiter: lineDelimiter.length === 0 ? DEFAULT_LINE_DELIMITER : lineDelimiter,
    hostKey: fixedFieldName(reader, 'host_key', DEFAULT_HOST_KEY),
    fileKey: fixedFieldName(reader, 'file_key', DEFAULT_FILE_KEY),
    offsetKey: unsupportedFieldName(reader, 'offset_key'),
    dataDir: dataDir === undefined ? undefined : path.resolve(dataDir),
    fingerprint: parseFingerprint(reader.table('fingerprint')),
    ignoreOlderSecs: reader.number('ignore_older_secs', undefined, { integer: true, min: 0 }),
    removeAfterSecs: reader.number('remove_after_secs', undefined, { integer: true, min: 0 }),
    rotateWaitSecs: reader.number('rotate_wait_secs', DEFAULT_ROTATE_WAIT_SECS, { integer: true, min: 0 }),
    oldestFirst: reader.boolean('oldest_first', false),
    multiline: reader.has('multiline') ? parseMultiline(reader.table('multiline')) : (reader.accept('multiline'), undefined),
    charset: charset ?? DEFAULT_CHARSET,
    internal: { ...DEFAULT_INTERNALS },
  };
}

function parseFingerprint(table: ConfigReader): FingerprintOptions {
  const strategy = table.oneOf('strategy', ['checksum', 'device_and_inode'] as const, DEFAULT_FINGERPRINT.strategy);
  if (table.has('bytes')) {
    table.accept('bytes');
    table.problem('unsupported option "fingerprint.bytes": deprecated in Vector; use fingerprint.lines');
  }
  let result: FingerprintOptions;
  if (strategy === 'checksum') {
    result = {
      strategy,
      lines: table.number('lines', DEFAULT_FINGERPRINT_LINES, { integer: true, min: 1 }),
      ignoredHeaderBytes: table.number('ignored_header_bytes', DEFAULT_FINGERPRINT_IGNORED_HEADER_BYTES, { integer: true, min: 0 }),
    };
  } else {
    for (const key of ['lines', 'ignored_header_bytes']) {
      if (table.has(key)) {
        table.accept(key);
        table.problem(`invalid option "fingerprint.${key}": only used with strategy = "checksum", actual strategy: "device_and_inode"`);
      }
    }
    result = { strategy };
  }
  table.finish();
  return result;
}

function parseMultiline(table: ConfigReader): MultilineConfig | undefined {
  const regex = (key: string): RegExp | undefined => {
    const source = table.requiredString(key);
    try {
      return new RegExp(source);
    } catch (err) {
      table.problem(`invalid value for "multiline.${key}": not a regular expression (${(err as Error).message}), actual: ${show(source)}`);
      return undefined;
    }
  };
  const startPattern = regex('start_pattern');
  const conditionPattern = regex('condition_pattern');
  if (!table.has('mode')) table.problem('missing required key "multiline.mode"');
  const mode = table.oneOf('mode', MULTILINE_MODES, 'continue_through');
  if (!table.has('timeout_ms')) table.problem('missing required key "multiline.timeout_ms"');
  const timeoutMs = table.number('timeout_ms', 1000, { integer: true, min: 1 });
  table.finish();
  if (startPattern === undefined || conditionPattern === undefined) return undefined;
  return { startPattern, conditionPattern, mode, timeoutMs };
}

export const fileSource: SourceType<FileSourceConfig> = {
  kind: 'source',
  type: 'file',
  parse: parseFileSourceConfig,
  build: (config, context) => new FileSource(config, context),
};


/**
 * Maps the config onto the engines: discovery finds files, one FileTailer per fingerprint reads
 * and splits, an AckTracker per file holds the delivery window, the Checkpointer persists the
 * acknowledged offsets. All reads happen in one `pump` loop at a time, sharing one read buffer.
 */
export class FileSource implements Source {
  private readonly id: string;
  private readonly internal: FileSourceInternals;
  private readonly discovery: Discovery;
  private readonly checkpointer: Checkpointer | null;
  private readonly host = os.hostname();
  private readonly buffer: Uint8Array;
  private readonly splitOptions: { delimiter: Uint8Array; maxLineBytes: number; maxBatchLines: number; trackLineEnds: boolean; alignment: number };
  /** Tracked files, by fingerprint key. */
  private readonly tailers = new Map<string, FileTailer>();
  /** The same tailers by `dev:inode`: how a path is recognised as a file already followed. */
  private readonly byInode = new Map<string, FileTailer>();
  /** The same tailers by their last path, for watch events. */
  private readonly byPath = new Map<string, FileTailer>();
  private readonly aggregators = new Map<FileTailer, LineAggregator>();
  /** Read offsets of files closed during this run, so a file seen again resumes where it was. */
  private readonly retired = new Map<string, number>();
  /** Paths that failed to open (logged once each until they open). */
  private readonly unreadable = new Set<string>();
  /** Paths too short to fingerprint (logged once each until they are). */
  private readonly waiting = new Set<string>();
  /** Paths that could not be followed, with the stat they had then: retried only once it changes. */
  private readonly refused = new Map<string, { stamp: string; duplicateOf?: string }>();
  /** Paths whose fingerprint equals a tracked file's (logged once each). */
  private readonly duplicates = new Set<string>();
  private readonly inFlight = new Set<Promise<void>>();
  /** Line bytes of the batches in `inFlight`. */
  private inFlightBytes = 0;
  private readonly timers: NodeJS.Timeout[] = [];
  private openCount = 0;
  /** One inotify watcher per directory (base directories and, for deeper globs, their subdirectories). */
  private readonly dirWatchers = new Map<string, FSWatcher>();
  private stopping = false;
  private stopRun: Promise<void> | null = null;
  private pumpRun: Promise<void> | null = null;
  private pumpAgain = false;
  private scanRun: Promise<void> | null = null;
  private scanAgain = false;
  private scanFull = false;
  private tickForced = false;
  private ticking = false;
  /** Walks of every file by `tick`, and rescans that went through the matched paths: for tests. */
  pollWalks = 0;
  rescanWalks = 0;
  /** The last periodic rescan, when it found nothing to do: see `scanOnce`. */
  private quietScan: { paths: string[]; tracked: number } | null = null;
  /** When the last walk of `tick` found every file quiet (see QUIET_POLL_INTERVAL_MS); null: not quiet. */
  private quietWalkMs: number | null = null;
  /** Reads and change events so far: a walk that saw one happen while it ran does not end quiet. */
  private wakes = 0;
  private replayScanned = false;
  private resolveExhausted!: () => void;
  private readonly exhaustedPromise = new Promise<void>((resolve) => {
    this.resolveExhausted = resolve;
  });
  private resolveFinished!: () => void;
  private readonly finishedPromise = new Promise<void>((resolve) => {
    this.resolveFinished = resolve;
  });

  constructor(
    private readonly config: FileSourceConfig,
    private readonly context: SourceContext,
  ) {
    this.id = context.id;
    this.internal = config.internal;
    this.discovery = new Discovery(config.include, config.exclude);
    const delimiter = encodeDelimiter(config.lineDelimiter, config.charset);
    this.splitOptions = {
      delimiter,
      maxLineBytes: config.maxLineBytes,
      maxBatchLines: this.internal.maxBatchLines,
      trackLineEnds: config.multiline !== undefined,
      alignment: config.charset === 'utf-16le' || config.charset === 'utf-16be' ? 2 : 1,
    };
    this.buffer = new Uint8Array(this.internal.readChunkBytes + config.maxLineBytes + delimiter.byteLength);
    this.checkpointer =
      context.mode === 'tail' || context.writeCheckpoints === true ? new Checkpointer(checkpointsPath(config.dataDir ?? context.dataDir, context.id)) : null;
  }

  async start(): Promise<void> {
    if (this.context.mode === 'replay') {
      await this.scan(true);
      this.replayScanned = true;
      this.kick();
      this.checkReplayDone();
      return;
    }
    if (this.checkpointer !== null && !this.config.ignoreCheckpoints) {
      const loaded = await loadCheckpoints(this.checkpointer.file);
      if (loaded.problem !== undefined) events.checkpointsUnusable(this.context.telemetry, this.id, loaded.problem);
      if (loaded.format === 'vector') events.vectorCheckpointsImported(this.context.telemetry, this.id, this.checkpointer.file, loaded.checkpoints.size);
      this.checkpointer.replaceAll(loaded.checkpoints);
    }
    await this.scan(true);
    this.startWatching();
    this.timers.push(
      setInterval(() => void this.tick(), this.internal.pollIntervalMs),
      setInterval(() => void this.scan(false, false), Math.max(this.config.globMinimumCooldownMs, 10)),
      setInterval(() => void this.writeCheckpoints(), this.internal.checkpointIntervalMs),
    );
    this.kick();
  }

  finished(): Promise<void> {
    return this.finishedPromise;
  }

  exhausted(): Promise<void> {
    return this.exhaustedPromise;
  }

  stop(): Promise<void> {
    this.stopRun ??= this.shutdown();
    return this.stopRun;
  }

  private async shutdown(): Promise<void> {
    this.stopping = true;
    for (const timer of this.timers) clearInterval(timer);
    for (const watcher of this.dirWatchers.values()) watcher.close();
    this.dirWatchers.clear();
    await this.scanRun;
    await this.pumpRun;
    while (this.ticking) await new Promise((resolve) => setImmediate(resolve));
    // A last line without its delimiter is sent now, as Vector does, but only if it really is the
    // end of the file: if more bytes follow (not read yet), it is a line cut by a read, and the
    // next run reads it whole from the checkpoint, which is still at its start.
    for (const tailer of this.tailers.values()) if (await this.atEnd(tailer)) this.finish(tailer);
    while (this.inFlight.size > 0) await Promise.all(this.inFlight);
    // A file truncated since the last scan is checkpointed under its new fingerprint.
    for (const tailer of [...this.tailers.values()]) if (tailer.rekey) await this.rekey(tailer);
    await this.writeCheckpoints();
    for (const tailer of this.tailers.values()) await tailer.close().catch(() => undefined);
    this.tailers.clear();
    this.resolveExhausted();
    this.resolveFinished();
  }

  private async atEnd(tailer: FileTailer): Promise<boolean> {
    if (tailer.heldBytes === 0 || tailer.complete) return true;
    try {
      if (tailer.isOpen) return (await tailer.probe()) === 'same';
      return !(await tailer.changedAtPath());
    } catch {
      return true;
    }
  }

  /** Runs the read loop (or asks the running one to go round again). */
  private kick(): void {
    if (this.stopping) return;
    if (this.pumpRun !== null) {
      this.pumpAgain = true;
      return;
    }
    this.pumpRun = this.pump().finally(() => {
      this.pumpRun = null;
      if (this.pumpAgain && !this.stopping) this.kick();
      this.checkReplayDone();
    });
  }

  private windowFull(): boolean {
    return this.inFlight.size >= this.internal.maxInFlightBatches || this.inFlightBytes >= this.internal.maxInFlightBytes;
  }

  /** Whether the read loop should try this file now: idle files wait for a watch event or a size check. */
  private readable(tailer: FileTailer, now: number): boolean {
    if (tailer.complete) return false;
    if (tailer.suspended) return tailer.poke;
    if (!tailer.isOpen) return false;
    return tailer.poke || tailer.draining || this.context.mode === 'replay' || now - tailer.lastDataMs < this.internal.idleAfterMs;
  }

  private async pump(): Promise<void> {
    do {
      this.pumpAgain = false;
      let progress = true;
      while (progress && !this.stopping && !this.windowFull()) {
        progress = false;
        const now = Date.now();
        let order = [...this.tailers.values()];
        if (this.config.oldestFirst) order = order.sort((a, b) => a.createdMs - b.createdMs);
        for (const tailer of order) {
          if (this.stopping || this.windowFull()) break;
          if (!this.readable(tailer, now)) continue;
          if (await this.readTurn(tailer)) {
            progress = true;
            // Oldest first: go back to the oldest file after every turn, so it is drained first.
            if (this.config.oldestFirst) break;
          }
        }
      }
    } while (this.pumpAgain && !this.stopping && !this.windowFull());
  }

  /** Reads one turn of one file. Returns whether anything was read. */
  private async readTurn(tailer: FileTailer): Promise<boolean> {
    if (tailer.suspended) {
      if (this.openCount >= this.internal.maxOpenFiles) await this.enforceOpenLimit();
      if (this.openCount >= this.internal.maxOpenFiles) return false;
      if (!(await this.resumeTailer(tailer))) return false;
    }
    const chunk = this.internal.readChunkBytes;
    const budget = Math.max(this.config.maxReadBytes, chunk);
    let total = 0;
    tailer.busy = true;
    // A truncation noticed by `tick` takes effect here, between reads.
    if (tailer.applyTruncation()) {
      this.aggregators.get(tailer)?.reset(0);
      // Rekeyed (checkpointed under its new fingerprint) by the next rescan, which must run.
      this.quietScan = null;
    }
    try {
      while (!this.stopping && !this.windowFull() && tailer.isOpen) {
        let outcome;
        try {
          outcome = await tailer.read(this.buffer, chunk);
        } catch (err) {
          events.fileReadFailed(this.context.telemetry, this.id, tailer.path, err);
          await this.retire(tailer);
          return total > 0;
        }
        if (outcome.bytesRead === 0) {
          tailer.poke = false;
          if (tailer.draining || this.context.mode === 'replay') {
            this.finish(tailer);
            await this.retire(tailer);
            if (tailer.draining) events.fileUnwatched(this.context.telemetry, this.id, tailer.path);
          } else if (tailer.gzip) {
            // An archive does not grow: read once, closed, kept tracked so that it is not read again.
            this.finish(tailer);
            tailer.complete = true;
            await this.closeTailer(tailer);
            this.noteCheckpoint(tailer);
          } else {
            tailer.eofSinceMs ??= Date.now();
            if (tailer.flushPartial) {
              // Quiet for PARTIAL_LINE_FLUSH_MS at end of file: the unfinished last line goes now.
              tailer.flushPartial = false;
              this.finish(tailer);
            }
          }
          break;
        }
        this.deliver(tailer, outcome.result);
        this.wake();
        total += outcome.bytesRead;
        if (total >= budget) break;
      }
    } finally {
      tailer.busy = false;
    }
    return total > 0;
  }

  private async closeTailer(tailer: FileTailer): Promise<void> {
    if (tailer.isOpen) this.openCount--;
    await tailer.close().catch(() => undefined);
  }

  private async suspendTailer(tailer: FileTailer): Promise<void> {
    if (!tailer.isOpen || !tailer.canSuspend) return;
    this.openCount--;
    await tailer.suspend();
  }

  /** Reopens a suspended file; a file that is no longer at its path is given up (counted, logged). */
  private async resumeTailer(tailer: FileTailer): Promise<boolean> {
    if (await tailer.resume()) {
      this.openCount++;
      return true;
    }
    if (tailer.draining) {
      // Moved out of the matched paths while closed: looked for by inode in its directory.
      const moved = await findByInode(path.dirname(tailer.path), tailer.inode);
      if (moved !== null && (await tailer.resume(moved))) {
        this.openCount++;
        events.fileFoundByInode(this.context.telemetry, this.id, tailer.path, moved);
        return true;
      }
    }
    tailer.poke = false;
    if (tailer.draining) {
      this.finish(tailer);
      await this.retire(tailer);
      events.fileLostWhileClosed(this.context.telemetry, this.id, tailer.path);
    }
    return false;
  }

  private async retire(tailer: FileTailer): Promise<void> {
    this.forget(tailer);
    this.retired.set(tailer.key, tailer.position);
    await this.closeTailer(tailer);
    this.noteCheckpoint(tailer);
  }

  private forget(tailer: FileTailer): void {
    if (this.tailers.get(tailer.key) === tailer) this.tailers.delete(tailer.key);
    if (this.byInode.get(tailer.inode) === tailer) this.byInode.delete(tailer.inode);
    if (this.byPath.get(tailer.path) === tailer) this.byPath.delete(tailer.path);
    this.aggregators.delete(tailer);
  }

  /** End of a file's input: the held unfinished line and an open multiline group are sent. */
  private finish(tailer: FileTailer): void {
    this.deliver(tailer, tailer.flush());
    const rest = this.aggregators.get(tailer)?.flush();
    if (rest != null) this.emitPiece(tailer, { data: rest.data, offsets: Uint32Array.of(0, rest.data.byteLength), end: rest.end });
  }

  private deliver(tailer: FileTailer, result: SplitResult): void {
    const aggregator = this.aggregators.get(tailer);
    for (const piece of result.pieces) {
      const out = this.config.charset === 'utf-8' ? piece : transcode(piece, this.config.charset);
      if (aggregator === undefined) this.emitPiece(tailer, out);
      else this.aggregate(tailer, aggregator, out);
    }
    const safe = aggregator?.pending === true ? aggregator.safeEnd : result.end;
    if (safe > tailer.acks.lastEnd) {
      // Only discarded lines after the last batch: nothing to wait for, the offset may move now.
      tailer.acks.add(safe, true);
      this.noteCheckpoint(tailer);
    }
    if (result.discarded > 0) {
      events.linesTooLong(this.context.telemetry, this.id, tailer.path, result.discarded, this.config.maxLineBytes);
    }
  }

  private aggregate(tailer: FileTailer, aggregator: LineAggregator, piece: SplitPiece): void {
    const lines: Uint8Array[] = [];
    let end = -1;
    const count = piece.offsets.length - 1;
    for (let i = 0; i < count; i++) {
      const line = piece.data.subarray(piece.offsets[i], piece.offsets[i + 1]);
      for (const out of aggregator.push(line, piece.lineEnds?.[i] ?? piece.end)) {
        lines.push(out.data);
        end = out.end;
      }
    }
    if (lines.length > 0) this.emitPiece(tailer, { ...packLines(lines), end });
  }

  private emitPiece(tailer: FileTailer, piece: SplitPiece): void {
    const ticket = tailer.acks.add(piece.end);
    const batch: LineBatch = {
      data: piece.data,
      offsets: piece.offsets,
      meta: {
        sourceId: this.id,
        sourceType: 'file',
        file: tailer.path,
        host: this.host,
        timestampMs: Date.now(),
        format: 'text',
      },
    };
    events.linesReceived(this.context.telemetry, this.id, piece.offsets.length - 1, piece.data.byteLength);
    const file = tailer.path;
    // Read before emit: the consumer may transfer the buffer away, leaving byteLength 0.
    const bytes = piece.data.byteLength;
    this.inFlightBytes += bytes;
    let sent: Promise<void>;
    try {
      sent = this.context.emit(batch);
    } catch (err) {
      sent = Promise.reject(err);
    }
    const done: Promise<void> = sent
      .then(
        () => {
          if (tailer.acks.ack(ticket)) this.noteCheckpoint(tailer);
        },
        (err: unknown) => events.emitFailed(this.context.telemetry, this.id, file, err),
      )
      .finally(() => {
        this.inFlight.delete(done);
        this.inFlightBytes -= bytes;
        this.kick();
        this.checkReplayDone();
      });
    this.inFlight.add(done);
  }

  private noteCheckpoint(tailer: FileTailer): void {
    if (this.checkpointer === null) return;
    if (!tailer.isOpen && !tailer.suspended && !tailer.complete && tailer.draining && tailer.acks.pending === 0) {
      // Gone from every matched path and fully delivered: keeping its entry would only let a new
      // file that reuses the inode resume at a stale offset.
      this.checkpointer.delete(tailer.key);
      return;
    }
    if (this.tailers.get(tailer.key) !== tailer && this.tailers.has(tailer.key)) return;
    this.checkpointer.set(tailer.fingerprint, tailer.path, tailer.acks.position);
  }

  private async writeCheckpoints(): Promise<void> {
    if (this.checkpointer === null) return;
    try {
      await this.checkpointer.flush();
    } catch (err) {
      events.checkpointWriteFailed(this.context.telemetry, this.id, this.checkpointer.file, err);
    }
  }

  private checkReplayDone(): void {
    if (this.context.mode !== 'replay' || !this.replayScanned) return;
    if (this.tailers.size > 0 || this.pumpRun !== null) return;
    this.resolveExhausted();
    if (this.inFlight.size === 0) this.resolveFinished();
  }

  /** Expands the globs; opens new files; marks tracked files found nowhere as draining. */
  private scan(initial: boolean, full = true): Promise<void> {
    this.scanFull ||= full;
    if (this.scanRun !== null) {
      this.scanAgain = true;
      return this.scanRun;
    }
    this.scanRun = (async () => {
      do {
        this.scanAgain = false;
        const fullScan = this.scanFull || initial;
        this.scanFull = false;
        await this.scanOnce(initial, fullScan);
      } while (this.scanAgain && !this.stopping);
    })().finally(() => {
      this.scanRun = null;
    });
    return this.scanRun;
  }

  /**
   * `full`: stat every path. Otherwise (the periodic rescan) a path whose tracked file was seen
   * there by a recent stat is taken as unchanged: rotations are found by watch events (which ask
   * for a full scan) and by the per-file checks of `tick`.
   */
  private async scanOnce(initial: boolean, full: boolean): Promise<void> {
    if (this.stopping) return;
    let paths: string[];
    try {
      paths = full ? await this.discovery.scan() : await this.discovery.scanIfChanged(GLOB_FULL_RESCAN_MS);
      this.retryWatches();
    } catch (err) {
      events.globFailed(this.context.telemetry, this.id, err);
      return;
    }
    // The periodic rescan of an unchanged tree: the same paths as the last rescan, which found
    // nothing to do, and the same files tracked. Each tracked file's own path check is `tick`'s.
    const quiet = this.quietScan;
    this.quietScan = null;
    if (!full && quiet !== null && quiet.paths === paths && quiet.tracked === this.tailers.size && this.refused.size === 0) {
      this.quietScan = quiet;
      return;
    }
    this.rescanWalks++;
    const seen = new Set<FileTailer>();
    let opened = false;
    let statted = false;
    const now = Date.now();
    for (const file of paths) {
      if (this.stopping) return;
      const byPath = this.byPath.get(file);
      if (!full && byPath !== undefined && byPath.path === file && !byPath.rekey && now - byPath.verifiedMs < this.checkInterval(byPath, now)) {
        seen.add(byPath);
        continue;
      }
      let stats;
      statted = true;
      try {
        stats = await stat(file, { bigint: true });
      } catch {
        continue; // Gone between listing and stat: the next scan settles it.
      }
      // Only regular files: opening a FIFO for reading would block a libuv thread until a writer comes.
      if (!stats.isFile()) continue;
      const known = this.byInode.get(inodeKey(stats));
      if (known !== undefined) {
        seen.add(known);
        known.verifiedMs = now;
        if (known.path !== file) {
          if (this.byPath.get(known.path) === known) this.byPath.delete(known.path);
          known.path = file;
          this.byPath.set(file, known);
        }
        known.draining = false;
        if (known.rekey) await this.rekey(known);
        continue;
      }
      if (this.config.ignoreOlderSecs !== undefined && now - Number(stats.mtimeMs) > this.config.ignoreOlderSecs * 1000) continue;
      // A path that could not be followed (unreadable, too short to fingerprint, a duplicate of a
      // file still tracked) is opened again only once it changed: not on every rescan.
      const stamp = `${inodeKey(stats)}:${stats.size}:${stats.mtimeNs}:${stats.ctimeNs}`;
      const refused = this.refused.get(file);
      if (refused !== undefined && refused.stamp === stamp && (refused.duplicateOf === undefined || this.tailers.has(refused.duplicateOf))) continue;
      this.refused.delete(file);
      const tailer = await this.openTailer(file, initial, stamp);
      if (tailer !== null) {
        seen.add(tailer);
        opened = true;
      }
    }
    if (this.refused.size > 0) {
      const listed = new Set(paths);
      for (const file of [...this.refused.keys()]) if (!listed.has(file)) this.refused.delete(file);
    }
    for (const tailer of [...this.tailers.values()]) {
      if (seen.has(tailer)) continue;
      if (tailer.complete) {
        // A finished archive that left the matched paths: nothing more to read or keep.
        this.forget(tailer);
        if (tailer.acks.pending === 0) this.checkpointer?.delete(tailer.key);
      } else if (!tailer.draining) {
        tailer.draining = true;
        tailer.drainingSinceMs = now;
        tailer.poke = true;
        opened = true;
      }
    }
    if (!full && !statted && !opened && this.refused.size === 0) this.quietScan = { paths, tracked: this.tailers.size };
    if (initial && this.checkpointer !== null) {
      // Entries for files not found at start-up are dropped, for the same inode-reuse reason.
      const keys = new Set([...this.tailers.keys()]);
      for (const key of this.checkpointer.keys()) if (!keys.has(key)) this.checkpointer.delete(key);
    }
    if (opened) this.kick();
  }

  /** After a truncation, a checksum fingerprint is taken again once the file holds its first lines. */
  private async rekey(tailer: FileTailer): Promise<void> {
    if (this.config.fingerprint.strategy !== 'checksum') {
      tailer.rekey = false;
      return;
    }
    let opened;
    try {
      opened = await openFingerprinted(tailer.path, this.config.fingerprint, this.config.maxLineBytes);
    } catch {
      return;
    }
    if (opened === null) return;
    await opened.handle.close().catch(() => undefined);
    if (opened.inode !== tailer.inode) return;
    tailer.rekey = false;
    if (opened.key === tailer.key || this.tailers.has(opened.key)) return;
    // The old fingerprint now names the old content, which copytruncate left in a copy: keep its
    // position (and its checkpoint entry) so that the copy, if matched, resumes instead of re-reading.
    this.forget(tailer);
    if (tailer.truncatedAt !== null) this.retired.set(tailer.key, tailer.truncatedAt);
    tailer.truncatedAt = null;
    tailer.key = opened.key;
    tailer.fingerprint = opened.fingerprint;
    this.track(tailer);
    this.noteCheckpoint(tailer);
  }

  private track(tailer: FileTailer): void {
    this.tailers.set(tailer.key, tailer);
    this.byInode.set(tailer.inode, tailer);
    this.byPath.set(tailer.path, tailer);
  }

  private async openTailer(file: string, initial: boolean, stamp?: string): Promise<FileTailer | null> {
    let opened;
    try {
      opened = await openFingerprinted(file, this.config.fingerprint, this.config.maxLineBytes);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      if (stamp !== undefined) this.refused.set(file, { stamp });
      if (!this.unreadable.has(file)) {
        this.unreadable.add(file);
        events.fileOpenFailed(this.context.telemetry, this.id, file, err);
      }
      return null;
    }
    this.unreadable.delete(file);
    if (opened === null) {
      if (stamp !== undefined) this.refused.set(file, { stamp });
      if (!this.waiting.has(file)) {
        this.waiting.add(file);
        events.fileTooShort(this.context.telemetry, this.id, file);
      }
      return null;
    }
    this.waiting.delete(file);
    if (this.tailers.has(opened.key) || this.byInode.has(opened.inode) || this.stopping) {
      await opened.handle.close().catch(() => undefined);
      const other = this.tailers.get(opened.key);
      if (other !== undefined && other.inode !== opened.inode && stamp !== undefined) this.refused.set(file, { stamp, duplicateOf: opened.key });
      if (other !== undefined && other.inode !== opened.inode && !this.duplicates.has(file)) {
        // Vector's checksum rule: same first lines, same file. Only the one found first is read.
        this.duplicates.add(file);
        events.fileDuplicate(this.context.telemetry, this.id, file, other.path);
      }
      return null;
    }
    const size = Number(opened.stats.size);
    let position: number;
    let why: string;
    const retired = this.retired.get(opened.key);
    const checkpoint = this.checkpointer?.get(opened.key);
    // A gzip position counts decompressed bytes: it may well exceed the archive's size.
    const fits = (p: number): boolean => opened.gzip || p <= size;
    if (this.context.mode === 'replay') {
      position = 0;
      why = 'replay';
    } else if (retired !== undefined) {
      position = fits(retired) ? retired : 0;
      why = 'seen earlier in this run';
    } else if (checkpoint !== undefined) {
      if (fits(checkpoint.position)) {
        position = checkpoint.position;
        why = 'checkpoint';
      } else {
        position = 0;
        why = 'checkpoint beyond end: truncated';
        events.fileTruncated(this.context.telemetry, this.id, file);
      }
    } else if (initial && this.config.readFrom === 'end' && !opened.gzip) {
      position = size;
      why = 'read_from = end';
    } else {
      position = 0;
      why = initial ? 'read_from = beginning' : 'new file';
    }
    this.retired.delete(opened.key);
    const tailer = new FileTailer(opened, file, position, this.splitOptions, this.internal.readChunkBytes);
    this.openCount++;
    this.track(tailer);
    if (this.config.multiline !== undefined) this.aggregators.set(tailer, new LineAggregator(this.config.multiline, position));
    this.noteCheckpoint(tailer);
    events.fileAdded(this.context.telemetry, this.id, file, position, why);
    // Over the descriptor limit: keep the state, close the descriptor, reopen when there is room.
    if (this.openCount > this.internal.maxOpenFiles) await this.suspendTailer(tailer);
    return tailer;
  }

  /** Poll fallback: truncation, growth and rotation checks; timers; the descriptor limit; a read round. */
  private checkInterval(tailer: FileTailer, now: number): number {
    // Idle: between 3/4 of idleCheckMs and idleCheckMs, by the file's phase, so that files gone idle
    // at the same time are not all checked in the same tick.
    if (now - tailer.lastDataMs < this.internal.idleAfterMs) return this.internal.pollIntervalMs;
    return this.internal.idleCheckMs * (0.75 + tailer.checkPhase / 4);
  }

  private async tick(force = false): Promise<void> {
    this.tickForced ||= force;
    if (this.ticking || this.stopping) return;
    this.ticking = true;
    force = this.tickForced;
    this.tickForced = false;
    try {
      const now = Date.now();
      if (!force && this.quietWalkMs !== null && now - this.quietWalkMs < this.internal.quietPollIntervalMs) return;
      let active = this.config.removeAfterSecs !== undefined;
      const wakes = this.wakes;
      this.pollWalks++;
      // The size and path checks of this tick run concurrently, awaited once after the loop: one
      // after the other, each was a wake-up of this thread (and a thread switch) per syscall, which
      // was most of the CPU of 1,000 idle files.
      const checks: Promise<CheckOutcome>[] = [];
      for (const tailer of [...this.tailers.values()]) {
        if (this.stopping) return;
        if (tailer.complete) continue;
        if (tailer.busy) {
          active = true;
          continue;
        }
        if (tailer.suspended) {
          if (tailer.poke) active = true;
          else if (force || now - tailer.lastCheckMs >= this.checkInterval(tailer, now)) {
            tailer.lastCheckMs = now;
            checks.push(this.checkSuspended(tailer, now));
          }
          continue;
        }
        if (!tailer.isOpen) continue;
        if (tailer.draining) {
          active = true;
          if (now - tailer.drainingSinceMs >= this.config.rotateWaitSecs * 1000) {
            // Given up: an unfinished last line is a fragment, not sent (the warning says so).
            events.rotateWaitElapsed(this.context.telemetry, this.id, tailer.path, this.config.rotateWaitSecs);
            await this.retire(tailer);
          }
          continue;
        }
        const idle = now - tailer.lastDataMs >= this.internal.idleAfterMs;
        if (force || !idle || tailer.poke || now - tailer.lastCheckMs >= this.checkInterval(tailer, now)) {
          tailer.lastCheckMs = now;
          checks.push(this.checkOpen(tailer, now));
        }
        if (tailer.heldBytes > 0 && !tailer.flushPartial && now - tailer.lastDataMs >= this.internal.partialLineFlushMs) {
          // Sent by the read loop at end of file, never from here: a read may be in progress.
          tailer.flushPartial = true;
          tailer.poke = true;
        }
        const aggregator = this.aggregators.size > 0 ? this.aggregators.get(tailer) : undefined;
        const expired = aggregator?.expire(now);
        if (expired != null) this.emitPiece(tailer, { data: expired.data, offsets: Uint32Array.of(0, expired.data.byteLength), end: expired.end });
        if (!idle || tailer.poke || tailer.heldBytes > 0 || aggregator?.pending === true) active = true;
        if (this.config.removeAfterSecs !== undefined) await this.maybeRemove(tailer, now);
      }
      const outcomes = await Promise.all(checks);
      const moved = outcomes.includes('moved');
      const quiet = !active && !moved && !outcomes.includes('changed') && this.wakes === wakes;
      this.quietWalkMs = quiet ? now : null;
      await this.enforceOpenLimit();
      if (moved) await this.scan(false);
      this.kick();
    } finally {
      this.ticking = false;
    }
  }

  /** A file was read or reported changed: the poll goes back to every POLL_INTERVAL_MS. */
  private wake(): void {
    this.wakes++;
    this.quietWalkMs = null;
  }

  /**
   * Whether an open file grew or was truncated, and whether its path still names it: one stat of
   * the path, whose size is the descriptor's while the inode is the same; the descriptor itself
   * is asked (fstat) only when the path names another file or none. `moved`: the path names
   * another file or none (a rescan then finds where this one went).
   */
  private async checkOpen(tailer: FileTailer, now: number): Promise<CheckOutcome> {
    let atPath: BigIntStats | undefined;
    try {
      atPath = await stat(tailer.path, { bigint: true });
    } catch {
      atPath = undefined;
    }
    const same = atPath !== undefined && inodeKey(atPath) === tailer.inode;
    let change: SizeChange;
    try {
      change = same ? tailer.sizeChange(atPath!.size) : await tailer.probe();
    } catch {
      // A failing fstat shows up as a read error on the next read.
      change = 'same';
    }
    if (change === 'truncated') events.fileTruncated(this.context.telemetry, this.id, tailer.path);
    if (change !== 'same') tailer.poke = true;
    if (!same) return 'moved';
    tailer.verifiedMs = now;
    return change === 'same' ? 'same' : 'changed';
  }

  /** A closed (suspended) file that changed at its path is poked, to be reopened and read. */
  private async checkSuspended(tailer: FileTailer, now: number): Promise<CheckOutcome> {
    if (await tailer.changedAtPath()) {
      tailer.poke = true;
      return 'changed';
    }
    tailer.verifiedMs = now;
    return 'same';
  }

  /** `remove_after_secs`: a file read to its end, fully delivered and unchanged for that long is deleted. */
  private async maybeRemove(tailer: FileTailer, now: number): Promise<void> {
    const wait = this.config.removeAfterSecs! * 1000;
    if (tailer.eofSinceMs === null || now - tailer.eofSinceMs < wait) return;
    if (tailer.acks.pending > 0 || tailer.heldBytes > 0 || this.aggregators.get(tailer)?.pending === true) return;
    try {
      if ((await tailer.probe()) !== 'same') return;
      if (inodeKey(await stat(tailer.path, { bigint: true })) !== tailer.inode) return;
      await unlink(tailer.path);
    } catch (err) {
      events.fileRemoveFailed(this.context.telemetry, this.id, tailer.path, err);
      tailer.eofSinceMs = now;
      return;
    }
    events.fileRemoved(this.context.telemetry, this.id, tailer.path);
    tailer.draining = true;
    tailer.drainingSinceMs = now;
    tailer.poke = true;
  }

  /**
   * Keeps open descriptors within `maxOpenFiles`: while over it, or while closed files wait to be
   * read, the files at end of file that were idle the longest are closed (up to half the limit
   * per tick is freed for the waiting ones).
   */
  private async enforceOpenLimit(): Promise<void> {
    const max = this.internal.maxOpenFiles;
    let waiting = 0;
    for (const t of this.tailers.values()) if (t.suspended && t.poke) waiting++;
    const target = max - Math.min(waiting, Math.max(1, Math.floor(max / 2)));
    if (this.openCount <= target) return;
    const idle = [...this.tailers.values()]
      .filter((t) => t.isOpen && !t.gzip && !t.busy && !t.draining && !t.poke && t.eofSinceMs !== null)
      .sort((a, b) => a.lastDataMs - b.lastDataMs);
    for (const tailer of idle) {
      if (this.openCount <= target) break;
      await this.suspendTailer(tailer);
    }
  }

  /**
   * Watches each base directory with fs.watch (inotify on Linux: one watch per directory, not per
   * file), and its subdirectories as deep as a glob can reach. A `change` event wakes the tailer of
   * that path; a `rename` event (created, deleted or renamed entry) of a matched or tracked path
   * rescans the globs and checks every file; a new directory within reach is watched too.
   */
  private startWatching(): void {
    const deep = this.config.include.some((g) => g.includes('**'));
    const depth = deep ? Number.POSITIVE_INFINITY : Math.max(0, ...this.config.include.map(globDepth));
    this.watchDepth = depth;
    for (const base of this.discovery.baseDirectories()) void this.watchTree(base, depth);
  }

  private watchDepth = 0;

  private async watchTree(dir: string, depthLeft: number): Promise<void> {
    if (this.stopping || this.dirWatchers.has(dir)) return;
    let watcher: FSWatcher;
    try {
      watcher = watch(dir, { persistent: true }, (type, name) => this.onDirEvent(dir, depthLeft, type, name));
    } catch (err) {
      // A base directory that does not exist yet is watched once a scan finds it (retryWatches).
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') events.watcherFailed(this.context.telemetry, this.id, err);
      return;
    }
    watcher.on('error', (err: unknown) => {
      events.watcherFailed(this.context.telemetry, this.id, err);
      watcher.close();
      if (this.dirWatchers.get(dir) === watcher) this.dirWatchers.delete(dir);
    });
    this.dirWatchers.set(dir, watcher);
    if (depthLeft <= 0) return;
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      if (entry.isDirectory()) await this.watchTree(path.join(dir, entry.name), depthLeft - 1);
    }
  }

  /** Base directories created (or re-created) since: watched from the next scan on. */
  private retryWatches(): void {
    if (this.stopping || this.timers.length === 0) return;
    for (const base of this.discovery.baseDirectories()) if (!this.dirWatchers.has(base)) void this.watchTree(base, this.watchDepth);
  }

  private onDirEvent(dir: string, depthLeft: number, type: string, name: string | Buffer | null): void {
    if (this.stopping) return;
    if (name === null) {
      void this.scan(false);
      void this.tick(true);
      return;
    }
    const file = path.join(dir, name.toString());
    const tailer = this.byPath.get(file);
    if (type === 'change') {
      if (tailer !== undefined) {
        tailer.poke = true;
        this.wake();
        this.kick();
      }
      return;
    }
    if (tailer !== undefined || this.discovery.matches(file)) {
      void this.scan(false);
      void this.tick(true);
    } else if (depthLeft > 0) {
      void stat(file).then(
        (s) => {
          if (s.isDirectory()) void this.watchTree(file, depthLeft - 1).then(() => this.scan(false));
        },
        () => undefined,
      );
    }
  }
}

/** A piece's lines transcoded to UTF-8; offsets into the file (`end`, `lineEnds`) are kept. */
function transcode(piece: SplitPiece, charset: Charset): SplitPiece {
  const lines: Uint8Array[] = [];
  for (let i = 0; i + 1 < piece.offsets.length; i++) lines.push(lineToUtf8(piece.data.subarray(piece.offsets[i], piece.offsets[i + 1]), charset));
  return { ...packLines(lines), end: piece.end, ...(piece.lineEnds === undefined ? {} : { lineEnds: piece.lineEnds }) };
}

/** Directory levels below the base a non-`**` glob can reach (`/a/*\/*.log` -> 1). */
function globDepth(pattern: string): number {
  const { glob, isGlob } = picomatch.scan(pattern);
  return isGlob ? Math.max(0, glob.split('/').length - 1) : 0;
}
