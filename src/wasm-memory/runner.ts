/**
 * Runs one plugin instance over whole batches of lines, the way llhttp is driven from undici:
 * the guest owns its allocator; the host keeps one guest input buffer (grown in 4096-byte steps,
 * never shrunk, freed with `dealloc`); a view of `memory.buffer` is rebuilt whenever the buffer
 * object changed (after `memory.grow` an old view has length 0); each call's output is read by
 * pointer and length from the result area and copied out before the next call.
 *
 * Pure and synchronous: no threads, no telemetry. Outcomes are plain data so that a worker can
 * post them back as they are.
 */
import { isUtf8 } from 'node:buffer';
import { STATUS_DROP, STATUS_EMIT, STATUS_EMIT_MANY, STATUS_ERROR, instantiatePlugin, validateModule, type GuestBinding } from './abi.js';
import type { WasmModule } from './wasm-api.js';
import { MAX_GUEST_OUTPUT_CHARS, wasiHost, type WasiHost, type WasiPreopen } from './wasi.js';
import { PluginAbiError } from '../errors.js';

const utf8 = new TextDecoder();
const utf8Encoder = new TextEncoder();

/** The guest input buffer grows in steps of this many bytes (and starts at one step). */
export const INPUT_BUFFER_STEP = 4096;

/** Longest plugin error message or trap text kept in a batch outcome, in characters. */
export const MAX_ERROR_MESSAGE_CHARS = 512;

/**
 * `max_output_bytes`: the most bytes one call may emit for one input line (all its records
 * together). More is a failure (`output_too_large`), not a crash: a plugin cannot make the host
 * buffer without bound.
 */
export const DEFAULT_MAX_OUTPUT_BYTES = 4 * 1024 * 1024;

/** Output buffer estimate before any batch ran: output bytes per input byte. */
const OUTPUT_RATIO_INITIAL = 1.125;
/** Headroom over the last batch's ratio, so that a batch a little larger than the last one fits. */
const OUTPUT_RATIO_MARGIN = 1.0625;
/** Bounds of the estimate: a batch that emitted nothing, or 100 times its input, is no guide. */
const OUTPUT_RATIO_MIN = 0.25;
const OUTPUT_RATIO_MAX = 4;

/** Record separator of status 3 (`STATUS_EMIT_MANY`) output. */
const NEWLINE = 0x0a;
const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

/**
 * Why a line failed. Stable strings: they cross threads and name telemetry.
 * - `trap`: the call trapped (panic, unreachable, out-of-bounds access, stack overflow); the
 *   instance is replaced before the next line.
 * - `plugin_error`: `process_log` returned status 2.
 * - `bad_status`: `process_log` returned a status this host does not know.
 * - `bad_output`: the result area points outside memory.
 * - `bad_utf8`: the output is not valid UTF-8 (and is not the input passed through unchanged).
 * - `output_too_large`: the output is longer than `max_output_bytes`.
 * - `memory_limit`: the guest's memory grew past `heap_memory_size`; the instance is replaced.
 * - `alloc_failed`: `alloc` returned 0 or a buffer outside memory for the line's length.
 * - `instantiate_failed`: replacing a trapped instance failed; the line never reached a plugin.
 * - `timeout`, `worker_failed`: set by the transform, not here (a hung or dead worker).
 */
export type LineFailureCode =
  | 'trap'
  | 'plugin_error'
  | 'bad_status'
  | 'bad_output'
  | 'bad_utf8'
  | 'output_too_large'
  | 'memory_limit'
  | 'alloc_failed'
  | 'instantiate_failed'
  | 'timeout'
  | 'worker_failed';

export interface LineFailure {
  /** Index of the line in the input batch. */
  index: number;
  code: LineFailureCode;
}

/**
 * What `processBatch` returns. Output records keep input order. A line the plugin dropped (status
 * 1, or status 3 with no records) is counted in `dropped`; a failed line is listed in `failures`
 * and is in the output unchanged, or absent when `dropOnError` is set. A line may emit several
 * records (status 3), so the output can have more records than the input had lines.
 */
export interface BatchOutcome {
  data: Uint8Array;
  offsets: Uint32Array;
  failures: LineFailure[];
  dropped: number;
  /** Text of the first failure (plugin message or trap), for a log line; truncated. */
  firstError?: string;
  /** True when the batch went through `process_batch` in one call. */
  batched?: boolean;
  /** What the guest wrote to stdout/stderr through WASI during the batch; truncated. */
  guestOutput?: string;
}

