#!/usr/bin/env node
/**
 * OTLP encoding cost per record, before and after the sink's own encoder, on batches of 1000
 * seeded JSON lines of ~210 bytes (benchmarks/generate.js). Runs the compiled code in ../dist/
 * (`npm run build` first).
 *
 *   node benchmarks/micro-otlp.js [--batches N] [--passes N] [--json]
 *
 * Rows (µs per record, median of the passes; single-thread rows are CPU time, which a busy machine
 * inflates less than wall time; the garbage collector's threads count too):
 * - `before_map_serialize`: RecordMapper.map + the OTel ProtobufLogsSerializer, the path the sink
 *   used to run on the main thread.
 * - `encoder`: BatchEncoder.encode, what an encoding worker now spends per record.
 * - `join`: requestBody over whole encoded batches, the main thread's share per request.
 * - `pool_tN`: batches through an EncodePool of N threads (transfer in and out) plus `join`:
 *   `main` is the main thread's CPU time (Linux; elsewhere its event-loop busy time), `cpu` the
 *   process's CPU time over all threads, `wall` the elapsed time; all per record.
 * - `reference_json_parse`: JSON.parse of every line, for scale: the old path paid it and more.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createLineGenerator } from './generate.js';

const DIST = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist');
const BATCH_LINES = 1000;
/** Batches handed to a pool before waiting for results: the sink's in-flight window. */
const POOL_WINDOW = 4;

const { values } = parseArgs({
  options: {
    batches: { type: 'string', default: '100' },
    passes: { type: 'string', default: '5' },
    json: { type: 'boolean', default: false },
  },
});
const batchCount = Number(values.batches);
const passes = Number(values.passes);

const { BatchEncoder, requestBody } = await import(join(DIST, 'sinks/opentelemetry/encode.js'));
const { RecordMapper } = await import(join(DIST, 'sinks/opentelemetry/mapping.js'));
const { EncodePool } = await import(join(DIST, 'sinks/opentelemetry/pool.js'));
const { ProtobufLogsSerializer } = await import('@opentelemetry/otlp-transformer');

const encoder = new TextEncoder();
const generator = createLineGenerator();
const meta = {
  sourceId: 'bench',
  sourceType: 'file',
  file: '/var/log/bench/app.log',
  host: 'bench-host',
  timestampMs: Date.now(),
  format: 'json',
};

/** Seeded batches of BATCH_LINES lines, each owning its buffers. */
function makeBatches() {
  const batches = [];
  let bytes = 0;
  for (let b = 0; b < batchCount; b++) {
    const lines = Array.from({ length: BATCH_LINES }, () => encoder.encode(generator.next()));
    const total = lines.reduce((sum, line) => sum + line.byteLength, 0);
    const data = new Uint8Array(total);
    const offsets = new Uint32Array(BATCH_LINES + 1);
    let at = 0;
    lines.forEach((line, i) => {
      data.set(line, at);
      at += line.byteLength;
      offsets[i + 1] = at;
    });
    bytes += total;
    batches.push({ data, offsets, meta });
  }
  return { batches, averageLine: bytes / (batchCount * BATCH_LINES) };
}

const { batches, averageLine } = makeBatches();
const records = batchCount * BATCH_LINES;
const copy = (batch) => ({ data: batch.data.slice(), offsets: batch.offsets.slice(), meta: batch.meta });

/**
 * CPU seconds of the main thread alone (Linux: /proc/self/task/PID/stat, utime + stime in clock
 * ticks of 10 ms), or undefined elsewhere. Node 20 has no per-thread CPU clock of its own, and
 * event-loop utilization counts time the thread was runnable but descheduled as busy.
 */
