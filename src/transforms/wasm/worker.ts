/**
 * A worker of the wasm transform's pool: instantiates the plugin once, then runs whole batches.
 * The result's buffers are transferred back, not copied.
 */
import { move, transferableSymbol, valueSymbol, workerData } from 'piscina';
import { PluginRunner } from '../../wasm-memory/runner.js';
import type { WorkerInit, WorkerResult, WorkerTask } from './protocol.js';

const init = workerData as WorkerInit;
const runner = new PluginRunner(init.module, {
  dropOnError: init.dropOnError,
  label: init.label,
  initOptions: init.initOptions,
  maxOutputBytes: init.maxOutputBytes,
  heapMemorySize: init.heapMemorySize,
});

export default function processBatch(task: WorkerTask): unknown {
  const outcome: WorkerResult = runner.processBatch(task.data, task.offsets, task.perLine === true ? 'per_line' : 'auto');
  // piscina transfers (instead of copying) only what `move` marked; the two symbols name the
  // buffers to transfer and the value to post.
  return move({
    [transferableSymbol]: [outcome.data.buffer, outcome.offsets.buffer],
    [valueSymbol]: outcome,
  } as unknown as ArrayBuffer);
}
