/**
 * What crosses the thread boundary between the wasm transform and its workers: plain data only
 * (a coded error thrown in a worker arrives as a bare Error, so outcomes are values).
 */
import type { BatchContext, BatchOutcome } from '../../wasm-memory/runner.js';
import type { WasmModule } from '../../wasm-memory/wasm-api.js';
import type { WasiPreopen } from '../../wasm-memory/wasi.js';

/** `workerData` of every worker in a transform's pool. */
export interface WorkerInit {
  /** Compiled once on the main thread; structured clone shares the compiled code. */
  module: WasmModule;
  dropOnError: boolean;
  /** `transforms.ID`, for messages. */
  label: string;
  /** The transform's `options` as JSON, for the plugin's `init`. */
  initOptions: string;
  maxOutputBytes: number;
  heapMemorySize: number;
  /** `abi`: which guest interface the module speaks. */
  abi: PluginAbi;
  /** `function`: the filter export of a Fluent Bit guest. */
  functionName: string;
  /** `wasi`: provide the WASI subset of wasi.ts (either ABI). */
  wasi: boolean;
  /** `wasi_preopens`/`wasi_preopens_writable`: directories the guest may open files under. */
  wasiPreopens: WasiPreopen[];
}

/** `abi = "logwasm"` (docs/plugin-abi.md) or `"fluent-bit"` (filter_wasm guests). */
export type PluginAbi = 'logwasm' | 'fluent-bit';

/** One task: a batch's lines, whose buffers are transferred to the worker. */
export interface WorkerTask {
  data: Uint8Array;
  offsets: Uint32Array;
  /** One `process_log` call per line even when the plugin has `process_batch` (isolation retries). */
  perLine?: boolean;
  /** Fluent Bit's tag and record time. */
  context?: BatchContext;
}

export type WorkerResult = BatchOutcome;
