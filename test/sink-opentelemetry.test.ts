import { describe, expect, it, onTestFinished } from 'vitest';
import type { ConfigTable } from '../src/config/reader.js';
import type { LineBatch } from '../src/event.js';
import {
  DISCARDED_EVENTS,
  ERRORS,
  MAIN_THREAD_ENCODED_BATCHES,
  REJECTED_EVENTS,
  SENT_EVENTS,
  UNDELIVERED_EVENTS,
} from '../src/sinks/opentelemetry/events.js';
import {
  DEFAULT_BATCH_MAX_EVENTS,
  OpentelemetrySink,
  opentelemetrySink,
  parseOpentelemetryConfig,
} from '../src/sinks/opentelemetry/index.js';
import { Telemetry, type LogRecord } from '../src/telemetry.js';
import { pollUntil, settledFlag } from './support/poll.js';
import { batchHelpers } from './support/otlp-batches.js';
import { parseSinkTable as parse, testReceiver as receiver } from './support/otlp-sink.js';

const encoder = new TextEncoder();
const READ_AT_MS = Date.UTC(2024, 0, 2, 3, 4, 5, 678);
const READ_AT_NS = BigInt(READ_AT_MS) * 1_000_000n;

const { meta, batch } = batchHelpers({ timestampMs: READ_AT_MS });

function sink(table: ConfigTable): { sink: OpentelemetrySink; telemetry: Telemetry; logs: LogRecord[] } {
  const { config, problems } = parse(table);
  expect(problems).toEqual([]);
  const logs: LogRecord[] = [];
  const telemetry = new Telemetry((record) => logs.push(record), 'debug');
  const instance = opentelemetrySink.build(config, { id: 'otlp', dataDir: '/tmp', mode: 'replay', telemetry });
  onTestFinished(() => (instance as OpentelemetrySink).stop(1000));
  return { sink: instance as OpentelemetrySink, telemetry, logs };
}

