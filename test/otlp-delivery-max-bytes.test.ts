/**
 * `batch.max_bytes`: no request body is larger than it (a lone oversized record excepted), cut at
 * record boundaries inside encoded batches, and every record arrives exactly once. Checked on the
 * Delivery engine with sized array segments, and end to end against the real OTLP/HTTP receiver
 * for both encodings.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import type { ConfigTable } from '../src/config/reader.js';
import { batchFromLines, type LineBatch } from '../src/event.js';
import { Delivery, type SegmentOps, type SendOutcome } from '../src/sinks/opentelemetry/batching.js';
import { DISCARDED_EVENTS, SENT_EVENTS } from '../src/sinks/opentelemetry/events.js';
import {
  DEFAULT_BATCH_MAX_BYTES,
  opentelemetrySink,
  type OpentelemetrySink,
} from '../src/sinks/opentelemetry/index.js';
import { Telemetry } from '../src/telemetry.js';
import type { OtlpReceiver } from './support/otlp-receiver.js';
import { parseSinkTable as parse, testReceiver as receiver } from './support/otlp-sink.js';

const encoder = new TextEncoder();

/** Records `{"id": i, "pad": "xx..."}` with a pad length that varies from record to record. */
function ids(from: number, count: number, padOf: (id: number) => number): LineBatch {
  const lines: Uint8Array[] = [];
  for (let i = from; i < from + count; i++) lines.push(encoder.encode(JSON.stringify({ id: i, pad: 'x'.repeat(padOf(i)) })));
  return batchFromLines(lines, {
    sourceId: 'app',
    sourceType: 'file',
    file: '/var/log/app.log',
    host: 'node-1',
    timestampMs: Date.now(),
    format: 'json',
  });
}

function sink(table: ConfigTable): { sink: OpentelemetrySink; telemetry: Telemetry } {
  const { config, problems } = parse({ healthcheck: false, ...table });
  expect(problems).toEqual([]);
  const telemetry = new Telemetry(() => undefined, 'debug');
  const instance = opentelemetrySink.build(config, { id: 'otlp', dataDir: '/tmp', mode: 'replay', telemetry }) as OpentelemetrySink;
  onTestFinished(() => instance.stop(1000));
  return { sink: instance, telemetry };
}

function idCounts(otlp: OtlpReceiver): Map<number, number> {
  const seen = new Map<number, number>();
  for (const record of otlp.records) {
    const id = Number((record.body as { id?: bigint } | undefined)?.id);
    seen.set(id, (seen.get(id) ?? 0) + 1);
  }
  return seen;
}

describe('batch.max_bytes: config', () => {
  it(`defaults to ${DEFAULT_BATCH_MAX_BYTES} (Vector's); must be a whole number >= 1`, () => {
    expect(parse({ endpoint: 'http://c:4318' }).config.batchMaxBytes).toBe(DEFAULT_BATCH_MAX_BYTES);
    expect(parse({ endpoint: 'http://c:4318', batch: { max_bytes: 4096 } }).config.batchMaxBytes).toBe(4096);
    expect(parse({ protocol: { uri: 'http://c:4318', batch: { max_bytes: 2048 } } }).config.batchMaxBytes).toBe(2048);
    expect(parse({ endpoint: 'http://c:4318', batch: { max_bytes: 0 } }).problems).toEqual([
      'invalid value for "batch.max_bytes": expected a number >= 1, actual: 0',
    ]);
    expect(parse({ endpoint: 'http://c:4318', batch: { max_bytes: '1MB' } }).problems).toHaveLength(1);
  });
});