/** What a worker needs of a runner, whichever ABI it speaks. */
export interface BatchRunner {
  processBatch(data: Uint8Array, offsets: Uint32Array, mode?: BatchMode, context?: BatchContext): BatchOutcome;
  close(): void;
}

/** Per-batch facts some ABIs pass to the guest (Fluent Bit's tag and timestamp). */
export interface BatchContext {
  tag: string;
  timestampMs: number;
}

export interface RunnerOptions {
  /** Drop a failed line instead of forwarding it unchanged. Default false: nothing is lost. */
  dropOnError?: boolean;
  /** Names the plugin in error messages. */
  label?: string;
  /** JSON text handed to the optional `init` export of every instance. Default `{}`. */
  initOptions?: string;
  /** See DEFAULT_MAX_OUTPUT_BYTES. */
  maxOutputBytes?: number;
  /**
   * Bytes of linear memory an instance may have after a call (`heap_memory_size`). The transform
   * also caps the module's declared maximum (limits.ts) so `memory.grow` fails first; this check
   * catches what the cap cannot (a module loaded without it). Undefined: no check.
   */
  heapMemorySize?: number;
  /** Use `process_batch_packed` or `process_batch` when the plugin exports one. Default true. */
  useBatchEntry?: boolean;
  /**
   * Prefer `process_batch_packed` over `process_batch` when the plugin exports both. Default true;
   * false runs the `process_batch` result layout, to compare the two on one module.
   */
  usePackedBatch?: boolean;
  /**
   * `wasi`: the module may import the WASI subset of wasi.ts, and each instance gets its own
   * WASI host (stdout/stderr captured into `guestOutput`, files only under `preopens`). Default
   * false: a module importing anything is refused.
   */
  wasi?: boolean;
  /** `wasi_preopens`/`wasi_preopens_writable`: directories a WASI guest may open files under. */
  preopens?: readonly WasiPreopen[];
}

/** How `processBatch` calls the guest: `auto` uses `process_batch_packed` or `process_batch` when exported. */
export type BatchMode = 'auto' | 'per_line';

class LineFailed extends Error {
  constructor(
    readonly failure: LineFailureCode,
    message: string,
    /** The instance must not be called again (its memory is past the limit). */
    readonly discard = false,
  ) {
    super(message);
  }
}

/**
 * Output records in the LineBatch layout, grown by doubling. Shared with fluent-bit.ts. A runner
 * keeps one and reuses its buffers from batch to batch (`reset`); `finish` hands out exact copies.
 */
export class OutputBuilder {
  data: Uint8Array;
  offsets: Uint32Array;
  used = 0;
  records = 0;

  constructor(bytes: number, records: number) {
    this.data = new Uint8Array(bytes);
    this.offsets = new Uint32Array(records + 1);
  }

  /** Empties the builder for a new batch, with room for at least `bytes` bytes and `records` records. */
  reset(bytes: number, records: number): void {
    this.used = 0;
    this.records = 0;
    if (this.data.byteLength < bytes) this.data = new Uint8Array(bytes);
    if (this.offsets.length < records + 1) this.offsets = new Uint32Array(records + 1);
  }

  push(record: Uint8Array): void {
    if (this.used + record.byteLength > this.data.byteLength) {
      const grown = new Uint8Array(Math.max(this.data.byteLength * 2, this.used + record.byteLength));
      grown.set(this.data.subarray(0, this.used));
      this.data = grown;
    }
    this.data.set(record, this.used);
    this.used += record.byteLength;
    if (this.records + 2 > this.offsets.length) {
      const grown = new Uint32Array(this.offsets.length * 2);
      grown.set(this.offsets);
      this.offsets = grown;
    }
    this.offsets[++this.records] = this.used;
  }

  /** Makes room for `bytes` more bytes and `records` more records without growing again. */
  reserve(bytes: number, records: number): void {
    if (this.used + bytes > this.data.byteLength) {
      // Exactly what is asked: the caller knows the size, and slack would travel downstream.
      const grown = new Uint8Array(this.used + bytes);
      grown.set(this.data.subarray(0, this.used));
      this.data = grown;
    }
    if (this.records + records + 1 > this.offsets.length) {
      const grown = new Uint32Array(Math.max(this.offsets.length * 2, this.records + records + 1));
      grown.set(this.offsets);
      this.offsets = grown;
    }
  }

  /** Forgets everything pushed after `records` records. */
  rewind(records: number): void {
    this.records = records;
    this.used = this.offsets[records]!;
  }