describe('opentelemetry sink: round trip through a real OTLP/HTTP receiver', () => {
  for (const codec of ['protobuf', 'json'] as const) {
    it(`${codec}: every field arrives as mapped`, async () => {
      const otlp = await receiver();
      const { sink: s, telemetry } = sink({ endpoint: otlp.baseUrl, encoding: codec, batch: { timeout_secs: 0.05 } });
      await s.start();
      await s.write(
        batch([
          JSON.stringify({
            msg: 'user logged in',
            level: 'WARN',
            timestamp: '2024-05-06T07:08:09.123456789Z',
            count: 3,
            ratio: 0.25,
            ok: true,
            none: null,
            tags: ['a', 1, 2.5, false],
            nested: { deep: { id: 42 } },
          }),
          'plain text line',
          '{"not": "closed"',
          '[1,2,3]',
          JSON.stringify({ level: 30, ts: 1700000000123 }),
          JSON.stringify({ severity: 'crit', time: 1700000001 }),
        ]),
      );
      // write() resolved: the receiver must already hold every record.
      expect(otlp.records).toHaveLength(6);
      expect(otlp.requests.every((r) => r.status === 200)).toBe(true);
      expect(otlp.requests[0]!.contentType).toBe(codec === 'json' ? 'application/json' : 'application/x-protobuf');
      const [structured, text, broken, array, pino, syslog] = otlp.records;

      expect(structured!.encoding).toBe(codec);
      expect(structured!.body).toEqual({
        msg: 'user logged in',
        level: 'WARN',
        timestamp: '2024-05-06T07:08:09.123456789Z',
        count: 3n,
        ratio: 0.25,
        ok: true,
        none: null,
        tags: ['a', 1n, 2.5, false],
        nested: { deep: { id: 42n } },
      });
      expect(structured!.severityText).toBe('WARN');
      expect(structured!.severityNumber).toBe(13);
      expect(structured!.timeUnixNano).toBe(BigInt(Date.UTC(2024, 4, 6, 7, 8, 9)) * 1_000_000n + 123_456_789n);
      expect(structured!.observedTimeUnixNano).toBe(READ_AT_NS);
      expect(structured!.resource).toEqual({ 'host.name': 'node-1', 'service.name': 'logwasm' });
      expect(structured!.scope.name).toBe('logwasm');
      expect(structured!.attributes).toEqual({
        'log.file.path': '/var/log/app/service.log',
        'log.file.name': 'service.log',
      });

      for (const [record, body] of [
        [text, 'plain text line'],
        [broken, '{"not": "closed"'],
        [array, '[1,2,3]'],
      ] as const) {
        expect(record!.body).toBe(body);
        expect(record!.severityNumber).toBe(0);
        expect(record!.severityText).toBe('');
        expect(record!.timeUnixNano).toBe(READ_AT_NS);
        expect(record!.attributes['log.file.name']).toBe('service.log');
      }

      expect(pino!.severityNumber).toBe(9);
      expect(pino!.severityText).toBe('INFO');
      expect(pino!.timeUnixNano).toBe(1_700_000_000_123n * 1_000_000n);
      expect(syslog!.severityNumber).toBe(18);
      expect(syslog!.severityText).toBe('crit');
      expect(syslog!.timeUnixNano).toBe(1_700_000_001n * 1_000_000_000n);
      expect(telemetry.counter(SENT_EVENTS, 'otlp')).toBe(6);
      expect(telemetry.counter(DISCARDED_EVENTS, 'otlp')).toBe(0);
    });
  }

  it('text batches keep JSON-looking lines as strings; invalid UTF-8 becomes U+FFFD', async () => {
    const otlp = await receiver();
    const { sink: s } = sink({ endpoint: otlp.url, batch: { timeout_secs: 0.05 }, service_name: 'checkout' });
    await s.write(batch(['{"a":1}', new Uint8Array([0x68, 0xff, 0x69, 0xe2, 0x82])], { format: 'text', host: 'h2' }));
    expect(otlp.records.map((r) => r.body)).toEqual(['{"a":1}', 'h\uFFFDi\uFFFD']);
    expect(otlp.records[0]!.resource).toEqual({ 'host.name': 'h2', 'service.name': 'checkout' });
  });

  it('groups records per resource: one ResourceLogs per host in a request', async () => {
    const otlp = await receiver();
    const { sink: s } = sink({
      endpoint: otlp.url,
      encoding: 'json',
      batch: { max_events: 4, timeout_secs: 10 },
    });
    await Promise.all([s.write(batch(['a', 'b'], { host: 'one' })), s.write(batch(['c', 'd'], { host: 'two' }))]);
    expect(otlp.requests).toHaveLength(1);
    expect(otlp.records.map((r) => `${String(r.resource['host.name'])}:${String(r.body)}`)).toEqual([
      'one:a',
      'one:b',
      'two:c',
      'two:d',
    ]);
  });

  it('gzip compression and request.headers reach the collector', async () => {
    const otlp = await receiver();
    const { sink: s } = sink({
      endpoint: otlp.url,
      compression: 'gzip',
      request: { headers: { 'x-tenant': 'acme' } },
      batch: { timeout_secs: 0.05 },
    });
    await s.write(batch(['zipped']));
    expect(otlp.requests[0]!.contentEncoding).toBe('gzip');
    expect(otlp.requests[0]!.headers['x-tenant']).toBe('acme');
    expect(otlp.records.map((r) => r.body)).toEqual(['zipped']);
  });
});

