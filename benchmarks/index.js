#!/usr/bin/env node
/**
 * `npm run bench`: the benchmark suite of issue 3. See benchmarks/README.md for what each row means.
 *
 *   node benchmarks/index.js [--quick] [--json] [--only NAME[,NAME]] [--idle] [--long]
 *                            [--lines N] [--runs N] [--long-lines N] [--out FILE]
 *
 * A full run (no option) writes benchmarks/RESULTS.md; any selection or size option prints the
 * markdown instead (or writes it to --out FILE), so a partial run never replaces the full results.
 */
import { fork, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, hostname, loadavg, release, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DEFAULT_LINES, DEFAULT_SEED, makeBenchDir, writeCorpus, createLineGenerator } from './generate.js';
import { cpuSecondsOf, hasGnuTime, median, runMeasured, statusKiB, waitFor } from './lib/measure.js';
import { summarizeProfiles } from './lib/profile.js';
import { renderMarkdown } from './lib/report.js';

const BENCH = dirname(fileURLToPath(import.meta.url));
const ROOT = join(BENCH, '..');
const CLI = join(ROOT, 'dist/cli.js');
/** The node flags of the `logwasm` bin's `#!` line (src/cli.ts): the benchmark runs the CLI as users do. */
// The node flags of the `logwasm` bin's `#!` line (src/cli.ts), so the benchmark runs logwasm as users do.
const CLI_NODE_ARGS = ['--max-semi-space-size=1'];
const NATIVE_DIR = join(BENCH, 'native-json-parser');
const NATIVE_BIN = join(NATIVE_DIR, 'target/release/native-json-parser');
const RESULTS = join(BENCH, 'RESULTS.md');

/** Lines of the corpus in --quick mode. */
export const QUICK_LINES = 100_000;
/** Lines of the flat-RSS run behind --long. */
export const LONG_LINES = 10_000_000;
/** Timed runs per end-to-end case and reference (median reported). */
export const DEFAULT_RUNS = 3;
/** A replay that uses no CPU for this long is stuck: it is stopped and its case reported as failed. */
export const STALL_SECONDS = 30;
/** Files tailed by the idle case. */
export const IDLE_FILES = 1000;
/**
 * Seconds of CPU measurement in the idle case (after start-up has settled, see below): one whole
 * period of the file source's slowest periodic jobs (GLOB_FULL_RESCAN_MS, and IDLE_CHECK_MS for the
 * size checks), so that it reads their average. A 10 s window read 0.6 % or 1.1 % for the same
 * build, as it did or did not hold the minute's full glob rescan (30-60 ms of CPU).
 */
export const IDLE_SECONDS = 60;
/**
 * Start-up (reading the 1,000 files once, through the wasm transform) has settled when a whole
 * second passes with at most this much CPU. A fixed 3 s wait was not enough on this VM in its slow
 * phases: start-up took ~6 s there, and its tail counted as idle CPU (4 % instead of 0.7 %).
 */
export const IDLE_SETTLED_CPU_PERCENT = 2;
/** The idle case gives up waiting for start-up to settle after this long (and measures anyway). */
export const IDLE_SETTLE_MAX_SECONDS = 60;
/** The end-to-end cases, each a config in benchmarks/cases/<name>/vector.toml. */
export const E2E_CASES = [
  { name: 'file_wasm_otlp', otlp: true, what: 'file → wasm json_parser → OTLP/HTTP protobuf → receiver (decodes, counts)' },
  { name: 'file_wasm_blackhole', otlp: false, what: 'file → wasm json_parser → blackhole' },
  { name: 'file_otlp', otlp: true, what: 'file → OTLP/HTTP protobuf (no transform: text bodies)' },
];
export const REFERENCES = ['wc', 'native', 'node'];
const MICRO = 'micro';
/** Micro benches by name (benchmarks/micro.js); `--only` takes these too. */
export const MICRO_BENCHES = [
  'wasm_stage',
  'split_lines',
  'wasm_copy_per_line',
  'wasm_copy_per_batch',
  'runner_identity_per_line',
  'runner_identity_per_batch',
  'otlp_encode_json',
  'otlp_encode_text',
];
const ALL = [...E2E_CASES.map((c) => c.name), ...REFERENCES, MICRO, 'profile', 'idle', 'long'];
const KNOWN = [...ALL, ...MICRO_BENCHES];

