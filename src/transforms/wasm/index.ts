/**
 * `type = "wasm"`: runs every line through a WebAssembly plugin (ABI v1, docs/plugin-abi.md) in a
 * pool of worker threads. The module is compiled and checked once on the main thread; each worker
 * instantiates it once and runs whole batches, whose buffers are transferred, not copied.
 *
 * Failure policy: a line the plugin fails on (trap, error status, bad output) is forwarded
 * unchanged, counted and logged; `drop_on_error = true` drops it instead, and with
 * `reroute_dropped = true` it goes to the `ID.dropped` output. A batch whose worker dies or hangs
 * past `timeout_ms` has its worker replaced and is retried once, one line per task, so that only
 * the poison line goes to the failure policy.
 */
import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { basename, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { ComponentContext, Transform, TransformResult, TransformType } from '../../components.js';
import type { ConfigReader } from '../../config/reader.js';
import { isTable, show, type ConfigTable } from '../../config/reader.js';
import { PluginAbiError, PluginLoadError } from '../../errors.js';
import { lineCount, type LineBatch } from '../../event.js';
import { validateModule } from '../../wasm-memory/abi.js';
import { capMemory } from '../../wasm-memory/limits.js';
import { FluentBitRunner } from '../../wasm-memory/fluent-bit.js';
import { DEFAULT_MAX_OUTPUT_BYTES, PluginRunner, type BatchContext, type BatchOutcome, type LineFailure } from '../../wasm-memory/runner.js';
import { compileModule, type WasmModule } from '../../wasm-memory/wasm-api.js';
import type { WasiPreopen } from '../../wasm-memory/wasi.js';
import { batchRetried, guestWrote, moduleReloaded, pluginDropped, pluginLinesFailed, reloadRefused, type FailurePolicy } from './events.js';
import type { PluginAbi, WorkerInit, WorkerResult, WorkerTask } from './protocol.js';

/** `drop_on_error`: forward a failed line unchanged (false) or drop it (true). Default: lose nothing. */
export const DEFAULT_DROP_ON_ERROR = false;
/** `reroute_dropped`: send lines dropped by `drop_on_error` to `ID.dropped` instead of discarding them. */
export const DEFAULT_REROUTE_DROPPED = false;
/**
 * `pool_size`: worker threads, each with its own plugin instance. Default: one per available core
 * but one (at least one), since the main thread (reading, splitting, sending) and the
 * opentelemetry sink's encoding thread need a core too. Measured on 2 cores (1M-line
 * benchmark): file -> wasm -> OTLP ran as fast with 1 worker as with 2 (~325k lines/s) at 15-20 MiB
 * less peak RSS; only file -> wasm -> blackhole, where the plugin is all the work, was faster with
 * 2 (~700k vs ~550k lines/s): set `pool_size` for such pipelines.
 */
export const DEFAULT_POOL_SIZE = Math.max(1, availableParallelism() - 1);
/**
 * `timeout_ms`: a batch not done this long after it was handed to the pool (queueing included)
 * has its worker terminated and is retried once, one line per task with the same limit each, to
 * find the line that hangs. Guards against plugins that loop forever. `timeout_secs` (this
 * transform's earlier name) is still read, in seconds.
 */
export const DEFAULT_TIMEOUT_MS = 60_000;
/**
 * `heap_memory_size` (the name of Vector's removed wasm transform): bytes of linear memory one
 * plugin instance may use. The module's declared memory maximum is lowered to it, so a plugin
 * that grows past it fails its call (a trap, or `memory_limit`) and the line goes to the failure
 * policy. 64 MiB: json_parser needs about 8 MiB for a 1 MiB line.
 */
export const DEFAULT_HEAP_MEMORY_SIZE = 64 * 1024 * 1024;
/**
 * V8 young generation of each worker thread, in MiB (piscina `resourceLimits`; V8 splits it in
 * three, so 3 is a 1 MiB semi-space). A worker's JS objects live for one batch, so a small young
 * generation costs little, and a scavenge is also what frees the ArrayBuffers of batches already
 * posted back; V8's default lets it grow to 48 MiB per worker under a busy pool's allocation rate.
 */
export const WORKER_MAX_YOUNG_GENERATION_MB = 3;
/** `max_output_bytes`: the most bytes a plugin may emit for one line; see runner.ts. */
export { DEFAULT_MAX_OUTPUT_BYTES };

export interface WasmTransformConfig {
  /** `module`: path of the `.wasm` file, relative to the working directory. */
  module: string;
  /** `options`: a table handed to the plugin's `init` export as JSON, once per instance. */
  options: ConfigTable;
  dropOnError: boolean;
  rerouteDropped: boolean;
  poolSize: number;
  timeoutMs: number;
  heapMemorySize: number;
  maxOutputBytes: number;
  /** `sha256`: lowercase hex digest the module file must have; unset means unpinned. */
  sha256?: string;
  /** `abi`: `logwasm` (default, docs/plugin-abi.md) or `fluent-bit` (a filter_wasm guest). */
  abi: PluginAbi;
  /** `function`: the filter export of a `fluent-bit` guest (Fluent Bit's `Function_Name`); required there. */
  functionName: string;
  /** `tag`: the tag a `fluent-bit` guest sees; default the batch's source id. */
  tag?: string;
  /**
   * `wasi`: let the module import the WASI subset of wasi.ts (fd_write to stdout/stderr captured,
   * an empty environment, proc_exit, random, files under `wasi_preopens` only), whichever `abi`.
   */
  wasi: boolean;
  /** `hot_reload`: watch the module file and switch new batches to a changed module. */
  hotReload: boolean;
  /**
   * `wasi_preopens` (read-only) and `wasi_preopens_writable`: directories a `wasi = true` guest may
   * open files under, as absolute paths the guest sees unchanged (Fluent Bit's `accessible_paths`).
   */
  wasiPreopens?: WasiPreopen[];
  /**
   * Not a config key: the worker script, in place of `workerFile()`. Tests set it to a script that
   * wraps the real worker and kills its thread on a marked line (the `worker_failed` path).
   */
  workerScript?: string;
}

/**
 * `hot_reload`: off by default, so that what runs is what was checked at start. When on, a
 * changed module file that passes every start-up check (pin, ABI, `init`) takes over new batches;
 * one that fails is refused, counted and logged, and the old module keeps running.
 */
export const DEFAULT_HOT_RELOAD = false;

/** `abi`: the guest interface. */
export const DEFAULT_ABI: PluginAbi = 'logwasm';
/** `wasi`: no WASI imports unless asked for. */
export const DEFAULT_WASI = false;

export const wasmTransform: TransformType<WasmTransformConfig> = {
  kind: 'transform',
  type: 'wasm',
  parse(reader: ConfigReader): WasmTransformConfig {
    const module = reader.requiredString('module');
    const rawOptions = reader.raw('options');
    if (rawOptions !== undefined && !isTable(rawOptions)) {
      reader.problem(`invalid value for "options": expected a table, actual: ${show(rawOptions)}`);
    }
    // Vector's wasm transform had this; it tunes a compile cache that V8 does not need here.
    reader.accept('artifact_cache');
    const timeoutSecs = reader.number('timeout_secs', undefined, { min: 0.001 });
    let timeoutMs = reader.number('timeout_ms', DEFAULT_TIMEOUT_MS, { integer: true, min: 1 });
    if (timeoutSecs !== undefined) {
      if (reader.has('timeout_ms')) reader.problem('"timeout_secs" and "timeout_ms" both set; keep "timeout_ms"');
      else timeoutMs = Math.ceil(timeoutSecs * 1000);
    }
    const sha256 = reader.string('sha256');
    if (sha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(sha256)) {
      reader.problem(`invalid value for "sha256": expected 64 hex digits, actual: ${show(sha256)}`);
    }
    const config: WasmTransformConfig = {
      module,
      options: isTable(rawOptions) ? rawOptions : {},
      dropOnError: reader.boolean('drop_on_error', DEFAULT_DROP_ON_ERROR),
      rerouteDropped: reader.boolean('reroute_dropped', DEFAULT_REROUTE_DROPPED),
      poolSize: reader.number('pool_size', DEFAULT_POOL_SIZE, { integer: true, min: 1, max: 1024 }),
      timeoutMs,
      heapMemorySize: reader.number('heap_memory_size', DEFAULT_HEAP_MEMORY_SIZE, { integer: true, min: 65536 }),
      maxOutputBytes: reader.number('max_output_bytes', DEFAULT_MAX_OUTPUT_BYTES, { integer: true, min: 1 }),
      abi: readAbi(reader),
      functionName: reader.string('function', ''),
      wasi: reader.boolean('wasi', DEFAULT_WASI),
      hotReload: reader.boolean('hot_reload', DEFAULT_HOT_RELOAD),
    };
    const wasiPreopens = [
      ...reader.stringArray('wasi_preopens', []).map((path) => ({ path: resolve(path), writable: false })),
      ...reader.stringArray('wasi_preopens_writable', []).map((path) => ({ path: resolve(path), writable: true })),
    ];
    if (wasiPreopens.length > 0) config.wasiPreopens = wasiPreopens;
    if (wasiPreopens.length > 0 && !config.wasi) reader.problem(`"${reader.has('wasi_preopens') ? 'wasi_preopens' : 'wasi_preopens_writable'}" needs wasi = true`);
    if (sha256 !== undefined) config.sha256 = sha256.toLowerCase();
    const tag = reader.string('tag');
    if (tag !== undefined) config.tag = tag;
    if (config.abi === 'fluent-bit' && config.functionName === '') reader.problem('missing required key "function" (abi = "fluent-bit")');
    if (config.abi === 'logwasm') {
      for (const key of ['function', 'tag']) if (reader.has(key)) reader.problem(`"${key}" only applies to abi = "fluent-bit"`);
    }
    return config;
  },
  build(config: WasmTransformConfig, context: ComponentContext): Transform {
    return new WasmTransform(config, context);
  },
};

/**
 * The compiled worker. Under vitest this file runs from src/ as TypeScript, but worker threads
 * need JavaScript: map src/ onto the compiled dist/ (`npm run build` first).
 */
export function workerFile(): string {
  const url = new URL('./worker.js', import.meta.url);
  const path = fileURLToPath(url);
  const marker = `${'/'}src${'/'}`;
  const at = path.lastIndexOf(marker);
  if (at === -1 || !import.meta.url.endsWith('.ts')) return path;
  return `${path.slice(0, at)}/dist/${path.slice(at + marker.length)}`;
}

function readAbi(reader: ConfigReader): PluginAbi {
  const abi = reader.string('abi', DEFAULT_ABI);
  if (abi === 'logwasm' || abi === 'fluent-bit') return abi;
  reader.problem(`invalid value for "abi": expected "logwasm" or "fluent-bit", actual: ${show(abi)}`);
  return DEFAULT_ABI;
}

/** How `loadPlugin` checks and limits a module. */
export interface LoadOptions {
  /** Expected lowercase hex sha256 of the file; a mismatch refuses the module. */
  sha256?: string;
  /** Caps the module's memory maximum; see DEFAULT_HEAP_MEMORY_SIZE. */
  heapMemorySize?: number;
  /** JSON for `init`, called once here so that a refusal fails at start. */
  initOptions?: string;
  /** Check it as a Fluent Bit filter_wasm guest instead of an ABI v1 plugin. */
  fluentBit?: { functionName: string; wasi: boolean; preopens?: readonly WasiPreopen[] };
  /** `wasi = true` for an ABI v1 plugin: allow WASI imports, with files under these preopens only. */
  wasi?: { preopens: readonly WasiPreopen[] };
}

/** A module ready for the pool. */
export interface LoadedPlugin {
  module: WasmModule;
  /** sha256 of the file as read (before the memory cap is applied), lowercase hex. */
  sha256: string;
  size: number;
}

/**
 * Reads, pins, limits, compiles and checks a plugin: refuses with PluginLoadError (unreadable,
 * not wasm) or PluginAbiError (hash mismatch, ABI, `init` refusal), both before any line flows.
 */
export async function loadPlugin(path: string, label: string, options: LoadOptions = {}): Promise<LoadedPlugin> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (error) {
    throw new PluginLoadError(`${label}: cannot read module "${path}": ${String(error)}`, { cause: error });
  }
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (options.sha256 !== undefined && options.sha256.toLowerCase() !== sha256) {
    throw new PluginAbiError(`${label}: module "${path}" has sha256 ${sha256}, but the config pins sha256 = "${options.sha256.toLowerCase()}"`);
  }
  let module: WasmModule;
  try {
    const limited = options.heapMemorySize === undefined ? bytes : capMemory(bytes, options.heapMemorySize, label);
    module = await compileModule(limited);
  } catch (error) {
    if (error instanceof PluginAbiError) throw error;
    throw new PluginLoadError(`${label}: "${path}" is not a valid WebAssembly module: ${String(error)}`, { cause: error });
  }
  // Arity, the result area and `init` need an instance: run one here so a bad plugin fails at
  // start, on the main thread, with its coded error, instead of in every worker.
  if (options.fluentBit !== undefined) {
    new FluentBitRunner(module, { label, ...options.fluentBit }).close();
  } else {
    validateModule(module, label, { wasi: options.wasi !== undefined });
    const wasi = options.wasi === undefined ? {} : { wasi: true, preopens: options.wasi.preopens };
    new PluginRunner(module, { label, initOptions: options.initOptions ?? '{}', ...wasi }).close();
  }
  return { module, sha256, size: bytes.byteLength };
}