describe('opentelemetry sink: the encoding pool', () => {
  for (const codec of ['protobuf', 'json'] as const) {
    it(`${codec}: encodes in a worker thread: the batch buffer is transferred, nothing is encoded on the main thread`, async () => {
      const otlp = await receiver();
      const { sink: s, telemetry } = sink({ endpoint: otlp.url, encoding: codec, batch: { timeout_secs: 0.05 } });
      await s.start();
      const input = batch(['{"msg":"one","level":"info"}', 'two']);
      const data = input.data;
      expect(data.buffer.byteLength).toBeGreaterThan(0);
      await s.write(input);
      // Ownership moved to the encoding thread, so the buffer here is detached (a structured-clone
      // copy would leave it whole). Requires `npm run build`: the worker runs from dist/.
      expect(data.buffer.byteLength).toBe(0);
      expect(otlp.records.map((r) => r.body)).toEqual([{ msg: 'one', level: 'info' }, 'two']);
      expect(otlp.records[0]!.severityNumber).toBe(9);
      expect(telemetry.counter(MAIN_THREAD_ENCODED_BATCHES, 'otlp')).toBe(0);
    });
  }

  it('a view into a larger buffer is copied, not transferred: the rest of the buffer stays usable', async () => {
    const otlp = await receiver();
    const { sink: s } = sink({ endpoint: otlp.url, batch: { timeout_secs: 0.05 } });
    const whole = encoder.encode('xxhello');
    const input: LineBatch = { data: whole.subarray(2), offsets: new Uint32Array([0, 5]), meta: meta({ format: 'text' }) };
    await s.write(input);
    expect(whole.byteLength).toBe(7);
    expect(otlp.records.map((r) => r.body)).toEqual(['hello']);
  });

  it('keeps the write order across concurrent writes, batches split over requests, one resource per file', async () => {
    const otlp = await receiver();
    const { sink: s } = sink({
      endpoint: otlp.url,
      batch: { max_events: 7, timeout_secs: 0.05 },
      request: { concurrency: 'none' },
    });
    const expected: string[] = [];
    const writes: Promise<void>[] = [];
    for (let b = 0; b < 12; b++) {
      const lines = Array.from({ length: 1 + (b % 5) }, (_, i) => `{"b":${b},"i":${i}}`);
      expected.push(...lines.map((_, i) => `${b}.${i}`));
      writes.push(s.write(batch(lines, { file: `/logs/f${b % 3}.log` })));
    }
    await Promise.all(writes);
    const seen = otlp.records.map((r) => {
      const body = r.body as { b: bigint; i: bigint };
      expect(r.attributes['log.file.path']).toBe(`/logs/f${Number(body.b) % 3}.log`);
      return `${body.b}.${body.i}`;
    });
    expect(seen).toEqual(expected);
    expect(otlp.requests.every((r) => r.recordCount <= 7)).toBe(true);
    expect(otlp.requests.length).toBeGreaterThan(expected.length / 7);
  });
});

describe('opentelemetry sink: Kubernetes and stream metadata', () => {
  for (const codec of ['protobuf', 'json'] as const) {
    it(`${codec}: k8s.* resource attributes and log.iostream`, async () => {
      const otlp = await receiver();
      const { sink: s } = sink({ endpoint: otlp.url, encoding: codec, batch: { timeout_secs: 0.05 } });
      await s.write(
        batch(['{"msg":"hi"}'], {
          kubernetes: { pod_namespace: 'shop', pod_name: 'cart-7d9f', pod_uid: 'u-1', container_name: 'cart' },
          stream: 'stderr',
        }),
      );
      await s.write(batch(['plain'], { host: 'node-1' }));
      expect(otlp.records[0]!.resource).toEqual({
        'host.name': 'node-1',
        'service.name': 'logwasm',
        'k8s.namespace.name': 'shop',
        'k8s.pod.name': 'cart-7d9f',
        'k8s.pod.uid': 'u-1',
        'k8s.container.name': 'cart',
      });
      expect(otlp.records[0]!.attributes['log.iostream']).toBe('stderr');
      expect(otlp.records[1]!.resource).toEqual({ 'host.name': 'node-1', 'service.name': 'logwasm' });
      expect(otlp.records[1]!.attributes).toEqual({
        'log.file.path': '/var/log/app/service.log',
        'log.file.name': 'service.log',
      });
    });
  }
});

