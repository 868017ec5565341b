/**
 * ABI v1's optional exports on one hand-written guest (FULL_GUEST_WAT): `init` with the
 * transform's options, `process_batch` and `process_batch_packed` giving the same outcome as
 * per-line calls, several records per line (status 3), and the output checks (UTF-8,
 * max_output_bytes, heap_memory_size).
 */
import { describe, expect, it } from 'vitest';
import { PluginAbiError } from '../src/errors.js';
import { PluginRunner, type BatchOutcome } from '../src/wasm-memory/runner.js';
import type { WasmModule } from '../src/wasm-memory/wasm-api.js';
import { fromBatchLayout, toBatchLayout } from './support/wasm-fixtures.js';
import { ECHO_BODY, FULL_GUEST_WAT, fullGuestWat, guestWat, watModule } from './support/wasm-wat.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const module = await watModule(FULL_GUEST_WAT);
// Both batch exports: the packed one is preferred unless usePackedBatch is false.
const both = await watModule(fullGuestWat({ packed: {} }));
const packedOnly = await watModule(fullGuestWat({ packed: {}, records: false }));
const misaligned = await watModule(fullGuestWat({ packed: { misalign: 1 }, records: false }));

function layout(lines: (string | Uint8Array)[]): { data: Uint8Array; offsets: Uint32Array } {
  return toBatchLayout(lines.map((l) => (typeof l === 'string' ? encoder.encode(l) : l)));
}

function texts(outcome: BatchOutcome): string[] {
  return fromBatchLayout(outcome.data, outcome.offsets).map((l) => decoder.decode(l));
}

/** Everything but `batched`, to compare a batch run with a per-line run. */
function comparable(outcome: BatchOutcome): unknown {
  const { batched: _batched, ...rest } = outcome;
  return { ...rest, data: Array.from(rest.data), offsets: Array.from(rest.offsets) };
}

const MIXED = ['plain é', 'D dropped', 'M many', 'P options', 'E error', '', 'X invalid', 'last 日本'];

/** What either batch export must do, through `guest` (which exports only that one of them). */
function batchExportBehaviour(guest: WasmModule): void {
  it('redoes a trapping batch line by line on a fresh instance, failing only the poison line', () => {
    const lines = ['a', 'T poison', 'M', 'b'];
    const runner = new PluginRunner(guest);
    const outcome = runner.processBatch(layout(lines).data, layout(lines).offsets);
    expect(outcome.batched).toBeUndefined();
    expect(runner.batchFallbacks).toBe(1);
    expect(texts(outcome)).toEqual(['a', 'T poison', 'one', 'two', 'b']);
    expect(outcome.failures).toEqual([{ index: 1, code: 'trap' }]);
    // Once for the trapped batch call, once for the poison line in the per-line retry.
    expect(runner.reinstantiations).toBe(2);
    const next = runner.processBatch(layout(['next']).data, layout(['next']).offsets);
    expect(next.batched).toBe(true);
    expect(texts(next)).toEqual(['next']);
  });

  it('handles a batch whose offsets do not start at 0 (a view into a larger batch)', () => {
    const whole = layout(['skip', 'M', 'keep é']);
    const outcome = new PluginRunner(guest).processBatch(whole.data, whole.offsets.subarray(1));
    expect(outcome.batched).toBe(true);
    expect(texts(outcome)).toEqual(['one', 'two', 'keep é']);
  });
}

