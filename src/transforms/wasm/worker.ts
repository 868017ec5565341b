/**
 * A worker of the wasm transform's pool: instantiates the plugin once, then runs whole batches.
 * The result's buffers are transferred back, not copied.
 */
import { move, transferableSymbol, valueSymbol, workerData } from 'piscina';
import { BufferReleaser } from '../../buffer-release.js';
import { FluentBitRunner } from '../../wasm-memory/fluent-bit.js';
import { PluginRunner, type BatchRunner } from '../../wasm-memory/runner.js';
import type { WorkerInit, WorkerResult, WorkerTask } from './protocol.js';

const init = workerData as WorkerInit;
const common = { dropOnError: init.dropOnError, label: init.label, maxOutputBytes: init.maxOutputBytes, heapMemorySize: init.heapMemorySize };
const runner: BatchRunner =
  init.abi === 'fluent-bit'
    ? new FluentBitRunner(init.module, { ...common, functionName: init.functionName, wasi: init.wasi, preopens: init.wasiPreopens })
    : new PluginRunner(init.module, { ...common, initOptions: init.initOptions, wasi: init.wasi, preopens: init.wasiPreopens });

const releaser = new BufferReleaser();

export default function processBatch(task: WorkerTask): unknown {
  const outcome: WorkerResult = runner.processBatch(task.data, task.offsets, task.perLine === true ? 'per_line' : 'auto', task.context);
  releaser.released(task.data.byteLength);
  // piscina transfers (instead of copying) only what `move` marked; the two symbols name the
  // buffers to transfer and the value to post.
  return move({
    [transferableSymbol]: [outcome.data.buffer, outcome.offsets.buffer],
    [valueSymbol]: outcome,
  } as unknown as ArrayBuffer);
}
