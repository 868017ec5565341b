/**
 * Tiny hand-written plugins for wasm tests, compiled from WebAssembly text with wabt.
 *
 * `guestWat(body)` wraps a `process_log` body in a guest that follows ABI v1 with a strict
 * allocator: every block carries its length in a 4-byte header, `dealloc` traps unless it gets
 * back exactly a live (ptr, len) pair, so a host that frees the wrong size or frees twice fails
 * the test. The result area is at address 16; `$emit(ptr, len)` fills it. Memory starts at one
 * page and `alloc` grows it on demand.
 */
import wabt from 'wabt';
import { compileModuleSync, type WasmModule } from '../../src/wasm-memory/wasm-api.js';

let wabtReady: ReturnType<typeof wabt> | undefined;

export async function watBytes(source: string): Promise<Uint8Array> {
  wabtReady ??= wabt();
  const tools = await wabtReady;
  const parsed = tools.parseWat('plugin.wat', source, { bulk_memory: true, mutable_globals: true });
  try {
    parsed.resolveNames();
    parsed.validate();
    return new Uint8Array(parsed.toBinary({}).buffer);
  } finally {
    parsed.destroy();
  }
}

export async function watModule(source: string): Promise<WasmModule> {
  return compileModuleSync(await watBytes(source));
}

/** Address of the result area in every `guestWat` module. */
export const WAT_RESULT_AREA = 16;

export interface GuestWatOptions {
  /** Extra module fields (functions, globals, data). */
  extra?: string;
  /** Import fields, placed first as the text format requires. */
  imports?: string;
  /** Replaces the standard `alloc` export. */
  alloc?: string;
  /** Replaces the standard `logwasm_result` export. */
  result?: string;
  /** Replaces the standard `dealloc` export. */
  dealloc?: string;
  /** Replaces `process_log`'s parameter and result list. */
  processSignature?: string;
}

/** A full module whose `process_log(ptr, len) -> status` has `body` (params `$ptr`, `$len`). */
export function guestWat(body: string, options: GuestWatOptions = {}): string {
  const alloc =
    options.alloc ??
    `(func (export "alloc") (param $len i32) (result i32)
      (local $p i32) (local $need i32)
      (local.set $p (global.get $heap))
      (local.set $need (i32.add (local.get $p) (i32.add (local.get $len) (i32.const 4))))
      (if (i32.gt_u (local.get $need) (i32.mul (memory.size) (i32.const 65536)))
        (then (if (i32.eq (memory.grow (i32.add (i32.shr_u (local.get $len) (i32.const 16)) (i32.const 1))) (i32.const -1))
          (then (return (i32.const 0))))))
      (i32.store (local.get $p) (local.get $len))
      (global.set $heap (local.get $need))
      (i32.add (local.get $p) (i32.const 4)))`;
  const result = options.result ?? `(func (export "logwasm_result") (result i32) (i32.const ${WAT_RESULT_AREA}))`;
  return `(module
    ${options.imports ?? ''}
    (memory (export "memory") 1)
    (global $heap (mut i32) (i32.const 1024))
    ${alloc}
    ${options.dealloc ?? STRICT_DEALLOC}
    ${result}
    (func (export "logwasm_abi_version") (result i32) (i32.const 1))
    (func $emit (param $ptr i32) (param $len i32)
      (i32.store (i32.const ${WAT_RESULT_AREA}) (local.get $ptr))
      (i32.store (i32.const ${WAT_RESULT_AREA + 4}) (local.get $len)))
    ${options.extra ?? ''}
    (func (export "process_log") ${options.processSignature ?? '(param $ptr i32) (param $len i32) (result i32)'}
      ${body})
  )`;
}

const STRICT_DEALLOC = `(func (export "dealloc") (param $ptr i32) (param $len i32)
      (if (i32.ne (i32.load (i32.sub (local.get $ptr) (i32.const 4))) (local.get $len)) (then unreachable))
      (i32.store (i32.sub (local.get $ptr) (i32.const 4)) (i32.const -1)))`;

/** `process_log` that emits its input unchanged. */
export const ECHO_BODY = `(call $emit (local.get $ptr) (local.get $len)) (i32.const 0)`;

/** Batch-function body fragment: grows memory so that it reaches `$need` bytes. */
const GROW_TO_NEED = `(if (i32.gt_u (local.get $need) (i32.mul (memory.size) (i32.const 65536)))
        (then (drop (memory.grow (i32.add (i32.shr_u (i32.sub (local.get $need) (i32.mul (memory.size) (i32.const 65536))) (i32.const 16)) (i32.const 1))))))`;