describe('batch.max_bytes: the Delivery engine', () => {
  /** Segments of record sizes: a segment's bytes are 10 (its header) plus its records' sizes. */
  const SIZED: SegmentOps<number[]> = {
    count: (segment) => segment.length,
    slice: (segment, from, to) => segment.slice(from, to),
    bytes: (segment) => 10 + segment.reduce((sum, size) => sum + size, 0),
    baseBytes: 5,
  };

  function engine(maxBytes: number) {
    const requests: number[][][] = [];
    const send = (segments: number[][]): Promise<SendOutcome> => {
      requests.push(segments);
      return Promise.resolve({ status: 'sent' });
    };
    const events = { sent: () => undefined, attemptFailed: () => undefined, rejected: () => undefined, undelivered: () => undefined };
    const delivery = new Delivery(
      send,
      {
        maxEvents: 1000,
        maxBytes,
        // The timer sends the remainder: by then every write below has entered the queue.
        batchTimeoutMs: 20,
        maxInFlight: 4,
        maxPending: 10_000,
        retry: { maxRetries: 0, initialBackoffMs: 1, maxBackoffMs: 1 },
      },
      events,
      SIZED,
    );
    const size = (request: number[][]): number => 5 + request.reduce((sum, segment) => sum + SIZED.bytes!(segment), 0);
    return { delivery, requests, size };
  }

  it('cuts a request before the record that would take it beyond max_bytes, inside and across segments', async () => {
    const { delivery, requests, size } = engine(100);
    await Promise.all([delivery.write([20, 20, 20, 20, 20, 20]), delivery.write([30, 30]), delivery.write([5])]);
    // 5 + (10 + 80) fits 100; a fifth 20 would not. Then 5 + (10 + 40) + (10 + 60) = 125: the
    // [30, 30] segment does not fit behind the rest of the first, but fits a request of its own,
    // so it is not split: it goes whole, with the [5] segment behind it (5 + 70 + 15 = 90).
    expect(requests).toEqual([[[20, 20, 20, 20]], [[20, 20]], [[30, 30], [5]]]);
    for (const request of requests) expect(size(request)).toBeLessThanOrEqual(100);
  });

  it('a record bigger than max_bytes goes alone; the ones around it are not held back', async () => {
    const { delivery, requests } = engine(100);
    await Promise.all([delivery.write([20, 500, 20]), delivery.write([300]), delivery.write([1, 2])]);
    expect(requests).toEqual([[[20]], [[500]], [[20]], [[300]], [[1, 2]]]);
  });
});

describe('batch.max_bytes: against the real receiver', () => {
  for (const encoding of ['protobuf', 'json'] as const) {
    it(`${encoding}: no request body exceeds max_bytes but a lone oversized record; every record arrives once`, async () => {
      const otlp = await receiver();
      const MAX_BYTES = 4000;
      const OVERSIZED = 137;
      // Pads of 0..299 bytes, and one record far bigger than a whole request may be.
      const padOf = (id: number): number => (id === OVERSIZED ? 3 * MAX_BYTES : (id * 37) % 300);
      const { sink: s, telemetry } = sink({
        endpoint: otlp.url,
        encoding,
        batch: { max_events: 1000, max_bytes: MAX_BYTES, timeout_secs: 0.3 },
      });
      await s.start();
      const TOTAL = 600;
      const writes: Promise<void>[] = [];
      for (let from = 0; from < TOTAL; from += 50) writes.push(s.write(ids(from, 50, padOf)));
      await Promise.all(writes);

      const seen = idCounts(otlp);
      expect(seen.size).toBe(TOTAL);
      expect([...seen.values()].every((n) => n === 1)).toBe(true);
      expect(telemetry.counter(SENT_EVENTS, 'otlp')).toBe(TOTAL);
      expect(telemetry.counter(DISCARDED_EVENTS, 'otlp')).toBe(0);
      expect(otlp.requests.every((r) => r.status === 200)).toBe(true);

      const over = otlp.requests.filter((r) => r.bodyBytes > MAX_BYTES);
      expect(over.map((r) => r.recordCount)).toEqual([1]);
      const lone = otlp.records.filter((r) => r.request === otlp.requests.indexOf(over[0]!));
      expect(lone.map((r) => Number((r.body as { id: bigint }).id))).toEqual([OVERSIZED]);
      // Requests are filled, not cut small: on average more than half of max_bytes.
      const total = otlp.requests.reduce((sum, r) => sum + r.bodyBytes, 0);
      expect(otlp.requests.length).toBeLessThan((2 * total) / MAX_BYTES);
    });
  }
});
