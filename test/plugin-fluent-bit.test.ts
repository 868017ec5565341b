/**
 * `abi = "fluent-bit"`: the committed plugins/fluent-bit-filter (a filter_wasm-style Rust guest
 * built for wasm32-wasi) through the wasm transform in real workers, with the WASI subset.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { ComponentContext } from '../src/components.js';
import { ConfigReader } from '../src/config/reader.js';
import type { ConfigProblem } from '../src/errors.js';
import type { LineBatch } from '../src/event.js';
import { Telemetry, type LogRecord } from '../src/telemetry.js';
import { wasmTransform, type WasmTransformConfig } from '../src/transforms/wasm/index.js';
import { FluentBitRunner } from '../src/wasm-memory/fluent-bit.js';
import { compileModuleSync, moduleImports } from '../src/wasm-memory/wasm-api.js';
import { fromBatchLayout, toBatchLayout } from './support/wasm-fixtures.js';
import { pluginWasm } from './support/wasm-plugin-fixtures.js';
import { watModule } from './support/wasm-wat.js';

const FILTER = pluginWasm('fluent-bit-filter');
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function parse(table: Record<string, unknown>): { config: WasmTransformConfig; problems: string[] } {
  const problems: ConfigProblem[] = [];
  const reader = new ConfigReader('transforms.fb', table, problems);
  const config = wasmTransform.parse(reader);
  reader.finish();
  return { config, problems: problems.map((p) => `${p.component}: ${p.message}`) };
}

function setup(table: Record<string, unknown>): { start: () => Promise<void>; process: (lines: string[]) => Promise<string[]>; telemetry: Telemetry; logs: LogRecord[] } {
  const { config, problems } = parse({ module: FILTER, abi: 'fluent-bit', function: 'rust_filter', wasi: true, pool_size: 1, ...table });
  expect(problems).toEqual([]);
  const logs: LogRecord[] = [];
  const telemetry = new Telemetry((r) => logs.push(r), 'debug');
  const context: ComponentContext = { id: 'fb', dataDir: '/nonexistent', mode: 'replay', telemetry };
  const transform = wasmTransform.build(config, context);
  onTestFinished(() => transform.stop());
  return {
    start: () => transform.start(),
    telemetry,
    logs,
    async process(lines) {
      const { data, offsets } = toBatchLayout(lines.map((l) => encoder.encode(l)));
      const batch: LineBatch = { data, offsets, meta: { sourceId: 'app', sourceType: 'file', file: '/f', host: 'h', timestampMs: 1_700_000_000_123, format: 'text' } };
      const result = await transform.process(batch);
      return result.out ? fromBatchLayout(result.out.data, result.out.offsets).map((l) => decoder.decode(l)) : [];
    },
  };
}

describe('the committed fluent-bit-filter.wasm', () => {
  it('imports only the WASI subset this host provides', () => {
    const imports = moduleImports(compileModuleSync(new Uint8Array(readFileSync(FILTER))));
    expect(imports.map((i) => `${i.module}.${i.name}`).sort()).toEqual(
      ['environ_get', 'environ_sizes_get', 'fd_write', 'proc_exit', 'random_get'].map((n) => `wasi_snapshot_preview1.${n}`),
    );
  });
});

describe('abi = "fluent-bit" in real workers', () => {
  it('rewrites records, honours the drop values, and isolates a panic', async () => {
    const fb = setup({ tag: 'app.log' });
    await fb.start();
    const out = await fb.process([
      '{"message":"hello","level":"info"}',
      '{"level":"debug","message":"noise"}',
      '{"level":"trace"}',
      'plain text é',
      '{"message":"panic"}',
      '{"message":"array"}',
      '{"message":"after"}',
    ]);
    expect(out).toEqual([
      '{"message":"hello","level":"info","tag":"app.log","time":"1700000000.123000000","lang":"Rust"}',
      '{"log":"plain text é","tag":"app.log","time":"1700000000.123000000","lang":"Rust"}',
      '{"message":"panic"}',
      '{"message":"array"}',
      '{"message":"after","tag":"app.log","time":"1700000000.123000000","lang":"Rust"}',
    ]);
    expect(fb.telemetry.counter('wasm_plugin_dropped_total', 'fb')).toBe(2);
    expect(fb.telemetry.counter('wasm_line_failures_total_trap', 'fb')).toBe(1);
    expect(fb.telemetry.counter('wasm_line_failures_total_bad_output', 'fb')).toBe(1);
    // eprintln! went through WASI fd_write into the transform's log, not the agent's stderr.
    expect(fb.logs.find((l) => l.event === 'wasm_guest_output')?.message).toContain('dropping a debug record');
  });

  it('uses the batch source id as the tag by default', async () => {
    const fb = setup({});
    await fb.start();
    expect(await fb.process(['{"a":1}'])).toEqual(['{"a":1,"tag":"app","time":"1700000000.123000000","lang":"Rust"}']);
  });

  it('refuses a WASI guest unless wasi = true, and a missing function', async () => {
    const noWasi = setup({ wasi: false });
    await expect(noWasi.start()).rejects.toMatchObject({ code: 'LOGWASM_PLUGIN_ABI', message: expect.stringContaining('wasi = true') });
    const wrongName = setup({ function: 'go_filter' });
    await expect(wrongName.start()).rejects.toMatchObject({ code: 'LOGWASM_PLUGIN_ABI', message: expect.stringContaining('"go_filter"') });
  });

  it('checks the config: abi values, function required, fluent-bit-only keys', () => {
    expect(parse({ module: 'm', abi: 'wasmtime' }).problems).toEqual(['transforms.fb: invalid value for "abi": expected "logwasm" or "fluent-bit", actual: "wasmtime"']);
    expect(parse({ module: 'm', abi: 'fluent-bit' }).problems).toEqual(['transforms.fb: missing required key "function" (abi = "fluent-bit")']);
    // `wasi` applies to both ABIs; `function` only to Fluent Bit guests.
    expect(parse({ module: 'm', function: 'f', wasi: true }).problems).toEqual([
      'transforms.fb: "function" only applies to abi = "fluent-bit"',
    ]);
  });
});

describe('FluentBitRunner with a guest that exports malloc/free', () => {
  // Returns the record it got (NUL-terminated by the host) unless the record is {"x":0}, which
  // gets a pointer to bytes with no NUL before the end of memory.
  const wat = `(module
    (memory (export "memory") 1)
    (global $heap (mut i32) (i32.const 1024))
    (func (export "malloc") (param $n i32) (result i32) (local $p i32)
      (local.set $p (global.get $heap)) (global.set $heap (i32.add (global.get $heap) (local.get $n))) (local.get $p))
    (func (export "free") (param i32))
    (func (export "filter") (param i32 i32 i32 i32) (param $rec i32) (param $len i32) (result i32)
      (if (i32.eq (i32.load8_u (i32.add (local.get $rec) (i32.const 5))) (i32.const 48))
        (then (memory.fill (i32.const 65000) (i32.const 65) (i32.const 536)) (return (i32.const 65000))))
      (local.get $rec)))`;

  it('writes records into malloc-ed buffers and fails a string without a NUL terminator', async () => {
    const runner = new FluentBitRunner(await watModule(wat), { functionName: 'filter', wasi: false });
    const { data, offsets } = toBatchLayout(['{"x":1}', '{"x":0}', 'text'].map((l) => encoder.encode(l)));
    const outcome = runner.processBatch(data, offsets, 'auto', { tag: 't', timestampMs: 0 });
    expect(fromBatchLayout(outcome.data, outcome.offsets).map((l) => decoder.decode(l))).toEqual(['{"x":1}', '{"x":0}', '{"log":"text"}']);
    expect(outcome.failures).toEqual([{ index: 1, code: 'bad_output' }]);
  });
});