describe('opentelemetry sink: delivery', () => {
  it('write() stays pending until the receiver stored the records (batch timeout)', async () => {
    const otlp = await receiver();
    const { sink: s } = sink({ endpoint: otlp.url, batch: { max_events: 100, timeout_secs: 0.3 } });
    const written = s.write(batch(['one', 'two']));
    const flag = settledFlag(written);
    expect(flag.settled).toBe(false);
    expect(otlp.records).toHaveLength(0);
    await written;
    expect(otlp.records.map((r) => r.body)).toEqual(['one', 'two']);
  });

  it('a full batch leaves without waiting for the timeout; requests hold at most max_events', async () => {
    const otlp = await receiver();
    const { sink: s } = sink({ endpoint: otlp.url, batch: { max_events: 3, timeout_secs: 3600 } });
    const lines = Array.from({ length: 9 }, (_, i) => `line ${i}`);
    await s.write(batch(lines));
    expect(otlp.requests.map((r) => r.recordCount)).toEqual([3, 3, 3]);
    expect(otlp.records.map((r) => r.body).sort()).toEqual(lines.sort());
  });

  it('503 twice (the exporter retries itself), then success: every record arrives once', async () => {
    const otlp = await receiver();
    otlp.failNext(2, 503);
    const { sink: s, telemetry } = sink({ endpoint: otlp.url, batch: { timeout_secs: 0.05 } });
    await s.write(batch(['a', 'b', 'c']));
    expect(otlp.requests.map((r) => r.status)).toEqual([503, 503, 200]);
    expect(otlp.records.map((r) => r.body)).toEqual(['a', 'b', 'c']);
    expect(telemetry.counter(SENT_EVENTS, 'otlp')).toBe(3);
    expect(telemetry.counter(DISCARDED_EVENTS, 'otlp')).toBe(0);
  });

  it('500 twice: our own retry loop backs off and resends the same request', async () => {
    const otlp = await receiver();
    otlp.failNext(2, 500);
    const { sink: s, telemetry, logs } = sink({
      endpoint: otlp.url,
      batch: { timeout_secs: 0.05 },
      request: { retry_initial_backoff_secs: 0.01 },
    });
    await s.write(batch(['x', 'y']));
    expect(otlp.requests.map((r) => r.status)).toEqual([500, 500, 200]);
    expect(otlp.records.map((r) => r.body)).toEqual(['x', 'y']);
    expect(telemetry.counter(ERRORS, 'otlp')).toBe(2);
    expect(telemetry.counter(SENT_EVENTS, 'otlp')).toBe(2);
    // Two failures within the rate-limit window: one log line.
    expect(logs.filter((l) => l.event === 'otlp_send_failed')).toHaveLength(1);
  });

  it('400 on one request: its records are counted as dropped and write() resolves; others arrive', async () => {
    const otlp = await receiver();
    otlp.failNext(1, 400);
    const { sink: s, telemetry, logs } = sink({ endpoint: otlp.url, batch: { max_events: 2, timeout_secs: 0.05 } });
    await s.write(batch(['bad1', 'bad2']));
    await s.write(batch(['good']));
    expect(otlp.requests.map((r) => r.status)).toEqual([400, 200]);
    expect(otlp.records.map((r) => r.body)).toEqual(['good']);
    expect(telemetry.counter(REJECTED_EVENTS, 'otlp')).toBe(2);
    expect(telemetry.counter(DISCARDED_EVENTS, 'otlp')).toBe(2);
    expect(telemetry.counter(SENT_EVENTS, 'otlp')).toBe(1);
    const rejected = logs.filter((l) => l.event === 'otlp_records_rejected');
    expect(rejected).toHaveLength(1);
    expect(rejected[0]!.level).toBe('error');
    expect(rejected[0]!.message).toContain('HTTP 400');
  });

  it('collector down: write() stays pending (backpressure); a bounded stop counts the rest as undelivered', async () => {
    const otlp = await receiver();
    otlp.failNext(1000, 500);
    const { sink: s, telemetry } = sink({
      endpoint: otlp.url,
      batch: { timeout_secs: 0.01 },
      request: { retry_initial_backoff_secs: 0.01, retry_max_duration_secs: 0.05 },
    });
    const written = s.write(batch(['lost1', 'lost2']));
    const flag = settledFlag(written);
    await pollUntil('3 failed attempts', () => otlp.requests.length >= 3 || undefined, {
      describe: () => otlp.describe(),
    });
    expect(flag.settled).toBe(false);
    await s.stop(200);
    await written;
    expect(telemetry.counter(UNDELIVERED_EVENTS, 'otlp')).toBe(2);
    expect(telemetry.counter(DISCARDED_EVENTS, 'otlp')).toBe(2);
    expect(telemetry.counter(SENT_EVENTS, 'otlp')).toBe(0);
  });

  it('stop() without a deadline flushes the partial batch and waits for delivery', async () => {
    const otlp = await receiver();
    const { sink: s } = sink({ endpoint: otlp.url, batch: { timeout_secs: 3600 } });
    const written = s.write(batch(['tail']));
    await s.stop();
    await written;
    expect(otlp.records.map((r) => r.body)).toEqual(['tail']);
  });

  it('an empty endpoint disables the sink: one info line, every batch accepted at once', async () => {
    const { sink: s, logs, telemetry } = sink({ endpoint: '' });
    await s.start();
    await s.write(batch(['dropped on purpose']));
    expect(logs.filter((l) => l.event === 'otlp_sink_disabled').map((l) => l.level)).toEqual(['info']);
    expect(telemetry.counter(SENT_EVENTS, 'otlp')).toBe(0);
  });
});

