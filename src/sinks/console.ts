/**
 * `type = "console"`: prints every line to stdout or stderr, as Vector's console sink does.
 *
 * `encoding.codec = "json"` prints one JSON object per line, shaped like Vector's file-source
 * event: `{"file":…,"host":…,"message":…,"source_type":…,"timestamp":…}`, keys sorted as Vector
 * prints them. For batches of format `json`, a line that parses as a JSON object is merged into the
 * event at the top level, its fields winning, and `message` is dropped unless the object has one
 * (Vector's `. = merge(., parse_json!(.message))` after `del(.message)`). `text` prints each
 * line's bytes unchanged. A `write()` resolves once its bytes were handed to the stream, and the
 * next batch waits for `drain` when the stream's buffer is full.
 */
import type { Writable } from 'node:stream';
import type { ComponentContext, Sink, SinkType } from '../components.js';
import type { ConfigReader } from '../config/reader.js';
import { parseJsonObject, type LineBatch } from '../event.js';
import type { Telemetry } from '../telemetry.js';

export const CONSOLE_CODECS = ['json', 'text'] as const;
export type ConsoleCodec = (typeof CONSOLE_CODECS)[number];
export const CONSOLE_TARGETS = ['stdout', 'stderr'] as const;
export type ConsoleTarget = (typeof CONSOLE_TARGETS)[number];

/** `encoding.codec`: Vector requires it; logwasm defaults to JSON events. */
export const DEFAULT_CONSOLE_CODEC: ConsoleCodec = 'json';
/** `target`: which standard stream to print to. */
export const DEFAULT_CONSOLE_TARGET: ConsoleTarget = 'stdout';

/** Lines printed. */
export const CONSOLE_SENT_EVENTS = 'component_sent_events_total';
/** Lines that could not be printed because the stream failed (e.g. EPIPE). */
export const CONSOLE_DISCARDED_EVENTS = 'component_discarded_events_total';

export interface ConsoleSinkConfig {
  codec: ConsoleCodec;
  target: ConsoleTarget;
}

export const consoleSink: SinkType<ConsoleSinkConfig> = {
  kind: 'sink',
  type: 'console',
  parse(reader: ConfigReader): ConsoleSinkConfig {
    const target = reader.oneOf('target', CONSOLE_TARGETS, DEFAULT_CONSOLE_TARGET);
    let codec: ConsoleCodec = DEFAULT_CONSOLE_CODEC;
    const raw = reader.raw('encoding');
    if (typeof raw === 'string') {
      codec = reader.oneOf('encoding', CONSOLE_CODECS, DEFAULT_CONSOLE_CODEC);
    } else if (raw !== undefined) {
      const encoding = reader.table('encoding');
      codec = encoding.oneOf('codec', CONSOLE_CODECS, DEFAULT_CONSOLE_CODEC);
      // Vector's encoding options that do not change logwasm's output.
      encoding.accept('timestamp_format', 'except_fields', 'only_fields', 'json');
      encoding.finish();
    }
    reader.accept('acknowledgements', 'healthcheck', 'framing');
    return { codec, target };
  },
  build(config, context) {
    return new ConsoleSink(config, context, config.target === 'stderr' ? process.stderr : process.stdout);
  },
};

export class ConsoleSink implements Sink {
  /** Writes go out one batch at a time, in order. */
  private queue: Promise<void> = Promise.resolve();
  private failed = false;
  private readonly onError = (error: Error): void => {
    this.failed = true;
    this.telemetry.logLimited('error', 'console_write_failed', `Printing to the console failed: ${error.message}.`, this.id);
  };
  private readonly id: string;
  private readonly telemetry: Telemetry;

  constructor(
    private readonly config: ConsoleSinkConfig,
    context: ComponentContext,
    private readonly stream: Writable,
  ) {
    this.id = context.id;
    this.telemetry = context.telemetry;
  }

  async start(): Promise<void> {
    // Without a listener, an EPIPE on stdout would kill the process.
    this.stream.on('error', this.onError);
  }

  write(batch: LineBatch): Promise<void> {
    const count = batch.offsets.length - 1;
    if (count === 0) return Promise.resolve();
    const chunk = this.config.codec === 'json' ? encodeJson(batch) : encodeText(batch);
    const next = this.queue.then(() => this.print(chunk, count));
    this.queue = next;
    return next;
  }

  async stop(): Promise<void> {
    await this.queue;
    this.stream.off('error', this.onError);
  }

  private print(chunk: Uint8Array | string, count: number): Promise<void> {
    if (this.failed || this.stream.destroyed) {
      this.discard(count, 'the stream is closed');
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      let flushed = false;
      let drained = true;
      const done = (): void => {
        if (flushed && drained) resolve();
      };
      const ok = this.stream.write(chunk, (error) => {
        flushed = true;
        if (error) {
          this.discard(count, error.message);
          drained = true;
        } else {
          this.telemetry.count(CONSOLE_SENT_EVENTS, this.id, count);
        }
        done();
      });
      if (!ok) {
        drained = false;
        this.stream.once('drain', () => {
          drained = true;
          done();
        });
      }
    });
  }

  private discard(count: number, reason: string): void {
    this.telemetry.count(CONSOLE_DISCARDED_EVENTS, this.id, count);
    this.telemetry.logLimited('error', 'console_events_discarded', `${count} lines were not printed: ${reason}.`, this.id);
  }
}

const NEWLINE = 0x0a;

/** The lines' bytes, each followed by a newline. */
export function encodeText(batch: LineBatch): Uint8Array {
  const { data, offsets } = batch;
  const count = offsets.length - 1;
  const start = offsets[0]!;
  const out = new Uint8Array(offsets[count]! - start + count);
  let at = 0;
  for (let i = 0; i < count; i++) {
    const line = data.subarray(offsets[i], offsets[i + 1]);
    out.set(line, at);
    at += line.byteLength;
    out[at++] = NEWLINE;
  }
  return out;
}

/** One Vector-shaped JSON event per line, each followed by a newline. */
export function encodeJson(batch: LineBatch): string {
  const { data, offsets, meta } = batch;
  const count = offsets.length - 1;
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const timestamp = new Date(meta.timestampMs).toISOString();
  let out = '';
  for (let i = 0; i < count; i++) {
    const message = bytes.toString('utf8', offsets[i], offsets[i + 1]);
    out += JSON.stringify(eventOf(meta, message, timestamp)) + '\n';
  }
  return out;
}

/**
 * One line as a Vector-shaped event, keys sorted (shared with the file sink, which also needs
 * the event's fields to render its path template). `timestamp` is `meta.timestampMs` as ISO text,
 * passed in so a batch formats it once.
 */
export function eventOf(meta: LineBatch['meta'], message: string, timestamp: string): Record<string, unknown> {
  const object = meta.format === 'json' ? parseJsonObject(message) : undefined;
  const event: Record<string, unknown> =
    object === undefined
      ? { file: meta.file, host: meta.host, message, source_type: meta.sourceType, timestamp }
      : { file: meta.file, host: meta.host, source_type: meta.sourceType, timestamp, ...object };
  return sortKeys(event) as Record<string, unknown>;
}


/** Vector keeps event fields in sorted maps, so its JSON output lists keys in byte order. */
function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (typeof value !== 'object' || value === null) return value;
  const source = value as Record<string, unknown>;
  const sorted: Record<string, unknown> = {};
  for (const key of Object.keys(source).sort()) sorted[key] = sortKeys(source[key]);
  return sorted;
}
