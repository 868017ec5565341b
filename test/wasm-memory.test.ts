import { describe, expect, it } from 'vitest';
import { PluginAbiError } from '../src/errors.js';
import { INPUT_BUFFER_STEP, PluginRunner, type BatchOutcome } from '../src/wasm-memory/runner.js';
import { ECHO_BODY, guestWat, staticPackedWat, watModule } from './support/wasm-wat.js';

const encoder = new TextEncoder();

function batch(lines: (string | Uint8Array)[]): { data: Uint8Array; offsets: Uint32Array } {
  const bytes = lines.map((line) => (typeof line === 'string' ? encoder.encode(line) : line));
  const offsets = new Uint32Array(bytes.length + 1);
  const data = new Uint8Array(bytes.reduce((sum, b) => sum + b.byteLength, 0));
  bytes.forEach((b, i) => {
    data.set(b, offsets[i]!);
    offsets[i + 1] = offsets[i]! + b.byteLength;
  });
  return { data, offsets };
}

function linesOf(outcome: BatchOutcome): Uint8Array[] {
  const lines: Uint8Array[] = [];
  for (let i = 0; i + 1 < outcome.offsets.length; i++) {
    lines.push(outcome.data.slice(outcome.offsets[i]!, outcome.offsets[i + 1]!));
  }
  return lines;
}

function texts(outcome: BatchOutcome): string[] {
  return linesOf(outcome).map((line) => new TextDecoder().decode(line));
}

/** A line of exactly `bytes` bytes mixing multibyte UTF-8 ("é" is 2 bytes, "日" 3). */
function multibyteLine(bytes: number, seed: number): Uint8Array {
  const unit = encoder.encode(`é日${seed}-`);
  const line = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) line[i] = unit[i % unit.length]!;
  return line;
}

const firstByte = '(i32.load8_u (local.get $ptr))';

