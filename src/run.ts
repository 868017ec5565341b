import type { LoadedConfig } from './config/load.js';
import { EXIT_FAILURE, EXIT_OK } from './errors.js';
import { COMPONENT_ERRORS, EVENTS_DISCARDED, EVENTS_SENT, EVENT_BYTES_SENT, type Telemetry } from './telemetry.js';
import { Topology } from './topology.js';

const SHUTDOWN_SIGNALS = ['SIGINT', 'SIGTERM'] as const;

/**
 * Tail mode: runs until SIGINT or SIGTERM, then stops reading, drains what is in flight and
 * writes checkpoints. A second signal, or the shutdown limit, ends the process without draining.
 */
export async function runTail(config: LoadedConfig, telemetry: Telemetry, graceMs: number): Promise<number> {
  const topology = new Topology(config, telemetry, 'tail');
  await topology.start();
  telemetry.log('info', 'started', `logwasm started: ${describe(config)}`);
  const signal = await nextSignal();
  telemetry.log('info', 'shutdown', `received ${signal}: draining in-flight events (limit ${graceMs / 1000} s)`);
  return drain(topology, telemetry, graceMs);
}

/**
 * Replay mode: every source reads its files from the beginning to the end; once every line is
 * acknowledged by the sinks, prints a one-line summary. Exit status is non-zero when anything
 * could not be delivered or the run was interrupted.
 */
export async function runReplay(config: LoadedConfig, telemetry: Telemetry, graceMs: number): Promise<number> {
  const started = performance.now();
  const topology = new Topology(config, telemetry, 'replay');
  await topology.start();
  const outcome = await Promise.race([
    topology.sourcesFinished().then(() => 'finished' as const),
    nextSignal(),
  ]);
  const interrupted = outcome !== 'finished';
  const drained = await drain(topology, telemetry, interrupted ? graceMs : Number.POSITIVE_INFINITY);
  const seconds = (performance.now() - started) / 1000;

  const lines = config.sources.reduce((sum, s) => sum + telemetry.counter(EVENTS_SENT, s.id), 0);
  const bytes = config.sources.reduce((sum, s) => sum + telemetry.counter(EVENT_BYTES_SENT, s.id), 0);
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
}

async function drain(topology: Topology, telemetry: Telemetry, limitMs: number): Promise<number> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<'limit'>((resolve) => {
    if (Number.isFinite(limitMs)) timer = setTimeout(() => resolve('limit'), limitMs);
  });
  const forced = nextSignal().then(() => 'forced' as const);
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

function nextSignal(): Promise<string> {
  return new Promise((resolve) => {
    const handler = (signal: string): void => {
      for (const s of SHUTDOWN_SIGNALS) process.off(s, handler);
      resolve(signal);
    };
    for (const s of SHUTDOWN_SIGNALS) process.on(s, handler);
  });
}

function describe(config: LoadedConfig): string {
  const ids = (list: { id: string }[]): string => list.map((c) => c.id).join(', ') || 'none';
  return `sources [${ids(config.sources)}], transforms [${ids(config.transforms)}], sinks [${ids(config.sinks)}]`;
}
