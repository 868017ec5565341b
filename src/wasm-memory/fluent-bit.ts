/**
 * `abi = "fluent-bit"`: runs a Fluent Bit `filter_wasm` guest unmodified (JSON event format).
 *
 * The guest exports `memory` and a function (`function = "..."`, Fluent Bit's `Function_Name`)
 * `(tag_ptr, tag_len, time_sec, time_nsec, record_ptr, record_len) -> ptr`, where tag and record
 * are NUL-terminated copies in guest memory and `ptr` points at a NUL-terminated JSON object that
 * replaces the record. As in Fluent Bit, returning NULL or an empty string drops the record; a
 * result that is not a JSON object is a failure (Fluent Bit logs and drops it; logwasm applies its
 * failure policy, by default forwarding the original line). A trap is a failure too, never a
 * silent drop.
 *
 * The record: a line that is a JSON object is passed as it is; any other line is wrapped as
 * `{"log": "<line>"}`, the shape Fluent Bit's tail input gives it. The tag is the transform's
 * `tag` option or the batch's source id; the time is when the batch was read.
 *
 * Input buffers: Fluent Bit's runtime (WAMR) reserves an app heap the guest does not know about.
 * Here, a guest exporting `malloc`/`free` (TinyGo, C with wasi-libc) gets its buffers from them;
 * otherwise (Rust) the host grows memory by its own pages and writes there: the guest's allocator
 * only ever uses pages that its own `memory.grow` returned, so it never hands these out.
 */
import { isUtf8 } from 'node:buffer';
import { PluginAbiError } from '../errors.js';
import { OutputBuilder, truncate, type BatchContext, type BatchOutcome, type BatchRunner, type LineFailure, type LineFailureCode } from './runner.js';
import { DEFAULT_MAX_OUTPUT_BYTES } from './runner.js';
import { WASI_FUNCTIONS, WASI_MODULE, wasiHost, type WasiHost, type WasiPreopen } from './wasi.js';
import { instantiateWith, isMemory, moduleExports, moduleImports, type WasmMemory, type WasmModule } from './wasm-api.js';
import { WASM_PAGE_BYTES } from './limits.js';

const utf8 = new TextDecoder();
const encoder = new TextEncoder();

export interface FluentBitOptions {
  /** The filter function's export name (Fluent Bit's `Function_Name`). */
  functionName: string;
  /** Provide the WASI subset of wasi.ts; without it a module importing WASI is refused. */
  wasi: boolean;
  /** Directories the guest may open files under (`wasi_preopens`); none by default. */
  preopens?: readonly WasiPreopen[];
  dropOnError?: boolean;
  label?: string;
  maxOutputBytes?: number;
  heapMemorySize?: number;
}

/** Refuses a module that is not a filter_wasm guest this host can run; reports every problem. */
export function validateFluentBitModule(module: WasmModule, options: FluentBitOptions, label = 'plugin'): void {
  const problems: string[] = [];
  for (const imported of moduleImports(module)) {
    const supported = imported.module === WASI_MODULE && imported.kind === 'function' && WASI_FUNCTIONS.includes(imported.name);
    if (!supported) {
      problems.push(`imports ${imported.kind} "${imported.module}"."${imported.name}", which this host does not provide (WASI subset: ${WASI_FUNCTIONS.join(', ')})`);
    } else if (!options.wasi) {
      problems.push(`imports "${imported.module}"."${imported.name}" but the transform does not enable WASI (set wasi = true)`);
    }
  }
  const kinds = new Map(moduleExports(module).map((e) => [e.name, e.kind] as const));
  if (kinds.get('memory') !== 'memory') problems.push('does not export a memory named "memory"');
  if (kinds.get(options.functionName) !== 'function') problems.push(`does not export the function "${options.functionName}" (function = "${options.functionName}")`);
  if (problems.length > 0) throw new PluginAbiError(`${label}: ${problems.join('; ')}`);
}

interface Guest {
  memory: WasmMemory;
  filter: (tagPtr: number, tagLen: number, sec: number, nsec: number, recPtr: number, recLen: number) => unknown;
  malloc?: (len: number) => number;
  free?: (ptr: number) => void;
  wasi: WasiHost;
  /** Host-grown scratch pages (when the guest has no malloc). */
  scratchPtr: number;
  scratchLen: number;
}

class Failed extends Error {
  constructor(
    readonly code: LineFailureCode,
    message: string,
    readonly discard = false,
  ) {
    super(message);
  }
}

