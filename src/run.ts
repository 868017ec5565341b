import { stat } from 'node:fs/promises';
import path from 'node:path';
import { ApiServer } from './api/server.js';
import type { LoadedConfig } from './config/load.js';
import { ConfigError, EXIT_FAILURE, EXIT_OK, LogwasmError, formatProblem } from './errors.js';
import { checkOpentelemetryHealth, type OpentelemetrySinkConfig } from './sinks/opentelemetry/index.js';
import { Discovery } from './sources/file/discovery.js';
import type { FileSourceConfig } from './sources/file/index.js';
import { COMPONENT_ERRORS, EVENTS_DISCARDED, EVENTS_SENT, EVENT_BYTES_SENT, type Telemetry } from './telemetry.js';
import { Topology } from './topology.js';

const SHUTDOWN_SIGNALS = ['SIGINT', 'SIGTERM'] as const;
const RELOAD_SIGNAL = 'SIGHUP';

/** Off a TTY, replay prints one progress line on stderr this often. */
export const DEFAULT_PROGRESS_INTERVAL_SECS = 5;
/** On a TTY, the progress bar is redrawn this often. */
export const TTY_PROGRESS_REDRAW_MS = 250;

export interface TailOptions {
  /** How long to drain at shutdown before giving up. */
  graceMs: number;
  /** Re-reads and checks the config files on SIGHUP; throws ConfigError when they are invalid. */
  reload?: () => LoadedConfig;
  /** `--require-healthy`: exit 1 before starting when a sink's healthcheck fails. */
  requireHealthy?: boolean;
}

/**
 * `--require-healthy` (Vector's flag): every sink with a healthcheck is checked before anything
 * starts; the first failure is logged at error level and the run ends with exit status 1.
 */
async function healthy(config: LoadedConfig, telemetry: Telemetry): Promise<boolean> {
  const checks = config.sinks
    .filter((plan) => plan.type.type === 'opentelemetry' && (plan.config as OpentelemetrySinkConfig).healthcheck)
    .map(async (plan) => ({ id: plan.id, reason: await checkOpentelemetryHealth(plan.config as OpentelemetrySinkConfig) }));
  let ok = true;
  for (const { id, reason } of await Promise.all(checks)) {
    if (reason === undefined) continue;
    telemetry.log('error', 'healthcheck_failed', `sinks.${id}: healthcheck failed and --require-healthy is set: ${reason}`, id);
    ok = false;
  }
  return ok;
}

/**
 * Tail mode: runs until SIGINT or SIGTERM, then stops reading, drains what is in flight and
 * writes checkpoints. A second signal, or the shutdown limit, ends the process without draining.
 *
 * SIGHUP reloads the config, as Vector does: the files are read and checked again; a config with
 * problems is refused (logged) and the running topology is left alone. A valid one replaces it:
 * the old topology stops (drains, writes checkpoints), then the new one starts from those
 * checkpoints, so no line is lost or read twice. Should the new one fail to start (a plugin that
 * does not load), the old config is started again.
 */
export async function runTail(config: LoadedConfig, telemetry: Telemetry, options: TailOptions): Promise<number> {
  const inbox = new SignalInbox([...SHUTDOWN_SIGNALS, RELOAD_SIGNAL]);
  let api: RunningApi | undefined;
  try {
    if (options.requireHealthy === true && !(await healthy(config, telemetry))) return EXIT_FAILURE;
    api = await startApi(config, telemetry);
    let current = config;
    let topology = new Topology(current, telemetry, 'tail');
    await topology.start();
    api?.setState('running');
    telemetry.log('info', 'started', `logwasm started: ${describe(config)}`);
    for (;;) {
      const signal = await inbox.next();
      if (signal === RELOAD_SIGNAL) {
        api?.setState('reloading');
        ({ config: current, topology } = await reloadTopology(current, topology, telemetry, options.reload));
        api?.setState('running');
        continue;
      }
      api?.setState('draining');
      telemetry.log('info', 'shutdown', `received ${signal}: draining in-flight events (limit ${options.graceMs / 1000} s)`);
      return await drain(topology, telemetry, options.graceMs, inbox.nextShutdown());
    }
  } finally {
    inbox.close();
    await api?.close();
  }
}