function mainThreadCpuSeconds() {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

function median(list) {
  const sorted = [...list].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/**
 * Median µs per record of `run()` over the passes, after one warm-up run. CPU time, not wall
 * time: on a shared machine the process is often descheduled, which says nothing of the code.
 */
function timeSync(run) {
  run();
  const times = [];
  for (let p = 0; p < passes; p++) {
    const start = process.cpuUsage();
    run();
    const spent = process.cpuUsage(start);
    times.push((spent.user + spent.system) / records);
  }
  return median(times);
}

const results = [];

results.push({
  name: 'before_map_serialize',
  us_per_record: timeSync(() => {
    const mapper = new RecordMapper('logwasm');
    let bytes = 0;
    for (const batch of batches) bytes += ProtobufLogsSerializer.serializeRequest(mapper.map(batch)).byteLength;
    if (bytes === 0) throw new Error('nothing serialized');
  }),
  note: 'RecordMapper.map + ProtobufLogsSerializer, main thread (the old path)',
});

const lineTexts = batches.flatMap((batch) =>
  Array.from({ length: BATCH_LINES }, (_, i) => Buffer.from(batch.data.buffer, batch.offsets[i], batch.offsets[i + 1] - batch.offsets[i]).toString()),
);
results.push({
  name: 'reference_json_parse',
  us_per_record: timeSync(() => {
    let keys = 0;
    for (const text of lineTexts) keys += Object.keys(JSON.parse(text)).length;
    if (keys === 0) throw new Error('nothing parsed');
  }),
  note: 'JSON.parse per line alone, for scale',
});

const batchEncoder = new BatchEncoder('logwasm');
let encoded = [];
results.push({
  name: 'encoder',
  us_per_record: timeSync(() => {
    encoded = batches.map((batch) => batchEncoder.encode(batch));
  }),
  note: 'BatchEncoder.encode: the worker thread per record',
});

results.push({
  name: 'join',
  us_per_record: timeSync(() => {
    let bytes = 0;
    for (const batch of encoded) bytes += requestBody([{ batch, from: 0, to: BATCH_LINES }]).byteLength;
    if (bytes === 0) throw new Error('nothing joined');
  }),
  note: 'requestBody per 1000-record request: the main thread per record',
});

async function poolRun(threads) {
  const pool = new EncodePool({
    serviceName: 'logwasm',
    threads,
    onFallback: (reason, detail) => {
      throw new Error(`encoded on the main thread (${reason}): ${detail}`);
    },
  });
  await pool.start();
  if (!pool.threaded) throw new Error('no worker script: run npm run build');
  const once = async () => {
    // Copies are made before timing: the pool takes ownership of (detaches) what it encodes.
    const inputs = batches.map(copy);
    const elu = performance.eventLoopUtilization();
    const cpu = process.cpuUsage();
    const mainCpu = mainThreadCpuSeconds();
    const start = performance.now();
    let next = 0;
    let bytes = 0;
    const lane = async () => {
      while (next < inputs.length) {
        const batch = await pool.encode(inputs[next++]);
        bytes += requestBody([{ batch, from: 0, to: BATCH_LINES }]).byteLength;
      }
    };
    await Promise.all(Array.from({ length: POOL_WINDOW }, lane));
    const wall = performance.now() - start;
    const used = performance.eventLoopUtilization(elu);
    const spent = process.cpuUsage(cpu);
    const mainSpent = mainCpu === undefined ? undefined : mainThreadCpuSeconds() - mainCpu;
    if (bytes === 0) throw new Error('nothing encoded');
    return {
      busy: (used.active * 1000) / records,
      main: mainSpent === undefined ? (used.active * 1000) / records : (mainSpent * 1e6) / records,
      cpu: (spent.user + spent.system) / records,
      wall: (wall * 1000) / records,
    };
  };
  await once();
  const runs = [];
  for (let p = 0; p < passes; p++) runs.push(await once());
  await pool.close();
  return {
    name: `pool_t${threads}`,
    us_per_record: median(runs.map((r) => r.main)),
    main_us_per_record: median(runs.map((r) => r.main)),
    cpu_us_per_record: median(runs.map((r) => r.cpu)),
    wall_us_per_record: median(runs.map((r) => r.wall)),
    main_busy_us_per_record: median(runs.map((r) => r.busy)),
    note: `EncodePool(${threads} thread${threads === 1 ? '' : 's'}) + join, ${POOL_WINDOW} batches in flight; main = main thread CPU (busy incl. descheduled: ${median(runs.map((r) => r.busy)).toFixed(3)})`,
  };
}

for (const threads of [...new Set([1, availableParallelism()])]) results.push(await poolRun(threads));

const summary = { records, batch_lines: BATCH_LINES, average_line_bytes: Math.round(averageLine), results };
if (values.json) {
  process.stdout.write(`${JSON.stringify(summary)}\n`);
} else {
  const fmt = (n) => (n === undefined ? '' : n.toFixed(3));
  process.stdout.write(`${records} records in batches of ${BATCH_LINES}, ~${summary.average_line_bytes} B per line; µs per record\n`);
  process.stdout.write('| case | main thread | all threads CPU | wall | note |\n|---|---|---|---|---|\n');
  for (const r of results) {
    const main = r.main_us_per_record ?? r.us_per_record;
    const cpu = r.cpu_us_per_record ?? r.us_per_record;
    process.stdout.write(`| ${r.name} | ${fmt(main)} | ${fmt(cpu)} | ${fmt(r.wall_us_per_record)} | ${r.note} |\n`);
  }
}
