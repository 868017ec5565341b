/**
 * The Rust encoder (crates/otlp_encode, src/sinks/opentelemetry/wasm-encoder.ts) against the JS
 * path it replaces: the same EncodedBatch byte for byte, whatever the lines, and refused records
 * counted and encoded by JS.
 */
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createLineGenerator } from '../benchmarks/generate.js';
import type { LineBatch } from '../src/event.js';
import { BatchEncoder, type EncodedBatch } from '../src/sinks/opentelemetry/encode.js';
import { DEFAULT_MAPPING, type OtlpMapping } from '../src/sinks/opentelemetry/mapping.js';
import { MAX_DEPTH } from '../src/sinks/opentelemetry/transcode.js';
import { WASM_ENCODER_EXPORTS, wasmEncoderFile, wasmEncoderProblem } from '../src/sinks/opentelemetry/wasm-encoder.js';
import { compileModuleSync, instantiate, isMemory, moduleImports } from '../src/wasm-memory/wasm-api.js';
import { tempDir } from './support/cli.js';
import { batchHelpers } from './support/otlp-batches.js';

const utf8 = new TextEncoder();

const { meta, batch } = batchHelpers({ file: '/var/log/äpp/service.log' });

/** The two paths, each with its own encoder, kept across batches as a worker keeps one. */
function pair(mapping: OtlpMapping = DEFAULT_MAPPING): { rust: BatchEncoder; js: BatchEncoder } {
  const rust = new BatchEncoder('svc', mapping);
  const js = new BatchEncoder('svc', mapping, { wasm: false });
  expect(rust.usesWasm).toBe(true);
  expect(js.usesWasm).toBe(false);
  return { rust, js };
}

function plain(encoded: EncodedBatch): { bytes: string; offsets: number[]; resourceEnd: number; groups: number[] | undefined } {
  return {
    bytes: Buffer.from(encoded.bytes).toString('hex'),
    offsets: [...encoded.offsets],
    resourceEnd: encoded.resourceEnd,
    groups: encoded.groups === undefined ? undefined : [...encoded.groups],
  };
}

/** Encodes `input` both ways; returns the records the Rust encoder refused in this batch. */
function same(encoders: { rust: BatchEncoder; js: BatchEncoder }, input: LineBatch): number {
  const refusedBefore = encoders.rust.wasmStats.refused;
  const encodedBefore = encoders.rust.wasmStats.encoded;
  const rust = encoders.rust.encode(input);
  const js = encoders.js.encode(input);
  expect(plain(rust)).toEqual(plain(js));
  expect(rust.bytes.byteLength).toBe(rust.bytes.buffer.byteLength);
  expect(encoders.rust.stats).toEqual(encoders.js.stats);
  expect(encoders.rust.wasmStats.failed).toBe(0);
  const refused = encoders.rust.wasmStats.refused - refusedBefore;
  expect(encoders.rust.wasmStats.encoded - encodedBefore + refused).toBe(input.offsets.length - 1);
  return refused;
}

describe('the committed otlp_encode.wasm', () => {
  it('loads, imports nothing, and exports memory and every function with its arity', () => {
    const module = compileModuleSync(readFileSync(wasmEncoderFile()));
    expect(moduleImports(module)).toEqual([]);
    const instance = instantiate(module);
    expect(isMemory(instance.exports.memory)).toBe(true);
    for (const [name, arity] of Object.entries(WASM_ENCODER_EXPORTS)) {
      const value = instance.exports[name];
      expect(typeof value, name).toBe('function');
      expect((value as (...args: unknown[]) => unknown).length, name).toBe(arity);
    }
  });

  it('is used for the default mapping and custom trace fields, not for promoted attributes, a service field or repeated fields', () => {
    expect(new BatchEncoder('svc').usesWasm).toBe(true);
    expect(new BatchEncoder('svc', { ...DEFAULT_MAPPING, traceIdField: 'tid', spanIdField: '', traceFlagsField: 'f' }).usesWasm).toBe(true);
    expect(new BatchEncoder('svc', { ...DEFAULT_MAPPING, attributes: [{ field: 'user', name: 'user' }] }).usesWasm).toBe(false);
    expect(new BatchEncoder('svc', { ...DEFAULT_MAPPING, serviceNameField: 'service' }).usesWasm).toBe(false);
    expect(new BatchEncoder('svc', { ...DEFAULT_MAPPING, traceIdField: 'ts' }).usesWasm).toBe(false);
    expect(new BatchEncoder('svc', DEFAULT_MAPPING, { wasm: false }).usesWasm).toBe(false);
  });
});

