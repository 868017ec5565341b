import { isUtf8 } from 'node:buffer';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PluginRunner } from '../src/wasm-memory/runner.js';
import { compileModuleSync, instantiate, moduleExports, moduleImports } from '../src/wasm-memory/wasm-api.js';
import { JSON_PARSER_WASM, fromBatchLayout, jsonParserFixtures, toBatchLayout } from './support/wasm-fixtures.js';

const module = compileModuleSync(new Uint8Array(readFileSync(JSON_PARSER_WASM)));
const encoder = new TextEncoder();
const fixtures = jsonParserFixtures();

/** mulberry32: seeded floats in [0, 1), so a failing line can be regenerated from the seed. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Random lines near the plugin's edges: objects with the keys it looks for (some written with
 * escapes), JSON whitespace anywhere, string escapes including lone surrogates, numbers valid and
 * not, nesting around the limit of 127, and a third of the lines with a few bytes inserted,
 * deleted or cut (including bytes that are not UTF-8).
 */
function edgeLines(seed: number, count: number): Uint8Array[] {
  const random = seededRandom(seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const WHITESPACE = ['', '', '', ' ', '\t', '\n', '\r', '  '];
  const STRING_PARTS = ['a', 'é', '日', '🎉', '\\n', '\\"', '\\\\', '\\/', '\\u0041', '\\u00e9', '\\ud83c\\udf89', '\\ud83c', '\\udf89', '\\u12', '\\x', '\t', '\u0001', ' '];
  const KEYS = ['metadata', 'user', 'session', 'id', 'user_id', 'session_id', 'log_size_bytes', 'a', 'b', 'metad\\u0061ta', 'us\\u0065r', '\\u0069d', 'log_size_byte\\u0073'];
  const NUMBERS = ['0', '-0', '1', '-1', '1.5', '1.10', '1e400', '-1E-3', '18446744073709551617', '01', '1.', '.5', '-', '1e', '+1', '1e+2'];
  const LITERALS = ['true', 'false', 'null', 'tru', 'nul'];
  const MUTATIONS = [...encoder.encode('{}[]":,\\ 0e-.tnu'), 0xff, 0xc3, 0x80, 0x00];
  const ws = (): string => pick(WHITESPACE);
  const string = (): string => `"${Array.from({ length: Math.floor(random() * 4) }, () => pick(STRING_PARTS)).join('')}"`;
  const value = (depth: number): string => {
    const r = random();
    if (depth > 4 || r < 0.45) return r < 0.15 ? pick(NUMBERS) : r < 0.3 ? string() : pick(LITERALS);
    if (r < 0.65) return `[${ws()}${Array.from({ length: Math.floor(random() * 3) }, () => value(depth + 1)).join(`${ws()},${ws()}`)}${ws()}]`;
    return object(depth + 1);
  };
  const object = (depth: number): string =>
    `{${ws()}${Array.from({ length: Math.floor(random() * 4) }, () => `"${pick(KEYS)}"${ws()}:${ws()}${value(depth)}`).join(`${ws()},${ws()}`)}${ws()}}`;
  const lines: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const r = random();
    const nest = 124 + Math.floor(random() * 6);
    const text = r < 0.08 ? `{"a":${'['.repeat(nest)}${random() < 0.5 ? '' : '{}'}${']'.repeat(nest)}}` : `${ws()}${object(0)}${ws()}`;
    const bytes = [...encoder.encode(text)];
    if (random() < 0.33) {
      for (let k = 1 + Math.floor(random() * 2); k > 0; k--) {
        const at = Math.floor(random() * (bytes.length + 1));
        const op = random();
        if (op < 0.33) bytes.splice(at, 1);
        else if (op < 0.66) bytes.splice(at, 0, pick(MUTATIONS));
        else bytes.length = Math.min(bytes.length, at);
      }
    }
    lines.push(new Uint8Array(bytes));
  }
  return lines;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
const isObject = (value: Json | undefined): value is { [key: string]: Json } =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const nesting = (value: Json): number =>
  Array.isArray(value) ? 1 + Math.max(0, ...value.map(nesting)) : isObject(value) ? 1 + Math.max(0, ...Object.values(value).map(nesting)) : 0;
const hasLoneSurrogate = (value: Json): boolean =>
  typeof value === 'string'
    ? /\p{Cs}/u.test(value)
    : Array.isArray(value)
      ? value.some(hasLoneSurrogate)
      : isObject(value) && Object.entries(value).some(([key, inner]) => /\p{Cs}/u.test(key) || hasLoneSurrogate(inner));
const JSON_WHITESPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);