describe('opentelemetry sink: config', () => {
  it('plain endpoint gets /v1/logs; defaults', () => {
    const { config, problems } = parse({ endpoint: 'http://otel-collector:4317' });
    expect(problems).toEqual([]);
    expect(config.endpoint).toBe('http://otel-collector:4317/v1/logs');
    expect(config.codec).toBe('protobuf');
    expect(config.batchMaxEvents).toBe(DEFAULT_BATCH_MAX_EVENTS);
    expect(config.batchTimeoutSecs).toBe(1);
    expect(config.retryAttempts).toBe(Number.POSITIVE_INFINITY);
    expect(config.serviceName).toBe('logwasm');
    expect(parse({ endpoint: 'http://c:4318/v1/logs' }).config.endpoint).toBe('http://c:4318/v1/logs');
    expect(parse({ endpoint: 'http://c:4318/otel/' }).config.endpoint).toBe('http://c:4318/otel/v1/logs');
  });

  it("Vector's protocol form: uri as given, options inside protocol", () => {
    const { config, problems } = parse({
      protocol: {
        type: 'http',
        uri: 'http://collector:4318/custom',
        method: 'post',
        encoding: { codec: 'json' },
        framing: { method: 'bytes' },
        request: { headers: { a: 'b' }, concurrency: 'none' },
        batch: { max_events: 10 },
        compression: 'gzip',
      },
      healthcheck: { enabled: false },
      acknowledgements: { enabled: true },
    });
    expect(problems).toEqual([]);
    expect(config).toMatchObject({
      endpoint: 'http://collector:4318/custom',
      codec: 'json',
      headers: { a: 'b' },
      concurrency: 1,
      batchMaxEvents: 10,
      compression: 'gzip',
    });
  });

  it('reports every mistake in one pass', () => {
    expect(
      parse({
        endpoint: 'ftp://x',
        encoding: 'avro',
        batch: { max_events: 0, timeout: 1 },
        request: { headers: { a: 1 } },
        bogus: true,
      }).problems,
    ).toEqual([
      'invalid value for "endpoint": expected an http:// or https:// URL, actual: "ftp://x"',
      'invalid value for "encoding": expected one of "protobuf", "json", actual: "avro"',
      'invalid value for "batch.max_events": expected a number >= 1, actual: 0',
      'unknown key "batch.timeout"',
      'invalid value for "request.headers": expected a table of strings, actual: {"a":1}',
      'unknown key "bogus"',
    ]);
    expect(parse({}).problems).toEqual(['missing required key "endpoint"']);
    expect(parse({ endpoint: 'http://a', protocol: { uri: 'http://b' } }).problems).toEqual([
      'set either "endpoint" or "protocol.uri", not both',
    ]);
    expect(parse({ protocol: { uri: 'http://b', batch: {} }, batch: {} }).problems).toEqual([
      'set either "batch" or "protocol.batch", not both',
    ]);
  });

  it('parse() is what the registry calls', () => {
    expect(opentelemetrySink.parse).toBe(parseOpentelemetryConfig);
    expect(opentelemetrySink.type).toBe('opentelemetry');
  });
});
