/**
 * The configurable part of the OTLP mapping (`mapping.*`): fields promoted to attributes, the
 * service name from a field, trace context from hex fields. Checked three ways: the protobuf
 * encoder (its byte transcoder and its JSON.parse path) and the JSON encoder against the
 * OpenTelemetry serializers fed by RecordMapper; the real sink against the real OTLP/HTTP receiver
 * in both encodings; the config errors.
 */
import { fileURLToPath } from 'node:url';
import { JsonLogsSerializer, ProtobufLogsSerializer } from '@opentelemetry/otlp-transformer';
import protobuf from 'protobufjs';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { ConfigTable } from '../src/config/reader.js';
import type { LineBatch } from '../src/event.js';
import { JsonBatchEncoder, jsonEntrySize, jsonRequestBody } from '../src/sinks/opentelemetry/encode-json.js';
import { BatchEncoder, entrySize, requestBody, type EncodedSlice } from '../src/sinks/opentelemetry/encode.js';
import { opentelemetrySink, type OpentelemetrySink } from '../src/sinks/opentelemetry/index.js';
import { DEFAULT_MAPPING, RecordMapper, type OtlpMapping } from '../src/sinks/opentelemetry/mapping.js';
import { Telemetry } from '../src/telemetry.js';
import type { ReceivedLogRecord } from './support/otlp-receiver.js';
import { batchHelpers } from './support/otlp-batches.js';
import { parseSinkTable as parse, testReceiver as receiver } from './support/otlp-sink.js';

const root = protobuf.loadSync(fileURLToPath(new URL('./support/otlp-logs.proto', import.meta.url)));
const ExportLogsServiceRequest = root.lookupType('opentelemetry.proto.ExportLogsServiceRequest');

const TRACE_ID = '5B8EFFF798038103D269B633813FC60C';
const SPAN_ID = 'eee19b7ec3c1b174';
const READ_AT_MS = Date.UTC(2024, 0, 2, 3, 4, 5, 678);

const { batch } = batchHelpers({ timestampMs: READ_AT_MS });

function mapping(overrides: Partial<OtlpMapping>): OtlpMapping {
  return { ...DEFAULT_MAPPING, ...overrides };
}

const PROMOTE: OtlpMapping = mapping({
  attributes: ['method', 'status', 'ratio', 'ok', 'user', 'tags', 'none'].map((field) => ({ field, name: field })),
  serviceNameField: 'service',
});

/** Every kind of line the mapping treats differently. */
const LINES = [
  JSON.stringify({
    ts: '2024-05-06T07:08:09Z',
    level: 'info',
    msg: 'served',
    service: 'checkout',
    method: 'GET',
    status: 200,
    ratio: 0.5,
    ok: true,
    user: { id: 'u1', roles: ['a', 'b'] },
    tags: [1, 'x'],
    none: null,
    trace_id: TRACE_ID,
    span_id: SPAN_ID,
    trace_flags: 1,
  }),
  JSON.stringify({ msg: 'bad ids', service: 'cart', status: 404, trace_id: 'not-hex', span_id: SPAN_ID.slice(1) }),
  'plain text',
  JSON.stringify({ msg: 'zero id', service: 7, method: 'POST', trace_id: '0'.repeat(32), trace_flags: '01' }),
  JSON.stringify({ msg: 'lower case', service: 'checkout', trace_id: TRACE_ID.toLowerCase(), span_id: SPAN_ID, trace_flags: '0x' }),
  JSON.stringify({ msg: 'no service', service: '', span_id: SPAN_ID.toUpperCase(), trace_flags: 256 }),
  // An escaped service name and trace id: the transcoder decodes them as JSON.parse does.
  `{"msg":"escaped","service":"c\\u0061rt","trace_id":"\\u0035${TRACE_ID.slice(1)}"}`,
  '{"not": "closed"',
];