export class FluentBitRunner implements BatchRunner {
  private guest: Guest | undefined;
  private readonly label: string;
  private readonly dropOnError: boolean;
  private readonly maxOutputBytes: number;
  private readonly heapMemorySize: number;
  reinstantiations = 0;

  constructor(
    private readonly module: WasmModule,
    private readonly options: FluentBitOptions,
  ) {
    this.label = options.label ?? 'plugin';
    this.dropOnError = options.dropOnError ?? false;
    this.maxOutputBytes = options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
    this.heapMemorySize = options.heapMemorySize ?? Infinity;
    validateFluentBitModule(module, options, this.label);
    this.guest = this.bind();
  }

  processBatch(data: Uint8Array, offsets: Uint32Array, _mode?: unknown, context?: BatchContext): BatchOutcome {
    const count = Math.max(0, offsets.length - 1);
    const out = new OutputBuilder(data.byteLength + (data.byteLength >>> 2) + 4096, count);
    const failures: LineFailure[] = [];
    let dropped = 0;
    let firstError: string | undefined;
    let guestOutput = '';
    const tag = encoder.encode(context?.tag ?? 'logwasm');
    const ms = context?.timestampMs ?? Date.now();
    const sec = Math.floor(ms / 1000);
    const nsec = Math.round((ms - sec * 1000) * 1e6);
    for (let index = 0; index < count; index++) {
      const line = data.subarray(offsets[index]!, offsets[index + 1]!);
      try {
        const guest = this.guest ?? this.replace();
        const emitted = this.callLine(guest, tag, sec, nsec, recordOf(line));
        if (emitted === undefined) dropped++;
        else out.push(emitted);
      } catch (error) {
        let code: LineFailureCode = 'trap';
        if (error instanceof Failed) {
          code = error.code;
          if (error.discard) this.discard();
        } else {
          this.discard();
        }
        firstError ??= truncate(error instanceof Failed ? error.message : `${this.label}: ${this.options.functionName} trapped: ${String(error)}`);
        failures.push({ index, code });
        if (!this.dropOnError) out.push(line);
      }
      const written = this.guest?.wasi.takeOutput();
      if (written !== undefined && guestOutput.length < 2048) guestOutput += written;
    }
    const { data: outData, offsets: outOffsets } = out.finish();
    const outcome: BatchOutcome = { data: outData, offsets: outOffsets, failures, dropped };
    if (firstError !== undefined) outcome.firstError = firstError;
    if (guestOutput !== '') outcome.guestOutput = truncate(guestOutput);
    return outcome;
  }

  close(): void {
    this.discard();
  }

  /** Returns the bytes to emit (a copy), or undefined for Fluent Bit's drop values. */
  private callLine(guest: Guest, tag: Uint8Array, sec: number, nsec: number, record: Uint8Array): Uint8Array | undefined {
    const total = tag.byteLength + 1 + record.byteLength + 1;
    let base: number;
    let malloced = 0;
    if (guest.malloc !== undefined) {
      base = guest.malloc(total) >>> 0;
      if (base === 0 || base + total > guest.memory.buffer.byteLength) throw new Failed('alloc_failed', `${this.label}: malloc(${total}) returned ${base}`);
      malloced = base;
    } else {
      if (total > guest.scratchLen) this.growScratch(guest, total);
      base = guest.scratchPtr;
    }
    const bytes = new Uint8Array(guest.memory.buffer);
    bytes.set(tag, base);
    bytes[base + tag.byteLength] = 0;
    const recordPtr = base + tag.byteLength + 1;
    bytes.set(record, recordPtr);
    bytes[recordPtr + record.byteLength] = 0;
    let emitted: Uint8Array | undefined;
    let returned = false;
    try {
      const result = guest.filter(base, tag.byteLength, sec, nsec, recordPtr, record.byteLength);
      returned = true;
      const memory = new Uint8Array(guest.memory.buffer);
      if (memory.byteLength > this.heapMemorySize) {
        throw new Failed('memory_limit', `${this.label}: memory grew to ${memory.byteLength} bytes, past heap_memory_size (${this.heapMemorySize})`, true);
      }
      const ptr = typeof result === 'number' ? result >>> 0 : 0;
      if (ptr !== 0) {
        if (ptr >= memory.byteLength) throw new Failed('bad_output', `${this.label}: ${this.options.functionName} returned ${ptr}, past the end of memory`);
        const limit = Math.min(memory.byteLength, ptr + this.maxOutputBytes + 1);
        const end = memory.indexOf(0, ptr);
        if (end === -1 || end >= limit) {
          throw end === -1 || end >= memory.byteLength
            ? new Failed('bad_output', `${this.label}: the string at ${ptr} has no NUL terminator inside memory`)
            : new Failed('output_too_large', `${this.label}: output exceeds max_output_bytes (${this.maxOutputBytes})`);
        }
        if (end > ptr) emitted = memory.slice(ptr, end);
      }
    } finally {
      // After a trap the instance is thrown away: calling into it again could only trap again.
      if (malloced !== 0 && returned) guest.free?.(malloced);
    }
    if (emitted === undefined) return undefined;
    if (!isUtf8(emitted)) throw new Failed('bad_utf8', `${this.label}: ${this.options.functionName} returned bytes that are not UTF-8`);
    if (!isJsonObject(emitted)) {
      throw new Failed('bad_output', `${this.label}: ${this.options.functionName} returned something other than a JSON object: ${truncate(utf8.decode(emitted.subarray(0, 200)))}`);
    }
    return emitted;
  }

