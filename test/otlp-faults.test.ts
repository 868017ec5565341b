/**
 * The opentelemetry sink against a real OTLP/HTTP receiver that misbehaves: outages, 429 with
 * Retry-After, dropped connections, slow answers, a refused request, partial success, and a full
 * buffer. Every test counts records by id at the receiver.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import type { ConfigTable } from '../src/config/reader.js';
import { batchFromLines, type LineBatch } from '../src/event.js';
import {
  BUFFER_DISCARDED_EVENTS,
  DEFAULT_BUFFER_MAX_EVENTS,
  PARTIAL_SUCCESS_REJECTED_EVENTS,
  RETRY_AFTER_RESPONSES,
} from '../src/sinks/opentelemetry/buffer.js';
import { MAX_RETRY_AFTER_MS, decodeLogsResponse, parseRetryAfter, partialSuccessOf } from '../src/sinks/opentelemetry/buffer-feedback.js';
import { JsonLogsSerializer, ProtobufLogsSerializer } from '@opentelemetry/otlp-transformer';
import { DISCARDED_EVENTS, REJECTED_EVENTS, SENT_EVENTS } from '../src/sinks/opentelemetry/events.js';
import {
  opentelemetrySink,
  type OpentelemetrySink,
} from '../src/sinks/opentelemetry/index.js';
import { Telemetry, type LogRecord } from '../src/telemetry.js';
import type { OtlpReceiver } from './support/otlp-receiver.js';
import { pollUntil, settledFlag } from './support/poll.js';
import { parseSinkTable as parse, testReceiver as receiver } from './support/otlp-sink.js';

const encoder = new TextEncoder();

/** Records `{"id": from}` .. `{"id": from + count - 1}` as one batch. */
function ids(from: number, count: number): LineBatch {
  const lines: Uint8Array[] = [];
  for (let i = from; i < from + count; i++) lines.push(encoder.encode(JSON.stringify({ id: i, msg: 'fault test' })));
  return batchFromLines(lines, {
    sourceId: 'app',
    sourceType: 'file',
    file: '/var/log/app.log',
    host: 'node-1',
    timestampMs: Date.now(),
    format: 'json',
  });
}

async function sink(table: ConfigTable): Promise<{ sink: OpentelemetrySink; telemetry: Telemetry; logs: LogRecord[] }> {
  // No healthcheck request: each test counts the requests it causes.
  const { config, problems } = parse({ healthcheck: false, ...table });
  expect(problems).toEqual([]);
  const logs: LogRecord[] = [];
  const telemetry = new Telemetry((record) => logs.push(record), 'debug');
  const instance = opentelemetrySink.build(config, { id: 'otlp', dataDir: '/tmp', mode: 'tail', telemetry }) as OpentelemetrySink;
  onTestFinished(() => instance.stop(1000));
  await instance.start();
  return { sink: instance, telemetry, logs };
}

/** Ids seen at the receiver, and how many times each. */
function idCounts(otlp: OtlpReceiver): Map<number, number> {
  const seen = new Map<number, number>();
  for (const record of otlp.records) {
    const id = Number((record.body as { id?: bigint } | undefined)?.id);
    seen.set(id, (seen.get(id) ?? 0) + 1);
  }
  return seen;
}

function missing(otlp: OtlpReceiver, total: number): number[] {
  const seen = idCounts(otlp);
  const out: number[] = [];
  for (let i = 0; i < total; i++) if (!seen.has(i)) out.push(i);
  return out;
}

const FAST_RETRY = { retry_initial_backoff_secs: 0.05, retry_max_duration_secs: 0.5 };

