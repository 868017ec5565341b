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