async function reloadTopology(
  current: LoadedConfig,
  running: Topology,
  telemetry: Telemetry,
  reload: (() => LoadedConfig) | undefined,
): Promise<{ config: LoadedConfig; topology: Topology }> {
  if (reload === undefined) {
    telemetry.log('warn', 'reload_unsupported', `received ${RELOAD_SIGNAL}, but this run has no config files to reload`);
    return { config: current, topology: running };
  }
  telemetry.log('info', 'reload_started', `received ${RELOAD_SIGNAL}: reloading the config`);
  let next: LoadedConfig;
  let candidate: Topology;
  try {
    next = reload();
    candidate = new Topology(next, telemetry, 'tail');
  } catch (error) {
    const detail = error instanceof ConfigError ? error.problems.map(formatProblem).join('; ') : String(error);
    telemetry.log('error', 'reload_refused', `new config refused, the running one continues: ${detail}`);
    return { config: current, topology: running };
  }
  for (const warning of next.warnings) telemetry.log('warn', 'config_warning', warning);
  await running.stop();
  try {
    await candidate.start();
  } catch (error) {
    telemetry.log('error', 'reload_failed', `new config failed to start, restarting the previous one: ${String((error as Error)?.message ?? error)}`);
    await candidate.stop().catch(() => undefined);
    const previous = new Topology(current, telemetry, 'tail');
    await previous.start();
    return { config: current, topology: previous };
  }
  if (!sameApi(current, next)) {
    telemetry.log('warn', 'reload_api_unchanged', 'the api table changed; the API server keeps its old settings until restart');
  }
  telemetry.log('info', 'reloaded', `config reloaded: ${describe(next)}`);
  return { config: next, topology: candidate };
}

export interface ReplayOptions {
  graceMs: number;
  /** Seconds between progress lines off a TTY. */
  progressIntervalSecs?: number;
  /** Where progress goes; stderr by default. */
  progressStream?: NodeJS.WriteStream;
  /** Write checkpoints as tail mode does, so a later run resumes after what the replay read. */
  writeCheckpoints?: boolean;
  /** `--require-healthy`: exit 1 before starting when a sink's healthcheck fails. */
  requireHealthy?: boolean;
}

/**
 * Replay mode: every source reads its files from the beginning to the end; once every line is
 * acknowledged by the sinks, prints a one-line summary. Exit status is non-zero when anything
 * could not be delivered or the run was interrupted. Progress goes to stderr while it runs.
 */
export async function runReplay(config: LoadedConfig, telemetry: Telemetry, options: ReplayOptions): Promise<number> {
  const started = performance.now();
  const inbox = new SignalInbox([...SHUTDOWN_SIGNALS]);
  const stream = options.progressStream ?? process.stderr;
  let api: RunningApi | undefined;
  let progress: ReplayProgress | undefined;
  try {
    if (options.requireHealthy === true && !(await healthy(config, telemetry))) return EXIT_FAILURE;
    api = await startApi(config, telemetry);
    const topology = new Topology(config, telemetry, 'replay', { writeCheckpoints: options.writeCheckpoints === true });
    await topology.start();
    api?.setState('running');
    const totalBytes = await replayTotalBytes(config);
    progress = new ReplayProgress(
      stream,
      () => replayCounts(config, telemetry),
      totalBytes,
      stream.isTTY === true ? TTY_PROGRESS_REDRAW_MS : (options.progressIntervalSecs ?? DEFAULT_PROGRESS_INTERVAL_SECS) * 1000,
    );
    progress.start();
    const outcome = await Promise.race([topology.sourcesFinished().then(() => 'finished' as const), inbox.next()]);
    const interrupted = outcome !== 'finished';
    api?.setState('draining');
    const drained = await drain(topology, telemetry, interrupted ? options.graceMs : Number.POSITIVE_INFINITY, inbox.nextShutdown());
    progress.stop();
    const seconds = (performance.now() - started) / 1000;

    const { lines, bytes } = replayCounts(config, telemetry);
    const failures = telemetry.total(COMPONENT_ERRORS);
    const undelivered = telemetry.total(EVENTS_DISCARDED);
    const rate = seconds > 0 ? Math.round(lines / seconds) : lines;
    process.stderr.write(
      `replay ${interrupted ? 'interrupted' : 'done'}: ${lines} lines, ${bytes} bytes in ${seconds.toFixed(2)} s ` +
        `(${rate} lines/s); ${failures} errors, ${undelivered} undelivered\n`,
    );
    if (interrupted) {
      process.stderr.write(`replay stopped by ${outcome} before reading every file to its end\n`);
      return EXIT_FAILURE;
    }
    if (undelivered > 0 || drained !== EXIT_OK) {
      process.stderr.write(`replay failed: ${undelivered} events could not be delivered (see the errors logged above)\n`);
      return EXIT_FAILURE;
    }
    return EXIT_OK;
  } finally {
    progress?.stop();
    inbox.close();
    await api?.close();
  }
}