describe('PluginRunner over a well-behaved guest', () => {
  it('echoes lines of every size byte for byte, across input-buffer and memory-page growth', async () => {
    const runner = new PluginRunner(await watModule(guestWat(ECHO_BODY)));
    const sizes = [0, 1, 4095, 4096, 4097, 10_000, 3, 70_000, 0, 5];
    const lines = sizes.map((size, i) => multibyteLine(size, i));
    const outcome = runner.processBatch(batch(lines).data, batch(lines).offsets);
    expect(outcome.failures).toEqual([]);
    expect(outcome.dropped).toBe(0);
    expect(linesOf(outcome)).toEqual(lines);
    expect(runner.inputBufferCapacity).toBe(Math.ceil(70_000 / INPUT_BUFFER_STEP) * INPUT_BUFFER_STEP);
  });

  it('grows the guest input buffer in 4096-byte steps and never shrinks it', async () => {
    // The strict allocator keeps each block's length in the 4 bytes before it: emitting those
    // bytes tells which capacity the line was copied into.
    const runner = new PluginRunner(
      await watModule(guestWat(`(call $emit (i32.sub (local.get $ptr) (i32.const 4)) (i32.const 4)) (i32.const 0)`)),
    );
    const sizes = [10, 4096, 4097, 5000, 8192, 8193, 100, 0];
    const { data, offsets } = batch(sizes.map((size) => new Uint8Array(size).fill(0x61)));
    const outcome = runner.processBatch(data, offsets);
    const capacities = linesOf(outcome).map((b) => new DataView(b.buffer, b.byteOffset).getUint32(0, true));
    expect(capacities).toEqual([4096, 4096, 8192, 8192, 8192, 12288, 12288, 12288]);
  });

  it('reads output through a fresh view after the guest grows its memory during the call', async () => {
    // Each call grows memory by one page and copies the line into the new page: the output is
    // only visible through a view of the new buffer (the old one is detached, length 0).
    const body = `
      (local $dst i32)
      (local.set $dst (i32.mul (memory.grow (i32.const 1)) (i32.const 65536)))
      (memory.copy (local.get $dst) (local.get $ptr) (local.get $len))
      (call $emit (local.get $dst) (local.get $len))
      (i32.const 0)`;
    const runner = new PluginRunner(await watModule(guestWat(body)));
    const lines = ['first é', 'second 日本', '', multibyteLine(60_000, 1), 'last'];
    for (let round = 0; round < 2; round++) {
      const outcome = runner.processBatch(batch(lines).data, batch(lines).offsets);
      expect(outcome.failures).toEqual([]);
      expect(linesOf(outcome)).toEqual(lines.map((l) => (typeof l === 'string' ? encoder.encode(l) : l)));
    }
  });

  it('hands back output buffers close to the size of what they hold, when the output outgrows the input', async () => {
    // Emits each line twice (copied after itself, inside the 4096-byte input buffer): twice the
    // input. The buffer, not the view, is what a worker transfers and the sinks keep alive.
    const body = `
      (memory.copy (i32.add (local.get $ptr) (local.get $len)) (local.get $ptr) (local.get $len))
      (call $emit (local.get $ptr) (i32.mul (local.get $len) (i32.const 2)))
      (i32.const 0)`;
    const runner = new PluginRunner(await watModule(guestWat(body)));
    const lines = Array.from({ length: 200 }, (_, i) => `${'a'.repeat(90)}${String(i).padStart(10, '0')}`);
    for (let round = 0; round < 3; round++) {
      const { data, offsets } = batch(lines);
      const outcome = runner.processBatch(data, offsets);
      expect(texts(outcome)).toEqual(lines.map((l) => l + l));
      expect(outcome.data.buffer.byteLength, `round ${round}`).toBeLessThanOrEqual(outcome.data.byteLength * 1.125 + INPUT_BUFFER_STEP);
    }
  });

  it('checks UTF-8 record by record in a process_batch result, even where the records joined would be valid', async () => {
    // process_batch answers any two lines with the records "a\xC3" and "\xA9b": each is invalid
    // UTF-8 and not its input, although together they spell "aéb".
    const runner = new PluginRunner(
      await watModule(
        guestWat(ECHO_BODY, {
          extra: `
            (data (i32.const 700) "\\00\\00\\00\\00\\02\\00\\00\\00a\\c3\\00\\00\\00\\00\\02\\00\\00\\00\\a9b")
            (func (export "process_batch") (param $ptr i32) (param $len i32) (param $count i32) (result i32)
              (call $emit (i32.const 700) (i32.const 20)) (i32.const 0))`,
        }),
      ),
    );
    const { data, offsets } = batch(['x1', 'x2']);
    const outcome = runner.processBatch(data, offsets);
    expect(outcome.batched).toBe(true);
    expect(outcome.failures).toEqual([
      { index: 0, code: 'bad_utf8' },
      { index: 1, code: 'bad_utf8' },
    ]);
    expect(texts(outcome)).toEqual(['x1', 'x2']);
  });

  it('checks UTF-8 record by record in a process_batch_packed result, even where the records joined would be valid', async () => {
    // The same two records as above, "a\xC3" and "\xA9b", as statuses [0, 0], offsets [0, 2, 4].
    const runner = new PluginRunner(await watModule(staticPackedWat([0, 0, 0, 2, 4], 'a\xc3\xa9b')));
    const { data, offsets } = batch(['x1', 'x2']);
    const outcome = runner.processBatch(data, offsets);
    expect(outcome.batched).toBe(true);
    expect(runner.bulkTakes).toBe(0);
    expect(outcome.failures).toEqual([
      { index: 0, code: 'bad_utf8' },
      { index: 1, code: 'bad_utf8' },
    ]);
    expect(texts(outcome)).toEqual(['x1', 'x2']);
  });

  it('handles a batch whose data is a view into a larger buffer, and an empty batch', async () => {
    const runner = new PluginRunner(await watModule(guestWat(ECHO_BODY)));
    const whole = encoder.encode('XXXXhelloworldYYYY');
    const outcome = runner.processBatch(whole.subarray(4, 14), Uint32Array.of(0, 5, 10));
    expect(texts(outcome)).toEqual(['hello', 'world']);
    const empty = runner.processBatch(new Uint8Array(0), Uint32Array.of(0));
    expect(empty.data.byteLength).toBe(0);
    expect(Array.from(empty.offsets)).toEqual([0]);
    expect(empty.failures).toEqual([]);
  });
});