  /**
   * Copies of the records in buffers of exactly their size. They are transferred across threads
   * and handed on as a batch: slack would travel with them, and a view into a larger buffer would
   * have to be copied by its next owner (the OTLP sink's encoder pool) on the main thread. The
   * copy here, in the worker, is one memcpy of the output, and it lets the builder keep its own
   * buffers for the next batch (one allocation per batch, not two).
   */
  finish(): { data: Uint8Array; offsets: Uint32Array } {
    // Not zeroed first (allocUnsafeSlow: a buffer of its own, never a pooled one): every byte is written.
    const data = new Uint8Array(Buffer.allocUnsafeSlow(this.used).buffer, 0, this.used);
    data.set(this.data.subarray(0, this.used));
    return { data, offsets: this.offsets.slice(0, this.records + 1) };
  }
}

/** Which batch export a runner calls: see `PluginRunner.batchLayout`. */
export type BatchLayout = 'packed' | 'records';

/** Output buffers of exactly their size, as `OutputBuilder.finish` hands them out. */
interface FinishedOutput {
  data: Uint8Array;
  offsets: Uint32Array;
}

/** One output record parsed from a `process_batch` result, before it is applied. */
interface BatchRecord {
  status: number;
  ptr: number;
  len: number;
}

export class PluginRunner implements BatchRunner {
  private guest: GuestBinding | undefined;
  /** The WASI host of the current instance (its open files), when `wasi` is set. */
  private wasi: WasiHost | undefined;
  private readonly wasiEnabled: boolean;
  private readonly preopens: readonly WasiPreopen[];
  /** Guest stdout/stderr of instances discarded since the last batch outcome. */
  private pendingOutput = '';
  private readonly dropOnError: boolean;
  private readonly label: string;
  private readonly initOptions: Uint8Array;
  private readonly maxOutputBytes: number;
  private readonly heapMemorySize: number;
  private readonly useBatchEntry: boolean;
  private readonly usePackedBatch: boolean;
  /** Holds a `process_batch_packed` header that is not 4-aligned in guest memory; grown, never shrunk. */
  private packedHeader = new Uint32Array(0);
  /** The `memory.buffer` the views below were made from. */
  private viewBuffer: ArrayBuffer | undefined;
  private bytes = new Uint8Array(0);
  private words = new DataView(new ArrayBuffer(0));
  private inputPtr = 0;
  private inputCapacity = 0;
  /** Output bytes per input byte to size the next batch's output buffer for; see processBatch. */
  private outputRatio = OUTPUT_RATIO_INITIAL;
  /** Reused by every batch; see OutputBuilder.finish. */
  private readonly output = new OutputBuilder(0, 0);
  /** How many times a trapped instance was replaced: for tests and debugging. */
  reinstantiations = 0;
  /** How many `process_batch` calls failed and were redone line by line: for tests. */
  batchFallbacks = 0;
  /** How many `process_batch_packed` results were taken in one piece (no per-record handling): for tests. */
  bulkTakes = 0;

  /**
   * Validates and instantiates `module`, calling its `init` when exported; throws PluginAbiError
   * when it does not fit ABI v1 or `init` refuses its options.
   */
  constructor(
    private readonly module: WasmModule,
    options: RunnerOptions = {},
  ) {
    this.dropOnError = options.dropOnError ?? false;
    this.label = options.label ?? 'plugin';
    this.initOptions = utf8Encoder.encode(options.initOptions ?? '{}');
    this.maxOutputBytes = options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
    this.heapMemorySize = options.heapMemorySize ?? Infinity;
    this.useBatchEntry = options.useBatchEntry ?? true;
    this.usePackedBatch = options.usePackedBatch ?? true;
    this.wasiEnabled = options.wasi ?? false;
    this.preopens = options.preopens ?? [];
    validateModule(module, this.label, { wasi: this.wasiEnabled });
    try {
      this.guest = this.bind();
    } catch (error) {
      this.closeWasi();
      if (error instanceof LineFailed) throw new PluginAbiError(error.message);
      throw error;
    }
  }

  /** Size of the guest input buffer now, in bytes. */
  get inputBufferCapacity(): number {
    return this.inputCapacity;
  }

  /** Whether the plugin exports `process_batch` or `process_batch_packed` (and this runner may use it). */
  get batchEntry(): boolean {
    return this.batchLayout !== undefined;
  }

  /**
   * The batch export `auto` batches go through: `packed` (`process_batch_packed`), `records`
   * (`process_batch`), or undefined (one `process_log` call per line).
   */
  get batchLayout(): BatchLayout | undefined {
    return this.useBatchEntry && this.guest !== undefined ? this.layoutOf(this.guest) : undefined;
  }