/** One pool and the module it runs; replaced whole on a hot reload. */
interface Generation {
  pool: Piscina;
  sha256: string;
  /** Batches using this pool now (including their line-by-line retries). */
  inflight: number;
  /** Replaced by a newer generation: destroyed once `inflight` drops to 0. */
  retired: boolean;
}

class WasmTransform implements Transform {
  private current: Generation | undefined;
  private readonly label: string;
  private readonly initOptions: string;
  private watcher: FSWatcher | undefined;
  private reloading: Promise<void> | undefined;
  private reloadAgain = false;
  private readonly retiring = new Set<Promise<void>>();
  private readonly copies = new CopyPool();
  private readonly slots: TaskSlots;

  constructor(
    private readonly config: WasmTransformConfig,
    private readonly context: ComponentContext,
  ) {
    this.label = `transforms.${context.id}`;
    this.initOptions = JSON.stringify(config.options);
    this.slots = new TaskSlots(config.poolSize * TASKS_PER_WORKER);
  }

  async start(): Promise<void> {
    const filename = this.config.workerScript ?? workerFile();
    this.current = await this.startGeneration(filename);
    if (this.config.hotReload) this.watch();
  }

  /** Loads and checks the module file as it is now, and starts a pool for it. */
  private async startGeneration(filename = this.config.workerScript ?? workerFile()): Promise<Generation> {
    const { module, sha256 } = await loadPlugin(resolve(this.config.module), this.label, {
      heapMemorySize: this.config.heapMemorySize,
      initOptions: this.initOptions,
      ...(this.config.sha256 === undefined ? {} : { sha256: this.config.sha256 }),
      ...(this.config.abi === 'fluent-bit' ? { fluentBit: { functionName: this.config.functionName, wasi: this.config.wasi, preopens: this.config.wasiPreopens ?? [] } } : {}),
      ...(this.config.abi === 'logwasm' && this.config.wasi ? { wasi: { preopens: this.config.wasiPreopens ?? [] } } : {}),
    });
    try {
      await access(filename);
    } catch (error) {
      throw new PluginLoadError(`${this.label}: worker script "${filename}" is missing (run npm run build)`, { cause: error });
    }
    const workerData: WorkerInit = {
      module,
      dropOnError: this.config.dropOnError,
      label: this.label,
      initOptions: this.initOptions,
      maxOutputBytes: this.config.maxOutputBytes,
      heapMemorySize: this.config.heapMemorySize,
      abi: this.config.abi,
      functionName: this.config.functionName,
      wasi: this.config.wasi,
      wasiPreopens: this.config.wasiPreopens ?? [],
    };
    const pool = new Piscina({
      filename,
      minThreads: this.config.poolSize,
      maxThreads: this.config.poolSize,
      idleTimeout: Infinity,
      workerData,
      resourceLimits: { maxYoungGenerationSizeMb: WORKER_MAX_YOUNG_GENERATION_MB },
    });
    return { pool, sha256, inflight: 0, retired: false };
  }