/**
 * Batch-function body fragment: runs `$line` on line `$i` of the batch at `$ptr` (offsets, then
 * the data at `$data`), leaving its status in `$st` and its output length in `$olen` (0 for a drop).
 */
const LINE_I_TO_ST_OLEN = `(local.set $st (call $line
          (i32.add (local.get $data) (i32.load (i32.add (local.get $ptr) (i32.shl (local.get $i) (i32.const 2)))))
          (i32.sub (i32.load (i32.add (local.get $ptr) (i32.shl (i32.add (local.get $i) (i32.const 1)) (i32.const 2))))
                   (i32.load (i32.add (local.get $ptr) (i32.shl (local.get $i) (i32.const 2)))))))
        (local.set $olen (if (result i32) (i32.eq (local.get $st) (i32.const 1)) (then (i32.const 0)) (else (i32.load (i32.const ${WAT_RESULT_AREA + 4})))))`;

/**
 * A guest with every optional ABI v1 export: `init` keeps the options JSON (refusing more than 100
 * bytes), `process_batch` (and, in `fullGuestWat({ packed })`, `process_batch_packed`) runs the same
 * per-line logic as `process_log` over a whole batch.
 * By first byte: `D` drops, `M` emits the two records `one` and `two` (status 3), `P` emits the
 * options JSON that `init` got, `E` is a plugin error, `T` traps, `X` emits invalid UTF-8, `G`
 * grows memory by 40 pages, anything else is echoed.
 */
const FULL_GUEST_EXTRA = `
    (global $plen (mut i32) (i32.const 0))
    (data (i32.const 520) "one\\ntwo\\n")
    (data (i32.const 540) "bad line")
    (data (i32.const 560) "options too long")
    (data (i32.const 580) "\\ff\\fe")
    (func (export "init") (param $ptr i32) (param $len i32) (result i32)
      (if (i32.gt_u (local.get $len) (i32.const 100)) (then (call $emit (i32.const 560) (i32.const 16)) (return (i32.const 2))))
      (memory.copy (i32.const 600) (local.get $ptr) (local.get $len))
      (global.set $plen (local.get $len))
      (i32.const 0))
    (func $line (param $ptr i32) (param $len i32) (result i32) (local $c i32)
      (local.set $c (if (result i32) (local.get $len) (then (i32.load8_u (local.get $ptr))) (else (i32.const 0))))
      (if (i32.eq (local.get $c) (i32.const 68)) (then (return (i32.const 1))))
      (if (i32.eq (local.get $c) (i32.const 77)) (then (call $emit (i32.const 520) (i32.const 8)) (return (i32.const 3))))
      (if (i32.eq (local.get $c) (i32.const 80)) (then (call $emit (i32.const 600) (global.get $plen)) (return (i32.const 0))))
      (if (i32.eq (local.get $c) (i32.const 69)) (then (call $emit (i32.const 540) (i32.const 8)) (return (i32.const 2))))
      (if (i32.eq (local.get $c) (i32.const 84)) (then unreachable))
      (if (i32.eq (local.get $c) (i32.const 88)) (then (call $emit (i32.const 580) (i32.const 2)) (return (i32.const 0))))
      (if (i32.eq (local.get $c) (i32.const 71)) (then (drop (memory.grow (i32.const 40)))))
      (call $emit (local.get $ptr) (local.get $len))
      (i32.const 0))
    (func (export "process_batch") (param $ptr i32) (param $len i32) (param $count i32) (result i32)
      (local $i i32) (local $data i32) (local $o i32) (local $out i32) (local $st i32) (local $olen i32) (local $need i32)
      (local.set $data (i32.add (local.get $ptr) (i32.shl (i32.add (local.get $count) (i32.const 1)) (i32.const 2))))
      (local.set $out (global.get $heap))
      (local.set $need (i32.add (local.get $out) (i32.add (i32.mul (local.get $count) (i32.const 520)) (local.get $len))))
      ${GROW_TO_NEED}
      (local.set $o (local.get $out))
      (block $done (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
        ${LINE_I_TO_ST_OLEN}
        (i32.store (local.get $o) (local.get $st))
        (i32.store (i32.add (local.get $o) (i32.const 4)) (local.get $olen))
        (memory.copy (i32.add (local.get $o) (i32.const 8)) (i32.load (i32.const ${WAT_RESULT_AREA})) (local.get $olen))
        (local.set $o (i32.add (local.get $o) (i32.add (i32.const 8) (local.get $olen))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
      (call $emit (local.get $out) (i32.sub (local.get $o) (local.get $out)))
      (i32.const 0))`;