describe('init', () => {
  it('hands the options JSON to every instance, including one that replaced a trapped instance', () => {
    const options = JSON.stringify({ mask: '***', fields: ['email'] });
    const runner = new PluginRunner(module, { initOptions: options });
    const { data, offsets } = layout(['P', 'T trap', 'P again']);
    const outcome = runner.processBatch(data, offsets, 'per_line');
    expect(texts(outcome)).toEqual([options, 'T trap', options]);
    expect(outcome.failures).toEqual([{ index: 1, code: 'trap' }]);
    expect(runner.reinstantiations).toBe(1);
  });

  it('sends {} when there are no options', () => {
    const outcome = new PluginRunner(module).processBatch(layout(['P']).data, layout(['P']).offsets);
    expect(texts(outcome)).toEqual(['{}']);
  });

  it('refuses the module with its message when init returns status 2', () => {
    let caught: unknown;
    try {
      new PluginRunner(module, { initOptions: JSON.stringify({ long: 'x'.repeat(200) }), label: 'transforms.t' });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(PluginAbiError);
    expect((caught as PluginAbiError).code).toBe('LOGWASM_PLUGIN_ABI');
    expect((caught as PluginAbiError).message).toContain('options too long');
  });
});

describe('process_batch', () => {
  it('gives the same outcome as per-line calls, in one call', () => {
    const { data, offsets } = layout(MIXED);
    const perLine = new PluginRunner(module).processBatch(data, offsets, 'per_line');
    const runner = new PluginRunner(module);
    const batched = runner.processBatch(data, offsets, 'auto');
    expect(batched.batched).toBe(true);
    expect(perLine.batched).toBeUndefined();
    expect(comparable(batched)).toEqual(comparable(perLine));
    expect(texts(batched)).toEqual(['plain é', 'one', 'two', '{}', 'E error', '', 'X invalid', 'last 日本']);
    expect(batched.dropped).toBe(1);
    expect(batched.failures).toEqual([
      { index: 4, code: 'plugin_error' },
      { index: 6, code: 'bad_utf8' },
    ]);
    expect(runner.batchFallbacks).toBe(0);
  });

  it('gives the same outcome with drop_on_error', () => {
    const { data, offsets } = layout(MIXED);
    const perLine = new PluginRunner(module, { dropOnError: true }).processBatch(data, offsets, 'per_line');
    const batched = new PluginRunner(module, { dropOnError: true }).processBatch(data, offsets);
    expect(comparable(batched)).toEqual(comparable(perLine));
    expect(texts(batched)).toEqual(['plain é', 'one', 'two', '{}', '', 'last 日本']);
  });

  batchExportBehaviour(module);

  it('hands its output on in buffers of exactly their size, batched or line by line, so the next owner transfers them without a copy', () => {
    const runner = new PluginRunner(module);
    // Large enough batches that the output buffer's estimate (from the batches before) leaves a
    // little slack, not a lot.
    const lines = Array.from({ length: 2000 }, (_, i) => `plain ${i} ${'x'.repeat(100)}`);
    for (const mode of ['auto', 'per_line', 'auto', 'auto'] as const) {
      const { data, offsets } = layout(lines);
      const outcome = runner.processBatch(data, offsets, mode);
      expect(outcome.data.byteLength).toBeGreaterThan(0);
      expect([outcome.data.byteOffset, outcome.data.buffer.byteLength]).toEqual([0, outcome.data.byteLength]);
      expect([outcome.offsets.byteOffset, outcome.offsets.buffer.byteLength]).toEqual([0, outcome.offsets.byteLength]);
    }
  });

});

describe('process_batch_packed', () => {
  /** The same lines through the packed export, the records export and process_log, compared byte for byte. */
  function threeWays(lines: (string | Uint8Array)[], options: { dropOnError?: boolean; maxOutputBytes?: number } = {}): BatchOutcome {
    const { data, offsets } = layout(lines);
    const runner = new PluginRunner(both, options);
    expect(runner.batchLayout).toBe('packed');
    const packed = runner.processBatch(data, offsets);
    const recordsRunner = new PluginRunner(both, { ...options, usePackedBatch: false });
    expect(recordsRunner.batchLayout).toBe('records');
    const records = recordsRunner.processBatch(data, offsets);
    const perLine = new PluginRunner(both, options).processBatch(data, offsets, 'per_line');
    expect(packed.batched).toBe(true);
    expect(records.batched).toBe(true);
    expect(runner.batchFallbacks + recordsRunner.batchFallbacks).toBe(0);
    expect(comparable(packed)).toEqual(comparable(perLine));
    expect(comparable(records)).toEqual(comparable(perLine));
    return packed;
  }

  it('gives the same outcome as process_batch and per-line calls on mixed statuses (drop, error, several records, bad UTF-8)', () => {
    const outcome = threeWays(MIXED);
    expect(texts(outcome)).toEqual(['plain é', 'one', 'two', '{}', 'E error', '', 'X invalid', 'last 日本']);
    expect(outcome.dropped).toBe(1);
    expect(outcome.failures).toEqual([
      { index: 4, code: 'plugin_error' },
      { index: 6, code: 'bad_utf8' },
    ]);
  });

  it('gives the same outcome with drop_on_error', () => {
    expect(texts(threeWays(MIXED, { dropOnError: true }))).toEqual(['plain é', 'one', 'two', '{}', '', 'last 日本']);
  });

  it('gives the same outcome for a record over max_output_bytes and for invalid UTF-8 passed through unchanged', () => {
    const invalid = Uint8Array.of(0x61, 0xff, 0x62);
    const outcome = threeWays(['short', 'this line is longer than ten bytes', invalid, 'M', 'X'], { maxOutputBytes: 10 });
    expect(outcome.failures).toEqual([
      { index: 1, code: 'output_too_large' },
      { index: 4, code: 'bad_utf8' },
    ]);
    expect(fromBatchLayout(outcome.data, outcome.offsets)[2]).toEqual(invalid);
  });

  it('takes an all-emit result in one piece, and one with any other status record by record', () => {
    const runner = new PluginRunner(packedOnly);
    const plain = ['a', '', 'b é', multibyte(5000)];
    const outcome = runner.processBatch(layout(plain).data, layout(plain).offsets);
    expect(texts(outcome)).toEqual(plain);
    expect(runner.bulkTakes).toBe(1);
    // The output is handed on in buffers of exactly its size, as from the per-line path.
    expect([outcome.data.byteOffset, outcome.data.buffer.byteLength]).toEqual([0, outcome.data.byteLength]);
    expect([outcome.offsets.byteOffset, outcome.offsets.buffer.byteLength]).toEqual([0, outcome.offsets.byteLength]);
    runner.processBatch(layout(['a', 'D']).data, layout(['a', 'D']).offsets);
    expect(runner.bulkTakes).toBe(1);
    expect(runner.batchFallbacks).toBe(0);
    // All status 0, but one record longer than max_output_bytes.
    const limited = new PluginRunner(packedOnly, { maxOutputBytes: 10 });
    const long = limited.processBatch(layout(['short', 'longer than ten bytes']).data, layout(['short', 'longer than ten bytes']).offsets);
    expect(long.failures).toEqual([{ index: 1, code: 'output_too_large' }]);
    expect(texts(long)).toEqual(['short', 'longer than ten bytes']);
    expect(limited.bulkTakes).toBe(0);
  });

  it('reads a result area that is not 4-aligned', () => {
    const { data, offsets } = layout([...MIXED, ...MIXED]);
    const runner = new PluginRunner(misaligned);
    const outcome = runner.processBatch(data, offsets);
    expect(outcome.batched).toBe(true);
    expect(comparable(outcome)).toEqual(comparable(new PluginRunner(misaligned).processBatch(data, offsets, 'per_line')));
    const plain = layout(['aligned or not', 'é']);
    expect(texts(runner.processBatch(plain.data, plain.offsets))).toEqual(['aligned or not', 'é']);
    expect(runner.bulkTakes).toBe(1);
  });

  it('is preferred over process_batch when both are exported', async () => {
    // process_batch traps: any call to it would show as a fallback and a re-instantiation.
    const trapping = await watModule(
      fullGuestWat({ packed: {}, records: false }).replace(
        '(func (export "process_batch_packed")',
        '(func (export "process_batch") (param i32 i32 i32) (result i32) unreachable)\n    (func (export "process_batch_packed")',
      ),
    );
    const runner = new PluginRunner(trapping);
    const outcome = runner.processBatch(layout(['a', 'M']).data, layout(['a', 'M']).offsets);
    expect(texts(outcome)).toEqual(['a', 'one', 'two']);
    expect([runner.batchFallbacks, runner.reinstantiations]).toEqual([0, 0]);
    const v1 = new PluginRunner(trapping, { usePackedBatch: false });
    v1.processBatch(layout(['a']).data, layout(['a']).offsets);
    expect([v1.batchFallbacks, v1.reinstantiations]).toEqual([1, 1]);
  });

  batchExportBehaviour(packedOnly);

  it('is listed among the exports, with its arity checked', async () => {
    const wrongArity = await watModule(
      guestWat(ECHO_BODY, { extra: '(func (export "process_batch_packed") (param i32 i32) (result i32) (i32.const 0))' }),
    );
    let caught: unknown;
    try {
      new PluginRunner(wrongArity, { label: 'transforms.t' });
    } catch (error) {
      caught = error;
    }
    expect((caught as PluginAbiError).code).toBe('LOGWASM_PLUGIN_ABI');
    expect((caught as PluginAbiError).message).toContain('function "process_batch_packed" takes 2 parameters, expected 3');
  });
});

function multibyte(bytes: number): string {
  return 'é日x'.repeat(Math.ceil(bytes / 6));
}

describe('output checks', () => {
  it('fails output longer than max_output_bytes, keeping the instance', () => {
    const runner = new PluginRunner(module, { maxOutputBytes: 10 });
    const lines = ['short', 'this line is longer than ten bytes', 'M'];
    const outcome = runner.processBatch(layout(lines).data, layout(lines).offsets, 'per_line');
    expect(texts(outcome)).toEqual(['short', 'this line is longer than ten bytes', 'one', 'two']);
    expect(outcome.failures).toEqual([{ index: 1, code: 'output_too_large' }]);
    expect(runner.reinstantiations).toBe(0);
  });

  it('lets invalid UTF-8 through only when it is the input unchanged', () => {
    const invalid = Uint8Array.of(0x61, 0xff, 0x62);
    const outcome = new PluginRunner(module).processBatch(layout([invalid, 'X']).data, layout([invalid, 'X']).offsets);
    expect(fromBatchLayout(outcome.data, outcome.offsets)).toEqual([invalid, encoder.encode('X')]);
    expect(outcome.failures).toEqual([{ index: 1, code: 'bad_utf8' }]);
  });

  it('fails a line whose call grew memory past heap_memory_size and replaces the instance', () => {
    const runner = new PluginRunner(module, { heapMemorySize: 1024 * 1024 });
    const lines = ['before', 'G grows 40 pages', 'after'];
    const outcome = runner.processBatch(layout(lines).data, layout(lines).offsets, 'per_line');
    expect(texts(outcome)).toEqual(lines);
    expect(outcome.failures).toEqual([{ index: 1, code: 'memory_limit' }]);
    expect(outcome.firstError).toContain('heap_memory_size');
    expect(runner.reinstantiations).toBe(1);
  });
});
