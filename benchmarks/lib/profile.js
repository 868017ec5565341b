/**
 * Summarizes V8 `.cpuprofile` files written by `node --cpu-prof` (one per thread: the main thread
 * and each worker thread) as "where the time goes": per thread, the functions with the most self
 * time, and totals by category (wasm code, the project's own code, node internals, dependencies,
 * GC, idle).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';

function category(frame) {
  const { functionName, url } = frame;
  if (functionName === '(garbage collector)') return 'gc';
  if (functionName === '(idle)' || functionName === '(program)' || functionName === '(root)') return functionName.slice(1, -1);
  // piscina's worker waits for tasks in Atomics.wait: blocked, not running.
  if (functionName === 'atomicsWaitLoop' || functionName === 'wait') return 'idle';
  if (url.startsWith('wasm://') || /^\$?wasm-function/.test(functionName)) return 'wasm';
  if (url.includes('/node_modules/')) return 'dependencies';
  if (url.includes('/dist/')) return 'logwasm';
  if (url.startsWith('node:') || url === '') return 'node/V8 built-ins';
  return 'other';
}

function label(frame) {
  const where = frame.url === '' ? '' : ` ${basename(frame.url)}:${frame.lineNumber + 1}`;
  return `${frame.functionName || '(anonymous)'}${where}`;
}

/** Self time per function of one profile, in ms, and totals per category. */
export function summarizeProfile(profile) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfMs = new Map();
  // timeDeltas[i] is the time before sample i; attribute it to that sample's node.
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i];
    selfMs.set(id, (selfMs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
  }
  const functions = new Map();
  const categories = new Map();
  let totalMs = 0;
  for (const [id, ms] of selfMs) {
    const frame = byId.get(id).callFrame;
    const key = label(frame);
    const cat = category(frame);
    functions.set(key, { name: key, category: cat, ms: (functions.get(key)?.ms ?? 0) + ms });
    categories.set(cat, (categories.get(cat) ?? 0) + ms);
    totalMs += ms;
  }
  const busyMs = totalMs - (categories.get('idle') ?? 0);
  return {
    totalMs,
    busyMs,
    categories: Object.fromEntries([...categories].sort((a, b) => b[1] - a[1])),
    top: [...functions.values()].filter((f) => f.category !== 'idle').sort((a, b) => b.ms - a.ms),
  };
}

/** Summaries of every `.cpuprofile` in `dir`, busiest thread first, each with its `top` cut to `limit`. */
export function summarizeProfiles(dir, limit = 12) {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.cpuprofile'))
    .map((name) => {
      const summary = summarizeProfile(JSON.parse(readFileSync(join(dir, name), 'utf8')));
      // CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile: thread 0 is the main thread.
      const thread = Number(name.split('.')[4]);
      return { thread: thread === 0 ? 'main' : `worker ${thread}`, ...summary, top: summary.top.slice(0, limit) };
    })
    .sort((a, b) => b.busyMs - a.busyMs);
}