describe('Rust encoder = JS encoder, byte for byte', () => {
  it('the benchmark corpus: every record encoded in Rust, none refused', () => {
    const generator = createLineGenerator(7);
    const encoders = pair();
    for (let b = 0; b < 4; b++) {
      const lines = Array.from({ length: 1000 }, () => generator.next());
      expect(same(encoders, batch(lines, { timestampMs: Date.UTC(2024, 4, 1) + b }))).toBe(0);
    }
    expect(encoders.rust.wasmStats).toEqual({ encoded: 4000, refused: 0, failed: 0 });
    // The CRI form is text to the encoder.
    const cri = Array.from({ length: 200 }, () => generator.nextCri());
    expect(same(encoders, batch(cri, { format: 'text', stream: 'stdout' }))).toBe(0);
  });

  it('refuses exactly the lines it cannot be sure of, and JS encodes them in place', () => {
    const accepted = [
      '{"msg":"ok","level":"info","ts":"2024-05-01T00:00:00.123Z"}',
      'plain text',
      '',
      '  {"indented":true}',
      '{"level":30,"time":1714521600123}',
      '{"esc":"a\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u0000\\u00e9\\ud83d\\ude00"}',
      '[1,2,3]',
    ];
    const refused = [
      new Uint8Array([0x68, 0xff, 0x69]), // invalid UTF-8
      '{"lone":"\\ud800"}', // a lone surrogate
      '{"a":1,"a":2}', // a duplicate key
      '{"1":"x"}', // a digit-leading key
      '{"n":1e400}', // not finite
      '{"ts":"2024-05-01"}', // a timestamp outside the fast form
      '{"level":"\\u0069nfo"}', // an escaped level
      '{"not":"closed"', // invalid JSON (then text, by JS)
      `${'{"a":'.repeat(MAX_DEPTH + 2)}1${'}'.repeat(MAX_DEPTH + 2)}`, // too deep
    ];
    const encoders = pair();
    const lines = [...accepted, ...refused, ...accepted, ...refused.slice().reverse()];
    expect(same(encoders, batch(lines))).toBe(refused.length * 2);
    expect(encoders.rust.wasmStats).toEqual({ encoded: accepted.length * 2, refused: refused.length * 2, failed: 0 });
    // All refused, and none.
    expect(same(encoders, batch(refused))).toBe(refused.length);
    expect(same(encoders, batch(accepted))).toBe(0);
    expect(same(encoders, batch([]))).toBe(0);
  });

  it('a batch whose data is a view into a larger buffer, its first line not at offset 0', () => {
    const encoders = pair();
    const text = utf8.encode('garbage{"ts":"2024-05-01T00:00:00Z","level":"warn","a":[1,2]}plain line{"b":"\\u00e9"}{"a":1,"a":2}trailing');
    const whole = new Uint8Array(text.length + 16);
    whole.set(text, 16);
    const data = whole.subarray(16, 16 + text.length);
    const offsets = Uint32Array.from([7, 61, 71, 85, 98]);
    expect(same(encoders, { data, offsets, meta: meta() })).toBe(1);
  });

  it('text batches (format != json): objects stay text, invalid UTF-8 is left to JS', () => {
    const encoders = pair();
    const lines = ['{"a":1}', 'text ünïcödé', '', new Uint8Array([0xc3]), 'x'.repeat(20_000)];
    expect(same(encoders, batch(lines, { format: 'text', stream: 'stderr' }))).toBe(1);
  });

  it('records of every size class (length prefixes of 1, 2 and 3 bytes) and a batch larger than the initial buffers', () => {
    const encoders = pair();
    const lines: string[] = [];
    for (const size of [0, 1, 100, 120, 127, 128, 129, 200, 16_300, 16_383, 16_384, 20_000, 1_000_000]) {
      lines.push(JSON.stringify({ s: 'y'.repeat(size) }), 'z'.repeat(size), JSON.stringify({ nested: { list: ['w'.repeat(size)] } }));
    }
    // The largest growth from line to record: -1 (3 bytes with its comma) becomes 13; nesting adds prefixes.
    const many = (item: string, n: number): string => Array.from({ length: n }, () => item).join(',');
    lines.push(`{"a":[${many('-1', 100_000)}]}`, `{"a":[${many('[-1]', 50_000)}]}`, `{"a":[${many('0.5', 50_000)}],"b":[${many('{"":-1}', 30_000)}]}`);
    lines.push(`{"a":${'['.repeat(MAX_DEPTH - 2)}${many('-1', 1000)}${']'.repeat(MAX_DEPTH - 2)}}`);
    expect(same(encoders, batch(lines))).toBe(0);
    // Lines over 1 MiB are left to JS (the room reserved for a record stays in the instance's memory).
    const huge = ['x'.repeat(1_100_000), JSON.stringify({ s: 'y'.repeat(1_100_000) })];
    expect(same(encoders, batch([...huge, '{"a":1}']))).toBe(2);
  });

  it('custom trace field names, and the trace fields in every form', () => {
    const mapping = { ...DEFAULT_MAPPING, traceIdField: 'tid', spanIdField: 'sid', traceFlagsField: 'flags' };
    const encoders = pair(mapping);
    const lines = [
      '{"tid":"0102030405060708090a0b0c0d0e0f10","sid":"0102030405060708","flags":"01"}',
      '{"tid":"0102030405060708090A0B0C0D0E0F10","sid":"00000000000000000","flags":1}',
      '{"tid":"00000000000000000000000000000000","sid":"000000000000000g","flags":255}',
      '{"tid":"0102","sid":12,"flags":256}',
      '{"trace_id":"0102030405060708090a0b0c0d0e0f10","flags":"zz"}',
      '{"flags":"ff","sid":"ffffffffffffffff"}',
      '{"flags":0}',
    ];
    expect(same(encoders, batch(lines))).toBe(0);
  });

  it('random JSON objects: nesting, unicode, escapes, number forms, timestamps, levels, trace fields', () => {
    const encoders = pair();
    fc.assert(
      fc.property(fc.array(lineArbitrary, { minLength: 1, maxLength: 40 }), fc.constantFrom<'json' | 'text'>('json', 'json', 'json', 'json', 'json', 'text'), (lines, format) => {
        same(encoders, batch(lines, { format }));
      }),
      { numRuns: 500 },
    );
    // Both kinds were seen plenty.
    const { encoded, refused } = encoders.rust.wasmStats;
    expect(encoded).toBeGreaterThan(refused);
    expect(refused).toBeGreaterThan(500);
  });
});