  private growScratch(guest: Guest, total: number): void {
    const pages = Math.ceil(total / WASM_PAGE_BYTES);
    let old: number;
    try {
      old = guest.memory.grow(pages);
    } catch (error) {
      throw new Failed('alloc_failed', `${this.label}: cannot grow memory by ${pages} pages for the record: ${String(error)}`);
    }
    guest.scratchPtr = old * WASM_PAGE_BYTES;
    guest.scratchLen = pages * WASM_PAGE_BYTES;
  }

  private bind(): Guest {
    const wasi = wasiHost(this.options.preopens ?? [], this.label);
    let exports: Record<string, unknown>;
    try {
      exports = instantiateWith(this.module, wasi.imports).exports;
    } catch (error) {
      throw new PluginAbiError(`${this.label}: instantiation failed: ${String(error)}`, { cause: error });
    }
    const memory = exports['memory'];
    const filter = exports[this.options.functionName];
    if (!isMemory(memory) || typeof filter !== 'function') throw new PluginAbiError(`${this.label}: instance lacks memory or "${this.options.functionName}"`);
    if (filter.length !== 6) {
      throw new PluginAbiError(`${this.label}: function "${this.options.functionName}" takes ${filter.length} parameters, expected 6 (tag_ptr, tag_len, time_sec, time_nsec, record_ptr, record_len)`);
    }
    wasi.bind(memory);
    // A wasi-libc reactor must run its constructors before any other export.
    const initialize = exports['_initialize'];
    if (typeof initialize === 'function') (initialize as () => void)();
    const guest: Guest = { memory, filter: filter as Guest['filter'], wasi, scratchPtr: 0, scratchLen: 0 };
    const malloc = exports['malloc'];
    const free = exports['free'];
    if (typeof malloc === 'function' && malloc.length === 1 && typeof free === 'function') {
      guest.malloc = malloc as NonNullable<Guest['malloc']>;
      guest.free = free as NonNullable<Guest['free']>;
    }
    return guest;
  }

  private discard(): void {
    // Files the guest left open would otherwise stay open for as long as the worker lives.
    this.guest?.wasi.close();
    this.guest = undefined;
  }

  private replace(): Guest {
    try {
      this.guest = this.bind();
    } catch (error) {
      throw new Failed('instantiate_failed', `${this.label}: re-instantiation after a trap failed: ${String(error)}`);
    }
    this.reinstantiations++;
    return this.guest;
  }
}

/** The line itself when it is a JSON object, else `{"log": line}` (Fluent Bit tail's shape). */
function recordOf(line: Uint8Array): Uint8Array {
  if (isJsonObject(line)) return line;
  return encoder.encode(JSON.stringify({ log: utf8.decode(line) }));
}

function isJsonObject(bytes: Uint8Array): boolean {
  let i = 0;
  while (i < bytes.byteLength && (bytes[i] === 0x20 || bytes[i] === 0x09 || bytes[i] === 0x0d)) i++;
  if (bytes[i] !== 0x7b) return false;
  try {
    const value: unknown = JSON.parse(utf8.decode(bytes));
    return typeof value === 'object' && value !== null && !Array.isArray(value);
  } catch {
    return false;
  }
}
