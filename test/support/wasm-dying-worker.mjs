// A wasm transform worker for tests (WasmTransformConfig.workerScript): the real compiled worker,
// except that a task whose lines contain KILL_MARKER ends its thread with process.exit, as a
// worker that dies (not hangs, not traps) would. Needs `npm run build` (dist/).
import processBatch from '../../dist/transforms/wasm/worker.js';

export const KILL_MARKER = 'kill-this-worker';
const marker = Buffer.from(KILL_MARKER);

export default function dyingWorker(task) {
  if (Buffer.from(task.data.buffer, task.data.byteOffset, task.data.byteLength).includes(marker)) process.exit(7);
  return processBatch(task);
}
