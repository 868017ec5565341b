/**
 * `type = "file"`: writes every line to a file whose `path` is a template (strftime and
 * `{{ field }}`), as Vector's file sink does. `encoding.codec = "json"` writes the console sink's
 * Vector-shaped JSON events (the same rendering, imported from ../console.ts); `text` writes each
 * line's bytes. `compression = "gzip"` appends one gzip member per batch and file, which every
 * gunzip reads as one stream.
 *
 * A `write()` resolves once the batch's bytes were written to the file (handed to the OS), so a
 * replay into a file sink is complete on disk when it exits 0. Writes go out one batch at a time,
 * in order. Files stay open while used and are closed after `idle_timeout_secs` without writes.
 * A line whose path cannot be rendered (a missing field) or a failed open/write is counted as
 * an error and a discarded event and logged (rate-limited); it is never dropped silently.
 */
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import type { ComponentContext, Sink, SinkType } from '../../components.js';
import type { ConfigReader } from '../../config/reader.js';
import type { LineBatch } from '../../event.js';
import { COMPONENT_ERRORS, EVENTS_DISCARDED, EVENTS_SENT, type Telemetry } from '../../telemetry.js';
import { encodeJson, encodeText, eventOf } from '../console.js';
import { Template } from './template.js';

const gzipAsync = promisify(gzip);

export const FILE_CODECS = ['json', 'text'] as const;
export type FileCodec = (typeof FILE_CODECS)[number];
export const FILE_COMPRESSIONS = ['none', 'gzip'] as const;
export type FileCompression = (typeof FILE_COMPRESSIONS)[number];

/** `encoding.codec`: Vector requires it; logwasm defaults to JSON events, like the console sink. */
export const DEFAULT_FILE_CODEC: FileCodec = 'json';
/** `compression`: Vector's default. */
export const DEFAULT_FILE_COMPRESSION: FileCompression = 'none';
/** `idle_timeout_secs`: a file not written for this long is closed. Vector's default. */
export const DEFAULT_IDLE_TIMEOUT_SECS = 30;

/** Bytes written to files (after compression). */
export const FILE_SINK_SENT_BYTES = 'component_sent_bytes_total';

export interface FileSinkConfig {
  path: Template;
  codec: FileCodec;
  compression: FileCompression;
  idleTimeoutSecs: number;
}

export const fileSink: SinkType<FileSinkConfig> = {
  kind: 'sink',
  type: 'file',
  parse(reader: ConfigReader): FileSinkConfig {
    const rawPath = reader.requiredString('path');
    let template = Template.parse('');
    try {
      template = Template.parse(rawPath);
    } catch (error) {
      reader.problem(`invalid value for "path": ${(error as Error).message}, actual: ${JSON.stringify(rawPath)}`);
    }
    if (reader.has('path') && rawPath === '') reader.problem('invalid value for "path": expected a file path, actual: ""');
    let codec: FileCodec = DEFAULT_FILE_CODEC;
    const raw = reader.raw('encoding');
    if (typeof raw === 'string') {
      codec = reader.oneOf('encoding', FILE_CODECS, DEFAULT_FILE_CODEC);
    } else if (raw !== undefined) {
      const encoding = reader.table('encoding');
      codec = encoding.oneOf('codec', FILE_CODECS, DEFAULT_FILE_CODEC);
      // Vector's encoding options that do not change logwasm's output.
      encoding.accept('timestamp_format', 'except_fields', 'only_fields', 'json');
      encoding.finish();
    }
    reader.accept('acknowledgements', 'healthcheck', 'buffer', 'framing', 'internal_metrics');
    return {
      path: template,
      codec,
      compression: reader.oneOf('compression', FILE_COMPRESSIONS, DEFAULT_FILE_COMPRESSION),
      idleTimeoutSecs: reader.number('idle_timeout_secs', DEFAULT_IDLE_TIMEOUT_SECS, { min: 0 }),
    };
  },
  build: (config, context) => new FileSink(config, context),
};

interface OpenFile {
  handle: FileHandle;
  lastWriteMs: number;
}

/** What one batch writes to one file. */
interface Group {
  chunks: (Uint8Array | string)[];
  lines: number;
}

export class FileSink implements Sink {
  private queue: Promise<void> = Promise.resolve();
  private readonly files = new Map<string, OpenFile>();
  private timer: NodeJS.Timeout | undefined;
  private readonly id: string;
  private readonly telemetry: Telemetry;