/**
 * `logwasm replay --config FILE PATHS...`: the PATHS (files or globs) replace the `include` of the
 * config's file source; its `exclude` still applies. A config with no file source, or with more
 * than one, is refused: which source the paths belong to would be a guess.
 */
export function overrideReplayPaths(config: LoadedConfig, paths: readonly string[]): void {
  if (paths.length === 0) return;
  const fileSources = config.sources.filter((s) => s.type.type === 'file');
  if (fileSources.length !== 1) {
    const ids = fileSources.map((s) => s.id).join(', ') || 'none';
    throw new ConfigError([
      { component: 'replay', message: `PATHS need exactly one source of type "file" to replace its include; the config has ${fileSources.length} (${ids})` },
    ]);
  }
  const source = fileSources[0]!;
  const fileConfig = source.config as FileSourceConfig;
  source.config = { ...fileConfig, include: paths.map((p) => path.resolve(p)) };
}

function replayCounts(config: LoadedConfig, telemetry: Telemetry): { lines: number; bytes: number } {
  const lines = config.sources.reduce((sum, s) => sum + telemetry.counter(EVENTS_SENT, s.id), 0);
  const bytes = config.sources.reduce((sum, s) => sum + telemetry.counter(EVENT_BYTES_SENT, s.id), 0);
  return { lines, bytes };
}

/** Size on disk of every file the file sources match (0 when none can be listed). */
async function replayTotalBytes(config: LoadedConfig): Promise<number> {
  let total = 0;
  for (const source of config.sources) {
    if (source.type.type !== 'file') continue;
    const { include, exclude } = source.config as FileSourceConfig;
    let files: string[];
    try {
      files = await new Discovery(include, exclude).scan();
    } catch {
      continue;
    }
    for (const file of files) {
      try {
        total += (await stat(file)).size;
      } catch {
        // Gone since the scan: the source will not read it either.
      }
    }
  }
  return total;
}

/**
 * Replay progress on stderr. On a TTY: a bar redrawn in place (bytes done / total, lines/s, ETA),
 * erased when the run ends. Off a TTY: one line every interval. "Bytes done" counts line bytes
 * plus one delimiter per line, so it tracks the files' sizes on disk; a compressed input makes the
 * ratio approximate, which is why it is capped below 100 % until the run ends.
 */
export class ReplayProgress {
  private timer: NodeJS.Timeout | undefined;
  private readonly began: number;
  private drawn = false;

  constructor(
    private readonly stream: { write(text: string): boolean; isTTY?: boolean; columns?: number },
    private readonly counts: () => { lines: number; bytes: number },
    private readonly totalBytes: number,
    private readonly intervalMs: number,
    private readonly now: () => number = performance.now.bind(performance),
  ) {
    this.began = now();
  }

  start(): void {
    if (this.timer !== undefined || this.intervalMs <= 0) return;
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    if (this.drawn && this.stream.isTTY === true) this.stream.write('\r\x1b[K');
    this.drawn = false;
  }

  tick(): void {
    const text = this.render();
    if (this.stream.isTTY === true) this.stream.write(`\r${text}\x1b[K`);
    else this.stream.write(`${text}\n`);
    this.drawn = true;
  }