/** The same line twice: once for the byte transcoder, once (with a duplicate key JSON.parse resolves to the same object) for the JSON.parse path. */
const TWINS = [
  [
    '{"a":1,"service":"api","method":"GET","status":201,"user":{"id":"u2"},"trace_id":"0af7651916cd43dd8448eb211c80319c","span_id":"b7ad6b7169203331","trace_flags":"01"}',
    '{"a":0,"service":"api","method":"GET","status":201,"user":{"id":"u2"},"trace_id":"0af7651916cd43dd8448eb211c80319c","span_id":"b7ad6b7169203331","trace_flags":"01","a":1}',
  ],
  ['{"msg":"x","ratio":2.5,"ok":false}', '{"msg":"y","ratio":2.5,"ok":false,"msg":"x"}'],
] as const;

/** Decoded with every default present, so explicit zeros and omitted fields compare equal. */
function decode(body: Uint8Array): Record<string, unknown> {
  return ExportLogsServiceRequest.toObject(ExportLogsServiceRequest.decode(body), { longs: String, bytes: Array, defaults: true, oneofs: false });
}

function whole(encoded: ReturnType<BatchEncoder['encode']>): Uint8Array {
  return requestBody([{ batch: encoded, from: 0, to: encoded.offsets.length - 1 }]);
}

/** What the OpenTelemetry serializer makes of RecordMapper's records: the reference. */
function reference(input: LineBatch, rules: OtlpMapping, serviceName = 'svc'): Record<string, unknown> {
  return decode(ProtobufLogsSerializer.serializeRequest(new RecordMapper(serviceName, rules).map(input))!);
}

type Decoded = { resourceLogs: { resource: unknown; scopeLogs: { logRecords: unknown[] }[] }[] };

/** Each record with its resource, in order: what slices of a batch must add up to. */
function flatten(request: Record<string, unknown>): unknown[] {
  return (request as Decoded).resourceLogs.flatMap((r) => r.scopeLogs.flatMap((s) => s.logRecords.map((record) => ({ resource: r.resource, record }))));
}