// --- Random lines, as JSON text (so number tokens, escapes and blanks are under control). ---

const blank = fc.constantFrom('', '', '', ' ', '\t', ' \r\n ');

const NUMBER_TOKENS = [
  '0', '-0', '1', '-1', '7', '42', '127', '128', '16384', '4294967295', '4294967296', '-4294967296',
  '9007199254740991', '9007199254740993', '-9007199254740993', '123456789012345', '1234567890123456',
  '12345678901234567890', '-12345678901234567890', '9223372036854775807', '9223372036854775808',
  '-9223372036854775808', '-9223372036854775809', '18446744073709551616',
  '0.5', '-0.5', '0.1', '0.30000000000000004', '1.0', '-0.0', '100.00', '3.14159265358979323846',
  '0.000001', '-0.0000000000000000000001', '123456789012345.6', '1234567890.1234567890',
  '1e0', '1E2', '1e+2', '1e-2', '-1.5e-7', '2.5E+20', '1e21', '1e22', '1e23', '1e308', '1.7976931348623157e308',
  '5e-324', '4.9e-324', '2e-324', '1e-400', '0e0', '-0e-0',
];
/** Not finite (the Rust side refuses those) or not JSON. */
const ODD_NUMBER_TOKENS = ['1e400', '-1e400', '1e999999', '00', '01', '1.', '.5', '-', '1e', '+1', '1.5.3', 'tru', 'nul', 'nulll'];
const number = fc.oneof(
  { arbitrary: fc.constantFrom(...NUMBER_TOKENS), weight: 4 },
  { arbitrary: fc.integer().map(String), weight: 2 },
  { arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }).map((value) => JSON.stringify(value)), weight: 2 },
  {
    arbitrary: fc.tuple(fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }), fc.nat(30), fc.integer({ min: -30, max: 30 })).map(
      ([mantissa, fraction, exponent]) => `${mantissa}${fraction > 0 ? `.${'7'.repeat(fraction)}` : ''}${exponent !== 0 ? `e${exponent}` : ''}`,
    ),
    weight: 2,
  },
);