describe('Retry-After', () => {
  it('parses delay-seconds and HTTP-dates; ignores garbage; caps huge values', () => {
    const now = Date.UTC(2026, 0, 1, 0, 0, 0);
    expect(parseRetryAfter('2', now)).toBe(2000);
    expect(parseRetryAfter(' 0 ', now)).toBe(0);
    expect(parseRetryAfter(new Date(now + 5000).toUTCString(), now)).toBe(5000);
    expect(parseRetryAfter(new Date(now - 5000).toUTCString(), now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter('-1', now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
    expect(parseRetryAfter('999999', now)).toBe(MAX_RETRY_AFTER_MS);
  });

  it("429 with Retry-After: 2 (seconds), left to the exporter's own quick retry: the retry comes ≥ 2 s later", async () => {
    const otlp = await receiver();
    const { sink: s, telemetry } = await sink({ endpoint: otlp.baseUrl, batch: { timeout_secs: 0.01 }, request: FAST_RETRY });
    otlp.failNext(1, 429, { headers: { 'retry-after': '2' } });
    await s.write(ids(0, 5));
    expect(missing(otlp, 5)).toEqual([]);
    expect(otlp.requests.map((r) => r.status)).toEqual([429, 200]);
    expect(otlp.requests[1]!.at - otlp.requests[0]!.at).toBeGreaterThanOrEqual(2000);
    expect(telemetry.counter(RETRY_AFTER_RESPONSES, 'otlp')).toBe(1);
  });

  it('503 with an HTTP-date Retry-After beyond the request timeout: our retry loop waits until that date', async () => {
    const otlp = await receiver();
    // timeout_secs = 1: the exporter's transport will not wait 2-3 s itself, it hands the failure back.
    const { sink: s, telemetry } = await sink({
      endpoint: otlp.baseUrl,
      batch: { timeout_secs: 0.01 },
      request: { ...FAST_RETRY, timeout_secs: 1 },
    });
    const until = new Date(Date.now() + 3000).toUTCString(); // second precision: 2-3 s from now
    otlp.failNext(1, 503, { headers: { 'retry-after': until } });
    await s.write(ids(0, 5));
    expect(missing(otlp, 5)).toEqual([]);
    expect(otlp.requests.map((r) => r.status)).toEqual([503, 200]);
    expect(otlp.requests[1]!.at).toBeGreaterThanOrEqual(Date.parse(until));
    expect(telemetry.counter(RETRY_AFTER_RESPONSES, 'otlp')).toBeGreaterThanOrEqual(1);
  });
});

describe('faults at the receiver', () => {
  it('503 for 3 s, then recovers: every record arrives', async () => {
    const otlp = await receiver();
    const { sink: s, telemetry } = await sink({
      endpoint: otlp.baseUrl,
      batch: { max_events: 100, timeout_secs: 0.01 },
      request: { ...FAST_RETRY, timeout_secs: 1 },
    });
    otlp.failFor(3000, 503);
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 20; i++) writes.push(s.write(ids(i * 50, 50)));
    await Promise.all(writes);
    expect(missing(otlp, 1000)).toEqual([]);
    expect(otlp.requests.filter((r) => r.status === 503).length).toBeGreaterThan(0);
    expect(telemetry.counter(SENT_EVENTS, 'otlp')).toBe(1000);
    expect(telemetry.counter(DISCARDED_EVENTS, 'otlp')).toBe(0);
  }, 30_000);

  it('connections closed mid-request: no loss', async () => {
    const otlp = await receiver();
    const { sink: s, telemetry } = await sink({
      endpoint: otlp.baseUrl,
      batch: { max_events: 50, timeout_secs: 0.01 },
      request: FAST_RETRY,
    });
    otlp.dropNext(4);
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 10; i++) writes.push(s.write(ids(i * 50, 50)));
    await Promise.all(writes);
    expect(missing(otlp, 500)).toEqual([]);
    expect(otlp.requests.filter((r) => r.status === 0)).toHaveLength(4);
    expect(telemetry.counter(DISCARDED_EVENTS, 'otlp')).toBe(0);
  }, 30_000);

  it('slow receiver (500 ms per request): queued records never exceed buffer.max_events + in-flight, writers wait', async () => {
    const otlp = await receiver();
    otlp.delayEach(500);
    const { sink: s } = await sink({
      endpoint: otlp.baseUrl,
      batch: { max_events: 100, timeout_secs: 0.01 },
      request: { ...FAST_RETRY, concurrency: 2 },
      buffer: { type: 'memory', max_events: 100 },
    });
    const limit = 100 + 100 * 2;
    let maxPending = 0;
    const sampler = setInterval(() => (maxPending = Math.max(maxPending, s.pending)), 2);
    onTestFinished(() => clearInterval(sampler));
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 30; i++) writes.push(s.write(ids(i * 50, 50)));
    const last = settledFlag(writes[29]!);
    // Once the queue is full, later writes wait: the last one is still waiting while requests are slow.
    await pollUntil('a full queue', () => s.pending >= limit - 50 || undefined, { describe: () => `pending ${s.pending}` });
    expect(last.settled).toBe(false);
    await Promise.all(writes);
    clearInterval(sampler);
    expect(missing(otlp, 1500)).toEqual([]);
    expect(maxPending).toBeGreaterThan(0);
    expect(maxPending).toBeLessThanOrEqual(limit);
    expect(otlp.maxActive).toBeLessThanOrEqual(2);
  }, 60_000);

  it('400 on one request: only that request is dropped, counted, and its response text logged', async () => {
    const otlp = await receiver();
    const { sink: s, telemetry, logs } = await sink({
      endpoint: otlp.baseUrl,
      batch: { max_events: 10, timeout_secs: 0.01 },
      request: FAST_RETRY,
    });
    otlp.failNext(1, 400);
    for (let i = 0; i < 5; i++) await s.write(ids(i * 10, 10));
    expect(missing(otlp, 50)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(otlp.requests.map((r) => r.status)).toEqual([400, 200, 200, 200, 200]);
    expect(telemetry.counter(REJECTED_EVENTS, 'otlp')).toBe(10);
    expect(telemetry.counter(DISCARDED_EVENTS, 'otlp')).toBe(10);
    expect(telemetry.counter(SENT_EVENTS, 'otlp')).toBe(40);
    expect(logs.some((l) => l.event === 'otlp_records_rejected' && l.message.includes('injected failure 400'))).toBe(true);
  });

  for (const codec of ['protobuf', 'json'] as const) {
    it(`${codec}: OTLP partial success is counted as discarded and its message logged`, async () => {
      const otlp = await receiver();
      const { sink: s, telemetry, logs } = await sink({ endpoint: otlp.baseUrl, encoding: codec, batch: { timeout_secs: 0.01 } });
      otlp.partialSuccessNext(1, 3, 'three records had no body');
      await s.write(ids(0, 10));
      expect(telemetry.counter(PARTIAL_SUCCESS_REJECTED_EVENTS, 'otlp')).toBe(3);
      expect(telemetry.counter(DISCARDED_EVENTS, 'otlp')).toBe(3);
      expect(logs.some((l) => l.event === 'otlp_partial_success' && l.message.includes('three records had no body'))).toBe(
        true,
      );
    });
  }

  it('partialSuccessOf: full success and empty partial success are not reported', () => {
    expect(partialSuccessOf({})).toBeUndefined();
    expect(partialSuccessOf({ partialSuccess: {} })).toBeUndefined();
    expect(partialSuccessOf({ partialSuccess: { rejectedLogRecords: '0', errorMessage: '' } })).toBeUndefined();
    expect(partialSuccessOf({ partialSuccess: { rejectedLogRecords: '7' } })).toEqual({ rejected: 7, message: '' });
    expect(partialSuccessOf({ partialSuccess: { errorMessage: 'slow down' } })).toEqual({ rejected: 0, message: 'slow down' });
  });

  it('decodeLogsResponse reads what the OpenTelemetry serializers read, protobuf and JSON', () => {
    const responses = [
      {},
      { partialSuccess: {} },
      { partialSuccess: { rejectedLogRecords: 7 } },
      { partialSuccess: { errorMessage: 'slow down — ralentis' } },
      { partialSuccess: { rejectedLogRecords: 2 ** 40, errorMessage: 'quota' } },
    ];
    for (const response of responses) {
      const bytes = encodeResponse(response);
      const fromOtel = partialSuccessOf(ProtobufLogsSerializer.deserializeResponse(bytes));
      expect(partialSuccessOf(decodeLogsResponse(bytes, false)), JSON.stringify(response)).toEqual(fromOtel);
      const json = new TextEncoder().encode(JSON.stringify(response));
      expect(partialSuccessOf(decodeLogsResponse(json, true))).toEqual(partialSuccessOf(JsonLogsSerializer.deserializeResponse(json)));
    }
    expect(decodeLogsResponse(new Uint8Array(0), false)).toEqual({});
    expect(() => decodeLogsResponse(Uint8Array.of(0x0a, 0x05, 0x08), false)).toThrow();
  });
});

describe('buffer', () => {
  it('defaults to a memory buffer of 500 events that blocks; unknown keys reported', () => {
    expect(parse({ endpoint: 'http://127.0.0.1:4318' }).config.buffer).toEqual({
      type: 'memory',
      maxEvents: DEFAULT_BUFFER_MAX_EVENTS,
      whenFull: 'block',
    });
    expect(DEFAULT_BUFFER_MAX_EVENTS).toBe(500);
    expect(
      parse({ endpoint: 'http://127.0.0.1:4318', buffer: { type: 'memory', max_events: 20, when_full: 'drop_newest' } })
        .config.buffer,
    ).toEqual({ type: 'memory', maxEvents: 20, whenFull: 'drop_newest' });
    expect(parse({ endpoint: 'http://127.0.0.1:4318', buffer: { type: 'disk', max_size: 268435488 } }).problems).toEqual([]);
    const bad = parse({ endpoint: 'http://127.0.0.1:4318', buffer: { max_event: 5, when_full: 'overflow' } }).problems;
    expect(bad).toHaveLength(2);
    expect(bad.join('\n')).toContain('max_event');
    expect(bad.join('\n')).toContain('overflow');
  });

  it('when_full = "drop_newest": writes beyond the buffer are dropped at once and counted; the rest arrives', async () => {
    const otlp = await receiver();
    otlp.delayEach(200);
    const { sink: s, telemetry } = await sink({
      endpoint: otlp.baseUrl,
      batch: { max_events: 10, timeout_secs: 0.01 },
      request: { ...FAST_RETRY, concurrency: 1 },
      buffer: { type: 'memory', max_events: 10, when_full: 'drop_newest' },
    });
    // Room for 10 waiting + 10 in flight: the first two writes go in, the other three are dropped.
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 5; i++) writes.push(s.write(ids(i * 10, 10)));
    expect(telemetry.counter(BUFFER_DISCARDED_EVENTS, 'otlp')).toBe(30);
    expect(telemetry.counter(DISCARDED_EVENTS, 'otlp')).toBe(30);
    await Promise.all(writes);
    expect(missing(otlp, 20)).toEqual([]);
    expect(otlp.records).toHaveLength(20);
  });
});

/** An ExportLogsServiceResponse in protobuf, written by hand (the serializers only read responses). */
function encodeResponse(response: { partialSuccess?: { rejectedLogRecords?: number; errorMessage?: string } }): Uint8Array {
  const varint = (value: number): number[] => {
    const out: number[] = [];
    while (value >= 0x80) {
      out.push((value % 128) | 0x80);
      value = Math.floor(value / 128);
    }
    out.push(value);
    return out;
  };
  const partial = response.partialSuccess;
  if (partial === undefined) return new Uint8Array(0);
  const inner: number[] = [];
  if (partial.rejectedLogRecords !== undefined) inner.push(0x08, ...varint(partial.rejectedLogRecords));
  if (partial.errorMessage !== undefined) {
    const text = [...new TextEncoder().encode(partial.errorMessage)];
    inner.push(0x12, ...varint(text.length), ...text);
  }
  return Uint8Array.from([0x0a, ...varint(inner.length), ...inner]);
}