  /**
   * Watches the module's directory (editors and deploy tools replace a file by renaming over it,
   * which a watch on the file itself would miss) and reloads when the file's name shows up.
   */
  private watch(): void {
    const path = resolve(this.config.module);
    const name = basename(path);
    this.watcher = watch(dirname(path), (_event, changed) => {
      if (changed === null || changed.toString() === name) this.requestReload();
    });
    this.watcher.on('error', (error) => reloadRefused(this.context.telemetry, this.context.id, `watching "${path}" failed: ${String(error)}`));
  }

  /** Coalesces change events: one reload at a time, and one more if the file changed meanwhile. */
  private requestReload(): void {
    if (this.reloading !== undefined) {
      this.reloadAgain = true;
      return;
    }
    this.reloading = this.reload().finally(() => {
      this.reloading = undefined;
      if (this.reloadAgain && this.current !== undefined) {
        this.reloadAgain = false;
        this.requestReload();
      }
    });
  }

  /**
   * New batches go to a pool running the new module; batches already on the old pool finish
   * there (nothing lost, nothing run twice), then it is destroyed. A file that fails to read,
   * compile, match its pin or pass the ABI checks is refused and the old module kept.
   */
  private async reload(): Promise<void> {
    const old = this.current;
    if (old === undefined) return;
    let next: Generation;
    try {
      next = await this.startGeneration();
    } catch (error) {
      reloadRefused(this.context.telemetry, this.context.id, error instanceof Error ? error.message : String(error));
      return;
    }
    if (this.current !== old || next.sha256 === old.sha256) {
      // Stopped meanwhile, or the same bytes written again: keep what runs.
      await next.pool.destroy();
      return;
    }
    this.current = next;
    moduleReloaded(this.context.telemetry, this.context.id, old.sha256, next.sha256);
    this.retire(old);
  }

