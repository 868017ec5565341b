#!/usr/bin/env node
/**
 * Micro benchmarks mirroring src/, run on the benchmark corpus in this one process, single thread:
 * the compiled project code from ../dist/ (run `npm run build` first). A bench whose module does
 * not exist (yet) is reported as skipped with the reason, never as a failure of the others.
 *
 *   node benchmarks/micro.js FILE [--only NAME[,NAME]] [--passes N]
 *
 * prints one JSON object: `{ results: [{ name, lines, bytes, seconds, note? } | { name, skipped }] }`.
 * `seconds` is the median over the timed passes, each over the whole corpus after one warm-up pass
 * over its first 5%.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const DIST = join(ROOT, 'dist');
const PLUGIN = join(ROOT, 'plugins/json_parser/json_parser.wasm');
/** Lines per batch where the source does not say (it exports MAX_BATCH_LINES). */
const FALLBACK_BATCH_LINES = 1000;
/** Bytes per read where the source does not say (it exports READ_CHUNK_BYTES). */
const FALLBACK_READ_BYTES = 256 * 1024;

/** A pass-through ABI v1 plugin: the runner's own cost per line, with no work in the guest. */
const IDENTITY_WAT = `(module
  (memory (export "memory") 2)
  (func (export "logwasm_abi_version") (result i32) (i32.const 1))
  (func (export "logwasm_result") (result i32) (i32.const 16))
  (func (export "alloc") (param $len i32) (result i32)
    (if (result i32) (i32.gt_u (local.get $len) (i32.const 65536)) (then (i32.const 0)) (else (i32.const 1024))))
  (func (export "dealloc") (param i32 i32))
  (func (export "process_log") (param $ptr i32) (param $len i32) (result i32)
    (i32.store (i32.const 16) (local.get $ptr))
    (i32.store (i32.const 20) (local.get $len))
    (i32.const 0)))`;

async function importDist(path) {
  try {
    return await import(join(DIST, path));
  } catch (error) {
    return { __missing: `dist/${path}: ${error.code ?? error.message}` };
  }
}

/** The corpus as whole-file bytes plus line boundaries (delimiters excluded). */
function loadCorpus(file) {
  const bytes = readFileSync(file);
  const starts = [];
  const ends = [];
  let from = 0;
  for (let nl = bytes.indexOf(10); nl !== -1; nl = bytes.indexOf(10, from)) {
    starts.push(from);
    ends.push(nl);
    from = nl + 1;
  }
  return { bytes, starts: Uint32Array.from(starts), ends: Uint32Array.from(ends), lines: starts.length, lineBytes: bytes.length - starts.length };
}