describe('PluginRunner statuses and failure policy', () => {
  // First byte '0' emits the line, '1' drops it, '2' is a plugin error, anything else is returned
  // as the status itself (an unknown status).
  const statusBody = `
    (local $status i32)
    (local.set $status (i32.sub ${firstByte} (i32.const 48)))
    (if (i32.eq (local.get $status) (i32.const 2)) (then (call $emit (i32.const 512) (i32.const 9)) (return (i32.const 2))))
    (call $emit (local.get $ptr) (local.get $len))
    (local.get $status)`;
  const statusWat = guestWat(statusBody, { extra: `(data (i32.const 512) "bad thing")` });
  const input = ['0 keep', '1 drop', '2 error', '7 unknown', '0 keep too'];

  it('emits, drops, and forwards failed lines unchanged by default', async () => {
    const runner = new PluginRunner(await watModule(statusWat));
    const outcome = runner.processBatch(batch(input).data, batch(input).offsets);
    expect(texts(outcome)).toEqual(['0 keep', '2 error', '7 unknown', '0 keep too']);
    expect(outcome.dropped).toBe(1);
    expect(outcome.failures).toEqual([
      { index: 2, code: 'plugin_error' },
      { index: 3, code: 'bad_status' },
    ]);
    expect(outcome.firstError).toContain('bad thing');
  });

  it('drops failed lines when dropOnError is set, still reporting them', async () => {
    const runner = new PluginRunner(await watModule(statusWat), { dropOnError: true });
    const outcome = runner.processBatch(batch(input).data, batch(input).offsets);
    expect(texts(outcome)).toEqual(['0 keep', '0 keep too']);
    expect(outcome.dropped).toBe(1);
    expect(outcome.failures.map((f) => f.code)).toEqual(['plugin_error', 'bad_status']);
  });

  it('treats a result area pointing past memory as bad_output and keeps the instance', async () => {
    const body = `
      (if (i32.eq ${firstByte} (i32.const 66))
        (then (call $emit (i32.const 65530) (i32.const 100)) (return (i32.const 0))))
      (if (i32.eq ${firstByte} (i32.const 67))
        (then (call $emit (i32.const -16) (i32.const 32)) (return (i32.const 0))))
      (call $emit (local.get $ptr) (local.get $len)) (i32.const 0)`;
    const runner = new PluginRunner(await watModule(guestWat(body)));
    const lines = ['ok 1', 'B past the end', 'C wraps around', 'ok 2'];
    const outcome = runner.processBatch(batch(lines).data, batch(lines).offsets);
    expect(texts(outcome)).toEqual(lines);
    expect(outcome.failures).toEqual([
      { index: 1, code: 'bad_output' },
      { index: 2, code: 'bad_output' },
    ]);
    expect(runner.reinstantiations).toBe(0);
  });

  it('forwards a trapping line, replaces the instance, and runs the rest on clean state', async () => {
    // 'T' poisons a global, then traps. A poisoned instance answers every later line with status
    // 2, so the test fails unless the host threw the trapped instance away.
    const body = `
      (if (global.get $poisoned) (then (call $emit (i32.const 512) (i32.const 8)) (return (i32.const 2))))
      (if (i32.eq ${firstByte} (i32.const 84)) (then (global.set $poisoned (i32.const 1)) unreachable))
      (call $emit (local.get $ptr) (local.get $len)) (i32.const 0)`;
    const wat = guestWat(body, { extra: `(global $poisoned (mut i32) (i32.const 0)) (data (i32.const 512) "poisoned")` });
    const runner = new PluginRunner(await watModule(wat));
    const lines = ['a', 'T trap 1', 'b', multibyteLine(9000, 2), 'T trap 2', 'c'];
    const outcome = runner.processBatch(batch(lines).data, batch(lines).offsets);
    expect(linesOf(outcome)).toEqual(lines.map((l) => (typeof l === 'string' ? encoder.encode(l) : l)));
    expect(outcome.failures).toEqual([
      { index: 1, code: 'trap' },
      { index: 4, code: 'trap' },
    ]);
    expect(outcome.firstError).toMatch(/unreachable/);
    expect(runner.reinstantiations).toBe(2);
  });

  it('counts a stack overflow as a trap', async () => {
    const wat = guestWat(
      `(if (i32.eq ${firstByte} (i32.const 82)) (then (drop (call $recurse (i32.const 0)))))
       (call $emit (local.get $ptr) (local.get $len)) (i32.const 0)`,
      { extra: `(func $recurse (param $n i32) (result i32) (i32.add (call $recurse (i32.add (local.get $n) (i32.const 1))) (i32.const 1)))` },
    );
    const runner = new PluginRunner(await watModule(wat));
    const outcome = runner.processBatch(batch(['R', 'after']).data, batch(['R', 'after']).offsets);
    expect(texts(outcome)).toEqual(['R', 'after']);
    expect(outcome.failures).toEqual([{ index: 0, code: 'trap' }]);
  });

  it('fails a line whose buffer the guest cannot allocate, keeping the old buffer', async () => {
    const alloc = `(func (export "alloc") (param $len i32) (result i32)
      (if (i32.gt_u (local.get $len) (i32.const 4096)) (then (return (i32.const 0))))
      (i32.store (i32.const 2048) (local.get $len))
      (i32.const 2052))`;
    const runner = new PluginRunner(await watModule(guestWat(ECHO_BODY, { alloc })));
    const big = multibyteLine(5000, 3);
    const outcome = runner.processBatch(batch(['before', big, 'after']).data, batch(['before', big, 'after']).offsets);
    expect(linesOf(outcome)).toEqual([encoder.encode('before'), big, encoder.encode('after')]);
    expect(outcome.failures).toEqual([{ index: 1, code: 'alloc_failed' }]);
    expect(runner.inputBufferCapacity).toBe(INPUT_BUFFER_STEP);
  });
});

