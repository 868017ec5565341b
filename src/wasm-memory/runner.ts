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
import { STATUS_DROP, STATUS_EMIT, STATUS_ERROR, instantiatePlugin, validateModule, type GuestBinding } from './abi.js';
import type { WasmModule } from './wasm-api.js';
import { PluginAbiError } from '../errors.js';

const utf8 = new TextDecoder();

/** The guest input buffer grows in steps of this many bytes (and starts at one step). */
export const INPUT_BUFFER_STEP = 4096;

/** Longest plugin error message or trap text kept in a batch outcome, in characters. */
export const MAX_ERROR_MESSAGE_CHARS = 512;

/**
 * Why a line failed. Stable strings: they cross threads and name telemetry.
 * - `trap`: the call trapped (panic, unreachable, out-of-bounds access, stack overflow); the
 *   instance is replaced before the next line.
 * - `plugin_error`: `process_log` returned status 2.
 * - `bad_status`: `process_log` returned a status this host does not know.
 * - `bad_output`: the result area points outside memory.
 * - `alloc_failed`: `alloc` returned 0 or a buffer outside memory for the line's length.
 * - `instantiate_failed`: replacing a trapped instance failed; the line never reached a plugin.
 */
export type LineFailureCode = 'trap' | 'plugin_error' | 'bad_status' | 'bad_output' | 'alloc_failed' | 'instantiate_failed';

export interface LineFailure {
  /** Index of the line in the input batch. */
  index: number;
  code: LineFailureCode;
}

/**
 * What `processBatch` returns. Output lines keep input order. A line the plugin dropped (status 1)
 * is counted in `dropped`; a failed line is listed in `failures` and is in the output unchanged,
 * or absent when `dropOnError` is set. So the output has
 * `input count - dropped - (dropOnError ? failures.length : 0)` lines.
 */
export interface BatchOutcome {
  data: Uint8Array;
  offsets: Uint32Array;
  failures: LineFailure[];
  dropped: number;
  /** Text of the first failure (plugin message or trap), for a log line; truncated. */
  firstError?: string;
}

export interface RunnerOptions {
  /** Drop a failed line instead of forwarding it unchanged. Default false: nothing is lost. */
  dropOnError?: boolean;
  /** Names the plugin in error messages. */
  label?: string;
}

class LineFailed extends Error {
  constructor(
    readonly failure: LineFailureCode,
    message: string,
  ) {
    super(message);
  }
}

export class PluginRunner {
  private guest: GuestBinding | undefined;
  private readonly dropOnError: boolean;
  private readonly label: string;
  /** The `memory.buffer` the views below were made from. */
  private viewBuffer: ArrayBuffer | undefined;
  private bytes = new Uint8Array(0);
  private words = new DataView(new ArrayBuffer(0));
  private inputPtr = 0;
  private inputCapacity = 0;
  /** How many times a trapped instance was replaced: for tests and debugging. */
  reinstantiations = 0;

  /** Validates and instantiates `module`; throws PluginAbiError when it does not fit ABI v1. */
  constructor(
    private readonly module: WasmModule,
    options: RunnerOptions = {},
  ) {
    this.dropOnError = options.dropOnError ?? false;
    this.label = options.label ?? 'plugin';
    validateModule(module, this.label);
    try {
      this.guest = this.bind();
    } catch (error) {
      if (error instanceof LineFailed) throw new PluginAbiError(error.message);
      throw error;
    }
  }

  /** Size of the guest input buffer now, in bytes. */
  get inputBufferCapacity(): number {
    return this.inputCapacity;
  }