  private retire(generation: Generation): void {
    generation.retired = true;
    if (generation.inflight > 0) return;
    const done = generation.pool.destroy().finally(() => this.retiring.delete(done));
    this.retiring.add(done);
  }

  async process(batch: LineBatch): Promise<TransformResult> {
    const generation = this.current;
    if (generation === undefined) throw new PluginLoadError(`${this.label}: process() before start()`);
    generation.inflight++;
    try {
      return await this.processOn(generation.pool, batch);
    } finally {
      generation.inflight--;
      if (generation.retired && generation.inflight === 0) this.retire(generation);
    }
  }

  private async processOn(pool: Piscina, batch: LineBatch): Promise<TransformResult> {
    const count = lineCount(batch);
    const meta = { ...batch.meta, format: 'json' as const };
    if (count <= 0) return { out: { data: batch.data, offsets: batch.offsets, meta } };

    // The worker gets the batch's buffers by transfer (the caller gave us ownership). A view into
    // a larger or shared buffer is copied first, since transferring would take its neighbours.
    // The copy kept here is what a dying or hung worker cannot give back: without it, such a
    // batch would be lost. One memcpy per batch into a reused buffer (CopyPool); see docs/plugin-abi.md.
    await this.slots.acquire();
    const original = this.copies.take(batch.data, batch.offsets);
    try {
      return await this.runKept(pool, batch, original, count, meta);
    } finally {
      this.copies.give(original);
      this.slots.release();
    }
  }

