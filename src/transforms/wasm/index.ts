/**
 * `type = "wasm"`: runs every line through a WebAssembly plugin (ABI v1, docs/plugin-abi.md) in a
 * pool of worker threads. The module is compiled and checked once on the main thread; each worker
 * instantiates it once and runs whole batches, whose buffers are transferred, not copied.
 *
 * Failure policy: a line the plugin fails on (trap, error status, bad output) is forwarded
 * unchanged, counted and logged; `drop_on_error = true` drops it instead, and with
 * `reroute_dropped = true` it goes to the `ID.dropped` output. A batch whose worker dies or hangs
 * past `timeout_secs` is handled the same way, line by line; piscina starts a fresh worker.
 */
import { access, readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { ComponentContext, Transform, TransformResult, TransformType } from '../../components.js';
import type { ConfigReader } from '../../config/reader.js';
import { isTable, show, type ConfigTable } from '../../config/reader.js';
import { PluginLoadError } from '../../errors.js';
import { lineCount, type LineBatch } from '../../event.js';
import { instantiatePlugin, validateModule } from '../../wasm-memory/abi.js';
import { compileModule, type WasmModule } from '../../wasm-memory/wasm-api.js';
import { pluginDropped, pluginLinesFailed, workerFailed, type FailurePolicy } from './events.js';
import type { WorkerInit, WorkerResult, WorkerTask } from './protocol.js';

/** `drop_on_error`: forward a failed line unchanged (false) or drop it (true). Default: lose nothing. */
export const DEFAULT_DROP_ON_ERROR = false;
/** `reroute_dropped`: send lines dropped by `drop_on_error` to `ID.dropped` instead of discarding them. */
export const DEFAULT_REROUTE_DROPPED = false;
/** `pool_size`: worker threads, each with its own plugin instance. Default: one per available core. */
export const DEFAULT_POOL_SIZE = availableParallelism();
/**
 * `timeout_secs`: a batch not done this long after it was handed to the pool (queueing included)
 * has its worker terminated, and its lines are handled as failures. Guards against plugins that
 * loop forever.
 */
export const DEFAULT_TIMEOUT_SECS = 60;

export interface WasmTransformConfig {
  /** `module`: path of the `.wasm` file, relative to the working directory. */
  module: string;
  /** `options`: a table for the plugin; stored, not yet passed (ABI v1 has no configure call). */
  options: ConfigTable;
  dropOnError: boolean;
  rerouteDropped: boolean;
  poolSize: number;
  timeoutSecs: number;
}

export const wasmTransform: TransformType<WasmTransformConfig> = {
  kind: 'transform',
  type: 'wasm',
  parse(reader: ConfigReader): WasmTransformConfig {
    const module = reader.requiredString('module');
    const rawOptions = reader.raw('options');
    if (rawOptions !== undefined && !isTable(rawOptions)) {
      reader.problem(`invalid value for "options": expected a table, actual: ${show(rawOptions)}`);
    }
    // Vector's wasm transform had these; they tune its runtime and mean nothing here.
    reader.accept('heap_memory_size', 'artifact_cache');
    return {
      module,
      options: isTable(rawOptions) ? rawOptions : {},
      dropOnError: reader.boolean('drop_on_error', DEFAULT_DROP_ON_ERROR),
      rerouteDropped: reader.boolean('reroute_dropped', DEFAULT_REROUTE_DROPPED),
      poolSize: reader.number('pool_size', DEFAULT_POOL_SIZE, { integer: true, min: 1, max: 1024 }),
      timeoutSecs: reader.number('timeout_secs', DEFAULT_TIMEOUT_SECS, { min: 0.001 }),
    };
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

/** Reads, compiles and checks a plugin: refuses with PluginLoadError or PluginAbiError. */
export async function loadPlugin(path: string, label: string): Promise<WasmModule> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (error) {
    throw new PluginLoadError(`${label}: cannot read module "${path}": ${String(error)}`, { cause: error });
  }
  let module: WasmModule;
  try {
    module = await compileModule(bytes);
  } catch (error) {
    throw new PluginLoadError(`${label}: "${path}" is not a valid WebAssembly module: ${String(error)}`, { cause: error });
  }
  validateModule(module, label);
  // Arity and the result area need an instance: check one here so a bad plugin fails at start,
  // on the main thread, with its coded error, instead of in every worker.
  instantiatePlugin(module, label);
  return module;
}

class WasmTransform implements Transform {
  private pool: Piscina | undefined;
  private readonly label: string;

  constructor(
    private readonly config: WasmTransformConfig,
    private readonly context: ComponentContext,
  ) {
    this.label = `transforms.${context.id}`;
  }

  async start(): Promise<void> {
    const module = await loadPlugin(resolve(this.config.module), this.label);
    const filename = workerFile();
    try {
      await access(filename);
    } catch (error) {
      throw new PluginLoadError(`${this.label}: worker script "${filename}" is missing (run npm run build)`, { cause: error });
    }
    const workerData: WorkerInit = { module, dropOnError: this.config.dropOnError, label: this.label };
    this.pool = new Piscina({
      filename,
      minThreads: this.config.poolSize,
      maxThreads: this.config.poolSize,
      idleTimeout: Infinity,
      workerData,
    });
  }

  async process(batch: LineBatch): Promise<TransformResult> {
    const pool = this.pool;
    if (pool === undefined) throw new PluginLoadError(`${this.label}: process() before start()`);
    const count = lineCount(batch);
    const meta = { ...batch.meta, format: 'json' as const };
    if (count <= 0) return { out: { data: batch.data, offsets: batch.offsets, meta } };

    // The worker gets the batch's buffers by transfer (the caller gave us ownership). A view into
    // a larger or shared buffer is copied first, since transferring would take its neighbours.
    // The copy kept here is what a dying or hung worker cannot give back: without it, such a
    // batch would be lost. One memcpy per batch; see docs/plugin-abi.md.
    const original = { data: batch.data.slice(), offsets: batch.offsets.slice() };
    const task: WorkerTask = { data: ownedView(batch.data), offsets: ownedView(batch.offsets) };
    const transferList = task.data.buffer === task.offsets.buffer ? [task.data.buffer] : [task.data.buffer, task.offsets.buffer];
    const policy: FailurePolicy = !this.config.dropOnError ? 'forwarded' : this.config.rerouteDropped ? 'rerouted' : 'dropped';

    let result: WorkerResult;
    try {
      result = (await pool.run(task, {
        transferList: transferList as ArrayBuffer[],
        signal: AbortSignal.timeout(this.config.timeoutSecs * 1000),
      })) as WorkerResult;
    } catch (error) {
      const reason = isAbort(error) ? 'timeout' : 'worker_failed';
      workerFailed(this.context.telemetry, this.context.id, count, reason, error, policy);
      if (!this.config.dropOnError) return { out: { ...original, meta } };
      return { out: null, dropped: this.config.rerouteDropped ? { ...original, meta: batch.meta } : null };
    }

    if (result.dropped > 0) pluginDropped(this.context.telemetry, this.context.id, result.dropped);
    pluginLinesFailed(this.context.telemetry, this.context.id, result.failures, count, policy, result.firstError);
    const out: LineBatch | null = result.offsets.length > 1 ? { data: result.data, offsets: result.offsets, meta } : null;
    if (!this.config.rerouteDropped || !this.config.dropOnError || result.failures.length === 0) return { out };
    return { out, dropped: pick(original, result.failures.map((f) => f.index), batch.meta) };
  }

  async stop(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    if (pool === undefined) return;
    await pool.close();
    await pool.destroy();
  }
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