describe('OTLP mapping: protobuf encoder against the OpenTelemetry serializer', () => {
  it('promoted attributes, service split, trace context: byte transcoder and JSON.parse path both as the reference', () => {
    const input = batch(LINES);
    const encoder = new BatchEncoder('svc', PROMOTE);
    const body = whole(encoder.encode(input));
    expect(decode(body)).toEqual(reference(input, PROMOTE));
    expect(encoder.stats).toEqual({ transcoded: 6, other: 2 });
    // Resources in order of first appearance; records in line order within each.
    const decoded = decode(body) as Decoded;
    expect(decoded.resourceLogs.map((r) => r.scopeLogs[0]!.logRecords.length)).toEqual([2, 2, 4]);
  });

  it('a line through the transcoder and its twin through JSON.parse encode the same record', () => {
    for (const rules of [PROMOTE, mapping({ attributes: [{ field: 'method', name: 'http.request.method' }, { field: 'user', name: 'enduser' }], serviceNameField: 'service' })]) {
      const encoder = new BatchEncoder('svc', rules);
      for (const [fast, slow] of TWINS) {
        const before = { ...encoder.stats };
        const a = decode(whole(encoder.encode(batch([fast]))));
        const b = decode(whole(encoder.encode(batch([slow]))));
        expect(encoder.stats).toEqual({ transcoded: before.transcoded + 1, other: before.other + 1 });
        expect(b).toEqual(a);
        expect(a).toEqual(reference(batch([fast]), rules));
      }
    }
  });

  it('renamed attributes, and the same field feeding two rules', () => {
    const rules = mapping({
      attributes: [
        { field: 'method', name: 'http.request.method' },
        { field: 'level', name: 'log.level' },
        { field: 'service', name: 'service' },
      ],
      serviceNameField: 'service',
      traceIdField: 'ts',
      spanIdField: 'span',
    });
    const lines = [
      JSON.stringify({ level: 'warn', method: 'PUT', service: 'api', ts: TRACE_ID, span: SPAN_ID, long: 'x'.repeat(300) }),
      JSON.stringify({ method: 'm'.repeat(200), level: { nested: 'y'.repeat(130) } }),
      JSON.stringify({ ts: '2024-05-06T07:08:09Z', level: 9, method: 1.5 }),
    ];
    const input = batch(lines);
    const encoder = new BatchEncoder('svc', rules);
    expect(decode(whole(encoder.encode(input)))).toEqual(reference(input, rules));
    expect(encoder.stats.other).toBe(0);
  });

  it('random lines with every mapped field, slices cut anywhere across resource groups', () => {
    const random = seeded(5);
    const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
    const VALUES = ['"GET"', '200', '2.5', 'true', 'null', '{"id":"u"}', '[1,"a"]', '"\\u00e9"', `"${TRACE_ID}"`, `"${SPAN_ID}"`, '"01"', '1', '""', '"a\\"b"'];
    const KEYS = ['method', 'status', 'service', 'trace_id', 'span_id', 'trace_flags', 'msg', 'level', 'user', '2', 'method'];
    const lines = Array.from({ length: 400 }, () => {
      const members = Array.from({ length: Math.floor(random() * 7) }, () => `"${pick(KEYS)}":${pick(VALUES)}`);
      return random() < 0.05 ? 'text' : `{${members.join(',')}}`;
    });
    const rules = mapping({ attributes: [{ field: 'method', name: 'm' }, { field: 'status', name: 'status' }, { field: 'user', name: 'u' }], serviceNameField: 'service' });
    const input = batch(lines);
    const encoder = new BatchEncoder('svc', rules);
    const encoded = encoder.encode(input);
    const expected = reference(input, rules);
    expect(decode(whole(encoded))).toEqual(expected);
    expect(encoded.groups!.length / 4).toBeGreaterThan(3);
    expect(encoder.stats.transcoded).toBeGreaterThan(100);
    expect(encoder.stats.other).toBeGreaterThan(50);
    for (const cut of [0, 1, 57, 200, 399, 400]) {
      const slices: EncodedSlice[] = [
        { batch: encoded, from: 0, to: cut },
        { batch: encoded, from: cut, to: 400 },
      ];
      const body = requestBody(slices);
      expect(body.length).toBe(entrySize(slices[0]!) + entrySize(slices[1]!));
      expect(flatten(decode(body))).toEqual(flatten(expected));
    }
  });

  it('more services than the encoder compares by bytes, in runs and interleaved', () => {
    const lines = Array.from({ length: 120 }, (_, i) => JSON.stringify({ n: i, service: `s-${i < 40 ? Math.floor(i / 4) : i % 25}`, method: 'GET' }));
    const rules = mapping({ attributes: [{ field: 'method', name: 'method' }], serviceNameField: 'service' });
    const input = batch(lines);
    const encoded = new BatchEncoder('svc', rules).encode(input);
    expect(encoded.groups!.length / 4).toBe(25);
    expect(decode(whole(encoded))).toEqual(reference(input, rules));
  });

  it('with no mapping configured, records are as before: trace fields only by their default names', () => {
    const input = batch(LINES);
    const encoded = new BatchEncoder('svc').encode(input);
    expect(encoded.groups).toBeUndefined();
    const decoded = decode(whole(encoded)) as Decoded;
    expect(decoded.resourceLogs).toHaveLength(1);
    expect(decode(whole(encoded))).toEqual(reference(input, DEFAULT_MAPPING));
    const off = mapping({ traceIdField: '', spanIdField: '', traceFlagsField: '' });
    const none = decode(whole(new BatchEncoder('svc', off).encode(input))) as { resourceLogs: { scopeLogs: { logRecords: { traceId: number[] }[] }[] }[] };
    expect(none.resourceLogs[0]!.scopeLogs[0]!.logRecords.every((r) => r.traceId.length === 0)).toBe(true);
  });
});