  private async runKept(pool: Piscina, batch: LineBatch, original: KeptCopy, count: number, meta: LineBatch['meta']): Promise<TransformResult> {
    const context = { tag: this.config.tag ?? batch.meta.sourceId, timestampMs: batch.meta.timestampMs };
    const task: WorkerTask = { data: ownedView(batch.data), offsets: ownedView(batch.offsets), context };
    const transferList = task.data.buffer === task.offsets.buffer ? [task.data.buffer] : [task.data.buffer, task.offsets.buffer];
    const policy: FailurePolicy = !this.config.dropOnError ? 'forwarded' : this.config.rerouteDropped ? 'rerouted' : 'dropped';

    let result: WorkerResult;
    try {
      result = await this.run(pool, task, transferList as ArrayBuffer[]);
    } catch (error) {
      // The worker hung past timeout_ms (piscina terminated it) or died. Retry once, one line
      // per task, on workers started after it, so that only the poison line fails.
      const reason = isAbort(error) ? 'timeout' : 'worker_failed';
      batchRetried(this.context.telemetry, this.context.id, count, reason, error);
      result = await this.isolate(pool, original, count, reason, context);
    }
    if (result.guestOutput !== undefined) guestWrote(this.context.telemetry, this.context.id, result.guestOutput);

    if (result.dropped > 0) pluginDropped(this.context.telemetry, this.context.id, result.dropped);
    pluginLinesFailed(this.context.telemetry, this.context.id, result.failures, count, policy, result.firstError);
    const out: LineBatch | null = result.offsets.length > 1 ? { data: result.data, offsets: result.offsets, meta } : null;
    if (!this.config.rerouteDropped || !this.config.dropOnError || result.failures.length === 0) return { out };
    return { out, dropped: pick(original, result.failures.map((f) => f.index), batch.meta) };
  }