describe('a malformed process_batch_packed result', () => {
  // Every guest here echoes through process_log and answers any batch with one fixed area; the
  // batch has two lines, so the area should be statuses [s0, s1], offsets [0, o1, o2], data.
  const lines = ['x1', 'é2'];

  async function outcomeOf(wat: string): Promise<{ outcome: BatchOutcome; runner: PluginRunner }> {
    const runner = new PluginRunner(await watModule(wat));
    expect(runner.batchLayout).toBe('packed');
    return { outcome: runner.processBatch(batch(lines).data, batch(lines).offsets), runner };
  }

  it('is used when well formed (the control for the cases below)', async () => {
    const { outcome, runner } = await outcomeOf(staticPackedWat([0, 0, 0, 2, 4], 'abcd'));
    expect(texts(outcome)).toEqual(['ab', 'cd']);
    expect([outcome.batched, runner.batchFallbacks, runner.bulkTakes]).toEqual([true, 0, 1]);
  });

  it.each([
    ['offsets that decrease', staticPackedWat([0, 0, 0, 3, 2], 'ab')],
    ['an offset past the area', staticPackedWat([0, 0, 0, 2, 9], 'abcd')],
    ['a last offset short of the area', staticPackedWat([0, 0, 0, 1, 2], 'abcd')],
    ['a first offset that is not 0', staticPackedWat([0, 0, 1, 2, 4], 'abcd')],
    ['an area shorter than its header', staticPackedWat([0, 0, 0, 2, 4], 'abcd', { len: 16 })],
    ['an area past the end of memory', staticPackedWat([0, 0, 0, 2, 4], 'abcd', { ptr: 65530 })],
    ['an area wrapping around the address space', staticPackedWat([0, 0, 0, 2, 4], 'abcd', { ptr: -16, len: 32 })],
    ['an area laid out for three records', staticPackedWat([0, 0, 0, 0, 1, 2, 3], 'abc')],
    ['an area laid out for one record', staticPackedWat([0, 0, 2], 'ab')],
  ])('%s: the batch is redone line by line, nothing lost', async (_name, wat) => {
    const { outcome, runner } = await outcomeOf(wat);
    expect(outcome.batched).toBeUndefined();
    expect(runner.batchFallbacks).toBe(1);
    expect(outcome.failures).toEqual([]);
    expect(texts(outcome)).toEqual(lines);
  });

  it('applies mixed statuses record by record, as process_log would', async () => {
    // drop (len 0), error "no", emit several "p\nq", emit "é" cut after its first byte, unknown 9.
    const lines5 = ['a', 'b', 'c', 'd', 'e'];
    const runner = new PluginRunner(await watModule(staticPackedWat([1, 2, 3, 0, 9, 0, 0, 2, 5, 6, 6], 'nop\nq\xc3')));
    const outcome = runner.processBatch(batch(lines5).data, batch(lines5).offsets);
    expect(outcome.batched).toBe(true);
    expect(texts(outcome)).toEqual(['b', 'p', 'q', 'd', 'e']);
    expect(outcome.dropped).toBe(1);
    expect(outcome.failures).toEqual([
      { index: 1, code: 'plugin_error' },
      { index: 3, code: 'bad_utf8' },
      { index: 4, code: 'bad_status' },
    ]);
    expect(outcome.firstError).toContain('no');
  });
});