describe('OTLP mapping: JSON encoder against the OpenTelemetry JSON serializer', () => {
  /** The serializer writes an empty `traceId`/`spanId` and zero `flags` when any of the three is set; the encoder omits them, as the protobuf encoding does. */
  function withoutEmpty(value: unknown): unknown {
    const request = value as { resourceLogs: { scopeLogs: { logRecords: Record<string, unknown>[] }[] }[] };
    for (const record of request.resourceLogs.flatMap((r) => r.scopeLogs.flatMap((s) => s.logRecords))) {
      if (record['traceId'] === '') delete record['traceId'];
      if (record['spanId'] === '') delete record['spanId'];
      if (record['flags'] === 0) delete record['flags'];
    }
    return value;
  }

  it('writes what the serializer writes, grouped per resource, and slices across groups', () => {
    const input = batch(LINES);
    const encoded = new JsonBatchEncoder('svc', PROMOTE).encode(input);
    const expected = withoutEmpty(JSON.parse(Buffer.from(JsonLogsSerializer.serializeRequest(new RecordMapper('svc', PROMOTE).map(input))!).toString()));
    const parsed = (slices: EncodedSlice[]): unknown => JSON.parse(Buffer.from(jsonRequestBody(slices)).toString());
    expect(parsed([{ batch: encoded, from: 0, to: LINES.length }])).toEqual(expected);
    const records = (value: unknown): unknown[] =>
      (value as { resourceLogs: { resource: unknown; scopeLogs: { logRecords: unknown[] }[] }[] }).resourceLogs.flatMap((r) =>
        r.scopeLogs[0]!.logRecords.map((record) => ({ resource: r.resource, record })),
      );
    for (const cut of [0, 1, 3, 5, LINES.length]) {
      const slices: EncodedSlice[] = [
        { batch: encoded, from: 0, to: cut },
        { batch: encoded, from: cut, to: LINES.length },
      ];
      expect(records(parsed(slices))).toEqual(records(expected));
      // What the sink counts against batch.max_bytes: the envelope, then each entry with its comma.
      expect(jsonRequestBody(slices).length).toBe(jsonRequestBody([]).length - 1 + jsonEntrySize(slices[0]!) + jsonEntrySize(slices[1]!));
    }
  });
});

function sink(table: ConfigTable): OpentelemetrySink {
  const { config, problems } = parse(table);
  expect(problems).toEqual([]);
  const telemetry = new Telemetry(() => undefined, 'debug');
  const instance = opentelemetrySink.build(config, { id: 'otlp', dataDir: '/tmp', mode: 'replay', telemetry }) as OpentelemetrySink;
  onTestFinished(() => instance.stop(1000));
  return instance;
}

const MAPPING_TABLE = {
  attributes: ['method', 'status', 'ratio', 'ok', 'user', 'tags', 'none'],
  service_name_field: 'service',
};

function byMsg(records: ReceivedLogRecord[], msg: string): ReceivedLogRecord {
  const record = records.find((r) => typeof r.body === 'object' && r.body !== null && (r.body as Record<string, unknown>)['msg'] === msg);
  expect(record, msg).toBeDefined();
  return record!;
}