  private layoutOf(guest: GuestBinding): BatchLayout | undefined {
    if (guest.processBatchPacked !== undefined && (this.usePackedBatch || guest.processBatch === undefined)) return 'packed';
    return guest.processBatch !== undefined ? 'records' : undefined;
  }

  /**
   * Runs every line of `data`/`offsets` (the LineBatch layout: line i is
   * `data[offsets[i]..offsets[i+1]]`) through the plugin: in one `process_batch_packed` or
   * `process_batch` call when the plugin has one and `mode` is `auto`, else one `process_log`
   * call per line. A batch call that traps, fails or returns a malformed result is redone line
   * by line on a fresh instance (after a trap), so only the poison line fails. Never throws for
   * a bad line or a trapping plugin: see BatchOutcome.
   */
  processBatch(data: Uint8Array, offsets: Uint32Array, mode: BatchMode = 'auto'): BatchOutcome {
    const count = Math.max(0, offsets.length - 1);
    // Sized from what the last batches emitted per input byte (json_parser: about 1.22), so that
    // the reused buffer rarely doubles mid-batch (a doubling is a copy of what it holds).
    const out = this.output;
    out.reset(Math.ceil(data.byteLength * this.outputRatio) + INPUT_BUFFER_STEP, count);
    const state = { dropped: 0, failures: [] as LineFailure[], firstError: undefined as string | undefined };
    let batched = false;
    let finished: FinishedOutput | undefined;
    const guest = mode === 'auto' && count > 0 && this.useBatchEntry ? (this.guest ?? this.tryReplace()) : undefined;
    const layout = guest === undefined ? undefined : this.layoutOf(guest);
    if (guest !== undefined && layout !== undefined) {
      const result = this.runBatch(guest, layout, data, offsets, count, out, state);
      batched = result !== false;
      if (result !== false && result !== true) finished = result;
      if (!batched) this.batchFallbacks++;
    }
    if (!batched) {
      for (let index = 0; index < count; index++) this.runOne(data, offsets, index, out, state);
    }
    const { data: outData, offsets: outOffsets } = finished ?? out.finish();
    if (data.byteLength > 0) {
      this.outputRatio = Math.min(OUTPUT_RATIO_MAX, Math.max(OUTPUT_RATIO_MIN, (outData.byteLength / data.byteLength) * OUTPUT_RATIO_MARGIN));
    }
    const outcome: BatchOutcome = { data: outData, offsets: outOffsets, failures: state.failures, dropped: state.dropped };
    if (state.firstError !== undefined) outcome.firstError = state.firstError;
    if (batched) outcome.batched = true;
    const guestOutput = this.takeGuestOutput();
    if (guestOutput !== undefined) outcome.guestOutput = guestOutput;
    return outcome;
  }

  /** Frees the guest input buffer and closes the guest's files. The runner must not be used afterwards. */
  close(): void {
    const guest = this.guest;
    this.guest = undefined;
    this.closeWasi();
    if (guest === undefined || this.inputPtr === 0) return;
    try {
      guest.dealloc(this.inputPtr, this.inputCapacity);
    } catch {
      // The instance is being thrown away; a trap while freeing changes nothing.
    }
  }

  /** What the guest wrote to stdout/stderr since the last call (this and discarded instances). */
  takeGuestOutput(): string | undefined {
    const text = this.pendingOutput + (this.wasi?.takeOutput() ?? '');
    this.pendingOutput = '';
    if (text === '') return undefined;
    return text.length > MAX_GUEST_OUTPUT_CHARS ? `${text.slice(0, MAX_GUEST_OUTPUT_CHARS)}...` : text;
  }

  /** Keeps what the current WASI instance wrote, then closes every file it left open. */
  private closeWasi(): void {
    const wasi = this.wasi;
    this.wasi = undefined;
    if (wasi === undefined) return;
    if (this.pendingOutput.length < MAX_GUEST_OUTPUT_CHARS) this.pendingOutput += wasi.takeOutput() ?? '';
    wasi.close();
  }

  /** One line through `process_log`, its failure recorded by policy. */
  private runOne(data: Uint8Array, offsets: Uint32Array, index: number, out: OutputBuilder, state: FailureState): void {
    const start = offsets[index]!;
    const end = offsets[index + 1]!;
    const input = data.subarray(start, end);
    const mark = out.records;
    try {
      const guest = this.guest ?? this.replaceInstance();
      const status = this.callLine(guest, data, start, end);
      this.applyRecord(guest, status, input, out, state);
    } catch (error) {
      out.rewind(mark);
      this.fail(error, index, input, out, state);
    }
  }

