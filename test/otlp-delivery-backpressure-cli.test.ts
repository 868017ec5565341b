/**
 * Backpressure end to end, through the real CLI (tail mode): a collector that answers each request
 * only after 1 s, a sink with small requests and a small memory buffer (`when_full = "block"`, the
 * default), and a file far larger than what may be in flight. While the collector is slow, the
 * file source must stop reading: the lines it has read (its own counter, scraped from the
 * prometheus_exporter) stay within its in-flight window of what the collector accepted. Then the
 * collector speeds up and every line arrives exactly once.
 *
 * Why that window is the bound: the sink's queue (`buffer.max_events` + one request per
 * `request.concurrency` slot) fills first; further writes wait, so the source's batches stay
 * unacknowledged, and the source reads nothing more once MAX_IN_FLIGHT_BATCHES batches (or
 * MAX_IN_FLIGHT_BYTES) are out; the read that reaches the limit may add one READ_CHUNK_BYTES
 * chunk of lines. Without backpressure (e.g. `when_full = "drop_newest"`, or a queue that never
 * makes writes wait) the whole file is read at once and the bound fails by a factor of ~3.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { MAX_BATCH_LINES, MAX_IN_FLIGHT_BATCHES, READ_CHUNK_BYTES } from '../src/sources/file/index.js';
import { startCli, writeLogsConfig } from './support/cli.js';
import { httpGet, loggedUrl } from './support/ops.js';
import { startOtlpReceiver } from './support/otlp-receiver.js';
import { pollUntil } from './support/poll.js';
import { parsePrometheusText } from './support/prom-text.js';

/** Bytes of each line, newline included. */
const LINE_BYTES = 200;
const TOTAL = 80_000;
/** Lines the file source may have read beyond what was acknowledged (see above). */
const BOUND = MAX_IN_FLIGHT_BATCHES * MAX_BATCH_LINES + 2 * Math.ceil(READ_CHUNK_BYTES / LINE_BYTES);

function line(i: number): string {
  const head = `bp-${String(i).padStart(6, '0')}-`;
  return head + 'x'.repeat(LINE_BYTES - 1 - head.length);
}

describe('opentelemetry sink backpressure through the CLI', () => {
  it('a slow collector (1 s per request) pauses the file source within its window; afterwards every line arrives once', async () => {
    expect(TOTAL).toBeGreaterThan(3 * BOUND);
    const receiver = await startOtlpReceiver();
    onTestFinished(() => receiver.close());
    receiver.delayEach(1000);
    const { logs, config } = await writeLogsConfig(
      () => `[sinks.otlp]
type = "opentelemetry"
inputs = ["logs"]
endpoint = "\${TEST_OTLP_ENDPOINT}"
healthcheck = false

[sinks.otlp.batch]
max_events = 100
timeout_secs = 0.1

[sinks.otlp.buffer]
type = "memory"
max_events = 100

[sinks.otlp.request]
concurrency = 4

[sources.metrics]
type = "internal_metrics"
scrape_interval_secs = 0.1

[sinks.prom]
type = "prometheus_exporter"
inputs = ["metrics"]
address = "127.0.0.1:0"
`,
    );
    await writeFile(join(logs, 'app.log'), Array.from({ length: TOTAL }, (_, i) => line(i) + '\n').join(''));

    const run = startCli(['--config', config], { env: { TEST_OTLP_ENDPOINT: receiver.url } });
    const base = await loggedUrl(run, 'prometheus_exporter_started', 'prom');
    let last = '';
    /** Lines the file source has read, as its own counter says (0 before its first batch). */
    const linesRead = async (): Promise<number> => {
      last = (await httpGet(`${base}/metrics`)).body;
      return parsePrometheusText(last).find('vector_component_received_events_total', { component_id: 'logs' })[0]?.value ?? 0;
    };

    // Slow phase: sample at moments until the collector accepted three rounds of requests, or a
    // sample breaks the bound. Read first, accepted after: the gap can only be underestimated.
    const samples: { read: number; accepted: number }[] = [];
    await pollUntil(
      'three rounds of slow requests accepted',
      async () => {
        const read = await linesRead();
        const sample = { read, accepted: receiver.records.length };
        samples.push(sample);
        return sample.read - sample.accepted > BOUND || sample.accepted >= 1200 || undefined;
      },
      {
        timeoutMs: 60_000,
        intervalMs: 100,
        describe: () => `${samples.length} samples, last ${JSON.stringify(samples.at(-1))}; ${receiver.describe().slice(0, 200)}; stderr: ${run.stderr().slice(-1000)}`,
      },
    );
    const worst = samples.reduce((a, b) => (b.read - b.accepted > a.read - a.accepted ? b : a));
    expect(worst.read - worst.accepted, `bound ${BOUND}, worst sample ${JSON.stringify(worst)}`).toBeLessThanOrEqual(BOUND);
    expect(Math.max(...samples.map((s) => s.read))).toBeLessThan(TOTAL);
    // The source did read ahead, up to its window: it paused, it was not stalled from the start.
    expect(Math.max(...samples.map((s) => s.read))).toBeGreaterThan(MAX_BATCH_LINES);
    expect(receiver.maxActive).toBeLessThanOrEqual(4);

    // The collector recovers: the rest arrives, each line exactly once.
    receiver.delayEach(0);
    await pollUntil('every line at the collector', () => receiver.records.length >= TOTAL || undefined, {
      timeoutMs: 120_000,
      intervalMs: 200,
      describe: () => `${receiver.records.length} of ${TOTAL}; stderr: ${run.stderr().slice(-1000)}`,
    });
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
    const seen = new Map<string, number>();
    for (const record of receiver.records) seen.set(String(record.body), (seen.get(String(record.body)) ?? 0) + 1);
    expect(seen.size).toBe(TOTAL);
    expect([...seen.entries()].filter(([, n]) => n !== 1)).toEqual([]);
    expect(seen.has(line(0)) && seen.has(line(TOTAL - 1))).toBe(true);
  }, 240_000);
});