describe('OTLP mapping through the sink and a real OTLP/HTTP receiver', () => {
  for (const codec of ['protobuf', 'json'] as const) {
    it(`${codec}: attributes with their types, service.name from a field, trace context`, async () => {
      const otlp = await receiver();
      const s = sink({ endpoint: otlp.url, encoding: codec, service_name: 'svc', batch: { timeout_secs: 0.05 }, mapping: MAPPING_TABLE });
      await s.start();
      await s.write(batch(LINES));
      expect(otlp.records).toHaveLength(LINES.length);
      // One request (besides the healthcheck's empty one).
      expect(new Set(otlp.records.map((r) => r.request)).size).toBe(1);
      expect(otlp.records.every((r) => r.encoding === codec)).toBe(true);

      // One batch, three resources: one ResourceLogs each, in order of first appearance.
      expect(otlp.records.map((r) => r.resource['service.name'])).toEqual(['checkout', 'checkout', 'cart', 'cart', 'svc', 'svc', 'svc', 'svc']);
      expect(otlp.records[0]!.resource).toEqual({ 'host.name': 'node-1', 'service.name': 'checkout' });

      const served = byMsg(otlp.records, 'served');
      expect(served.attributes).toEqual({
        'log.file.path': '/var/log/app/service.log',
        'log.file.name': 'service.log',
        method: 'GET',
        status: 200n,
        ratio: 0.5,
        ok: true,
        user: { id: 'u1', roles: ['a', 'b'] },
        tags: [1n, 'x'],
        none: null,
      });
      // Promoted fields left the body; the fields read for the resource and trace context stay.
      expect(served.body).toEqual({ ts: '2024-05-06T07:08:09Z', level: 'info', msg: 'served', service: 'checkout', trace_id: TRACE_ID, span_id: SPAN_ID, trace_flags: 1n });
      expect(served.severityNumber).toBe(9);
      expect(served.traceId).toBe('5b8efff798038103d269b633813fc60c');
      expect(served.spanId).toBe(SPAN_ID);
      expect(served.flags).toBe(1);

      // Invalid ids are left alone: no trace context, the fields stay in the body.
      const bad = byMsg(otlp.records, 'bad ids');
      expect([bad.traceId, bad.spanId, bad.flags]).toEqual(['', '', 0]);
      expect(bad.body).toEqual({ msg: 'bad ids', service: 'cart', trace_id: 'not-hex', span_id: SPAN_ID.slice(1) });
      expect(bad.attributes['status']).toBe(404n);
      const zero = byMsg(otlp.records, 'zero id');
      expect([zero.traceId, zero.spanId, zero.flags, zero.resource['service.name']]).toEqual(['', '', 1, 'svc']);
      expect([byMsg(otlp.records, 'lower case').traceId, byMsg(otlp.records, 'lower case').flags]).toEqual(['5b8efff798038103d269b633813fc60c', 0]);
      const noService = byMsg(otlp.records, 'no service');
      expect([noService.resource['service.name'], noService.spanId, noService.flags]).toEqual(['svc', SPAN_ID, 0]);
      const escaped = byMsg(otlp.records, 'escaped');
      expect([escaped.resource['service.name'], escaped.traceId]).toEqual(['cart', '5b8efff798038103d269b633813fc60c']);
      expect(otlp.records.find((r) => r.body === 'plain text')!.resource['service.name']).toBe('svc');
    });

    it(`${codec}: the JSON.parse fallback (a duplicate key) gives what the fast path gives`, async () => {
      const otlp = await receiver();
      const s = sink({ endpoint: otlp.url, encoding: codec, batch: { timeout_secs: 0.05 }, mapping: { attributes: { method: 'http.request.method', status: 'http.response.status_code', user: 'user' }, service_name_field: 'service' } });
      await s.write(batch(TWINS.flat()));
      expect(otlp.records).toHaveLength(4);
      const strip = ({ request: _request, ...rest }: ReceivedLogRecord): unknown => rest;
      const [apiFast, apiSlow, msgFast, msgSlow] = [byMsgOrA(otlp.records, 0), byMsgOrA(otlp.records, 1), otlp.records[2], otlp.records[3]];
      expect(strip(apiSlow)).toEqual(strip(apiFast));
      expect(strip(msgSlow!)).toEqual(strip(msgFast!));
      expect(apiFast.resource['service.name']).toBe('api');
      expect(apiFast.attributes).toMatchObject({ 'http.request.method': 'GET', 'http.response.status_code': 201n, user: { id: 'u2' } });
      expect([apiFast.traceId, apiFast.spanId, apiFast.flags]).toEqual(['0af7651916cd43dd8448eb211c80319c', 'b7ad6b7169203331', 1]);
      expect(msgFast!.resource['service.name']).toBe('logwasm');
    });
  }
});