  constructor(
    private readonly config: FileSinkConfig,
    context: ComponentContext,
  ) {
    this.id = context.id;
    this.telemetry = context.telemetry;
  }

  async start(): Promise<void> {
    const idleMs = this.config.idleTimeoutSecs * 1000;
    this.timer = setInterval(() => {
      this.queue = this.queue.then(() => this.closeIdle(Date.now() - idleMs));
    }, Math.max(Math.min(idleMs, 10_000), 100));
    this.timer.unref();
  }

  write(batch: LineBatch): Promise<void> {
    if (batch.offsets.length - 1 === 0) return Promise.resolve();
    // Rendering happens now, before the batch's buffer could be reused by anyone.
    const groups = this.group(batch);
    const next = this.queue.then(() => this.writeGroups(groups));
    this.queue = next;
    return next;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.queue;
    await this.closeIdle(Number.POSITIVE_INFINITY);
  }

  private group(batch: LineBatch): Map<string, Group> {
    const { data, offsets, meta } = batch;
    const count = offsets.length - 1;
    const groups = new Map<string, Group>();
    if (!this.config.path.hasFields) {
      const file = this.config.path.render(undefined, meta.timestampMs)!;
      groups.set(file, { chunks: [this.config.codec === 'json' ? encodeJson(batch) : encodeText(batch)], lines: count });
      return groups;
    }
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const timestamp = new Date(meta.timestampMs).toISOString();
    let unrendered = 0;
    for (let i = 0; i < count; i++) {
      const message = bytes.toString('utf8', offsets[i], offsets[i + 1]);
      const event = eventOf(meta, message, timestamp);
      const file = this.config.path.render(event, meta.timestampMs);
      if (file === undefined) {
        unrendered++;
        continue;
      }
      let group = groups.get(file);
      if (group === undefined) groups.set(file, (group = { chunks: [], lines: 0 }));
      group.lines++;
      if (this.config.codec === 'json') group.chunks.push(JSON.stringify(event) + '\n');
      else group.chunks.push(bytes.subarray(offsets[i], offsets[i + 1]), '\n');
    }
    if (unrendered > 0) {
      this.fail(unrendered, 'template_failed', `the path template ${JSON.stringify(this.config.path.source)} names a field missing from the event`);
    }
    return groups;
  }

  private async writeGroups(groups: Map<string, Group>): Promise<void> {
    for (const [file, group] of groups) {
      let payload: Buffer = Buffer.concat(group.chunks.map((c) => (typeof c === 'string' ? Buffer.from(c) : c)));
      try {
        if (this.config.compression === 'gzip') payload = await gzipAsync(payload);
        const open = await this.handleFor(file);
        await open.handle.appendFile(payload);
        open.lastWriteMs = Date.now();
        this.telemetry.count(EVENTS_SENT, this.id, group.lines);
        this.telemetry.count(FILE_SINK_SENT_BYTES, this.id, payload.byteLength);
      } catch (error) {
        await this.closeFile(file);
        this.fail(group.lines, 'write_failed', `cannot write to ${file}: ${(error as Error).message}`);
      }
    }
  }

  private async handleFor(file: string): Promise<OpenFile> {
    const known = this.files.get(file);
    if (known !== undefined) return known;
    await mkdir(path.dirname(file), { recursive: true });
    const handle = await open(file, 'a');
    const opened = { handle, lastWriteMs: Date.now() };
    this.files.set(file, opened);
    return opened;
  }

  private async closeIdle(before: number): Promise<void> {
    for (const [file, open] of [...this.files]) if (open.lastWriteMs <= before) await this.closeFile(file);
  }

  private async closeFile(file: string): Promise<void> {
    const open = this.files.get(file);
    this.files.delete(file);
    await open?.handle.close().catch(() => undefined);
  }

  private fail(lines: number, errorType: 'template_failed' | 'write_failed', reason: string): void {
    this.telemetry.count(COMPONENT_ERRORS, this.id, lines);
    this.telemetry.count(`file_sink_errors_total_${errorType}`, this.id, lines);
    this.telemetry.count(EVENTS_DISCARDED, this.id, lines);
    this.telemetry.logLimited('error', `file_sink_${errorType}`, `${lines} lines discarded: ${reason}.`, this.id);
  }
}