export const FULL_GUEST_WAT = guestWat(`(call $line (local.get $ptr) (local.get $len))`, { extra: FULL_GUEST_EXTRA });

export interface FullGuestOptions {
  /** Export `process_batch_packed`, its result area `misalign` bytes past a 4-byte boundary (default 0). */
  packed?: { misalign?: number };
  /** Export `process_batch` (the records layout). Default true. */
  records?: boolean;
}

/** FULL_GUEST_WAT with a choice of batch exports. */
export function fullGuestWat(options: FullGuestOptions = {}): string {
  let extra = FULL_GUEST_EXTRA;
  if (options.records === false) extra = extra.replace('(export "process_batch")', '');
  if (options.packed !== undefined) extra += packedBatchFunction(options.packed.misalign ?? 0);
  return guestWat(`(call $line (local.get $ptr) (local.get $len))`, { extra });
}

/**
 * `process_batch_packed` over FULL_GUEST_EXTRA's `$line`: the area `[statuses][offsets][data]`
 * is written at the heap's end, rounded up to 4 and then moved on by `misalign` bytes.
 */
function packedBatchFunction(misalign: number): string {
  return `
    (func (export "process_batch_packed") (param $ptr i32) (param $len i32) (param $count i32) (result i32)
      (local $i i32) (local $data i32) (local $out i32) (local $st i32) (local $olen i32) (local $need i32)
      (local $offs i32) (local $start i32) (local $dst i32)
      (local.set $data (i32.add (local.get $ptr) (i32.shl (i32.add (local.get $count) (i32.const 1)) (i32.const 2))))
      (local.set $out (i32.add (i32.and (i32.add (global.get $heap) (i32.const 3)) (i32.const -4)) (i32.const ${misalign})))
      (local.set $offs (i32.add (local.get $out) (i32.shl (local.get $count) (i32.const 2))))
      (local.set $start (i32.add (local.get $offs) (i32.shl (i32.add (local.get $count) (i32.const 1)) (i32.const 2))))
      (local.set $need (i32.add (local.get $start) (i32.add (i32.mul (local.get $count) (i32.const 520)) (local.get $len))))
      ${GROW_TO_NEED}
      (i32.store (local.get $offs) (i32.const 0))
      (local.set $dst (local.get $start))
      (block $done (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
        ${LINE_I_TO_ST_OLEN}
        (i32.store (i32.add (local.get $out) (i32.shl (local.get $i) (i32.const 2))) (local.get $st))
        (memory.copy (local.get $dst) (i32.load (i32.const ${WAT_RESULT_AREA})) (local.get $olen))
        (local.set $dst (i32.add (local.get $dst) (local.get $olen)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (i32.store (i32.add (local.get $offs) (i32.shl (local.get $i) (i32.const 2))) (i32.sub (local.get $dst) (local.get $start)))
        (br $next)))
      (call $emit (local.get $out) (i32.sub (local.get $dst) (local.get $out)))
      (i32.const 0))`;
}

/**
 * A guest that echoes through `process_log` and whose `process_batch_packed` answers any batch
 * with the same area: `words` (statuses then offsets, u32 LE) followed by `data`, at address 700,
 * its pointer and length in the result area (`ptr`/`len` override them, to point it elsewhere).
 */
export function staticPackedWat(words: readonly number[], data: string, override: { ptr?: number; len?: number } = {}): string {
  const hex = (bytes: Iterable<number>): string => Array.from(bytes, (b) => `\\${b.toString(16).padStart(2, '0')}`).join('');
  const wordBytes = words.flatMap((w) => [w & 0xff, (w >>> 8) & 0xff, (w >>> 16) & 0xff, (w >>> 24) & 0xff]);
  const dataBytes = Array.from(data, (c) => c.charCodeAt(0));
  const len = override.len ?? wordBytes.length + dataBytes.length;
  return guestWat(ECHO_BODY, {
    extra: `
      (data (i32.const 700) "${hex([...wordBytes, ...dataBytes])}")
      (func (export "process_batch_packed") (param $ptr i32) (param $len i32) (param $count i32) (result i32)
        (call $emit (i32.const ${override.ptr ?? 700}) (i32.const ${len})) (i32.const 0))`,
  });
}