/**
 * The plugin's rules as a model on JSON.parse: the parsed output it must emit for `input`, or
 * undefined when the line must pass through unchanged.
 */
function modelRewrite(input: Uint8Array): Json | undefined {
  let parsed: Json;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(input)) as Json;
  } catch {
    return undefined;
  }
  if (!isObject(parsed) || nesting(parsed) >= 128 || hasLoneSurrogate(parsed)) return undefined;
  const expected: { [key: string]: Json } = { ...parsed };
  const metadata = parsed['metadata'];
  for (const section of ['user', 'session'] as const) {
    const holder = isObject(metadata) ? metadata[section] : undefined;
    if (isObject(holder) && Object.hasOwn(holder, 'id')) expected[`${section}_id`] = holder['id']!;
  }
  expected['log_size_bytes'] = input.byteLength;
  return expected;
}

describe('the committed json_parser.wasm', () => {
  it('imports nothing and exports the ABI v1 surface with the documented arities', () => {
    expect(moduleImports(module)).toEqual([]);
    const kinds = Object.fromEntries(moduleExports(module).map((e) => [e.name, e.kind]));
    expect(kinds).toMatchObject({
      memory: 'memory',
      alloc: 'function',
      dealloc: 'function',
      process_log: 'function',
      process_batch: 'function',
      process_batch_packed: 'function',
      logwasm_result: 'function',
      logwasm_abi_version: 'function',
    });
    const exports = instantiate(module).exports as Record<string, (...args: number[]) => unknown>;
    const arities = Object.fromEntries(
      ['alloc', 'dealloc', 'process_log', 'process_batch', 'process_batch_packed', 'logwasm_result', 'logwasm_abi_version'].map((name) => [
        name,
        exports[name]!.length,
      ]),
    );
    expect(arities).toEqual({ alloc: 1, dealloc: 2, process_log: 2, process_batch: 3, process_batch_packed: 3, logwasm_result: 0, logwasm_abi_version: 0 });
    expect(exports['logwasm_abi_version']!()).toBe(1);
  });

  it('has golden fixtures for the edge cases', () => {
    expect(fixtures.map((f) => f.name)).toEqual(
      expect.arrayContaining(['multibyte_utf8', 'empty_line', 'invalid_utf8', 'not_json', 'json_array', 'nested_ids_any_type', 'missing_metadata']),
    );
  });

  it.each(fixtures.map((f) => [f.name, f] as const))('fixture %s', (_name, fixture) => {
    const runner = new PluginRunner(module);
    const { data, offsets } = toBatchLayout([fixture.input]);
    const outcome = runner.processBatch(data, offsets);
    expect(outcome.failures).toEqual([]);
    expect(outcome.dropped).toBe(0);
    expect(Buffer.from(outcome.data).toString('latin1')).toBe(Buffer.from(fixture.expected).toString('latin1'));
  });

  it('passes every fixture in one batch, twice, on one instance', () => {
    const runner = new PluginRunner(module);
    const lines = [...fixtures, ...fixtures];
    const { data, offsets } = toBatchLayout(lines.map((f) => f.input));
    const outcome = runner.processBatch(data, offsets);
    expect(outcome.failures).toEqual([]);
    expect(fromBatchLayout(outcome.data, outcome.offsets)).toEqual(lines.map((f) => f.expected));
  });

  it('agrees with a JSON.parse model of its rules on seeded edge-case lines, and copies the object as written', () => {
    const lines = edgeLines(20251125, 3000);
    const { data, offsets } = toBatchLayout(lines);
    const outcome = new PluginRunner(module).processBatch(data, offsets);
    expect(outcome.failures).toEqual([]);
    const out = fromBatchLayout(outcome.data, outcome.offsets);
    expect(out.length).toBe(lines.length);
    let rewritten = 0;
    let copiedAsWritten = 0;
    lines.forEach((input, i) => {
      const expected = modelRewrite(input);
      const line = `line ${i}: ${Buffer.from(input).toString('latin1')}`;
      if (expected === undefined) {
        expect(Buffer.from(out[i]!).toString('latin1'), line).toBe(Buffer.from(input).toString('latin1'));
        return;
      }
      rewritten++;
      const text = new TextDecoder('utf-8', { fatal: true }).decode(out[i]);
      expect(JSON.parse(text), line).toEqual(expected);
      // With no member to remove, the output begins with the object's own bytes up to its `}`.
      const parsed = JSON.parse(new TextDecoder().decode(input)) as { [key: string]: Json };
      const removes = Object.hasOwn(parsed, 'log_size_bytes') || ['user', 'session'].some((s) => Object.hasOwn(parsed, `${s}_id`) && Object.hasOwn(expected as object, `${s}_id`));
      if (!removes) {
        let start = 0;
        let end = input.byteLength;
        while (JSON_WHITESPACE.has(input[start]!)) start++;
        while (JSON_WHITESPACE.has(input[end - 1]!)) end--;
        const body = Buffer.from(input.subarray(start, end - 1));
        expect(Buffer.from(out[i]!.subarray(0, body.byteLength)).toString('latin1'), line).toBe(body.toString('latin1'));
        copiedAsWritten++;
      }
    });
    // The generator must reach both outcomes and both rewrite paths, or this test proves little.
    expect(rewritten).toBeGreaterThan(500);
    expect(lines.length - rewritten).toBeGreaterThan(500);
    expect(copiedAsWritten).toBeGreaterThan(300);
    expect(rewritten - copiedAsWritten).toBeGreaterThan(100);
  });

  it.each([
    ['process_batch_packed', 'packed', true],
    ['process_batch', 'records', false],
  ] as const)('gives the same outcome through %s as line by line, on fixtures and seeded edge lines', (_name, layout, usePackedBatch) => {
    const lines = [...fixtures.map((f) => f.input), ...edgeLines(20251126, 2000), ...fixtures.map((f) => f.input)];
    const { data, offsets } = toBatchLayout(lines);
    const runner = new PluginRunner(module, { usePackedBatch });
    expect(runner.batchLayout).toBe(layout);
    for (let round = 0; round < 2; round++) {
      const batched = runner.processBatch(data, offsets);
      const perLine = new PluginRunner(module).processBatch(data, offsets, 'per_line');
      expect(batched.batched).toBe(true);
      expect(runner.batchFallbacks).toBe(0);
      expect(batched.failures).toEqual([]);
      expect(batched.dropped).toBe(0);
      expect(fromBatchLayout(batched.data, batched.offsets)).toEqual(fromBatchLayout(perLine.data, perLine.offsets));
    }
  });

  it('has its packed result taken in one piece for UTF-8 lines, and record by record when a line passes through invalid UTF-8', () => {
    const runner = new PluginRunner(module);
    const utf8 = fixtures.filter((f) => isUtf8(f.expected));
    expect(utf8.length).toBeGreaterThan(30);
    const valid = utf8.map((f) => f.input);
    const invalid = fixtures.find((f) => f.name === 'invalid_utf8')!;
    const first = runner.processBatch(toBatchLayout(valid).data, toBatchLayout(valid).offsets);
    expect(fromBatchLayout(first.data, first.offsets)).toEqual(utf8.map((f) => f.expected));
    expect(runner.bulkTakes).toBe(1);
    const mixed = [valid[0]!, invalid.input, valid[1]!];
    const second = runner.processBatch(toBatchLayout(mixed).data, toBatchLayout(mixed).offsets);
    expect(second.failures).toEqual([]);
    expect(fromBatchLayout(second.data, second.offsets)[1]).toEqual(invalid.expected);
    expect([runner.bulkTakes, runner.batchFallbacks]).toEqual([1, 0]);
  });

  it('answers a malformed process_batch layout with status 2, so the host falls back line by line', () => {
    const exports = instantiate(module).exports as Record<string, (...args: number[]) => number> & { memory: { buffer: ArrayBuffer } };
    const ptr = exports['alloc']!(64);
    // count 3 needs 16 bytes of offsets; 8 bytes is not a layout, and neither is an offset past the data.
    expect(exports['process_batch']!(ptr, 8, 3)).toBe(2);
    const view = new DataView(exports.memory.buffer);
    [0, 2, 99].forEach((offset, i) => view.setUint32(ptr + 4 * i, offset, true));
    expect(exports['process_batch']!(ptr, 12 + 4, 2)).toBe(2);
    [0, 2, 4].forEach((offset, i) => view.setUint32(ptr + 4 * i, offset, true));
    new Uint8Array(exports.memory.buffer).set(new TextEncoder().encode('{}[]'), ptr + 12);
    expect(exports['process_batch']!(ptr, 12 + 4, 2)).toBe(0);
    // The same for process_batch_packed; a good layout gives statuses [0, 0], offsets [0, 20, 22].
    expect(exports['process_batch_packed']!(ptr, 8, 3)).toBe(2);
    view.setUint32(ptr + 8, 99, true);
    expect(exports['process_batch_packed']!(ptr, 12 + 4, 2)).toBe(2);
    view.setUint32(ptr + 8, 4, true);
    expect(exports['process_batch_packed']!(ptr, 12 + 4, 2)).toBe(0);
    const result = new DataView(exports.memory.buffer);
    const at = exports['logwasm_result']!();
    const area = result.getUint32(at, true);
    expect(result.getUint32(at + 4, true)).toBe(20 + 22);
    expect([0, 1, 2, 3, 4].map((i) => result.getUint32(area + 4 * i, true))).toEqual([0, 0, 0, 20, 22]);
    expect(new TextDecoder().decode(new Uint8Array(exports.memory.buffer, area + 20, 22))).toBe('{"log_size_bytes":2}[]');
  });

  it('passes a line nested a million deep through without a trap, then rewrites the next', () => {
    // The scanner keeps one bit per open array/object and stops at 127: no recursion to overflow.
    const deep = encoder.encode(`{"a":${'['.repeat(1 << 20)}`);
    const { data, offsets } = toBatchLayout([deep, encoder.encode('{"n":1}')]);
    const runner = new PluginRunner(module);
    const outcome = runner.processBatch(data, offsets);
    expect(outcome.failures).toEqual([]);
    expect(runner.reinstantiations).toBe(0);
    const out = fromBatchLayout(outcome.data, outcome.offsets);
    expect(Buffer.compare(out[0]!, deep)).toBe(0);
    expect(new TextDecoder().decode(out[1])).toBe('{"n":1,"log_size_bytes":7}');
  });

  it('rewrites a 1 MiB line, then a short one, byte-exact', () => {
    const unit = 'é日x'; // 2 + 3 + 1 bytes
    const message = unit.repeat(Math.ceil((1 << 20) / 6));
    const big = `{"msg":"${message}","metadata":{"user":{"id":"big"}}}`;
    const bigBytes = encoder.encode(big);
    expect(bigBytes.byteLength).toBeGreaterThanOrEqual(1 << 20);
    const small = encoder.encode('{"n":1}');
    const runner = new PluginRunner(module);
    const { data, offsets } = toBatchLayout([bigBytes, small, bigBytes]);
    const outcome = runner.processBatch(data, offsets);
    expect(outcome.failures).toEqual([]);
    const expectedBig = encoder.encode(`{"msg":"${message}","metadata":{"user":{"id":"big"}},"user_id":"big","log_size_bytes":${bigBytes.byteLength}}`);
    const out = fromBatchLayout(outcome.data, outcome.offsets);
    expect(out.length).toBe(3);
    expect(Buffer.compare(out[0]!, expectedBig)).toBe(0);
    expect(new TextDecoder().decode(out[1])).toBe('{"n":1,"log_size_bytes":7}');
    expect(Buffer.compare(out[2]!, expectedBig)).toBe(0);
  });
});