/** Targets of issue 3. */
export const TARGETS = {
  e2eLinesPerSecond: 300_000,
  wasmVsNative: 1.3,
  peakRssMiB: 150,
  idleCpuPercent: 1,
  /** "Flat": the peak of the second half of the 10M-line run is within this factor of the first half's. */
  flatGrowth: 1.1,
};

function log(message) {
  process.stderr.write(`[bench] ${message}\n`);
}

function parseOptions() {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean' },
      json: { type: 'boolean' },
      only: { type: 'string' },
      idle: { type: 'boolean' },
      long: { type: 'boolean' },
      'long-lines': { type: 'string' },
      lines: { type: 'string' },
      runs: { type: 'string' },
      out: { type: 'string' },
    },
  });
  let selected = ALL.filter((name) => name !== 'long' && !(values.quick && (name === 'idle' || name === 'profile')));
  // --idle runs the idle case alone (it is part of the full run anyway); --long adds the 10M-line
  // run to whatever else is selected, so `npm run bench -- --long` is the full suite plus it.
  if (values.idle) selected = ['idle'];
  if (values.long) selected.push('long');
  if (values.only !== undefined) {
    selected = values.only.split(',').map((s) => s.trim()).filter(Boolean);
    const unknown = selected.filter((name) => !KNOWN.includes(name));
    if (unknown.length > 0) throw new Error(`--only: unknown ${unknown.join(', ')}; known: ${KNOWN.join(', ')}`);
  }
  const lines = values.lines !== undefined ? Number(values.lines) : values.quick ? QUICK_LINES : DEFAULT_LINES;
  const runs = values.runs !== undefined ? Number(values.runs) : values.quick ? 1 : DEFAULT_RUNS;
  if (!Number.isSafeInteger(lines) || lines <= 0) throw new Error(`--lines takes a positive integer, got ${values.lines}`);
  if (!Number.isSafeInteger(runs) || runs <= 0) throw new Error(`--runs takes a positive integer, got ${values.runs}`);
  const full = !values.quick && values.only === undefined && !values.idle && values.lines === undefined && values.runs === undefined;
  const longLines = values['long-lines'] !== undefined ? Number(values['long-lines']) : LONG_LINES;
  return { selected: new Set(selected), lines, runs, longLines, quick: Boolean(values.quick), json: Boolean(values.json), out: values.out ?? (full ? RESULTS : undefined) };
}