  private fail(error: unknown, index: number, input: Uint8Array, out: OutputBuilder, state: FailureState): void {
    let failure: LineFailureCode;
    if (error instanceof LineFailed) {
      failure = error.failure;
      state.firstError ??= truncate(error.message);
      if (error.discard) this.discardInstance();
    } else {
      // A trap (WebAssembly.RuntimeError, RangeError for stack overflow, ...): the instance's
      // memory and globals may be half-updated, so it is never called again.
      failure = 'trap';
      state.firstError ??= truncate(`${this.label}: plugin trapped: ${String(error)}`);
      this.discardInstance();
    }
    state.failures.push({ index, code: failure });
    if (!this.dropOnError) out.push(input);
  }

  /** Copies the line in, calls `process_log`, checks the memory limit; returns the status. */
  private callLine(guest: GuestBinding, data: Uint8Array, start: number, end: number): unknown {
    const len = end - start;
    if (len > this.inputCapacity) this.growInput(guest, len);
    this.refreshViews(guest);
    this.bytes.set(data.subarray(start, end), this.inputPtr);
    const status: unknown = guest.processLog(this.inputPtr, len);
    this.refreshViews(guest);
    this.checkMemory();
    return status;
  }

  private checkMemory(): void {
    const size = this.bytes.byteLength;
    if (size > this.heapMemorySize) {
      throw new LineFailed('memory_limit', `${this.label}: plugin memory grew to ${size} bytes, past heap_memory_size (${this.heapMemorySize})`, true);
    }
  }

  /**
   * Applies one call's status and output (read from the result area for `process_log`, or given
   * by a `process_batch` record). Throws LineFailed before pushing anything when the output is
   * not acceptable, so a failed line never leaves half its records behind.
   */
  private applyRecord(guest: GuestBinding, status: unknown, input: Uint8Array, out: OutputBuilder, state: FailureState, given?: BatchRecord): void {
    if (status === STATUS_DROP) {
      state.dropped++;
      return;
    }
    if (status !== STATUS_EMIT && status !== STATUS_ERROR && status !== STATUS_EMIT_MANY) {
      throw new LineFailed('bad_status', `${this.label}: plugin returned unknown status ${String(status)}`);
    }
    const outPtr = given ? given.ptr : this.words.getUint32(guest.resultPtr, true);
    const outLen = given ? given.len : this.words.getUint32(guest.resultPtr + 4, true);
    if (outPtr + outLen > this.bytes.byteLength) {
      throw new LineFailed(
        'bad_output',
        `${this.label}: output of ${outLen} bytes at ${outPtr} is past the end of memory (${this.bytes.byteLength} bytes)`,
      );
    }
    const output = this.bytes.subarray(outPtr, outPtr + outLen);
    if (status === STATUS_ERROR) {
      throw new LineFailed('plugin_error', `${this.label}: ${utf8.decode(output.subarray(0, MAX_ERROR_MESSAGE_CHARS * 4))}`);
    }
    if (outLen > this.maxOutputBytes) {
      throw new LineFailed('output_too_large', `${this.label}: output of ${outLen} bytes exceeds max_output_bytes (${this.maxOutputBytes})`);
    }
    // A line passed through unchanged may be anything the file held; new bytes must be UTF-8,
    // since every sink downstream turns records into strings.
    if (!isUtf8(output) && !sameBytes(output, input)) {
      throw new LineFailed('bad_utf8', `${this.label}: output of ${outLen} bytes is not valid UTF-8`);
    }
    if (status === STATUS_EMIT) {
      out.push(output);
      return;
    }
    let from = 0;
    let records = 0;
    // One trailing newline ends the last record instead of starting an empty one.
    const end = outLen > 0 && output[outLen - 1] === NEWLINE ? outLen - 1 : outLen;
    if (end === 0 && outLen === 0) {
      state.dropped++;
      return;
    }
    for (let at = 0; at <= end; at++) {
      if (at === end || output[at] === NEWLINE) {
        out.push(output.subarray(from, at));
        records++;
        from = at + 1;
      }
    }
    if (records === 0) state.dropped++;
  }