const CHARS = ['a', 'Z', ' ', '"', '\\', '/', '\u0000', '\u001f', '\n', '\t', 'é', '€', '\u2028', '😀', '\uffff', '{', '}', '[', ']', ':', ','];
const text = fc.string({ unit: fc.oneof(fc.constantFrom(...CHARS), fc.constantFrom('a', 'b', 'c', '0', '1'), fc.string({ unit: 'binary', minLength: 1, maxLength: 1 })), maxLength: 24 });

/** A JSON string token: JSON.stringify's, or with every non-ASCII unit escaped. */
const stringToken = (content: fc.Arbitrary<string>): fc.Arbitrary<string> =>
  fc.tuple(content, fc.boolean()).map(([value, escaped]) => {
    const json = JSON.stringify(value);
    return escaped ? json.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`) : json;
  });
/** Escapes JSON does not have, raw control bytes, truncated \u: invalid. */
const oddString = text.map((value) => JSON.stringify(`${value}abc`).replace(/a/g, '\\x').replace(/b/g, '\u0001').replace(/c/g, '\\u12'));

const TIMESTAMPS = [
  '"2024-05-01T00:00:00Z"', '"2024-05-01T00:00:00.123Z"', '"2024-05-01T00:00:00.123456789Z"', '"2024-05-01T00:00:00.123456789123Z"',
  '"2024-05-01t00:00:00z"', '"2024-05-01 00:00:00,5+02:00"', '"2024-05-01T00:00:00-0530"', '"2024-05-01T00:00:00+14:00"',
  '"2024-02-29T12:00:00Z"', '"2023-02-29T12:00:00Z"', '"2024-13-01T00:00:00Z"', '"2024-04-31T00:00:00Z"', '"2024-05-01T24:00:00Z"',
  '"2024-05-01T23:59:60Z"', '"2024-05-01T23:59:99Z"', '"1970-01-01T00:00:00Z"', '"1970-01-01T00:00:01+00:01"', '"1969-12-31T23:59:59Z"',
  '"9999-12-31T23:59:59.999999999Z"', '"2024-05-01T00:00:00"', '"2024-05-01T00:00:00.Z"', '"2024-05-01"', '"1714521600"',
  '"1714521600123"', '"1714521600.25"', '"0"', '"yesterday"', '""', '"2024-05-01T00:00:00Zjunk"', '"2024-05-01T00:00:00+02:0"',
  '1714521600', '1714521600123', '1714521600123456', '1714521600123456789', '1714521600.5', '0', '-5', '1e12', '99999999999',
  '100000000000', '99999999999999', '100000000000000', 'true', 'null', '{}', '"\\u0032024-05-01T00:00:00Z"',
];
const LEVELS = [
  '"info"', '"INFO"', '"Warn"', '"warning"', '"err"', '"ERROR"', '"crit"', '"critical"', '"alert"', '"fatal"', '"emerg"', '"panic"',
  '"notice"', '"trace"', '"debug"', '"information"', '"informational"', '"verbose"', '"30"', '"010"', '"0"', '"99"', '"25"',
  '"00000000000000000000000030"', '""', '"ÉRROR"', '"\\u0069nfo"', '30', '35', '3', '24', '25', '0', '-0', '-10', '1.5', '20.0', '1e1',
  '60', '70', 'true', 'null', '[]',
];
const TRACE = [
  '"0102030405060708090a0b0c0d0e0f10"', '"0102030405060708090A0B0C0D0E0F10"', '"00000000000000000000000000000000"', '"0102"',
  '"0102030405060708"', '"000000000000000g"', '"01"', '"ff"', '"zz"', '"1"', '1', '255', '256', '-1', '1.0', 'null', '"\\u0030102030405060708"',
];

/** Keys: mostly distinct names (a letter first), sometimes a watched field, a digit-leading or an odd one. */
const key = fc.oneof(
  { arbitrary: stringToken(fc.tuple(fc.constantFrom('m', 'k', 'é', '_', 'Z', ' '), text).map(([first, rest]) => first + rest)), weight: 16 },
  { arbitrary: fc.constantFrom('"msg"', '"ts"', '"level"', '"trace_id"', '"1"', '"0x"', '"__proto__"', '""', '"\\u006bey"', '"k\\"q"'), weight: 1 },
);

const value: fc.Memo<string> = fc.memo((depth: number) => {
  const leaf = fc.oneof(number, stringToken(text), fc.constantFrom('true', 'false', 'null'));
  if (depth <= 1) return leaf;
  return fc.oneof(
    { arbitrary: leaf, weight: 4 },
    { arbitrary: objectOf(value(depth - 1)), weight: 1 },
    { arbitrary: fc.tuple(fc.array(fc.tuple(blank, value(depth - 1), blank), { maxLength: 6 }), blank).map(([items, end]) => `[${items.map((i) => i.join('')).join(',')}${end}]`), weight: 1 },
  );
});

function objectOf(member: fc.Arbitrary<string>): fc.Arbitrary<string> {
  return fc
    .tuple(fc.array(fc.tuple(blank, key, blank, blank, member, blank), { maxLength: 6 }), blank)
    .map(([members, end]) => `{${members.map(([a, k, b, c, v, d]) => `${a}${k}${b}:${c}${v}${d}`).join(',')}${end}}`);
}

/** Top-level members: the watched fields in every form, and anything else. */
const topMember = fc.oneof(
  { arbitrary: fc.constantFrom('"ts"', '"time"', '"timestamp"').chain((k) => fc.constantFrom(...TIMESTAMPS).map((v) => `${k}:${v}`)), weight: 2 },
  { arbitrary: fc.constantFrom('"level"', '"severity"').chain((k) => fc.constantFrom(...LEVELS).map((v) => `${k}:${v}`)), weight: 2 },
  { arbitrary: fc.constantFrom('"trace_id"', '"span_id"', '"trace_flags"').chain((k) => fc.constantFrom(...TRACE).map((v) => `${k}:${v}`)), weight: 1 },
  { arbitrary: fc.tuple(key, blank, value(3)).map(([k, b, v]) => `${k}${b}:${v}`), weight: 6 },
  { arbitrary: stringToken(text).map((v) => `"msg":${v}`), weight: 2 },
);
/** One of these spoils a line now and then: the Rust side refuses, or the JSON is invalid. */
const oddMember = fc.oneof(
  oddString,
  fc.constantFrom(...ODD_NUMBER_TOKENS),
  fc.constantFrom('"\\ud800"', '"x\\udc00y"', '"\\ud800\\u0041"', '"\\ud83d\\ude00"'),
).map((v) => `"odd":${v}`);

/** Top-level members with distinct names (duplicates come from nested objects and the odd ones). */
const members = fc.uniqueArray(topMember, { maxLength: 10, selector: (member) => member.slice(0, member.indexOf(':')) });
const objectLine = fc
  .tuple(fc.constantFrom('', '', ' ', '\t '), members, blank, fc.oneof({ arbitrary: fc.constant(null), weight: 7 }, { arbitrary: fc.tuple(oddMember, fc.nat()), weight: 1 }))
  .map(([lead, list, end, odd]) => {
    if (odd !== null) list.splice(odd[1] % (list.length + 1), 0, odd[0]);
    return `${lead}{${list.join(',')}}${end}`;
  });

const lineArbitrary: fc.Arbitrary<string | Uint8Array> = fc.oneof(
  { arbitrary: objectLine, weight: 12 },
  { arbitrary: objectLine.map((line) => line.slice(0, Math.max(1, line.length - 2))), weight: 1 }, // truncated
  { arbitrary: text, weight: 1 },
  { arbitrary: fc.constant(''), weight: 1 },
  { arbitrary: fc.uint8Array({ maxLength: 30 }), weight: 1 }, // mostly invalid UTF-8
  { arbitrary: objectLine.map((line) => Buffer.concat([Buffer.from(line.slice(0, -1)), Buffer.from([0xff]), Buffer.from('}')])), weight: 1 },
);

describe('wasmEncoderProblem (what the sink warns about at start)', () => {
  it('none for the committed module; the reason, with the path, for a missing or broken one', async () => {
    expect(wasmEncoderProblem()).toBeUndefined();
    const missing = '/nonexistent/otlp_encode.wasm';
    expect(wasmEncoderProblem(missing)).toContain(missing);
    const broken = `${await tempDir()}/otlp_encode.wasm`;
    await writeFile(broken, 'not wasm');
    expect(wasmEncoderProblem(broken)).toBeTypeOf('string');
  });
});