  /**
   * Runs every line of `data`/`offsets` (the LineBatch layout: line i is
   * `data[offsets[i]..offsets[i+1]]`) through `process_log`. Never throws for a bad line or a
   * trapping plugin: see BatchOutcome.
   */
  processBatch(data: Uint8Array, offsets: Uint32Array): BatchOutcome {
    const count = Math.max(0, offsets.length - 1);
    const outOffsets = new Uint32Array(count + 1);
    // Most plugins emit about as much as they get; grow by doubling past that.
    let out = new Uint8Array(data.byteLength + (data.byteLength >>> 3) + INPUT_BUFFER_STEP);
    let used = 0;
    let emitted = 0;
    let dropped = 0;
    const failures: LineFailure[] = [];
    let firstError: string | undefined;

    for (let index = 0; index < count; index++) {
      const start = offsets[index]!;
      const end = offsets[index + 1]!;
      let emit: Uint8Array | undefined;
      let failure: LineFailureCode | undefined;
      try {
        emit = this.runLine(data, start, end);
        if (emit === undefined) dropped++;
      } catch (error) {
        if (error instanceof LineFailed) {
          failure = error.failure;
          firstError ??= truncate(error.message);
        } else {
          // A trap (WebAssembly.RuntimeError, RangeError for stack overflow, ...): the instance's
          // memory and globals may be half-updated, so it is never called again.
          failure = 'trap';
          firstError ??= truncate(`${this.label}: process_log trapped: ${String(error)}`);
          this.discardInstance();
        }
      }
      if (failure !== undefined) {
        failures.push({ index, code: failure });
        if (!this.dropOnError) emit = data.subarray(start, end);
      }
      if (emit === undefined) continue;
      if (used + emit.byteLength > out.byteLength) {
        const grown = new Uint8Array(Math.max(out.byteLength * 2, used + emit.byteLength));
        grown.set(out.subarray(0, used));
        out = grown;
      }
      out.set(emit, used);
      used += emit.byteLength;
      outOffsets[++emitted] = used;
    }
    const outcome: BatchOutcome = {
      data: out.subarray(0, used),
      offsets: emitted === count ? outOffsets : outOffsets.slice(0, emitted + 1),
      failures,
      dropped,
    };
    if (firstError !== undefined) outcome.firstError = firstError;
    return outcome;
  }

  /** Frees the guest input buffer. The runner must not be used afterwards. */
  close(): void {
    const guest = this.guest;
    this.guest = undefined;
    if (guest === undefined || this.inputPtr === 0) return;
    try {
      guest.dealloc(this.inputPtr, this.inputCapacity);
    } catch {
      // The instance is being thrown away; a trap while freeing changes nothing.
    }
  }

  /**
   * One line: returns the bytes to emit (a view into guest memory, valid until the next call),
   * or undefined for a drop. Throws LineFailed for a failure that leaves the instance usable, and
   * anything else for a trap.
   */
  private runLine(data: Uint8Array, start: number, end: number): Uint8Array | undefined {
    const guest = this.guest ?? this.replaceInstance();
    const len = end - start;
    if (len > this.inputCapacity) this.growInput(guest, len);
    this.refreshViews(guest);
    this.bytes.set(data.subarray(start, end), this.inputPtr);
    const status: unknown = guest.processLog(this.inputPtr, len);
    this.refreshViews(guest);
    if (status === STATUS_DROP) return undefined;
    if (status !== STATUS_EMIT && status !== STATUS_ERROR) {
      throw new LineFailed('bad_status', `${this.label}: process_log returned unknown status ${String(status)}`);
    }
    const outPtr = this.words.getUint32(guest.resultPtr, true);
    const outLen = this.words.getUint32(guest.resultPtr + 4, true);
    if (outPtr + outLen > this.bytes.byteLength) {
      throw new LineFailed(
        'bad_output',
        `${this.label}: result area points at ${outLen} bytes at ${outPtr}, past the end of memory (${this.bytes.byteLength} bytes)`,
      );
    }
    const output = this.bytes.subarray(outPtr, outPtr + outLen);
    if (status === STATUS_ERROR) {
      throw new LineFailed('plugin_error', `${this.label}: ${utf8.decode(output.subarray(0, MAX_ERROR_MESSAGE_CHARS * 4))}`);
    }
    return output;
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
    const guest = instantiatePlugin(this.module, this.label);
    this.viewBuffer = undefined;
    this.inputPtr = 0;
    this.inputCapacity = 0;
    this.growInput(guest, INPUT_BUFFER_STEP);
    return guest;
  }

  private discardInstance(): void {
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
}

function truncate(text: string): string {
  return text.length <= MAX_ERROR_MESSAGE_CHARS ? text : `${text.slice(0, MAX_ERROR_MESSAGE_CHARS)}...`;
}
