import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PluginRunner } from '../src/wasm-memory/runner.js';
import { compileModuleSync, instantiate, moduleExports, moduleImports } from '../src/wasm-memory/wasm-api.js';
import { JSON_PARSER_WASM, fromBatchLayout, jsonParserFixtures, toBatchLayout } from './support/wasm-fixtures.js';

const module = compileModuleSync(new Uint8Array(readFileSync(JSON_PARSER_WASM)));
const encoder = new TextEncoder();
const fixtures = jsonParserFixtures();

describe('the committed json_parser.wasm', () => {
  it('imports nothing and exports the ABI v1 surface with the documented arities', () => {
    expect(moduleImports(module)).toEqual([]);
    const kinds = Object.fromEntries(moduleExports(module).map((e) => [e.name, e.kind]));
    expect(kinds).toMatchObject({
      memory: 'memory',
      alloc: 'function',
      dealloc: 'function',
      process_log: 'function',
      logwasm_result: 'function',
      logwasm_abi_version: 'function',
    });
    const exports = instantiate(module).exports as Record<string, (...args: number[]) => unknown>;
    const arities = Object.fromEntries(
      ['alloc', 'dealloc', 'process_log', 'logwasm_result', 'logwasm_abi_version'].map((name) => [name, exports[name]!.length]),
    );
    expect(arities).toEqual({ alloc: 1, dealloc: 2, process_log: 2, logwasm_result: 0, logwasm_abi_version: 0 });
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
