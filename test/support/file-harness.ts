/**
 * Helpers for the file source tests: temp dirs removed after the test, a recording downstream
 * whose acknowledgements can be held, and a source built from config overrides.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { onTestFinished } from 'vitest';
import type { RunMode, Source } from '../../src/components.js';
import type { LineBatch } from '../../src/event.js';
import {
  DEFAULT_CHARSET,
  DEFAULT_FILE_KEY,
  DEFAULT_GLOB_MINIMUM_COOLDOWN_MS,
  DEFAULT_HOST_KEY,
  DEFAULT_INTERNALS,
  DEFAULT_LINE_DELIMITER,
  DEFAULT_MAX_LINE_BYTES,
  DEFAULT_MAX_READ_BYTES,
  DEFAULT_ROTATE_WAIT_SECS,
  fileSource,
  type FileSourceConfig,
  type FileSourceInternals,
} from '../../src/sources/file/index.js';
import { DEFAULT_FINGERPRINT } from '../../src/sources/file/fingerprint.js';
import { Telemetry, type LogRecord } from '../../src/telemetry.js';

export async function fileTempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'logwasm-file-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A downstream that records every batch; `hold()` keeps acknowledgements until `release()`. */
export class RecordingDownstream {
  readonly batches: LineBatch[] = [];
  private holding = false;
  private readonly held: Array<() => void> = [];

  readonly emit = (batch: LineBatch): Promise<void> => {
    this.batches.push(batch);
    if (!this.holding) return Promise.resolve();
    return new Promise<void>((resolve) => this.held.push(resolve));
  };

  hold(): void {
    this.holding = true;
  }

  get heldCount(): number {
    return this.held.length;
  }

  /** Acknowledges held batches by their index among the held ones (all when omitted), in the given order. */
  release(indexes?: number[]): void {
    const all = indexes ?? this.held.map((_, i) => i);
    for (const i of all) this.held[i]?.();
  }

  releaseAll(): void {
    this.holding = false;
    for (const resolve of this.held) resolve();
    this.held.length = 0;
  }

  /** Every line received so far, decoded (tests only; the source never makes strings). */
  lines(): string[] {
    const decoder = new TextDecoder();
    const out: string[] = [];
    for (const b of this.batches) {
      for (let i = 0; i + 1 < b.offsets.length; i++) out.push(decoder.decode(b.data.subarray(b.offsets[i], b.offsets[i + 1])));
    }
    return out;
  }

  /** Every line's bytes, for byte-exact comparisons. */
  rawLines(): Buffer[] {
    const out: Buffer[] = [];
    for (const b of this.batches) {
      for (let i = 0; i + 1 < b.offsets.length; i++) out.push(Buffer.from(b.data.subarray(b.offsets[i], b.offsets[i + 1])));
    }
    return out;
  }
}

export interface FileSourceHarness {
  source: Source;
  downstream: RecordingDownstream;
  telemetry: Telemetry;
  logs: LogRecord[];
}

export function fileConfig(include: string[], overrides: Partial<Omit<FileSourceConfig, 'internal'>> = {}, internal: Partial<FileSourceInternals> = {}): FileSourceConfig {
  return {
    include,
    exclude: [],
    readFrom: 'beginning',
    ignoreCheckpoints: false,
    maxLineBytes: DEFAULT_MAX_LINE_BYTES,
    maxReadBytes: DEFAULT_MAX_READ_BYTES,
    globMinimumCooldownMs: DEFAULT_GLOB_MINIMUM_COOLDOWN_MS,
    lineDelimiter: DEFAULT_LINE_DELIMITER,
    hostKey: DEFAULT_HOST_KEY,
    fileKey: DEFAULT_FILE_KEY,
    offsetKey: undefined,
    dataDir: undefined,
    fingerprint: DEFAULT_FINGERPRINT,
    ignoreOlderSecs: undefined,
    removeAfterSecs: undefined,
    rotateWaitSecs: DEFAULT_ROTATE_WAIT_SECS,
    oldestFirst: false,
    multiline: undefined,
    charset: DEFAULT_CHARSET,
    ...overrides,
    internal: { ...DEFAULT_INTERNALS, ...internal },
  };
}

/** Builds a real file source; stops it after the test if the test did not. */
export function buildFileSource(
  config: FileSourceConfig,
  options: { dataDir: string; mode?: RunMode; id?: string; downstream?: RecordingDownstream },
): FileSourceHarness {
  const logs: LogRecord[] = [];
  const telemetry = new Telemetry((r) => logs.push(r), 'debug');
  const downstream = options.downstream ?? new RecordingDownstream();
  const source = fileSource.build(config, {
    id: options.id ?? 'in',
    dataDir: options.dataDir,
    mode: options.mode ?? 'tail',
    telemetry,
    emit: downstream.emit,
  });
  onTestFinished(async () => {
    downstream.releaseAll();
    await source.stop();
  });
  return { source, downstream, telemetry, logs };
}