  private async run(pool: Piscina, task: WorkerTask, transferList: ArrayBuffer[]): Promise<WorkerResult> {
    return (await pool.run(task, { transferList, signal: AbortSignal.timeout(this.config.timeoutMs) })) as WorkerResult;
  }

  /**
   * Runs the lines of a batch one task each, in order, and merges the outcomes as if the batch
   * had run at once. A line whose task fails again is a `timeout`/`worker_failed` failure.
   */
  private async isolate(
    pool: Piscina,
    original: { data: Uint8Array; offsets: Uint32Array },
    count: number,
    reason: 'timeout' | 'worker_failed',
    context: BatchContext,
  ): Promise<BatchOutcome> {
    const outcomes: BatchOutcome[] = [];
    const failures: LineFailure[] = [];
    let dropped = 0;
    let firstError: string | undefined;
    for (let index = 0; index < count; index++) {
      const line = original.data.slice(original.offsets[index]!, original.offsets[index + 1]!);
      const task: WorkerTask = { data: line, offsets: Uint32Array.of(0, line.byteLength), perLine: true, context };
      let outcome: BatchOutcome;
      try {
        outcome = await this.run(pool, task, [task.data.buffer as ArrayBuffer, task.offsets.buffer as ArrayBuffer]);
      } catch (error) {
        const code = isAbort(error) ? 'timeout' : 'worker_failed';
        const what = code === 'timeout' ? `did not finish in ${this.config.timeoutMs} ms` : `killed its worker (${String(error)})`;
        firstError ??= `${this.label}: line ${index} ${what} when retried alone after the batch's ${reason}`;
        const kept = this.config.dropOnError ? new Uint8Array(0) : original.data.subarray(original.offsets[index]!, original.offsets[index + 1]!);
        outcome = { data: kept, offsets: kept.byteLength === 0 && this.config.dropOnError ? Uint32Array.of(0) : Uint32Array.of(0, kept.byteLength), failures: [{ index: 0, code }], dropped: 0 };
      }
      dropped += outcome.dropped;
      firstError ??= outcome.firstError;
      if (outcome.guestOutput !== undefined) guestWrote(this.context.telemetry, this.context.id, outcome.guestOutput);
      for (const failure of outcome.failures) failures.push({ index, code: failure.code });
      outcomes.push(outcome);
    }
    const merged = concatOutcomes(outcomes);
    const result: BatchOutcome = { ...merged, failures, dropped };
    if (firstError !== undefined) result.firstError = firstError;
    return result;
  }

  async stop(): Promise<void> {
    this.watcher?.close();
    this.watcher = undefined;
    const generation = this.current;
    this.current = undefined;
    await this.reloading;
    await Promise.all(this.retiring);
    if (generation === undefined) return;
    await generation.pool.close();
    await generation.pool.destroy();
  }
}

/**
 * Batches handed to the pool at once, per worker: two keep a worker busy (the next one is queued
 * when one finishes). The others wait in `TaskSlots` with their own buffers instead of in
 * piscina's queue with a kept copy each: with 16 batches of 2000 lines in flight, the copies
 * were ~7 MiB of peak RSS.
 */
export const TASKS_PER_WORKER = 2;

/** A counting semaphore, first come first served. */
class TaskSlots {
  private readonly waiting: (() => void)[] = [];

