import { fileURLToPath } from 'node:url';
import { ProtobufLogsSerializer } from '@opentelemetry/otlp-transformer';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { batchFromLines, type BatchMeta, type LineBatch } from '../src/event.js';
import { BatchEncoder, requestBody, varintSize, type EncodedSlice } from '../src/sinks/opentelemetry/encode.js';
import { RecordMapper } from '../src/sinks/opentelemetry/mapping.js';

const root = protobuf.loadSync(fileURLToPath(new URL('./support/otlp-logs.proto', import.meta.url)));
const ExportLogsServiceRequest = root.lookupType('opentelemetry.proto.ExportLogsServiceRequest');
const encoder = new TextEncoder();

/** Decoded to plain objects with every default present, so explicit zeros and omitted fields compare equal. */
function decode(body: Uint8Array): Record<string, unknown> {
  return ExportLogsServiceRequest.toObject(ExportLogsServiceRequest.decode(body), {
    longs: String,
    bytes: Array,
    defaults: true,
    oneofs: false,
  });
}

function meta(overrides: Partial<BatchMeta> = {}): BatchMeta {
  return {
    sourceId: 'app',
    sourceType: 'file',
    file: '/var/log/äpp/service.log',
    host: 'node-1',
    timestampMs: Date.UTC(2024, 0, 2, 3, 4, 5, 678),
    format: 'json',
    ...overrides,
  };
}

function batch(lines: (string | Uint8Array)[], overrides: Partial<BatchMeta> = {}): LineBatch {
  return batchFromLines(
    lines.map((line) => (typeof line === 'string' ? encoder.encode(line) : line)),
    meta(overrides),
  );
}

/** What the OpenTelemetry exporter's own serializer makes of the same batch: the reference. */
function reference(input: LineBatch, serviceName = 'logwasm'): Record<string, unknown> {
  return decode(ProtobufLogsSerializer.serializeRequest(new RecordMapper(serviceName).map(input))!);
}

function whole(input: LineBatch, serviceName = 'logwasm'): Uint8Array {
  const encoded = new BatchEncoder(serviceName).encode(input);
  return requestBody([{ batch: encoded, from: 0, to: input.offsets.length - 1 }]);
}

const LONG = 'x'.repeat(300);
const LINES = [
  JSON.stringify({
    msg: 'user logged in',
    level: 'WARN',
    timestamp: '2024-05-06T07:08:09.123456789Z',
    count: 3,
    ratio: 0.25,
    ok: true,
    off: false,
    none: null,
    tags: ['a', 1, 2.5, false, null, [], {}],
    nested: { deep: { id: 42, empty: {} } },
  }),
  'plain text line',
  '{"not": "closed"',
  '[1,2,3]',
  '  {"indented": true}',
  JSON.stringify({ level: 30, ts: 1700000000123 }),
  JSON.stringify({ severity: 'crit', time: 1700000001 }),
  JSON.stringify({ level: 'verbose', time: '1714979289123456789' }),
  JSON.stringify({
    negative: -1,
    minusBig: -1234567890123,
    big: 2 ** 53 + 2,
    huge: 2 ** 63,
    hugeNegative: -(2 ** 63),
    beyond: 1e300,
    tiny: -0.000001,
    zero: 0,
    two32: 2 ** 32,
  }),
  JSON.stringify({ 'ключ': 'значение 🎉', emoji: '\ud83d\ude00', lone: '\ud800', long: LONG, [LONG]: LONG.repeat(100) }),
  JSON.stringify({ '2': 'integer-like keys come first in JS', b: 1, '1': 'x' }),
  new Uint8Array([0x68, 0xff, 0x69, 0xe2, 0x82]),
  new Uint8Array([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]), // {"a":"\xff"}
  '',
  'ünïcödé text ' + '€'.repeat(200),
];

describe('OTLP protobuf encoder', () => {
  it('encodes exactly what the OpenTelemetry serializer encodes from the mapped records (JSON batch)', () => {
    const input = batch(LINES);
    expect(decode(whole(input))).toEqual(reference(input));
  });

  it('and for a text batch, another service name and a 1000-line batch', () => {
    const text = batch(LINES, { format: 'text', host: 'h2' });
    expect(decode(whole(text, 'checkout'))).toEqual(reference(text, 'checkout'));
    const many = batch(Array.from({ length: 1000 }, (_, i) => LINES[i % LINES.length]!));
    expect(decode(whole(many))).toEqual(reference(many));
  });

  it('splits a batch at any record: slices become separate resource_logs with the same records', () => {
    const input = batch(LINES);
    const encoded = new BatchEncoder('logwasm').encode(input);
    const count = LINES.length;
    const all = reference(input) as { resourceLogs: { scopeLogs: { logRecords: unknown[] }[] }[] };
    const records = all.resourceLogs[0]!.scopeLogs[0]!.logRecords;
    for (const cut of [1, 5, count - 1]) {
      const slices: EncodedSlice[] = [
        { batch: encoded, from: 0, to: cut },
        { batch: encoded, from: cut, to: count },
      ];
      const decoded = decode(requestBody(slices)) as typeof all;
      expect(decoded.resourceLogs).toHaveLength(2);
      expect(decoded.resourceLogs.map((r) => r.scopeLogs[0]!.logRecords.length)).toEqual([cut, count - cut]);
      expect(decoded.resourceLogs.flatMap((r) => r.scopeLogs[0]!.logRecords)).toEqual(records);
    }
  });

  it('two batches in one request keep their own resources', () => {
    const one = new BatchEncoder('svc').encode(batch(['a', 'b'], { host: 'one' }));
    const two = new BatchEncoder('svc').encode(batch(['c'], { host: 'two', file: '/x/y.log' }));
    const decoded = decode(
      requestBody([
        { batch: one, from: 0, to: 2 },
        { batch: two, from: 0, to: 1 },
      ]),
    ) as { resourceLogs: { resource: { attributes: { value: { stringValue: string } }[] } }[] };
    expect(decoded.resourceLogs.map((r) => r.resource.attributes.map((a) => a.value.stringValue))).toEqual([
      ['one', 'svc'],
      ['two', 'svc'],
    ]);
  });

  it('an empty batch encodes to an entry without records', () => {
    const input = batch([]);
    const encoded = new BatchEncoder('logwasm').encode(input);
    expect(encoded.offsets).toEqual(new Uint32Array([encoded.offsets[0]!]));
    expect(decode(requestBody([{ batch: encoded, from: 0, to: 0 }]))).toMatchObject({
      resourceLogs: [{ scopeLogs: [{ logRecords: [] }] }],
    });
  });

  it('every result owns its whole buffer (so it can be transferred)', () => {
    const encoded = new BatchEncoder('logwasm').encode(batch(['a']));
    expect(encoded.bytes.byteOffset).toBe(0);
    expect(encoded.bytes.buffer.byteLength).toBe(encoded.bytes.byteLength);
    expect(encoded.offsets.buffer.byteLength).toBe(encoded.offsets.byteLength);
  });

  it.each([
    [0, 1],
    [127, 1],
    [128, 2],
    [16383, 2],
    [16384, 3],
    [2 ** 32, 5],
  ])('varintSize(%i) = %i', (value, size) => {
    expect(varintSize(value)).toBe(size);
  });
});
