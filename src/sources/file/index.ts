import os from 'node:os';
import path from 'node:path';
import { stat } from 'node:fs/promises';
import { watch, type FSWatcher } from 'chokidar';
import picomatch from 'picomatch';
import type { Source, SourceContext, SourceType } from '../../components.js';
import type { ConfigReader } from '../../config/reader.js';
import type { LineBatch } from '../../event.js';
import { Checkpointer, checkpointsPath, loadCheckpoints } from './checkpoints.js';
import { Discovery } from './discovery.js';
import * as events from './events.js';
import { fingerprintKey, fingerprintOf } from './fingerprint.js';
import type { SplitPiece, SplitResult } from './lines.js';
import { FileTailer, openFile } from './tailer.js';

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
/** Bytes asked of the OS per read. Much larger than Vector's 2048 for throughput. */
export const READ_CHUNK_BYTES = 256 * 1024;
/** Minimum time between two scans of the include globs. Vector's default. */
export const DEFAULT_GLOB_MINIMUM_COOLDOWN_MS = 1000;
/** Vector's default line delimiter. */
export const DEFAULT_LINE_DELIMITER = '\n';
/** Vector's default field name for the file path. */
export const DEFAULT_FILE_KEY = 'file';
/** Vector's default field name for the host (the global log schema's `host_key`). */
export const DEFAULT_HOST_KEY = 'host';
/** Most lines in one batch. */
export const MAX_BATCH_LINES = 1000;
/** Batches of this source in flight downstream at most; when reached, reading pauses (backpressure). */
export const MAX_IN_FLIGHT_BATCHES = 16;
/** How often open files are checked for new data, rotation and truncation, besides watch events. */
export const POLL_INTERVAL_MS = 250;
/** How often changed checkpoints are written. */
export const CHECKPOINT_INTERVAL_MS = 1000;

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
  /** Per-source override of the global `data_dir`. */
  dataDir: string | undefined;
  /** Not config keys: knobs for tests and benchmarks (shrink them to hit chunk and batch edges). */
  internal: FileSourceInternals;
}

export interface FileSourceInternals {
  readChunkBytes: number;
  maxBatchLines: number;
  maxInFlightBatches: number;
  pollIntervalMs: number;
  checkpointIntervalMs: number;
}

export const DEFAULT_INTERNALS: FileSourceInternals = {
  readChunkBytes: READ_CHUNK_BYTES,
  maxBatchLines: MAX_BATCH_LINES,
  maxInFlightBatches: MAX_IN_FLIGHT_BATCHES,
  pollIntervalMs: POLL_INTERVAL_MS,
  checkpointIntervalMs: CHECKPOINT_INTERVAL_MS,
};