  /**
   * The whole batch in one `process_batch(ptr, len, count)` or `process_batch_packed(ptr, len,
   * count)` call. Input: `count + 1` u32 offsets (little-endian, relative to the data) then the
   * data. Returns false, having pushed nothing, when the call trapped or failed as a whole, or its
   * result is malformed; the caller then runs the batch line by line. Returns the finished output
   * when a packed result was taken as it is (see `takePacked`), else true.
   */
  private runBatch(
    guest: GuestBinding,
    layout: BatchLayout,
    data: Uint8Array,
    offsets: Uint32Array,
    count: number,
    out: OutputBuilder,
    state: FailureState,
  ): boolean | FinishedOutput {
    const base = offsets[0]!;
    const dataLen = offsets[count]! - base;
    const headerLen = 4 * (count + 1);
    const total = headerLen + dataLen;
    let status: unknown;
    try {
      if (total > this.inputCapacity) this.growInput(guest, total);
      this.refreshViews(guest);
      this.writeOffsets(offsets, count, base);
      this.bytes.set(data.subarray(base, base + dataLen), this.inputPtr + headerLen);
      status = layout === 'packed' ? guest.processBatchPacked!(this.inputPtr, total, count) : guest.processBatch!(this.inputPtr, total, count);
      this.refreshViews(guest);
      this.checkMemory();
    } catch (error) {
      if (!(error instanceof LineFailed) || error.discard) this.discardInstance();
      return false;
    }
    if (status !== STATUS_EMIT) return false;
    return layout === 'packed' ? this.takePacked(guest, data, offsets, count, out, state) : this.takeRecords(guest, data, offsets, count, out, state);
  }

  /**
   * A `process_batch` result, at the result area's pointer: `count` records of
   * `[u32 status][u32 len][len bytes]`. Every header is parsed before any record is applied, so
   * a malformed result pushes nothing (false).
   */
  private takeRecords(guest: GuestBinding, data: Uint8Array, offsets: Uint32Array, count: number, out: OutputBuilder, state: FailureState): boolean {
    const memoryEnd = this.bytes.byteLength;
    let at = this.words.getUint32(guest.resultPtr, true);
    const end = at + this.words.getUint32(guest.resultPtr + 4, true);
    if (end > memoryEnd) return false;
    const first = at;
    // A first pass allocates nothing: in the common case every record is a plain emit.
    let plain = true;
    for (let i = 0; i < count; i++) {
      if (at + 8 > end) return false;
      const recordStatus = this.words.getUint32(at, true);
      const len = this.words.getUint32(at + 4, true);
      if (at + 8 + len > end) return false;
      if (recordStatus !== STATUS_EMIT || len > this.maxOutputBytes) plain = false;
      at += 8 + len;
    }
    if (plain && this.emitAll(first, at, count, out)) return true;
    const records: BatchRecord[] = new Array<BatchRecord>(count);
    at = first;
    for (let i = 0; i < count; i++) {
      const len = this.words.getUint32(at + 4, true);
      records[i] = { status: this.words.getUint32(at, true), ptr: at + 8, len };
      at += 8 + len;
    }
    this.applyAll(guest, records, data, offsets, out, state);
    return true;
  }

  /**
   * A `process_batch_packed` result, at the result area's pointer (the area's length at the
   * pointer + 4): `[u32 statuses[count]] [u32 offsets[count + 1]] [data]`, record i being
   * `data[offsets[i]..offsets[i+1]]`. The area must lie inside memory, hold the header, and its
   * offsets must start at 0, never decrease and end exactly at the end of the area; otherwise
   * the result is malformed (false, nothing pushed).
   *
   * When every status is 0, no record is longer than `max_output_bytes` and the data is valid
   * UTF-8 with no record starting on a continuation byte (valid as a whole is then valid record
   * by record: a character cut between two records puts a continuation byte at the start of the
   * next non-empty one, or leaves the whole data invalid), the data and the offsets are each
   * copied once, straight into the buffers handed on (a FinishedOutput). Otherwise each record
   * goes through `applyRecord`, with the same outcome as `process_log` would give.
   */
  private takePacked(guest: GuestBinding, data: Uint8Array, offsets: Uint32Array, count: number, out: OutputBuilder, state: FailureState): boolean | FinishedOutput {
    const bytes = this.bytes;
    const area = this.words.getUint32(guest.resultPtr, true);
    const areaLen = this.words.getUint32(guest.resultPtr + 4, true);
    const headerWords = 2 * count + 1;
    if (area + areaLen > bytes.byteLength || areaLen < 4 * headerWords) return false;
    const header = this.readPackedHeader(area, headerWords);
    const dataStart = area + 4 * headerWords;
    const dataLen = areaLen - 4 * headerWords;
    if (header[count] !== 0 || header[2 * count] !== dataLen) return false;
    const maxOutputBytes = this.maxOutputBytes;
    let plain = true;
    let from = 0;
    for (let i = 0; i < count; i++) {
      const to = header[count + i + 1]!;
      if (to < from) return false;
      if (header[i] !== STATUS_EMIT || to - from > maxOutputBytes || (to > from && (bytes[dataStart + from]! & 0xc0) === 0x80)) plain = false;
      from = to;
    }
    const packed = bytes.subarray(dataStart, dataStart + dataLen);
    if (plain && out.records === 0 && isUtf8(packed)) {
      // Not zeroed first (allocUnsafeSlow, a buffer of its own): every byte is written.
      const finished = new Uint8Array(Buffer.allocUnsafeSlow(dataLen).buffer, 0, dataLen);
      finished.set(packed);
      this.bulkTakes++;
      return { data: finished, offsets: header.slice(count, headerWords) };
    }
    const records: BatchRecord[] = new Array<BatchRecord>(count);
    for (let i = 0; i < count; i++) {
      const start = header[count + i]!;
      records[i] = { status: header[i]!, ptr: dataStart + start, len: header[count + i + 1]! - start };
    }
    this.applyAll(guest, records, data, offsets, out, state);
    return true;
  }

