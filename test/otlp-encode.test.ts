import { fileURLToPath } from 'node:url';
import { JsonLogsSerializer, ProtobufLogsSerializer } from '@opentelemetry/otlp-transformer';
import protobuf from 'protobufjs';
import { describe, expect, it, onTestFinished } from 'vitest';
import { batchFromLines, type LineBatch } from '../src/event.js';
import { JsonBatchEncoder, jsonRequestBody } from '../src/sinks/opentelemetry/encode-json.js';
import { BatchEncoder, requestBody, varintSize, type EncodedSlice } from '../src/sinks/opentelemetry/encode.js';
import { RecordMapper } from '../src/sinks/opentelemetry/mapping.js';
import { MAX_DEPTH } from '../src/sinks/opentelemetry/transcode.js';
import { batchHelpers } from './support/otlp-batches.js';

const root = protobuf.loadSync(fileURLToPath(new URL('./support/otlp-logs.proto', import.meta.url)));
const ExportLogsServiceRequest = root.lookupType('opentelemetry.proto.ExportLogsServiceRequest');

/** Decoded to plain objects with every default present, so explicit zeros and omitted fields compare equal. */
function decode(body: Uint8Array): Record<string, unknown> {
  return ExportLogsServiceRequest.toObject(ExportLogsServiceRequest.decode(body), {
    longs: String,
    bytes: Array,
    defaults: true,
    oneofs: false,
  });
}

const { meta, batch } = batchHelpers({ file: '/var/log/äpp/service.log' });

/** What the OpenTelemetry exporter's own serializer makes of the same batch: the reference. */
function reference(input: LineBatch, serviceName = 'logwasm'): Record<string, unknown> {
  return decode(ProtobufLogsSerializer.serializeRequest(new RecordMapper(serviceName).map(input))!);
}

/**
 * Size of the request re-encoded by protobufjs, which writes every length prefix in its minimal
 * form: a longer prefix of ours (a reservation not shrunk) would make our body longer. Field order
 * differs (the body comes before the time in ours), sizes do not.
 */