  constructor(private free: number) {}

  acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next !== undefined) next();
    else this.free++;
  }
}

/**
 * How many spare buffers CopyPool keeps at most. One is in use per batch handed to the pool
 * (TASKS_PER_WORKER per worker); spares past this are dropped.
 */
export const COPY_POOL_SPARES = 16;
/** CopyPool buffer sizes are multiples of this, so that batches of similar size share buffers. */
const COPY_POOL_STEP = 64 * 1024;

/** A batch's lines kept on the main thread while a worker has the batch. */
interface KeptCopy {
  data: Uint8Array;
  offsets: Uint32Array;
}

/**
 * Reused buffers for the copy of each batch kept while a worker has the original (the copy is what
 * a dying or hung worker cannot give back). A fresh copy per batch cost the main thread an
 * allocation of the batch's size each time, and V8 answers external memory growth with full GCs;
 * a reused buffer is one memcpy and no garbage. A copy is taken and given back by the same
 * `process` call, never handed downstream (`pick` and the isolation retries copy out of it).
 */
class CopyPool {
  private readonly spare: ArrayBuffer[] = [];

  take(data: Uint8Array, offsets: Uint32Array): KeptCopy {
    const dataBytes = Math.ceil(data.byteLength / 4) * 4;
    const need = dataBytes + offsets.byteLength;
    let buffer: ArrayBuffer | undefined;
    for (let i = 0; i < this.spare.length; i++) {
      if (this.spare[i]!.byteLength >= need) {
        buffer = this.spare[i]!;
        this.spare[i] = this.spare[this.spare.length - 1]!;
        this.spare.pop();
        break;
      }
    }
    buffer ??= new ArrayBuffer(Math.max(COPY_POOL_STEP, Math.ceil(need / COPY_POOL_STEP) * COPY_POOL_STEP));
    const kept = { data: new Uint8Array(buffer, 0, data.byteLength), offsets: new Uint32Array(buffer, dataBytes, offsets.length) };
    kept.data.set(data);
    kept.offsets.set(offsets);
    return kept;
  }

  give(kept: KeptCopy): void {
    if (this.spare.length < COPY_POOL_SPARES) this.spare.push(kept.data.buffer as ArrayBuffer);
  }
}

/** The records of several outcomes, in order, as one batch layout. */
function concatOutcomes(outcomes: readonly BatchOutcome[]): { data: Uint8Array; offsets: Uint32Array } {
  let bytes = 0;
  let records = 0;
  for (const o of outcomes) {
    bytes += o.data.byteLength;
    records += o.offsets.length - 1;
  }
  const data = new Uint8Array(bytes);
  const offsets = new Uint32Array(records + 1);
  let at = 0;
  let record = 0;
  for (const o of outcomes) {
    data.set(o.data, at);
    for (let i = 1; i < o.offsets.length; i++) offsets[++record] = at + o.offsets[i]!;
    at += o.data.byteLength;
  }
  return { data, offsets };
}

/** `view` itself when it spans its whole (non-shared) buffer, else a copy that does. */
function ownedView<T extends Uint8Array | Uint32Array>(view: T): T {
  const whole = view.byteOffset === 0 && view.byteLength === view.buffer.byteLength && view.buffer instanceof ArrayBuffer;
  return whole ? view : (view.slice() as T);
}

function isAbort(error: unknown): boolean {
  return error instanceof Error && (error.name === 'AbortError' || error.name === 'TimeoutError');
}

/** The lines at `indexes` (ascending) of a batch layout, as a new batch. */
function pick(batch: { data: Uint8Array; offsets: Uint32Array }, indexes: readonly number[], meta: LineBatch['meta']): LineBatch {
  let total = 0;
  for (const i of indexes) total += batch.offsets[i + 1]! - batch.offsets[i]!;
  const data = new Uint8Array(total);
  const offsets = new Uint32Array(indexes.length + 1);
  let at = 0;
  indexes.forEach((i, k) => {
    data.set(batch.data.subarray(batch.offsets[i]!, batch.offsets[i + 1]!), at);
    at += batch.offsets[i + 1]! - batch.offsets[i]!;
    offsets[k + 1] = at;
  });
  return { data, offsets, meta };
}