  /**
   * The `words` u32 of a packed header at `at`: a view of guest memory when aligned on a
   * little-endian host (read before the next guest call), else a copy in `packedHeader`.
   */
  private readPackedHeader(at: number, words: number): Uint32Array {
    if (LITTLE_ENDIAN && (at & 3) === 0) return new Uint32Array(this.bytes.buffer, at, words);
    if (this.packedHeader.length < words) this.packedHeader = new Uint32Array(words);
    const header = this.packedHeader.subarray(0, words);
    if (LITTLE_ENDIAN) new Uint8Array(header.buffer, 0, 4 * words).set(this.bytes.subarray(at, at + 4 * words));
    else for (let i = 0; i < words; i++) header[i] = this.words.getUint32(at + 4 * i, true);
    return header;
  }

  /** Applies one record per input line, each line's failure recorded by policy. */
  private applyAll(guest: GuestBinding, records: BatchRecord[], data: Uint8Array, offsets: Uint32Array, out: OutputBuilder, state: FailureState): void {
    for (let i = 0; i < records.length; i++) {
      const record = records[i]!;
      const input = data.subarray(offsets[i]!, offsets[i + 1]!);
      const mark = out.records;
      try {
        this.applyRecord(guest, record.status, input, out, state, record);
      } catch (error) {
        out.rewind(mark);
        this.fail(error, i, input, out, state);
      }
    }
  }

  /**
   * The common case of a `process_batch` result, every record a status 0 emit of at most
   * `max_output_bytes`: the records area is copied out in one piece and the 8-byte headers
   * squeezed out in place, and UTF-8 is checked once over the whole output, instead of one
   * view, one check and one copy per line. Valid UTF-8 as a whole is valid record by record
   * when no record starts on a continuation byte (a character cut between two records). When
   * that does not hold, it pushes nothing and returns false, and each record goes through
   * `applyRecord` (which lets a line through unchanged even when it is not UTF-8).
   */
  private emitAll(start: number, end: number, count: number, out: OutputBuilder): boolean {
    const mark = out.records;
    const base = out.used;
    out.reserve(end - start, count);
    const data = out.data;
    data.set(this.bytes.subarray(start, end), base);
    let to = base;
    let from = base;
    let boundaries = true;
    for (let i = 0; i < count; i++) {
      const len = (data[from + 4]! | (data[from + 5]! << 8) | (data[from + 6]! << 16) | (data[from + 7]! << 24)) >>> 0;
      from += 8;
      if (len > 0) {
        data.copyWithin(to, from, from + len);
        if ((data[to]! & 0xc0) === 0x80) boundaries = false;
      }
      to += len;
      from += len;
      out.offsets[++out.records] = to;
    }
    out.used = to;
    if (boundaries && isUtf8(data.subarray(base, to))) return true;
    out.rewind(mark);
    return false;
  }

  /** The `count + 1` offsets of a batch, relative to its first, as u32 LE at the input buffer's start. */
  private writeOffsets(offsets: Uint32Array, count: number, base: number): void {
    if (LITTLE_ENDIAN && (this.inputPtr & 3) === 0) {
      // One bulk copy instead of a DataView call per line (the guest's alloc aligns to at least 4).
      const words = new Uint32Array(this.bytes.buffer, this.inputPtr, count + 1);
      words.set(offsets.subarray(0, count + 1));
      if (base !== 0) for (let i = 0; i <= count; i++) words[i] = words[i]! - base;
      return;
    }
    for (let i = 0; i <= count; i++) this.words.setUint32(this.inputPtr + 4 * i, offsets[i]! - base, true);
  }