/** LineBatch-shaped batches (`data` without delimiters, `offsets`) of `size` lines over lines [0, limit). */
function makeBatches(corpus, size, limit = corpus.lines) {
  const batches = [];
  for (let first = 0; first < limit; first += size) {
    const last = Math.min(limit, first + size);
    let total = 0;
    for (let i = first; i < last; i++) total += corpus.ends[i] - corpus.starts[i];
    const data = new Uint8Array(total);
    const offsets = new Uint32Array(last - first + 1);
    let at = 0;
    for (let i = first; i < last; i++) {
      data.set(corpus.bytes.subarray(corpus.starts[i], corpus.ends[i]), at);
      at += corpus.ends[i] - corpus.starts[i];
      offsets[i - first + 1] = at;
    }
    batches.push({ data, offsets });
  }
  return batches;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Runs `pass(batches)` once on a warm-up slice, then `passes` times on all; checks its line count. */
function timed(name, passes, warm, all, expectLines, pass, note) {
  pass(warm);
  const times = [];
  let lines = 0;
  for (let i = 0; i < passes; i++) {
    const started = performance.now();
    lines = pass(all);
    times.push((performance.now() - started) / 1000);
  }
  if (lines !== expectLines) throw new Error(`${name}: counted ${lines} lines, expected ${expectLines}`);
  return { name, seconds: median(times), note };
}

async function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { only: { type: 'string' }, passes: { type: 'string' } },
  });
  const file = positionals[0];
  if (file === undefined) throw new Error('usage: micro.js FILE [--only NAME] [--passes N]');
  const passes = Number(values.passes ?? 3);
  const only = values.only === undefined ? undefined : new Set(values.only.split(','));
  const wanted = (name) => only === undefined || only.has(name);

  const corpus = loadCorpus(file);
  const fileSource = await importDist('sources/file/index.js');
  const batchLines = fileSource.MAX_BATCH_LINES ?? FALLBACK_BATCH_LINES;
  const readBytes = fileSource.READ_CHUNK_BYTES ?? FALLBACK_READ_BYTES;
  const warmLines = Math.max(1, Math.floor(corpus.lines / 20));
  const batches = makeBatches(corpus, batchLines);
  const warmBatches = makeBatches(corpus, batchLines, warmLines);
  const results = [];
  const add = (result) => results.push({ lines: corpus.lines, bytes: corpus.lineBytes, ...result });
  const skip = (name, skipped) => results.push({ name, skipped });

  // Line splitting: the file source's LineSplitter over the file in read-sized chunks.
  if (wanted('split_lines')) {
    const lines = await importDist('sources/file/lines.js');
    if (lines.LineSplitter === undefined) skip('split_lines', lines.__missing ?? 'LineSplitter not exported');
    else {
      const split = (bytes) => {
        const splitter = new lines.LineSplitter({ delimiter: Uint8Array.of(10), maxLineBytes: 102_400, maxBatchLines: batchLines });
        let count = 0;
        for (let at = 0; at < bytes.length; at += readBytes) {
          for (const piece of splitter.push(bytes.subarray(at, at + readBytes)).pieces) count += piece.offsets.length - 1;
        }
        for (const piece of splitter.flush().pieces) count += piece.offsets.length - 1;
        return count;
      };
      const warm = corpus.bytes.subarray(0, corpus.ends[warmLines - 1] + 1);
      add(timed('split_lines', passes, warm, corpus.bytes, corpus.lines, split, `LineSplitter.push, ${readBytes / 1024} KiB reads, ${batchLines}-line pieces`));
    }
  }

  // wasm-memory copies alone: each line into guest memory and back out, per line and per batch.
  if (wanted('wasm_copy_per_line') || wanted('wasm_copy_per_batch')) {
    const memory = new WebAssembly.Memory({ initial: 64 });
    const inputPtr = 1024;
    const copyPerLine = (list) => {
      let count = 0;
      for (const { data, offsets } of list) {
        const guest = new Uint8Array(memory.buffer);
        const out = new Uint8Array(data.byteLength);
        for (let i = 0; i + 1 < offsets.length; i++) {
          const line = data.subarray(offsets[i], offsets[i + 1]);
          guest.set(line, inputPtr);
          out.set(guest.subarray(inputPtr, inputPtr + line.byteLength), offsets[i]);
          count++;
        }
      }
      return count;
    };
    const copyPerBatch = (list) => {
      let count = 0;
      for (const { data, offsets } of list) {
        const guest = new Uint8Array(memory.buffer);
        const out = new Uint8Array(data.byteLength);
        guest.set(data, inputPtr);
        out.set(guest.subarray(inputPtr, inputPtr + data.byteLength));
        count += offsets.length - 1;
      }
      return count;
    };
    if (wanted('wasm_copy_per_line')) add(timed('wasm_copy_per_line', passes, warmBatches, batches, corpus.lines, copyPerLine, 'one copy in and one out per line (the runner pattern), no guest call'));
    if (wanted('wasm_copy_per_batch')) add(timed('wasm_copy_per_batch', passes, warmBatches, batches, corpus.lines, copyPerBatch, `one copy in and one out per ${batchLines}-line batch, no guest call`));
  }

  // The real runner (src/wasm-memory/runner.ts) with a pass-through plugin and with json_parser.
  const runnerNames = ['runner_identity_per_line', 'runner_identity_per_batch', 'wasm_stage'];
  if (runnerNames.some(wanted)) {
    const runnerModule = await importDist('wasm-memory/runner.js');
    if (runnerModule.PluginRunner === undefined) {
      for (const name of runnerNames.filter(wanted)) skip(name, runnerModule.__missing ?? 'PluginRunner not exported');
    } else {
      const { PluginRunner } = runnerModule;
      const run = (runner) => (list) => {
        let count = 0;
        for (const { data, offsets } of list) {
          const outcome = runner.processBatch(data, offsets);
          if (outcome.failures.length > 0) throw new Error(`plugin failed: ${outcome.firstError}`);
          count += outcome.offsets.length - 1;
        }
        return count;
      };
      if (wanted('runner_identity_per_line') || wanted('runner_identity_per_batch')) {
        const wabt = await (await import('wabt')).default();
        const identity = new WebAssembly.Module(wabt.parseWat('identity.wat', IDENTITY_WAT).toBinary({}).buffer);
        if (wanted('runner_identity_per_line')) {
          const runner = new PluginRunner(identity);
          const pair = new Uint32Array(2);
          const perLine = (list) => {
            let count = 0;
            for (const { data, offsets } of list) {
              for (let i = 0; i + 1 < offsets.length; i++) {
                pair[1] = offsets[i + 1] - offsets[i];
                const outcome = runner.processBatch(data.subarray(offsets[i], offsets[i + 1]), pair);
                if (outcome.failures.length > 0) throw new Error(`plugin failed: ${outcome.firstError}`);
                count += outcome.offsets.length - 1;
              }
            }
            return count;
          };
          add(timed('runner_identity_per_line', passes, warmBatches, batches, corpus.lines, perLine, 'PluginRunner.processBatch, one line per call, pass-through plugin'));
        }
        if (wanted('runner_identity_per_batch')) {
          add(timed('runner_identity_per_batch', passes, warmBatches, batches, corpus.lines, run(new PluginRunner(identity)), `PluginRunner.processBatch, ${batchLines} lines per call, pass-through plugin`));
        }
      }
      if (wanted('wasm_stage')) {
        const module = new WebAssembly.Module(readFileSync(PLUGIN));
        add(timed('wasm_stage', passes, warmBatches, batches, corpus.lines, run(new PluginRunner(module)), `json_parser.wasm through PluginRunner, ${batchLines} lines per call, one thread`));
      }
    }
  }

  // OTLP encoding: what the sink's encoder thread does per record (BatchEncoder: one encoded
  // ResourceLogs per batch, JSON bodies transcoded from the bytes). benchmarks/micro-otlp.js
  // compares it with the old RecordMapper + OTel serializer path and times the thread pool.
  const otlpNames = ['otlp_encode_json', 'otlp_encode_text'];
  if (otlpNames.some(wanted)) {
    const encoding = await importDist('sinks/opentelemetry/encode.js');
    if (encoding.BatchEncoder === undefined) {
      for (const name of otlpNames.filter(wanted)) skip(name, encoding.__missing ?? 'BatchEncoder not exported');
    } else {
      const encode = (format) => (list) => {
        const encoder = new encoding.BatchEncoder('logwasm');
        const meta = { sourceId: 'bench', sourceType: 'file', file: file, host: 'bench-host', timestampMs: Date.now(), format };
        let count = 0;
        let encoded = 0;
        for (const { data, offsets } of list) {
          encoded += encoder.encode({ data, offsets, meta }).bytes.byteLength;
          count += offsets.length - 1;
        }
        if (encoded === 0) throw new Error('encoder produced nothing');
        return count;
      };
      if (wanted('otlp_encode_json')) add(timed('otlp_encode_json', passes, warmBatches, batches, corpus.lines, encode('json'), `BatchEncoder.encode (JSON lines -> kvlist body, protobuf), ${batchLines} records per batch`));
      if (wanted('otlp_encode_text')) add(timed('otlp_encode_text', passes, warmBatches, batches, corpus.lines, encode('text'), `BatchEncoder.encode (string body, protobuf), ${batchLines} records per batch`));
    }
  }

  process.stdout.write(`${JSON.stringify({ lines: corpus.lines, bytes: corpus.lineBytes, results })}\n`);
}

await main();
