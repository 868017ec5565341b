/**
 * `buffer.type = "disk"`: the segment engine on real files (order, restart, deletion, corruption)
 * and the sink with a real receiver that is down, then a new sink on the same data_dir.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { batchFromLines, type LineBatch } from '../src/event.js';
import { DISK_BUFFER_CORRUPT_SEGMENTS, MIN_DISK_BUFFER_MAX_SIZE } from '../src/sinks/opentelemetry/buffer.js';
import { DiskBuffer, type DiskFrame } from '../src/sinks/opentelemetry/disk-buffer.js';
import { DISCARDED_EVENTS, SENT_EVENTS } from '../src/sinks/opentelemetry/events.js';
import { opentelemetrySink, type OpentelemetrySink } from '../src/sinks/opentelemetry/index.js';
import { Telemetry, type LogRecord } from '../src/telemetry.js';
import { startOtlpReceiver, type OtlpReceiver } from './support/otlp-receiver.js';
import { pollUntil } from './support/poll.js';
import { parseSinkTable as parse } from './support/otlp-sink.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function ids(from: number, count: number): LineBatch {
  const lines: Uint8Array[] = [];
  for (let i = from; i < from + count; i++) lines.push(encoder.encode(JSON.stringify({ id: i })));
  return batchFromLines(lines, {
    sourceId: 'app',
    sourceType: 'file',
    file: '/var/log/app.log',
    host: 'node-1',
    timestampMs: 1_700_000_000_000,
    format: 'json',
  });
}

function lineIds(batch: LineBatch): number[] {
  const out: number[] = [];
  for (let i = 0; i + 1 < batch.offsets.length; i++) {
    out.push((JSON.parse(decoder.decode(batch.data.subarray(batch.offsets[i], batch.offsets[i + 1]))) as { id: number }).id);
  }
  return out;
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'logwasm-otlp-buffer-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function openBuffer(dir: string, corrupt: string[] = [], maxSizeBytes = 64 * 1024 * 1024): Promise<DiskBuffer> {
  const buffer = await DiskBuffer.open({ dir, maxSizeBytes, onCorrupt: (_file, offset, reason) => corrupt.push(`${offset} ${reason}`) });
  onTestFinished(() => buffer.close());
  return buffer;
}

async function take(buffer: DiskBuffer, n: number): Promise<DiskFrame[]> {
  const frames: DiskFrame[] = [];
  for (let i = 0; i < n; i++) frames.push((await buffer.next())!);
  return frames;
}

describe('DiskBuffer', () => {
  it('gives frames back in order, across a restart; a segment is deleted once all of it is acknowledged', async () => {
    const dir = await tempDir();
    const first = await openBuffer(dir);
    for (let i = 0; i < 5; i++) await first.append(ids(i * 3, 3));
    const read = await take(first, 2);
    expect(read.map((f) => lineIds(f.batch))).toEqual([[0, 1, 2], [3, 4, 5]]);
    expect(read[0]!.batch.meta.file).toBe('/var/log/app.log');
    read[0]!.ack(); // acknowledged, but its segment still holds unacknowledged frames
    await first.close();

    const second = await openBuffer(dir);
    await second.append(ids(100, 1)); // goes to a new segment, after the old one
    const again = await take(second, 6);
    expect(again.map((f) => lineIds(f.batch))).toEqual([[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11], [12, 13, 14], [100]]);
    expect((await readdir(dir)).length).toBe(2);
    for (const frame of again.slice(0, 5)) frame.ack();
    await pollUntil('the old segment deleted', async () => ((await readdir(dir)).length === 1 ? true : undefined), {
      describe: () => 'segments still there',
    });
    expect(second.segmentCount).toBe(1); // the one being written stays
  });

  it('a corrupt frame (bad CRC) ends its segment with an error; frames before it and later segments still arrive', async () => {
    const dir = await tempDir();
    const first = await openBuffer(dir);
    for (let i = 0; i < 3; i++) await first.append(ids(i * 2, 2));
    await first.close();
    const [name] = await readdir(dir);
    const path = join(dir, name!);
    const bytes = await readFile(path);
    const frameLength = bytes.length / 3;
    bytes[frameLength + 20] = bytes[frameLength + 20]! ^ 0xff; // inside the second frame's payload
    await writeFile(path, bytes);

    const corrupt: string[] = [];
    const second = await openBuffer(dir, corrupt);
    await second.append(ids(50, 1));
    const frames = await take(second, 2);
    expect(frames.map((f) => lineIds(f.batch))).toEqual([[0, 1], [50]]);
    expect(corrupt).toEqual([`${frameLength} CRC mismatch`]);
  });

  it('a truncated last frame (a crash mid-write) is skipped with an error, not a crash', async () => {
    const dir = await tempDir();
    const first = await openBuffer(dir);
    for (let i = 0; i < 2; i++) await first.append(ids(i * 2, 2));
    await first.close();
    const [name] = await readdir(dir);
    const path = join(dir, name!);
    const bytes = await readFile(path);
    await writeFile(path, bytes.subarray(0, bytes.length - 5));
    const corrupt: string[] = [];
    const second = await openBuffer(dir, corrupt);
    const [frame] = await take(second, 1);
    expect(lineIds(frame!.batch)).toEqual([0, 1]);
    await second.append(ids(9, 1));
    const [next] = await take(second, 1);
    expect(lineIds(next!.batch)).toEqual([9]);
    expect(corrupt).toHaveLength(1);
    expect(corrupt[0]).toContain('truncated');
  });

  it('append waits while the buffer is full and resumes once an acknowledged segment is deleted', async () => {
    const dir = await tempDir();
    const buffer = await openBuffer(dir, [], 1); // every frame is bigger than max_size: one at a time
    await buffer.append(ids(0, 100));
    let written = false;
    const pending = buffer.append(ids(100, 100)).then(() => (written = true));
    const [first] = await take(buffer, 1);
    await new Promise((resolve) => setImmediate(resolve));
    expect(written).toBe(false);
    first!.ack();
    const [second] = await take(buffer, 1); // reading past the first segment lets it be deleted
    await pending;
    expect(written).toBe(true);
    expect(lineIds(second!.batch)[0]).toBe(100);
  });
});

describe('opentelemetry sink with buffer.type = "disk"', () => {
  it('config: max_size required, at least 1 MiB; when_full only block', () => {
    const base = { endpoint: 'http://127.0.0.1:4318' };
    expect(parse({ ...base, buffer: { type: 'disk', max_size: 268435488 } }).config.buffer).toEqual({
      type: 'disk',
      maxEvents: 500,
      whenFull: 'block',
      maxSizeBytes: 268435488,
    });
    expect(parse({ ...base, buffer: { type: 'disk' } }).problems).toEqual([
      'missing required key "buffer.max_size" (bytes) for buffer.type "disk"',
    ]);
    expect(parse({ ...base, buffer: { type: 'disk', max_size: MIN_DISK_BUFFER_MAX_SIZE - 1 } }).problems).toHaveLength(1);
    expect(parse({ ...base, buffer: { type: 'disk', max_size: MIN_DISK_BUFFER_MAX_SIZE, when_full: 'drop_newest' } }).problems).toEqual([
      'invalid value for "buffer.when_full": only "block" with buffer.type "disk"',
    ]);
  });

  it('collector down: writes are acknowledged once on disk; a new sink on the same data_dir delivers them all', async () => {
    const dataDir = await tempDir();
    const otlp: OtlpReceiver = await startOtlpReceiver();
    onTestFinished(() => otlp.close());
    const table = {
      endpoint: otlp.baseUrl,
      healthcheck: false,
      batch: { max_events: 200, timeout_secs: 0.01 },
      request: { retry_initial_backoff_secs: 0.05, retry_max_duration_secs: 0.2, timeout_secs: 1 },
      buffer: { type: 'disk', max_size: 16 * 1024 * 1024 },
    };
    const build = (): { sink: OpentelemetrySink; telemetry: Telemetry; logs: LogRecord[] } => {
      const { config, problems } = parse(table);
      expect(problems).toEqual([]);
      const logs: LogRecord[] = [];
      const telemetry = new Telemetry((record) => logs.push(record), 'debug');
      const sink = opentelemetrySink.build(config, { id: 'otlp', dataDir, mode: 'tail', telemetry }) as OpentelemetrySink;
      return { sink, telemetry, logs };
    };

    otlp.failFor(3_600_000, 503);
    const first = build();
    await first.sink.start();
    for (let i = 0; i < 20; i++) await first.sink.write(ids(i * 500, 500)); // each resolves: on disk
    expect(otlp.records).toHaveLength(0);
    await first.sink.stop(200);
    expect((await readdir(join(dataDir, 'otlp', 'buffer'))).length).toBeGreaterThan(0);

    otlp.failFor(0, 503);
    const second = build();
    onTestFinished(() => second.sink.stop(1000));
    await second.sink.start();
    await pollUntil('all 10000 ids at the receiver', () => {
      const seen = new Set(otlp.records.map((r) => Number((r.body as { id: bigint }).id)));
      return seen.size === 10_000 || undefined;
    }, { timeoutMs: 60_000, describe: () => otlp.describe() });
    // The receiver holds a request's records before the sink has read its answer: wait for the count.
    await pollUntil('10000 records counted as sent', () => second.telemetry.counter(SENT_EVENTS, 'otlp') >= 10_000 || undefined, {
      describe: () => `${second.telemetry.counter(SENT_EVENTS, 'otlp')} sent`,
    });
    expect(second.telemetry.counter(DISCARDED_EVENTS, 'otlp')).toBe(0);
    expect(second.telemetry.counter(DISK_BUFFER_CORRUPT_SEGMENTS, 'otlp')).toBe(0);
    // Delivered segments are deleted (the one being written stays, empty).
    await pollUntil('old segments deleted', async () => {
      const names = await readdir(join(dataDir, 'otlp', 'buffer'));
      return names.length <= 1 || undefined;
    }, { timeoutMs: 20_000 });
  }, 120_000);
});