  render(): string {
    const { lines, bytes } = this.counts();
    const done = bytes + lines;
    const seconds = Math.max((this.now() - this.began) / 1000, 1e-3);
    const rate = Math.round(lines / seconds);
    const fraction = this.totalBytes > 0 ? Math.min(done / this.totalBytes, 0.99) : 0;
    const bytesPerSec = done / seconds;
    const eta = this.totalBytes > 0 && bytesPerSec > 0 ? Math.max(this.totalBytes - done, 0) / bytesPerSec : undefined;
    const percent = `${Math.floor(fraction * 100)}%`;
    const amounts = `${formatBytes(Math.min(done, this.totalBytes))} / ${formatBytes(this.totalBytes)}`;
    const tail = `${lines} lines, ${rate} lines/s, ETA ${eta === undefined ? '?' : formatDuration(eta)}`;
    if (this.stream.isTTY !== true) return `replay progress: ${percent} (${amounts}), ${tail}`;
    const width = 30;
    const filled = Math.round(fraction * width);
    return `[${'#'.repeat(filled)}${' '.repeat(width - filled)}] ${percent.padStart(4)} ${amounts}, ${tail}`;
  }
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

export function formatDuration(seconds: number): string {
  const s = Math.ceil(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

async function drain(topology: Topology, telemetry: Telemetry, limitMs: number, forcedBy: Promise<string>): Promise<number> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<'limit'>((resolve) => {
    if (Number.isFinite(limitMs)) timer = setTimeout(() => resolve('limit'), limitMs);
  });
  const forced = forcedBy.then(() => 'forced' as const);
  const outcome = await Promise.race([topology.stop().then(() => 'drained' as const), limit, forced]);
  clearTimeout(timer);
  if (outcome === 'drained') {
    telemetry.log('info', 'stopped', 'all events drained; checkpoints written');
    return EXIT_OK;
  }
  telemetry.log(
    'error',
    'shutdown_incomplete',
    outcome === 'limit'
      ? `graceful shutdown limit of ${limitMs / 1000} s reached before every event was delivered; unacknowledged lines will be read again on restart`
      : 'second signal received: exiting without draining; unacknowledged lines will be read again on restart',
  );
  return EXIT_FAILURE;
}

/**
 * Holds signal handlers for the whole run, so a signal that arrives while the run is busy (a
 * SIGHUP during a reload, a SIGTERM during start-up) is queued instead of killing the process
 * with the default action.
 */
class SignalInbox {
  private readonly queue: string[] = [];
  private waiter: ((signal: string) => void) | undefined;
  private readonly handler = (signal: string): void => {
    const waiter = this.waiter;
    this.waiter = undefined;
    if (waiter !== undefined) waiter(signal);
    else this.queue.push(signal);
  };

  constructor(private readonly signals: readonly string[]) {
    for (const s of signals) process.on(s, this.handler);
  }

  next(): Promise<string> {
    const queued = this.queue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise((resolve) => (this.waiter = resolve));
  }

  /** The next SIGINT or SIGTERM; reload requests after shutdown began are ignored. */
  async nextShutdown(): Promise<string> {
    for (;;) {
      const signal = await this.next();
      if (signal !== RELOAD_SIGNAL) return signal;
    }
  }

  close(): void {
    for (const s of this.signals) process.off(s, this.handler);
  }
}

interface RunningApi {
  setState(state: 'running' | 'reloading' | 'draining'): void;
  close(): Promise<void>;
}

async function startApi(config: LoadedConfig, telemetry: Telemetry): Promise<RunningApi | undefined> {
  if (!config.api.enabled) return undefined;
  const server = new ApiServer();
  try {
    const bound = await server.listen(config.api.host, config.api.port);
    const host = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
    telemetry.log('info', 'api_started', `API server listening on http://${host}:${bound.port}`);
  } catch (error) {
    throw new LogwasmError(`api: cannot listen on ${config.api.host}:${config.api.port}: ${(error as Error).message}`, { cause: error });
  }
  return {
    setState: (state) => (server.state = state),
    close: () => server.close(),
  };
}

function sameApi(a: LoadedConfig, b: LoadedConfig): boolean {
  return a.api.enabled === b.api.enabled && a.api.host === b.api.host && a.api.port === b.api.port;
}

function describe(config: LoadedConfig): string {
  const ids = (list: { id: string }[]): string => list.map((c) => c.id).join(', ') || 'none';
  return `sources [${ids(config.sources)}], transforms [${ids(config.transforms)}], sinks [${ids(config.sinks)}]`;
}