describe('ABI validation', () => {
  async function refusal(wat: string): Promise<PluginAbiError> {
    const module = await watModule(wat);
    try {
      new PluginRunner(module, { label: 'transforms.t' });
    } catch (error) {
      expect(error).toBeInstanceOf(PluginAbiError);
      return error as PluginAbiError;
    }
    throw new Error('the module was accepted');
  }

  it('accepts the reference guest', async () => {
    expect(() => new PluginRunner(guestModuleSync)).not.toThrow();
  });

  it('refuses a module that imports anything, naming the import', async () => {
    const error = await refusal(
      guestWat(ECHO_BODY, { imports: `(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))` }),
    );
    expect(error.code).toBe('LOGWASM_PLUGIN_ABI');
    expect(error.message).toContain('"wasi_snapshot_preview1"."fd_write"');
  });

  it.each([
    ['a missing process_log', guestWat(ECHO_BODY).replace('(export "process_log")', ''), 'process_log'],
    ['process_log with one parameter', guestWat('(i32.const 0)', { processSignature: '(param $ptr i32) (result i32)' }), 'process_log'],
    ['a missing memory export', guestWat(ECHO_BODY).replace('(memory (export "memory") 1)', '(memory 1)'), 'memory'],
    ['dealloc with one parameter', guestWat(ECHO_BODY, { dealloc: '(func (export "dealloc") (param i32))' }), 'dealloc'],
    ['ABI version 2', guestWat(ECHO_BODY).replace('(result i32) (i32.const 1))', '(result i32) (i32.const 2))'), 'logwasm_abi_version'],
    ['a result area outside memory', guestWat(ECHO_BODY, { result: '(func (export "logwasm_result") (result i32) (i32.const 65535))' }), 'logwasm_result'],
    ['a trapping logwasm_result', guestWat(ECHO_BODY, { result: '(func (export "logwasm_result") (result i32) unreachable)' }), 'logwasm_result'],
  ])('refuses %s', async (_name, wat, mentioned) => {
    const error = await refusal(wat);
    expect(error.code).toBe('LOGWASM_PLUGIN_ABI');
    expect(error.message).toContain(mentioned);
  });
});

const guestModuleSync = await watModule(guestWat(ECHO_BODY));
