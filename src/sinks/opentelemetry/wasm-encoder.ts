/**
 * The OTLP/protobuf encoder's fast path: crates/otlp_encode (Rust compiled to wasm) writes every
 * LogRecord entry of a batch, byte for byte what encode.ts's BatchEncoder writes for the default
 * mapping (no `mapping.attributes`, no `mapping.service_name_field`). A record it is not sure to
 * encode identically it refuses; those are encoded by the JS path and spliced in, so the result is
 * the JS path's whatever the line.
 *
 * Internal: the module's ABI is this file's, not the plugin ABI. The wasm memory discipline is
 * src/wasm-memory/'s: the guest owns the allocator, the host reuses one guest input buffer grown in
 * 4096-byte steps, views of `memory.buffer` are made after every call that may grow it, and
 * results are read by pointer and length before the next call.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { BatchMeta } from '../../event.js';
import { compileModuleSync, instantiate, isMemory, type WasmInstance, type WasmMemory, type WasmModule } from '../../wasm-memory/wasm-api.js';
// A cycle with encode.ts, which creates this encoder: packEncoded is only called at encode time.
import { packEncoded, type EncodeInput, type EncodedBatch } from './encode.js';
import type { OtlpMapping } from './mapping.js';
import { CAPTURED_FIELDS } from './transcode.js';

/** The exports the encoder needs, with their arity (checked on load, and by a test on the committed file). */
export const WASM_ENCODER_EXPORTS: Readonly<Record<string, number>> = Object.freeze({
  alloc: 1,
  dealloc: 2,
  result: 0,
  configure: 4,
  encode_batch: 8,
});

interface Exports {
  memory: WasmMemory;
  alloc(len: number): number;
  dealloc(ptr: number, len: number): void;
  result(): number;
  configure(ptr: number, a: number, b: number, c: number): number;
  encode_batch(dataPtr: number, dataLen: number, offsetsPtr: number, count: number, tailPtr: number, tailLen: number, base: number, json: number): number;
}

/** Steps in which the guest input buffer grows. */
const GROW_STEP = 4096;

/**
 * The committed module. The same relative path works from src/ (vitest runs the TypeScript) and
 * from dist/ (the compiled JavaScript): both sit next to crates/ in the package root.
 */
export function wasmEncoderFile(): string {
  return fileURLToPath(new URL('../../../crates/otlp_encode/otlp_encode.wasm', import.meta.url));
}

/** Compiled once per thread (encoders share it), or the reason it could not be. */
let compiled: WasmModule | Error | undefined;

function compiledModule(): WasmModule | undefined {
  if (compiled === undefined) {
    try {
      compiled = compileModuleSync(readFileSync(wasmEncoderFile()));
    } catch (error) {
      compiled = error instanceof Error ? error : new Error(String(error));
    }
  }
  return compiled instanceof Error ? undefined : compiled;
}

/**
 * Why the Rust encoder cannot be used in this process (the module at `file` is missing or does
 * not compile), or undefined when it can. The sink logs it at start: the JS path then encodes
 * everything, at about twice the CPU.
 */