/** Starts benchmarks/otlp-receiver.js as a separate process; resolves with `{ url, stats(), close() }`. */
async function startReceiver() {
  const child = fork(join(BENCH, 'otlp-receiver.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const waiting = new Map();
  let port;
  child.on('message', (message) => {
    if (message.type === 'listening') port = message.port;
    if (message.type === 'stats') {
      const resolve = waiting.get('stats');
      waiting.delete('stats');
      resolve?.(message);
    }
  });
  await waitFor('the OTLP receiver to listen', () => port, 10_000, () => `exit code ${child.exitCode}`);
  return {
    url: `http://127.0.0.1:${port}`,
    pid: child.pid,
    stats: () =>
      new Promise((resolve) => {
        waiting.set('stats', resolve);
        child.send({ type: 'stats' });
      }),
    close: () =>
      new Promise((resolve) => {
        child.once('exit', resolve);
        child.send({ type: 'close' });
      }),
  };
}

const REPLAY_DONE = /replay done: (\d+) lines, (\d+) bytes in ([\d.]+) s \((\d+) lines\/s\); (\d+) errors, (\d+) undelivered/;

/** One `logwasm replay` of a case over the corpus; returns the measured run and what was verified. */
async function replayOnce(kase, corpus, workDir, receiver, onSample, nodeArgs = CLI_NODE_ARGS) {
  const dataDir = mkdtempSync(join(workDir, `${kase.name}-data-`));
  const env = { ...process.env, BENCH_INPUT: corpus.file, BENCH_DATA_DIR: dataDir, BENCH_OTLP: receiver?.url ?? '' };
  const before = kase.otlp ? (await receiver.stats()).records : 0;
  const run = await runMeasured(process.execPath, [...nodeArgs, CLI, 'replay', '--config', join(BENCH, 'cases', kase.name, 'vector.toml')], {
    cwd: ROOT,
    env,
    tmpDir: workDir,
    onSample,
    stallSeconds: STALL_SECONDS,
  });
  rmSync(dataDir, { recursive: true, force: true });
  const done = REPLAY_DONE.exec(run.stderr);
  const problems = [];
  if (run.stalled) problems.push(`no CPU used for ${STALL_SECONDS} s: stopped with SIGTERM`);
  if (run.code !== 0) problems.push(`exit ${run.code ?? run.signal}`);
  if (done === null) problems.push('no "replay done" line');
  else {
    if (Number(done[1]) !== corpus.lines) problems.push(`logwasm read ${done[1]} lines of ${corpus.lines}`);
    if (Number(done[6]) !== 0) problems.push(`${done[6]} undelivered`);
    if (Number(done[5]) !== 0) problems.push(`${done[5]} errors`);
  }
  if (kase.otlp) {
    const stats = await receiver.stats();
    const received = stats.records - before;
    if (received !== corpus.lines) problems.push(`receiver counted ${received} records of ${corpus.lines}`);
    if (stats.badRequests > 0) problems.push(`receiver rejected ${stats.badRequests} requests so far`);
  }
  if (problems.length > 0) {
    const tail = run.stderr.trim().split('\n').slice(-5).join(' | ');
    problems.push(`stderr tail: ${tail.slice(0, 600)}`);
  }
  return { ...run, verified: problems.length === 0, problems };
}

async function runE2e(kase, corpus, workDir, runs, receiver) {
  if (!existsSync(CLI)) return { name: kase.name, what: kase.what, skipped: 'dist/cli.js missing: run npm run build' };
  const results = [];
  for (let i = 0; i < runs; i++) {
    log(`${kase.name}: run ${i + 1}/${runs}`);
    const result = await replayOnce(kase, corpus, workDir, receiver);
    results.push(result);
    if (!result.verified) {
      log(`${kase.name}: ${result.problems.join('; ')}`);
      break; // A broken pipeline gives no number worth a median.
    }
  }
  const verified = results.every((r) => r.verified);
  return {
    name: kase.name,
    what: kase.what,
    runs: results.length,
    wallSeconds: median(results.map((r) => r.wallSeconds)),
    maxRssKiB: Math.max(...results.map((r) => r.maxRssKiB ?? 0)) || undefined,
    cpuSeconds: median(results.map((r) => r.cpuSeconds)),
    rssMethod: results[0]?.rssMethod,
    verified,
    problems: results.flatMap((r) => r.problems),
  };
}

async function runReference(name, corpus, workDir, runs) {
  let command;
  let args;
  let what;
  if (name === 'wc') {
    command = '/bin/sh';
    args = ['-c', 'cat "$1" | wc -l', 'sh', corpus.file];
    what = '`cat FILE | wc -l`: the physical floor';
  } else if (name === 'native') {
    what = 'json_parser rewrite compiled natively (Rust, one thread)';
    const cargo = '/usr/bin/cargo';
    if (!existsSync(cargo)) return { name, what, skipped: 'no /usr/bin/cargo (apt: cargo librust-serde-json-dev)' };
    log('native: cargo build --release (offline)');
    const build = spawnSync(cargo, ['build', '--offline', '--release', '--quiet'], {
      cwd: NATIVE_DIR,
      env: { ...process.env, PATH: `/usr/bin:${process.env.PATH ?? ''}` },
      encoding: 'utf8',
    });
    if (build.status !== 0) return { name, what, skipped: `cargo build failed: ${build.stderr.trim().split('\n').slice(-3).join(' | ')}` };
    command = NATIVE_BIN;
    args = [corpus.file];
  } else {
    what = 'plain Node script: JSON.parse / rewrite / JSON.stringify per line, one thread';
    command = process.execPath;
    args = [join(BENCH, 'reference/node-json.js'), corpus.file];
  }
  const results = [];
  for (let i = 0; i < runs; i++) {
    log(`${name}: run ${i + 1}/${runs}`);
    results.push(await runMeasured(command, args, { tmpDir: workDir }));
  }
  const problems = [];
  const loopSeconds = [];
  for (const r of results) {
    if (r.code !== 0) problems.push(`exit ${r.code}: ${r.stderr.trim().slice(0, 300)}`);
    const out = r.stdout.trim();
    const counted = name === 'wc' ? Number(out) : (() => {
      try {
        const parsed = JSON.parse(out);
        loopSeconds.push(parsed.seconds);
        return parsed.lines;
      } catch {
        return NaN;
      }
    })();
    if (counted !== corpus.lines) problems.push(`counted ${out.slice(0, 100)} lines, expected ${corpus.lines}`);
  }
  return {
    name,
    what,
    runs: results.length,
    wallSeconds: median(results.map((r) => r.wallSeconds)),
    loopSeconds: median(loopSeconds),
    maxRssKiB: Math.max(...results.map((r) => r.maxRssKiB ?? 0)) || undefined,
    cpuSeconds: median(results.map((r) => r.cpuSeconds)),
    verified: problems.length === 0,
    problems,
  };
}

async function runMicro(corpus, only, quick) {
  if (!existsSync(join(ROOT, 'dist'))) return [{ name: MICRO, skipped: 'dist/ missing: run npm run build' }];
  const results = [];
  // The wasm stage is compared with the native reference, so it gets the full number of passes.
  const pick = (names) => names.filter((name) => only === undefined || only.has(name)).join(',');
  const groups = [
    [pick(['wasm_stage']), quick ? 1 : 3],
    [pick(MICRO_BENCHES.filter((name) => name !== 'wasm_stage')), 1],
  ].filter(([names]) => names !== '');
  for (const [names, passes] of groups) {
    log(`micro: ${names} (${passes} pass${passes > 1 ? 'es' : ''})`);
    const run = spawnSync(process.execPath, [join(BENCH, 'micro.js'), corpus.file, '--only', names, '--passes', String(passes)], {
      cwd: ROOT,
      encoding: 'utf8',
      maxBuffer: 16 << 20,
    });
    if (run.status !== 0) {
      results.push({ name: names.split(',')[0], skipped: `micro.js failed: ${run.stderr.trim().split('\n').slice(-3).join(' | ')}` });
      continue;
    }
    results.push(...JSON.parse(run.stdout).results);
  }
  return results;
}

/** Rounds of the paired wasm stage / native measurement the wasm-vs-native target reads. */
export const PAIRED_ROUNDS = 11;

/**
 * The wasm stage (micro `wasm_stage`, one pass after a warm-up) between two runs of the native
 * plugin's loop, `rounds` times; each round's ratio is wasm over the mean of its two natives.
 * The `native` reference row and the micro row run minutes apart, and this VM's speed drifts by
 * up to 2x within minutes (the same pass of either varied 1.6x between runs a minute apart):
 * their ratio measured the drift as much as wasm. The target reads the median of the per-round
 * ratios; each side's fastest round is reported too. (The ratio of the fastest rounds was tried
 * first: one lucky native round, not matched by a wasm round under the same conditions, moved it
 * by 0.3.)
 */
async function runWasmVsNative(corpus, workDir, rounds) {
  if (!existsSync(NATIVE_BIN)) return { skipped: 'the native reference was not built (needs the native row)' };
  const nativeLoop = async () => {
    const run = await runMeasured(NATIVE_BIN, [corpus.file], { tmpDir: workDir });
    try {
      return JSON.parse(run.stdout.trim()).seconds;
    } catch {
      throw new Error(`native run failed: ${run.stderr.trim().slice(0, 200)}`);
    }
  };
  const wasmStage = () => {
    const micro = spawnSync(process.execPath, [join(BENCH, 'micro.js'), corpus.file, '--only', 'wasm_stage', '--passes', '1'], { cwd: ROOT, encoding: 'utf8' });
    if (micro.status !== 0) throw new Error(`micro.js failed: ${micro.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    const seconds = JSON.parse(micro.stdout).results.find((r) => r.name === 'wasm_stage')?.seconds;
    if (seconds === undefined) throw new Error('micro.js did not report wasm_stage');
    return seconds;
  };
  const results = [];
  try {
    for (let i = 0; i < rounds; i++) {
      log(`wasm vs native: round ${i + 1}/${rounds}`);
      // Native before and after the wasm pass: a drift in the machine's speed during the round
      // moves both sides of the ratio alike instead of only one.
      const before = await nativeLoop();
      const wasmSeconds = wasmStage();
      const after = await nativeLoop();
      const nativeSeconds = (before + after) / 2;
      results.push({ nativeSeconds, wasmSeconds, ratio: wasmSeconds / nativeSeconds });
    }
  } catch (error) {
    return { skipped: error instanceof Error ? error.message : String(error) };
  }
  return {
    rounds: results,
    ratio: median(results.map((r) => r.ratio)),
    nativeSeconds: Math.min(...results.map((r) => r.nativeSeconds)),
    wasmSeconds: Math.min(...results.map((r) => r.wasmSeconds)),
  };
}

/** 1,000 tailed files, nothing written: logwasm's CPU % over IDLE_SECONDS. */
async function runIdle(workDir, quick) {
  if (!existsSync(CLI)) return { skipped: 'dist/cli.js missing: run npm run build' };
  const inputDir = join(workDir, 'idle-input');
  const dataDir = join(workDir, 'idle-data');
  mkdirSync(inputDir, { recursive: true });
  mkdirSync(dataDir, { recursive: true });
  const gen = createLineGenerator(DEFAULT_SEED);
  for (let i = 0; i < IDLE_FILES; i++) writeFileSync(join(inputDir, `app-${String(i).padStart(4, '0')}.log`), `${gen.next()}\n`);
  const seconds = quick ? 5 : IDLE_SECONDS;
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, [...CLI_NODE_ARGS, CLI, '--config', join(BENCH, 'cases/idle/vector.toml')], {
    cwd: ROOT,
    env: { ...process.env, BENCH_INPUT_DIR: inputDir, BENCH_DATA_DIR: dataDir },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  try {
    await waitFor('"logwasm started" on stderr', () => /started/.test(stderr) || child.exitCode !== null, 30_000, () => stderr.slice(-300));
    if (child.exitCode !== null) return { skipped: `logwasm exited ${child.exitCode}: ${stderr.trim().slice(-300)}` };
    // Start-up reads the 1,000 one-line files once; the idle window starts after it settles.
    const settleStarted = performance.now();
    let previous = cpuSecondsOf(child.pid);
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const now = cpuSecondsOf(child.pid);
      if (now === undefined || previous === undefined) break;
      const settled = (now - previous) * 100 <= IDLE_SETTLED_CPU_PERCENT;
      previous = now;
      if (settled || performance.now() - settleStarted > IDLE_SETTLE_MAX_SECONDS * 1000) break;
    }
    const settleSeconds = (performance.now() - settleStarted) / 1000;
    const cpuBefore = cpuSecondsOf(child.pid);
    const startedAt = performance.now();
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    const cpuAfter = cpuSecondsOf(child.pid);
    const elapsed = (performance.now() - startedAt) / 1000;
    const rssKiB = statusKiB(child.pid, 'VmRSS');
    if (cpuBefore === undefined || cpuAfter === undefined) return { skipped: `logwasm exited during the idle window: ${stderr.trim().slice(-300)}` };
    return { files: IDLE_FILES, seconds: elapsed, settleSeconds, cpuPercent: ((cpuAfter - cpuBefore) / elapsed) * 100, rssKiB };
  } finally {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      const timeout = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timeout);
    }
  }
}

/** One file_wasm_otlp replay under `node --cpu-prof` (every thread): where the time goes. */
async function runProfile(corpus, workDir, receiver) {
  if (!existsSync(CLI)) return { skipped: 'dist/cli.js missing: run npm run build' };
  const dir = mkdtempSync(join(workDir, 'profile-'));
  log('profile: file_wasm_otlp under --cpu-prof');
  const run = await replayOnce(E2E_CASES[0], corpus, workDir, receiver, undefined, [...CLI_NODE_ARGS, '--cpu-prof', '--cpu-prof-dir', dir]);
  const threads = summarizeProfiles(dir);
  if (threads.length === 0) return { skipped: `no .cpuprofile written (exit ${run.code})` };
  return { wallSeconds: run.wallSeconds, verified: run.verified, threads };
}

/** The 10M-line replay of file_wasm_otlp with RSS sampled over time: does memory stay flat? */
async function runLong(workDir, receiver, lines) {
  log(`long: generating ${lines} lines`);
  const corpus = writeCorpus({ file: join(workDir, 'corpus-long.log'), lines });
  const samples = [];
  const kase = E2E_CASES[0];
  log('long: replay');
  const run = await replayOnce(kase, corpus, workDir, receiver, (rss, t) => samples.push([t, rss]));
  rmSync(corpus.file, { force: true });
  const total = samples.length > 0 ? samples[samples.length - 1][0] : 0;
  const maxIn = (from, to) => Math.max(0, ...samples.filter(([t]) => t >= from * total && t < to * total).map(([, rss]) => rss));
  // The first 10% is startup (heap and pools growing to their working size).
  const firstHalfKiB = maxIn(0.1, 0.5);
  const secondHalfKiB = maxIn(0.5, 1.01);
  const quarters = [0.25, 0.5, 0.75, 1.01].map((q, i, all) => maxIn(i === 0 ? 0 : all[i - 1], q));
  return {
    lines: corpus.lines,
    bytes: corpus.bytes,
    wallSeconds: run.wallSeconds,
    maxRssKiB: run.maxRssKiB,
    firstHalfKiB,
    secondHalfKiB,
    quarterPeaksKiB: quarters,
    verified: run.verified,
    problems: run.problems,
  };
}

function machine() {
  const cpu = cpus();
  const git = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' });
  return {
    cpu: cpu[0]?.model ?? 'unknown',
    cores: cpu.length,
    memGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    host: hostname(),
    node: process.version,
    commit: git.status === 0 ? git.stdout.trim() : 'unknown',
    gnuTime: hasGnuTime(),
    loadAtStart: loadavg()[0],
  };
}

async function main() {
  const options = parseOptions();
  const want = (name) => options.selected.has(name);
  const workDir = makeBenchDir();
  const started = Date.now();
  const results = { date: new Date().toISOString(), machine: machine(), runs: options.runs, targets: TARGETS, e2e: [], references: [], micro: [], idle: undefined, long: undefined };
  let receiver;
  try {
    const microOnly = MICRO_BENCHES.filter(want);
    const needsCorpus = KNOWN.some((name) => name !== 'idle' && name !== 'long' && want(name));
    if (needsCorpus) {
      log(`generating ${options.lines} lines in ${workDir}`);
      const written = writeCorpus({ file: join(workDir, 'corpus.log'), lines: options.lines });
      results.corpus = { ...written, seed: DEFAULT_SEED, averageBytes: written.bytes / written.lines };
    }
    if (E2E_CASES.some((c) => c.otlp && want(c.name)) || want('long') || want('profile')) receiver = await startReceiver();
    for (const name of REFERENCES) if (want(name)) results.references.push(await runReference(name, results.corpus, workDir, options.runs));
    for (const kase of E2E_CASES) if (want(kase.name)) results.e2e.push(await runE2e(kase, results.corpus, workDir, options.runs, receiver));
    if (want('profile')) results.profile = await runProfile(results.corpus, workDir, receiver);
    if (want(MICRO) || microOnly.length > 0) results.micro = await runMicro(results.corpus, want(MICRO) ? undefined : new Set(microOnly), options.quick);
    if (want('native') && (want(MICRO) || microOnly.includes('wasm_stage'))) {
      results.wasmVsNative = await runWasmVsNative(results.corpus, workDir, options.quick ? 1 : PAIRED_ROUNDS);
    }
    if (want('idle')) {
      log(`idle: ${IDLE_FILES} files`);
      results.idle = await runIdle(workDir, options.quick);
    }
    if (want('long')) results.long = await runLong(workDir, receiver, options.longLines);
    if (receiver !== undefined) results.receiver = await receiver.stats();
  } finally {
    await receiver?.close();
    rmSync(workDir, { recursive: true, force: true });
  }
  results.totalSeconds = (Date.now() - started) / 1000;
  results.machine.loadAtEnd = loadavg()[0];
  const markdown = renderMarkdown(results);
  if (options.json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
  if (options.out !== undefined) {
    writeFileSync(options.out, markdown);
    log(`wrote ${options.out}`);
  } else if (!options.json) {
    process.stdout.write(markdown);
  }
  log(`done in ${results.totalSeconds.toFixed(0)} s`);
}

await main();