function reencodedLength(body: Uint8Array): number {
  return ExportLogsServiceRequest.encode(ExportLogsServiceRequest.decode(body)).finish().length;
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

/** Random JSON text with every form the transcoder handles differently: escapes, number forms, blanks, keys. */
function randomJson(random: () => number): string {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const blank = (): string => (random() < 0.15 ? pick([' ', '\t', '  ', '\r\n ']) : '');
  const CHARS = ['a', 'Z', ' ', 'é', '€', '🎉', 'ключ', '"', '\\', '/', '\n', '\t', '\b', '\u0001', '\u001f', '\ud83d\ude00'];
  const RAW_ESCAPES = ['\\ud800', '\\udc00', '\\ud83d\\ude00', '\\ud83dx', '\\u00e9', '\\u00E9', '\\/', '\\u0000'];
  const string = (): string => {
    let out = '"';
    const length = Math.floor(random() * 6);
    for (let i = 0; i < length; i++) {
      if (random() < 0.1) {
        out += pick(RAW_ESCAPES);
        continue;
      }
      const text = pick(CHARS);
      // Either JSON.stringify's form, or every UTF-16 unit as \uXXXX.
      out +=
        random() < 0.2
          ? [...text].map((c) => [...Array(c.length).keys()].map((k) => `\\u${c.charCodeAt(k).toString(16).padStart(4, '0')}`).join('')).join('')
          : JSON.stringify(text).slice(1, -1);
    }
    return `${out}"`;
  };
  const NUMBERS = ['0', '-0', '7', '-42', '0.5', '-0.25', '1e3', '1E-2', '2.0', '1.5e300', '-1e400', '9007199254740993', '12345678901234567890', '-9223372036854775808', '9223372036854775807', '123456789012345', '1234567890123456', '4294967296', '-4294967296', '3.14159'];
  const KEYS = ['msg', 'level', 'ts', 'timestamp', 'time', 'severity', 'a', 'b', '2', '01', '__proto__', 'ключ', 'x y'];
  const TIMES = ['"2024-05-06T07:08:09.123Z"', '"2024-02-30T00:00:00Z"', '1700000000123', '"1714979289123456789"', '"soon"', 'true', '1.5'];
  const LEVELS = ['"info"', '"WARN"', '"verbose"', '30', '13', '99', '"17"', 'null', '{}'];
  const value = (depth: number, key?: string): string => {
    if (key === 'ts' || key === 'timestamp' || key === 'time') return pick(TIMES);
    if (key === 'level' || key === 'severity') return pick(LEVELS);
    const r = random();
    if (depth > 3 || r < 0.35) return string();
    if (r < 0.6) return pick(NUMBERS);
    if (r < 0.7) return pick(['true', 'false', 'null']);
    if (r < 0.85) return `[${blank()}${Array.from({ length: Math.floor(random() * 4) }, () => value(depth + 1)).join(`${blank()},${blank()}`)}${blank()}]`;
    return object(depth + 1);
  };
  const object = (depth: number): string => {
    const keys = Array.from({ length: Math.floor(random() * 6) }, () => (random() < 0.2 ? string().slice(1, -1) : pick(KEYS)));
    const members = keys.map((key) => `${blank()}${JSON.stringify(key)}${blank()}:${blank()}${value(depth, depth === 1 ? key : undefined)}${blank()}`);
    return `{${members.join(',')}${blank()}}`;
  };
  return object(1);
}

describe('OTLP protobuf encoder: byte transcoder against JSON.parse', () => {
  it('random lines (escapes, number forms, blanks, duplicate and integer-like keys, broken lines) encode as JSON.parse + the OTel serializer would', () => {
    const random = seeded(20241125);
    const lines: string[] = [];
    for (let i = 0; i < 3000; i++) {
      const line = randomJson(random);
      // Some lines broken: cut short, or with something after the object.
      const r = random();
      lines.push(r < 0.05 ? line.slice(0, Math.floor(random() * line.length)) : r < 0.08 ? `${line}x` : line);
    }
    const input = batch(lines);
    const encoder = new BatchEncoder('logwasm');
    const encoded = encoder.encode(input);
    expect(decode(requestBody([{ batch: encoded, from: 0, to: lines.length }]))).toEqual(reference(input));
    // The fast path did most of the work, and the fallback was exercised too.
    expect(encoder.stats.transcoded).toBeGreaterThan(lines.length / 2);
    expect(encoder.stats.other).toBeGreaterThan(100);
  });

  it('the benchmark corpus takes the fast path for every line', () => {
    const lines = [
      '{"ts":"2024-01-01T00:00:00.123Z","level":"info","msg":"request done","service":"api","method":"GET","path":"/v1/users/42","status":200,"duration_ms":12.34,"bytes":512}',
      '{"ts":"2024-01-01T00:00:00.124Z","level":"warn","msg":"slow","metadata":{"user":{"id":"u-123456"},"session":{"id":"0123abcd4567ef89"}}}',
    ];
    const input = batch(lines);
    const encoder = new BatchEncoder('logwasm');
    const encoded = encoder.encode(input);
    expect(encoder.stats).toEqual({ transcoded: 2, other: 0 });
    expect(decode(requestBody([{ batch: encoded, from: 0, to: 2 }]))).toEqual(reference(input));
  });

  it('strings around the length-prefix boundaries (127, 128, 16383, 16384 bytes), plain and escaped', () => {
    const lines = [127, 128, 16383, 16384].flatMap((n) => [
      JSON.stringify({ [`k${'x'.repeat(n - 1)}`]: 'y'.repeat(n) }),
      JSON.stringify({ v: `${'z'.repeat(n - 2)}\n`, w: `é${'a'.repeat(n)}` }),
    ]);
    const input = batch(lines);
    const encoder = new BatchEncoder('logwasm');
    const encoded = encoder.encode(input);
    expect(encoder.stats).toEqual({ transcoded: lines.length, other: 0 });
    expect(decode(requestBody([{ batch: encoded, from: 0, to: lines.length }]))).toEqual(reference(input));
  });

  it('member lengths around the one-byte prefix limits (string values, keys, nested objects), escaped and spaced keys', () => {
    const lines = [
      // A string value's KeyValue.value is its length + 2: 125 and 126 bytes straddle 128.
      ...[124, 125, 126, 127, 128, 129].map((n) => JSON.stringify({ v: 'a'.repeat(n), n })),
      // The whole KeyValue entry crossing 128 with a short value.
      ...[118, 119, 120, 121, 122].map((n) => JSON.stringify({ [`k${'y'.repeat(n)}`]: 'ab' })),
      // Nested objects reserve one length byte: contents just below and above 128 and 16384.
      ...[100, 118, 119, 120, 121, 16360, 16380, 16400].map((n) => JSON.stringify({ nested: { s: 'n'.repeat(n) }, after: 1 })),
      JSON.stringify({ deep: { a: { b: { c: 'q'.repeat(200) } }, d: {} } }),
      // Escaped keys: the same key as a plain one is a duplicate (JSON.parse keeps the last value at the first place).
      '{"a":1,"\\u0061":2}',
      '{"\\u0074s":"2024-05-06T07:08:09Z","\\u006cevel":"error","msg":"escaped captured keys"}',
      '{"\\"quoted\\"":"v","tab\\tkey":"\\u00e9t\\u00e9"}',
      ' { "ts" : "2024-05-06T07:08:09Z" , "level" :\t"warn" ,\r\n"n" : -12 , "o" : { "x" : [ 1 , "y" ] } } ',
      '{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"k":11,"l":12,"m":13,"a":14}',
    ];
    const input = batch(lines);
    const encoder = new BatchEncoder('logwasm');
    const encoded = encoder.encode(input);
    const body = requestBody([{ batch: encoded, from: 0, to: lines.length }]);
    expect(decode(body)).toEqual(reference(input));
    expect(encoder.stats).toEqual({ transcoded: lines.length - 2, other: 2 });
    expect(reencodedLength(body)).toBe(body.length);
  });

  it('every length prefix is minimal: re-encoding the decoded random lines gives the same size', () => {
    const random = seeded(7);
    const lines = Array.from({ length: 2000 }, () => randomJson(random));
    const body = whole(batch(lines));
    expect(reencodedLength(body)).toBe(body.length);
  });

  it('a line never reads into the next one', () => {
    // Each line alone is broken; glued to its neighbour it would be an object.
    const input = batch(['{"a":', '1}', '{', '}', '{"b":"x', '"}', '{"c":[', ']}']);
    expect(decode(whole(input))).toEqual(reference(input));
  });

  it('invalid UTF-8 inside a JSON line goes through JSON.parse (U+FFFD), other lines of the batch stay fast', () => {
    const input = batch([new Uint8Array([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc3, 0x22, 0x7d]), '{"ok":1}']);
    const encoder = new BatchEncoder('logwasm');
    const encoded = encoder.encode(input);
    expect(encoder.stats).toEqual({ transcoded: 1, other: 1 });
    expect(decode(requestBody([{ batch: encoded, from: 0, to: 2 }]))).toEqual(reference(input));
  });

  it('nesting past the transcoder limit goes through JSON.parse, with the same result', () => {
    // Three protobuf levels per JSON level: lift protobufjs's default limit of 100 for this decode.
    const limits = { util: protobuf.util.recursionLimit, reader: protobuf.Reader.recursionLimit };
    protobuf.util.recursionLimit = protobuf.Reader.recursionLimit = 1000;
    onTestFinished(() => {
      protobuf.util.recursionLimit = limits.util;
      protobuf.Reader.recursionLimit = limits.reader;
    });
    const depth = MAX_DEPTH + 5;
    const input = batch([`${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`, `{"b":${'['.repeat(depth)}${']'.repeat(depth)}}`, '{"c":[[1]]}']);
    const encoder = new BatchEncoder('logwasm');
    const encoded = encoder.encode(input);
    expect(encoder.stats).toEqual({ transcoded: 1, other: 2 });
    expect(decode(requestBody([{ batch: encoded, from: 0, to: 3 }]))).toEqual(reference(input));
  });
});

describe('OTLP JSON encoder', () => {
  const jsonReference = (input: LineBatch): unknown =>
    JSON.parse(Buffer.from(JsonLogsSerializer.serializeRequest(new RecordMapper('logwasm').map(input))!).toString());
  const parsed = (body: Uint8Array): unknown => JSON.parse(Buffer.from(body).toString());

  it('writes what the OpenTelemetry JSON serializer writes from the mapped records', () => {
    for (const format of ['json', 'text'] as const) {
      const input = batch(LINES, { format });
      const encoded = new JsonBatchEncoder('logwasm').encode(input);
      expect(parsed(jsonRequestBody([{ batch: encoded, from: 0, to: LINES.length }]))).toEqual(jsonReference(input));
    }
  });

  it('splits and joins like the protobuf encoding: slices are resourceLogs entries, empty ones included', () => {
    const input = batch(LINES);
    const encoded = new JsonBatchEncoder('logwasm').encode(input);
    const reference = jsonReference(input) as { resourceLogs: { scopeLogs: { logRecords: unknown[] }[] }[] };
    const records = reference.resourceLogs[0]!.scopeLogs[0]!.logRecords;
    const decoded = parsed(
      jsonRequestBody([
        { batch: encoded, from: 0, to: 1 },
        { batch: encoded, from: 1, to: 1 },
        { batch: encoded, from: 1, to: LINES.length },
      ]),
    ) as typeof reference;
    expect(decoded.resourceLogs.map((r) => r.scopeLogs[0]!.logRecords.length)).toEqual([1, 0, LINES.length - 1]);
    expect(decoded.resourceLogs.flatMap((r) => r.scopeLogs[0]!.logRecords)).toEqual(records);
  });
});

describe('OTLP protobuf encoder: batches framed as whole requests', () => {
  const framedLines = [
    '{"ts":"2024-05-06T07:08:09.123Z","level":"info","msg":"é","n":1}',
    '{"a":1,"a":2}', // a duplicate key: refused by the fast paths, encoded through JSON.parse
    'plain text',
    '{"nested":{"list":[1,2.5,true,null,"x"]},"level":"error"}',
  ];
  for (const wasm of [true, false]) {
    it(`${wasm ? 'Rust' : 'JS'} path: the same records as unframed, and the whole batch is its own request body`, () => {
      const framedEncoder = new BatchEncoder('svc', undefined, { wasm, framed: true });
      const plain = new BatchEncoder('svc', undefined, { wasm });
      for (const lines of [framedLines, framedLines.slice(0, 1), framedLines.slice(1, 2), []]) {
        const input = batchFromLines(lines.map((l) => new TextEncoder().encode(l)), meta());
        const framed = framedEncoder.encode(input);
        const unframed = plain.encode(input);
        expect(framed.request).toBeDefined();
        expect(requestBody([{ batch: framed, from: 0, to: lines.length }])).toBe(framed.bytes);
        expect(Buffer.from(framed.bytes)).toEqual(Buffer.from(requestBody([{ batch: unframed, from: 0, to: lines.length }])));
        for (let from = 0; from <= lines.length; from++) {
          for (let to = from; to <= lines.length; to++) {
            if (from === 0 && to === lines.length) continue;
            expect(Buffer.from(requestBody([{ batch: framed, from, to }]))).toEqual(Buffer.from(requestBody([{ batch: unframed, from, to }])));
          }
        }
      }
      expect(framedEncoder.usesWasm).toBe(wasm);
    });
  }
});