export function wasmEncoderProblem(file = wasmEncoderFile()): string | undefined {
  if (file === wasmEncoderFile()) {
    if (compiledModule() !== undefined) return undefined;
    return (compiled as Error).message;
  }
  try {
    compileModuleSync(readFileSync(file));
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/**
 * Whether the Rust encoder writes what the JS path writes under `mapping`: the default shape, and
 * trace fields that neither repeat each other nor the timestamp and level fields (the transcoder
 * then feeds one field to two rules, which the Rust side does not).
 */
export function wasmEncoderSupports(mapping: OtlpMapping): boolean {
  if (mapping.attributes.length > 0 || mapping.serviceNameField !== '') return false;
  const names = [mapping.traceIdField, mapping.spanIdField, mapping.traceFlagsField].filter((name) => name !== '');
  const all = [...CAPTURED_FIELDS, ...names];
  return new Set(all).size === all.length;
}

/**
 * Counters of the fast path: records written by the Rust encoder, records it left to JS, and
 * batches it failed on (a trap: a bug, never expected; the batch is then encoded by JS and the
 * encoder stops using the instance).
 */
export interface WasmEncoderStats {
  encoded: number;
  refused: number;
  failed: number;
}

export class WasmBatchEncoder {
  private readonly exports: Exports;
  /** The guest input buffer (offsets, tail, then line bytes), reused across batches. */
  private input = 0;
  private inputSize = 0;

  private constructor(instance: WasmInstance, mapping: OtlpMapping) {
    this.exports = instance.exports as unknown as Exports;
    const names = new TextEncoder().encode(mapping.traceIdField + mapping.spanIdField + mapping.traceFlagsField);
    const lengths = [mapping.traceIdField, mapping.spanIdField, mapping.traceFlagsField].map((name) => Buffer.byteLength(name));
    const ptr = this.reserve(names.length);
    new Uint8Array(this.exports.memory.buffer, ptr, names.length).set(names);
    if (this.exports.configure(ptr, lengths[0]!, lengths[1]!, lengths[2]!) !== 0) throw new Error('otlp_encode: configure refused the trace field names');
  }

  /**
   * An instance for `mapping`, or undefined when the mapping is not the default shape or the
   * module is missing, does not compile or lacks an export: the JS path then does everything.
   */
  static create(mapping: OtlpMapping): WasmBatchEncoder | undefined {
    if (!wasmEncoderSupports(mapping)) return undefined;
    const module = compiledModule();
    if (module === undefined) return undefined;
    try {
      const instance = instantiate(module);
      for (const [name, arity] of Object.entries(WASM_ENCODER_EXPORTS)) {
        const value = instance.exports[name];
        if (typeof value !== 'function' || value.length !== arity) return undefined;
      }
      if (!isMemory(instance.exports.memory)) return undefined;
      return new WasmBatchEncoder(instance, mapping);
    } catch {
      return undefined;
    }
  }

  /** A guest buffer of at least `size` bytes (the previous one, when it is large enough). */
  private reserve(size: number): number {
    if (size <= this.inputSize && this.input !== 0) return this.input;
    const grown = Math.max(GROW_STEP, Math.ceil(size / GROW_STEP) * GROW_STEP);
    if (this.input !== 0) this.exports.dealloc(this.input, this.inputSize);
    this.input = 0;
    this.inputSize = 0;
    const ptr = this.exports.alloc(grown);
    if (ptr === 0) throw new Error(`otlp_encode: alloc(${grown}) failed`);
    this.input = ptr;
    this.inputSize = grown;
    return ptr;
  }

  /**
   * Encodes `input` as BatchEncoder.encode does. `header` is the batch's resource and scope entries
   * (`resourceEnd` where the first ends), `tail` what ends every record (the record attributes,
   * then the observed time field). With `framed`, a batch without refused lines comes out laid out
   * as a whole request (encode.ts packEncoded), in the same copy. `fallback` encodes the lines the Rust side refused, as a batch
   * of their own with the same meta, by the JS path; it must not call back into this encoder.
   * Undefined when the guest failed (a trap, or its memory exhausted): the instance must not be
   * used again, and the caller encodes the batch itself.
   */
  encode(
    input: EncodeInput,
    header: Uint8Array,
    resourceEnd: number,
    tail: Uint8Array,
    framed: boolean,
    fallback: (refused: EncodeInput) => EncodedBatch,
  ): (EncodedBatch & { objects: number; texts: number }) | undefined {
    const { data, offsets, meta } = input;
    const count = offsets.length - 1;
    const base = header.length;
    const exports = this.exports;
    // Offsets first: alloc() aligns to 8, so they are 4-byte aligned as the guest reads them.
    const offsetsBytes = offsets.length * 4;
    try {
      const ptr = this.reserve(offsetsBytes + tail.length + data.length);
      const memory = exports.memory.buffer;
      new Uint32Array(memory, ptr, offsets.length).set(offsets);
      new Uint8Array(memory, ptr + offsetsBytes, tail.length).set(tail);
      const dataPtr = ptr + offsetsBytes + tail.length;
      new Uint8Array(memory, dataPtr, data.length).set(data);
      const status = exports.encode_batch(dataPtr, data.length, ptr, count, ptr + offsetsBytes, tail.length, base, meta.format === 'json' ? 1 : 0);
      if (status !== 0) return undefined;
    } catch {
      // A trap (WebAssembly.RuntimeError) or no memory left: the guest's state is unknown from here on.
      return undefined;
    }
    // The call may have grown the memory: fresh views from here on.
    const memory = exports.memory.buffer;
    const result = new Uint32Array(memory, exports.result(), 7);
    const outPtr = result[0]!;
    const outLength = result[1]!;
    const recordOffsets = new Uint32Array(memory, result[2]!, count + 1);
    const refusedCount = result[4]!;
    const objects = result[5]!;
    const texts = result[6]!;

    if (refusedCount === 0) {
      // One copy out, into a buffer of its own (so it can be transferred), framed as a request if asked.
      return { ...packEncoded(header, resourceEnd, new Uint8Array(memory, outPtr, outLength), recordOffsets.slice(), framed), objects, texts };
    }

    // Read everything needed out of the guest before handing control to JS.
    const refused = new Uint32Array(memory, result[3]!, refusedCount).slice();
    const wasmOffsets = recordOffsets.slice();
    // The caller's header may live in the buffer the fallback writes to.
    const head = header.slice();
    const js = fallback(refusedLines(data, offsets, refused, meta));
    const jsStart = js.offsets[0]!;
    const jsBytes = js.offsets[refusedCount]! - jsStart;
    const total = base + outLength + jsBytes;
    const bytes = new Uint8Array(Buffer.allocUnsafeSlow(total).buffer, 0, total);
    bytes.set(head);
    const out = new Uint32Array(count + 1);
    const guest = new Uint8Array(exports.memory.buffer, outPtr, outLength);
    let pos = base;
    let next = 0;
    for (let i = 0; i < count; ) {
      if (next < refusedCount && refused[next] === i) {
        const from = js.offsets[next]!;
        const to = js.offsets[next + 1]!;
        out[i] = pos;
        bytes.set(js.bytes.subarray(from, to), pos);
        pos += to - from;
        next++;
        i++;
        continue;
      }
      // A run of records the guest wrote, up to the next refused one: one copy.
      const runEnd = next < refusedCount ? refused[next]! : count;
      const first = wasmOffsets[i]!;
      for (let k = i; k < runEnd; k++) out[k] = pos + wasmOffsets[k]! - first;
      const length = wasmOffsets[runEnd]! - first;
      bytes.set(guest.subarray(first - base, first - base + length), pos);
      pos += length;
      i = runEnd;
    }
    out[count] = pos;
    return { bytes, offsets: out, resourceEnd, objects, texts };
  }
}

/** The lines at `indexes` as a batch of their own. */
function refusedLines(data: Uint8Array, offsets: Uint32Array, indexes: Uint32Array, meta: BatchMeta): EncodeInput {
  let size = 0;
  for (const i of indexes) size += offsets[i + 1]! - offsets[i]!;
  const lines = new Uint8Array(size);
  const lineOffsets = new Uint32Array(indexes.length + 1);
  let pos = 0;
  for (let j = 0; j < indexes.length; j++) {
    const i = indexes[j]!;
    lineOffsets[j] = pos;
    lines.set(data.subarray(offsets[i]!, offsets[i + 1]!), pos);
    pos += offsets[i + 1]! - offsets[i]!;
  }
  lineOffsets[indexes.length] = pos;
  return { data: lines, offsets: lineOffsets, meta };
}