/** The `i`th record of service `api` (the twins of the first pair). */
function byMsgOrA(records: ReceivedLogRecord[], i: number): ReceivedLogRecord {
  return records.filter((r) => r.resource['service.name'] === 'api')[i]!;
}

describe('OTLP mapping: config', () => {
  it('reads both forms of mapping.attributes and the field names', () => {
    expect(parse({ endpoint: 'http://c:4318' }).config.mapping).toEqual(DEFAULT_MAPPING);
    const { config, problems } = parse({
      endpoint: 'http://c:4318',
      mapping: { attributes: { method: 'http.request.method', status: 'status' }, service_name_field: 'svc', trace_id_field: 'tid', span_id_field: '', trace_flags_field: 'f' },
    });
    expect(problems).toEqual([]);
    expect(config.mapping).toEqual({
      attributes: [
        { field: 'method', name: 'http.request.method' },
        { field: 'status', name: 'status' },
      ],
      serviceNameField: 'svc',
      traceIdField: 'tid',
      spanIdField: '',
      traceFlagsField: 'f',
    });
    expect(parse({ endpoint: 'http://c:4318', mapping: { attributes: ['a', 'b'] } }).config.mapping.attributes).toEqual([
      { field: 'a', name: 'a' },
      { field: 'b', name: 'b' },
    ]);
  });

  it.each<[string, unknown, string]>([
    ['not a table', 5, 'invalid value for "mapping": expected a table, actual: 5'],
    ['attributes not an array', { attributes: 'method' }, 'invalid value for "mapping.attributes": expected an array of field names or a table of field = "attribute name", actual: "method"'],
    ['attributes with a non-string', { attributes: ['method', 1] }, 'invalid value for "mapping.attributes": expected an array of field names or a table of field = "attribute name", actual: ["method",1]'],
    ['a rename to a non-string', { attributes: { method: true } }, 'invalid value for "mapping.attributes": expected an array of field names or a table of field = "attribute name", actual: {"method":true}'],
    ['an empty field name', { attributes: [''] }, 'invalid value for "mapping.attributes": a field or attribute name is empty'],
    ['a field listed twice', { attributes: ['a', 'a'] }, 'invalid value for "mapping.attributes": field "a" is listed twice'],
    ['two fields, one name', { attributes: { a: 'x', b: 'x' } }, 'invalid value for "mapping.attributes": two fields become attribute "x"'],
    ['a name logwasm sets', { attributes: { path: 'log.file.path' } }, 'invalid value for "mapping.attributes": attribute "log.file.path" is set by logwasm itself'],
    ['an array-index name', { attributes: { a: '2' } }, 'invalid value for "mapping.attributes": attribute name "2" is an array index; not supported'],
    ['a non-string service field', { service_name_field: 5 }, 'invalid value for "mapping.service_name_field": expected a string, actual: 5'],
    ['a non-string trace id field', { trace_id_field: ['trace_id'] }, 'invalid value for "mapping.trace_id_field": expected a string, actual: ["trace_id"]'],
    ['a non-string span id field', { span_id_field: false }, 'invalid value for "mapping.span_id_field": expected a string, actual: false'],
    ['a non-string flags field', { trace_flags_field: 1 }, 'invalid value for "mapping.trace_flags_field": expected a string, actual: 1'],
    ['an unknown key', { attribute: ['a'] }, 'unknown key "mapping.attribute"'],
  ])('reports %s', (_name, value, message) => {
    expect(parse({ endpoint: 'http://c:4318', mapping: value as ConfigTable }).problems).toEqual([message]);
  });
});

/** mulberry32: a small seeded generator, so a failing case can be replayed. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