  /** Replaces the input buffer with one of the next 4096-byte multiple >= `len`. */
  private growInput(guest: GuestBinding, len: number): void {
    const capacity = Math.ceil(len / INPUT_BUFFER_STEP) * INPUT_BUFFER_STEP;
    // Allocate the new buffer before freeing the old one: if alloc fails, the old one stays valid.
    const ptr = guest.alloc(capacity) >>> 0;
    const size = guest.memory.buffer.byteLength;
    if (ptr === 0 || ptr + capacity > size) {
      throw new LineFailed('alloc_failed', `${this.label}: alloc(${capacity}) returned ${ptr} (memory is ${size} bytes)`);
    }
    if (this.inputPtr !== 0) guest.dealloc(this.inputPtr, this.inputCapacity);
    this.inputPtr = ptr;
    this.inputCapacity = capacity;
  }

  private refreshViews(guest: GuestBinding): void {
    const buffer = guest.memory.buffer;
    if (buffer === this.viewBuffer) return;
    this.viewBuffer = buffer;
    this.bytes = new Uint8Array(buffer);
    this.words = new DataView(buffer);
  }

  private bind(): GuestBinding {
    // A fresh WASI host per instance: a replaced instance's files are closed with it, and the
    // new one starts from the preopens alone. checkPreopens (in wasiHost) refuses a bad preopen.
    this.closeWasi();
    const wasi = this.wasiEnabled ? wasiHost(this.preopens, this.label) : undefined;
    let guest: GuestBinding;
    try {
      guest = instantiatePlugin(this.module, this.label, wasi);
    } catch (error) {
      wasi?.close();
      throw error;
    }
    this.wasi = wasi;
    this.viewBuffer = undefined;
    this.inputPtr = 0;
    this.inputCapacity = 0;
    this.growInput(guest, Math.max(INPUT_BUFFER_STEP, this.initOptions.byteLength));
    if (guest.init !== undefined) this.callInit(guest);
    return guest;
  }

  /** Hands the options JSON to `init`; a refusal or a trap refuses the instance. */
  private callInit(guest: GuestBinding): void {
    const init = guest.init!;
    this.refreshViews(guest);
    this.bytes.set(this.initOptions, this.inputPtr);
    let status: unknown;
    try {
      status = init(this.inputPtr, this.initOptions.byteLength);
    } catch (error) {
      throw new PluginAbiError(`${this.label}: init trapped: ${String(error)}`, { cause: error });
    }
    this.refreshViews(guest);
    if (status === STATUS_EMIT) return;
    let detail = `returned status ${String(status)}`;
    if (status === STATUS_ERROR) {
      const ptr = this.words.getUint32(guest.resultPtr, true);
      const len = Math.min(this.words.getUint32(guest.resultPtr + 4, true), MAX_ERROR_MESSAGE_CHARS * 4);
      if (ptr + len <= this.bytes.byteLength) detail = utf8.decode(this.bytes.subarray(ptr, ptr + len));
    }
    throw new PluginAbiError(`${this.label}: init refused the transform's options: ${detail}`);
  }

  private discardInstance(): void {
    // Files the guest left open would otherwise stay open for as long as the worker lives.
    this.closeWasi();
    this.guest = undefined;
    this.viewBuffer = undefined;
    this.bytes = new Uint8Array(0);
    this.words = new DataView(new ArrayBuffer(0));
    this.inputPtr = 0;
    this.inputCapacity = 0;
  }

  private replaceInstance(): GuestBinding {
    try {
      this.guest = this.bind();
    } catch (error) {
      throw new LineFailed('instantiate_failed', `${this.label}: re-instantiation after a trap failed: ${String(error)}`);
    }
    this.reinstantiations++;
    return this.guest;
  }

  /** `replaceInstance` for the batch path, where a failure is the first line's to report. */
  private tryReplace(): GuestBinding | undefined {
    try {
      return this.replaceInstance();
    } catch {
      return undefined;
    }
  }
}

interface FailureState {
  dropped: number;
  failures: LineFailure[];
  firstError: string | undefined;
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}

export function truncate(text: string): string {
  return text.length <= MAX_ERROR_MESSAGE_CHARS ? text : `${text.slice(0, MAX_ERROR_MESSAGE_CHARS)}...`;
}
