import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ConfigReader, type ConfigTable } from '../src/config/reader.js';
import type { ConfigProblem } from '../src/errors.js';
import { batchFromLines, type BatchMeta, type LineBatch } from '../src/event.js';
import { CONSOLE_DISCARDED_EVENTS, CONSOLE_SENT_EVENTS, ConsoleSink, consoleSink } from '../src/sinks/console.js';
import { Telemetry, type LogRecord } from '../src/telemetry.js';
import { pollUntil, settledFlag } from './support/poll.js';

const READ_AT_MS = Date.UTC(2024, 0, 2, 3, 4, 5, 678);

function batch(lines: (string | Uint8Array)[], format: BatchMeta['format']): LineBatch {
  const encoder = new TextEncoder();
  return batchFromLines(
    lines.map((l) => (typeof l === 'string' ? encoder.encode(l) : l)),
    { sourceId: 'app', sourceType: 'file', file: '/var/log/a.log', host: 'h1', timestampMs: READ_AT_MS, format },
  );
}

function parse(table: ConfigTable) {
  const problems: ConfigProblem[] = [];
  const reader = new ConfigReader('sinks.out', table, problems);
  const config = consoleSink.parse(reader);
  reader.finish();
  return { config, problems: problems.map((p) => p.message) };
}

/** A stream that holds each chunk until `release()`, with a tiny buffer so backpressure kicks in. */
class HeldStream extends Writable {
  readonly chunks: Buffer[] = [];
  private held: (() => void)[] = [];
  constructor(private hold: boolean) {
    super({ highWaterMark: 8 });
  }
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const done = (): void => {
      this.chunks.push(chunk);
      callback();
    };
    if (this.hold) this.held.push(done);
    else done();
  }
  release(): void {
    this.hold = false;
    for (const done of this.held.splice(0)) done();
  }
  get text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

function build(table: ConfigTable, stream: Writable) {
  const { config, problems } = parse(table);
  expect(problems).toEqual([]);
  const logs: LogRecord[] = [];
  const telemetry = new Telemetry((r) => logs.push(r), 'debug');
  const sink = new ConsoleSink(config, { id: 'out', dataDir: '/tmp', mode: 'replay', telemetry }, stream);
  return { sink, telemetry, logs };
}

describe('console sink', () => {
  it('json: one Vector file-source event per line; JSON objects merged at the top level', async () => {
    const stream = new HeldStream(false);
    const { sink, telemetry } = build({ encoding: { codec: 'json' } }, stream);
    await sink.start();
    await sink.write(batch(['plain', '{"level":"info","b":{"z":1,"a":2}}', '{"message":"m","host":"over"}', '[1]'], 'json'));
    await sink.write(batch(['{"not":"merged"}'], 'text'));
    await sink.stop();
    const common = { file: '/var/log/a.log', timestamp: '2024-01-02T03:04:05.678Z' };
    expect(stream.text.split('\n')).toEqual([
      JSON.stringify({ file: common.file, host: 'h1', message: 'plain', source_type: 'file', timestamp: common.timestamp }),
      JSON.stringify({ b: { a: 2, z: 1 }, file: common.file, host: 'h1', level: 'info', source_type: 'file', timestamp: common.timestamp }),
      JSON.stringify({ file: common.file, host: 'over', message: 'm', source_type: 'file', timestamp: common.timestamp }),
      JSON.stringify({ file: common.file, host: 'h1', message: '[1]', source_type: 'file', timestamp: common.timestamp }),
      JSON.stringify({ file: common.file, host: 'h1', message: '{"not":"merged"}', source_type: 'file', timestamp: common.timestamp }),
      '',
    ]);
    expect(telemetry.counter(CONSOLE_SENT_EVENTS, 'out')).toBe(5);
  });

  it('text: the line bytes unchanged, invalid UTF-8 included', async () => {
    const stream = new HeldStream(false);
    const { sink } = build({ encoding: { codec: 'text' }, target: 'stderr' }, stream);
    await sink.write(batch(['a b', new Uint8Array([0xff, 0x41]), '{"x":1}'], 'json'));
    expect(Buffer.concat(stream.chunks)).toEqual(Buffer.from([0x61, 0x20, 0x62, 0x0a, 0xff, 0x41, 0x0a, ...Buffer.from('{"x":1}\n')]));
  });

  it('write() resolves only when the stream took the bytes; batches stay in order', async () => {
    const stream = new HeldStream(true);
    const { sink } = build({ encoding: { codec: 'text' } }, stream);
    const first = sink.write(batch(['first batch is longer than the buffer'], 'text'));
    const second = sink.write(batch(['second'], 'text'));
    const f1 = settledFlag(first);
    const f2 = settledFlag(second);
    // The first chunk reached the stream and is held there; the second waits its turn.
    await pollUntil('the first chunk to reach the stream', () => stream.writableLength > 0 || undefined);
    expect(f1.settled).toBe(false);
    expect(f2.settled).toBe(false);
    stream.release();
    await Promise.all([first, second]);
    expect(stream.text).toBe('first batch is longer than the buffer\nsecond\n');
  });

  it('a failed stream: lines are counted as discarded, write() still resolves', async () => {
    const stream = new Writable({
      write(_chunk, _enc, callback) {
        callback(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
      },
    });
    const { sink, telemetry, logs } = build({}, stream);
    await sink.start();
    await sink.write(batch(['x', 'y'], 'text'));
    await sink.write(batch(['z'], 'text'));
    await sink.stop();
    expect(telemetry.counter(CONSOLE_DISCARDED_EVENTS, 'out')).toBe(3);
    expect(logs.some((l) => l.level === 'error')).toBe(true);
  });

  it('config: Vector forms accepted, mistakes reported', () => {
    expect(parse({}).config).toEqual({ codec: 'json', target: 'stdout' });
    expect(parse({ encoding: 'text' }).config.codec).toBe('text');
    expect(parse({ encoding: { codec: 'logfmt' }, target: 'file', extra: 1 }).problems).toEqual([
      'invalid value for "target": expected one of "stdout", "stderr", actual: "file"',
      'invalid value for "encoding.codec": expected one of "json", "text", actual: "logfmt"',
      'unknown key "extra"',
    ]);
  });
});