export function parseFileSourceConfig(reader: ConfigReader): FileSourceConfig {
  reader.accept('type');
  if (!reader.has('include')) reader.problem('missing required key "include"');
  const include = reader.stringArray('include');
  if (reader.has('include') && include.length === 0) reader.problem('invalid value for "include": expected at least one path or glob, actual: []');
  const lineDelimiter = reader.string('line_delimiter', DEFAULT_LINE_DELIMITER);
  if (lineDelimiter.length === 0) reader.problem('invalid value for "line_delimiter": expected a non-empty string, actual: ""');
  const dataDir = reader.string('data_dir');
  return {
    include,
    exclude: reader.stringArray('exclude'),
    readFrom: reader.oneOf('read_from', ['beginning', 'end'] as const, DEFAULT_READ_FROM),
    ignoreCheckpoints: reader.boolean('ignore_checkpoints', false),
    maxLineBytes: reader.number('max_line_bytes', DEFAULT_MAX_LINE_BYTES, { integer: true, min: 1 }),
    maxReadBytes: reader.number('max_read_bytes', DEFAULT_MAX_READ_BYTES, { integer: true, min: 1 }),
    globMinimumCooldownMs: reader.number('glob_minimum_cooldown_ms', DEFAULT_GLOB_MINIMUM_COOLDOWN_MS, { integer: true, min: 0 }),
    lineDelimiter: lineDelimiter.length === 0 ? DEFAULT_LINE_DELIMITER : lineDelimiter,
    hostKey: reader.string('host_key', DEFAULT_HOST_KEY),
    fileKey: reader.string('file_key', DEFAULT_FILE_KEY),
    dataDir: dataDir === undefined ? undefined : path.resolve(dataDir),
    internal: { ...DEFAULT_INTERNALS },
  };
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
  private readonly splitOptions: { delimiter: Uint8Array; maxLineBytes: number; maxBatchLines: number };
  /** Open files, by fingerprint key. */
  private readonly tailers = new Map<string, FileTailer>();
  /** Read offsets of files closed during this run, so a file seen again resumes where it was. */
  private readonly retired = new Map<string, number>();
  /** Paths that failed to open (logged once each until they open). */
  private readonly unreadable = new Set<string>();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly timers: NodeJS.Timeout[] = [];
  private watcher: FSWatcher | null = null;
  private stopping = false;
  private stopRun: Promise<void> | null = null;
  private pumpRun: Promise<void> | null = null;
  private pumpAgain = false;
  private scanRun: Promise<void> | null = null;
  private scanAgain = false;
  private ticking = false;
  private replayScanned = false;
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
    const delimiter = new TextEncoder().encode(config.lineDelimiter);
    this.splitOptions = { delimiter, maxLineBytes: config.maxLineBytes, maxBatchLines: this.internal.maxBatchLines };
    this.buffer = new Uint8Array(this.internal.readChunkBytes + config.maxLineBytes + delimiter.byteLength);
    this.checkpointer =
      context.mode === 'tail' ? new Checkpointer(checkpointsPath(config.dataDir ?? context.dataDir, context.id)) : null;
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
      this.checkpointer.replaceAll(loaded.checkpoints);
    }
    await this.scan(true);
    this.startWatching();
    this.timers.push(
      setInterval(() => void this.tick(), this.internal.pollIntervalMs),
      setInterval(() => void this.scan(false), Math.max(this.config.globMinimumCooldownMs, 10)),
      setInterval(() => void this.writeCheckpoints(), this.internal.checkpointIntervalMs),
    );
    this.kick();
  }

  finished(): Promise<void> {
    return this.finishedPromise;
  }

  stop(): Promise<void> {
    this.stopRun ??= this.shutdown();
    return this.stopRun;
  }

  private async shutdown(): Promise<void> {
    this.stopping = true;
    for (const timer of this.timers) clearInterval(timer);
    const watcher = this.watcher;
    this.watcher = null;
    await watcher?.close().catch(() => undefined);
    await this.scanRun;
    await this.pumpRun;
    // Lines without their delimiter yet are sent now: nothing else will ever send them.
    for (const tailer of this.tailers.values()) this.deliver(tailer, tailer.flush());
    while (this.inFlight.size > 0) await Promise.all(this.inFlight);
    await this.writeCheckpoints();
    for (const tailer of this.tailers.values()) await tailer.close().catch(() => undefined);
    this.tailers.clear();
    this.resolveFinished();
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
    return this.inFlight.size >= this.internal.maxInFlightBatches;
  }

  private async pump(): Promise<void> {
    do {
      this.pumpAgain = false;
      let progress = true;
      while (progress && !this.stopping && !this.windowFull()) {
        progress = false;
        for (const tailer of [...this.tailers.values()]) {
          if (this.stopping || this.windowFull()) break;
          if (await this.readTurn(tailer)) progress = true;
        }
      }
    } while (this.pumpAgain && !this.stopping && !this.windowFull());
  }

  /** Reads one turn of one file. Returns whether anything was read. */
  private async readTurn(tailer: FileTailer): Promise<boolean> {
    const chunk = this.internal.readChunkBytes;
    const budget = Math.max(this.config.maxReadBytes, chunk);
    let total = 0;
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
        if (tailer.draining || this.context.mode === 'replay') {
          this.deliver(tailer, tailer.flush());
          await this.retire(tailer);
          if (tailer.draining) events.fileUnwatched(this.context.telemetry, this.id, tailer.path);
        }
        break;
      }
      this.deliver(tailer, outcome.result);
      total += outcome.bytesRead;
      if (total >= budget) break;
    }
    return total > 0;
  }

  private async retire(tailer: FileTailer): Promise<void> {
    this.tailers.delete(tailer.key);
    this.retired.set(tailer.key, tailer.position);
    await tailer.close().catch(() => undefined);
    this.noteCheckpoint(tailer);
  }

  private deliver(tailer: FileTailer, result: SplitResult): void {
    for (const piece of result.pieces) this.emitPiece(tailer, piece);
    if (result.end > tailer.acks.lastEnd) {
      // Only discarded lines after the last batch: nothing to wait for, the offset may move now.
      tailer.acks.add(result.end, true);
      this.noteCheckpoint(tailer);
    }
    if (result.discarded > 0) {
      events.linesTooLong(this.context.telemetry, this.id, tailer.path, result.discarded, this.config.maxLineBytes);
    }
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
        this.kick();
        this.checkReplayDone();
      });
    this.inFlight.add(done);
  }

  private noteCheckpoint(tailer: FileTailer): void {
    if (this.checkpointer === null) return;
    if (!tailer.isOpen && tailer.draining && tailer.acks.pending === 0) {
      // Gone from every matched path and fully delivered: keeping its entry would only let a new
      // file that reuses the inode resume at a stale offset.
      this.checkpointer.delete(tailer.key);
      return;
    }
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
    if (this.tailers.size === 0 && this.inFlight.size === 0 && this.pumpRun === null) this.resolveFinished();
  }

  /** Expands the globs; opens new files; marks open files found nowhere as draining. */
  private scan(initial: boolean): Promise<void> {
    if (this.scanRun !== null) {
      this.scanAgain = true;
      return this.scanRun;
    }
    this.scanRun = (async () => {
      do {
        this.scanAgain = false;
        await this.scanOnce(initial);
      } while (this.scanAgain && !this.stopping);
    })().finally(() => {
      this.scanRun = null;
    });
    return this.scanRun;
  }

  private async scanOnce(initial: boolean): Promise<void> {
    if (this.stopping) return;
    let paths: string[];
    try {
      paths = await this.discovery.scan();
    } catch (err) {
      events.globFailed(this.context.telemetry, this.id, err);
      return;
    }
    const seen = new Set<string>();
    let opened = false;
    for (const file of paths) {
      if (this.stopping) return;
      let key: string;
      try {
        const stats = await stat(file, { bigint: true });
        // Only regular files: opening a FIFO for reading would block a libuv thread until a writer comes.
        if (!stats.isFile()) continue;
        key = fingerprintKey(fingerprintOf(stats));
      } catch {
        continue; // Gone between listing and stat: the next scan settles it.
      }
      const known = this.tailers.get(key);
      if (known !== undefined) {
        seen.add(key);
        known.path = file;
        known.draining = false;
        continue;
      }
      if (seen.has(key)) continue; // Another path (hard link) of a file already seen.
      if (await this.openTailer(file, initial)) {
        seen.add(key);
        opened = true;
      }
    }
    for (const tailer of this.tailers.values()) {
      if (!seen.has(tailer.key)) tailer.draining = true;
    }
    if (initial && this.checkpointer !== null) {
      // Entries for files not found at start-up are dropped, for the same inode-reuse reason.
      for (const key of this.checkpointer.keys()) if (!seen.has(key)) this.checkpointer.delete(key);
    }
    if (opened) this.kick();
  }

  private async openTailer(file: string, initial: boolean): Promise<boolean> {
    let opened;
    try {
      opened = await openFile(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      if (!this.unreadable.has(file)) {
        this.unreadable.add(file);
        events.fileOpenFailed(this.context.telemetry, this.id, file, err);
      }
      return false;
    }
    this.unreadable.delete(file);
    if (this.tailers.has(opened.key) || this.stopping) {
      await opened.handle.close().catch(() => undefined);
      return this.tailers.has(opened.key);
    }
    const size = Number(opened.stats.size);
    let position: number;
    let why: string;
    const retired = this.retired.get(opened.key);
    const checkpoint = this.checkpointer?.get(opened.key);
    if (this.context.mode === 'replay') {
      position = 0;
      why = 'replay';
    } else if (retired !== undefined) {
      position = retired <= size ? retired : 0;
      why = 'seen earlier in this run';
    } else if (checkpoint !== undefined) {
      if (checkpoint.position <= size) {
        position = checkpoint.position;
        why = 'checkpoint';
      } else {
        position = 0;
        why = 'checkpoint beyond end: truncated';
        events.fileTruncated(this.context.telemetry, this.id, file);
      }
    } else if (initial && this.config.readFrom === 'end') {
      position = size;
      why = 'read_from = end';
    } else {
      position = 0;
      why = initial ? 'read_from = beginning' : 'new file';
    }
    this.retired.delete(opened.key);
    const tailer = new FileTailer(opened, file, position, this.splitOptions);
    this.tailers.set(tailer.key, tailer);
    this.noteCheckpoint(tailer);
    events.fileAdded(this.context.telemetry, this.id, file, position, why);
    return true;
  }

  /** Poll fallback: truncation and rotation checks, then a read round. */
  private async tick(): Promise<void> {
    if (this.ticking || this.stopping) return;
    this.ticking = true;
    try {
      let moved = false;
      for (const tailer of [...this.tailers.values()]) {
        if (!tailer.isOpen || tailer.draining) continue;
        try {
          if (await tailer.checkTruncated()) events.fileTruncated(this.context.telemetry, this.id, tailer.path);
        } catch {
          // A failing fstat shows up as a read error on the next read.
        }
        try {
          const current = fingerprintKey(fingerprintOf(await stat(tailer.path, { bigint: true })));
          if (current !== tailer.key) moved = true;
        } catch {
          moved = true;
        }
      }
      if (moved) await this.scan(false);
      this.kick();
    } finally {
      this.ticking = false;
    }
  }

  private startWatching(): void {
    const bases = this.discovery.baseDirectories();
    const deep = this.config.include.some((g) => g.includes('**'));
    const depth = deep ? undefined : Math.max(0, ...this.config.include.map(globDepth));
    const watcher = watch(bases, { ignoreInitial: true, persistent: true, ...(depth === undefined ? {} : { depth }) });
    watcher.on('add', (file: string) => {
      if (this.discovery.matches(path.resolve(file))) void this.scan(false);
    });
    watcher.on('unlink', () => void this.tick());
    watcher.on('change', () => this.kick());
    watcher.on('error', (err: unknown) => events.watcherFailed(this.context.telemetry, this.id, err));
    this.watcher = watcher;
  }
}

/** Directory levels below the base a non-`**` glob can reach (`/a/*\/*.log` -> 1). */
function globDepth(pattern: string): number {
  const { glob, isGlob } = picomatch.scan(pattern);
  return isGlob ? Math.max(0, glob.split('/').length - 1) : 0;
}
