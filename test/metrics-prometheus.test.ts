/**
 * internal_metrics -> prometheus_exporter: the collection rules on a hand-filled Telemetry, the
 * exporter's exposition parsed by a strict text parser, and a real CLI run whose /metrics values
 * match what went through it.
 */
import { appendFile, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { batchFromLines } from '../src/event.js';
import { PrometheusExporterSink } from '../src/sinks/prometheus_exporter.js';
import { checkpointLags, collectMetrics, type MetricEvent } from '../src/sources/internal_metrics/collect.js';
import { BUFFER_EVENTS, COMPONENT_ERRORS, EVENTS_DISCARDED, Telemetry, TRANSFORM_BATCH_SECONDS } from '../src/telemetry.js';
import { JSON_PARSER_WASM, startCli, tempDir, tomlString, writeLogsConfig } from './support/cli.js';
import { httpGet, loggedUrl } from './support/ops.js';
import { pollUntil } from './support/poll.js';
import { parsePrometheusText, type PromExposition } from './support/prom-text.js';

function telemetryWithComponents(): Telemetry {
  const t = new Telemetry(() => undefined);
  t.components.set('logs', { kind: 'source', type: 'file', config: { dataDir: undefined }, dataDir: '/nonexistent' });
  t.components.set('parse', { kind: 'transform', type: 'wasm', config: {}, dataDir: '/nonexistent' });
  t.components.set('out', { kind: 'sink', type: 'blackhole', config: {}, dataDir: '/nonexistent' });
  return t;
}

function find(events: MetricEvent[], name: string, tags: Record<string, string>): MetricEvent[] {
  return events.filter((e) => e.name === name && Object.entries(tags).every(([k, v]) => e.tags[k] === v));
}

describe('internal_metrics collection', () => {
  it('tags errors by error_type, discards by intentional, outputs by name; gauges and histograms as such', async () => {
    const t = telemetryWithComponents();
    t.count(COMPONENT_ERRORS, 'parse', 5);
    t.count('wasm_line_failures_total_trap', 'parse', 3);
    t.count('wasm_line_failures_total_plugin_error', 'parse', 1);
    t.count('file_read_errors_total', 'logs', 2);
    t.count(EVENTS_DISCARDED, 'parse', 4);
    t.count('wasm_plugin_dropped_total', 'parse', 7);
    t.count('component_sent_events_total', 'parse.dropped', 9);
    t.gauge(BUFFER_EVENTS, 'out', 12);
    t.observe(TRANSFORM_BATCH_SECONDS, 'parse', 0.003);
    t.observe(TRANSFORM_BATCH_SECONDS, 'parse', 100);
    const events = await collectMetrics(t, { namespace: 'vector', extraTags: { host: 'h1' } });

    const errors = find(events, COMPONENT_ERRORS, {}).map((e) => [e.tags.component_id, e.tags.error_type, e.counter?.value]);
    expect(errors.sort()).toEqual([
      ['logs', 'read_failed', 2],
      ['parse', 'plugin_error', 1],
      ['parse', 'trap', 3],
      ['parse', 'unclassified', 1],
    ]);
    expect(find(events, EVENTS_DISCARDED, { intentional: 'true' }).map((e) => e.counter?.value)).toEqual([7]);
    expect(find(events, EVENTS_DISCARDED, { intentional: 'false' }).map((e) => e.counter?.value)).toEqual([4]);
    expect(find(events, 'component_sent_events_total', { component_id: 'parse', output: 'dropped' })[0]?.counter?.value).toBe(9);
    const [buffer] = find(events, BUFFER_EVENTS, { component_id: 'out' });
    expect(buffer).toMatchObject({ namespace: 'vector', kind: 'absolute', gauge: { value: 12 } });
    expect(buffer?.tags).toEqual({ component_id: 'out', component_kind: 'sink', component_type: 'blackhole', host: 'h1' });
    const [histogram] = find(events, TRANSFORM_BATCH_SECONDS, { component_id: 'parse' });
    expect(histogram?.aggregated_histogram?.count).toBe(2);
    expect(histogram?.aggregated_histogram?.sum).toBeCloseTo(100.003);
    expect(histogram?.aggregated_histogram?.buckets.find((b) => b.upper_limit === 0.005)?.count).toBe(1);
    expect(histogram?.aggregated_histogram?.buckets.at(-1)).toEqual({ upper_limit: Infinity, count: 1 });
  });
});

describe('checkpoint lag', () => {
  it('is the file size minus the checkpointed position, for files still at their path', async () => {
    const dir = await tempDir();
    const file = join(dir, 'a.log');
    await writeFile(file, 'x'.repeat(1000));
    const stats = await stat(file, { bigint: true });
    const entry = (path: string, position: number, inode = stats.ino.toString()) => ({
      fingerprint: { strategy: 'device_and_inode', dev: stats.dev.toString(), inode },
      path,
      position,
      modified: new Date().toISOString(),
    });
    await mkdir(join(dir, 'data', 'logs'), { recursive: true });
    await writeFile(
      join(dir, 'data', 'logs', 'checkpoints.json'),
      JSON.stringify({ version: 1, checkpoints: [entry(file, 400), entry(join(dir, 'gone.log'), 5, '1')] }),
    );
    const t = new Telemetry(() => undefined);
    t.components.set('logs', { kind: 'source', type: 'file', config: { dataDir: undefined }, dataDir: join(dir, 'data') });
    expect(await checkpointLags(t)).toEqual([{ component: 'logs', file, bytes: 600 }]);
  });
});

describe('prometheus_exporter rendering', () => {
  it('serves counters, gauges and cumulative histogram buckets that a strict parser reads back', async () => {
    const t = telemetryWithComponents();
    t.count('component_received_events_total', 'logs', 42);
    t.gauge(BUFFER_EVENTS, 'out', 3);
    for (const v of [0.0004, 0.002, 0.002, 30]) t.observe(TRANSFORM_BATCH_SECONDS, 'parse', v);
    const events = await collectMetrics(t, { namespace: 'vector', extraTags: {} });
    const sink = new PrometheusExporterSink({ host: '127.0.0.1', port: 0, defaultNamespace: undefined }, { id: 'prom', dataDir: '', mode: 'tail', telemetry: t });
    const lines = [...events.map((e) => JSON.stringify(e)), 'not a metric'];
    await sink.write(batchFromLines(lines.map((l) => new TextEncoder().encode(l)), { sourceId: 'm', sourceType: 'internal_metrics', file: '', host: 'h', timestampMs: 0, format: 'json' }));
    const prom = parsePrometheusText(await sink.render());

    expect(prom.types.get('vector_component_received_events_total')).toBe('counter');
    expect(prom.value('vector_component_received_events_total', { component_id: 'logs', component_kind: 'source', component_type: 'file' })).toBe(42);
    expect(prom.types.get('vector_buffer_events')).toBe('gauge');
    expect(prom.value('vector_buffer_events', { component_id: 'out' })).toBe(3);
    expect(prom.types.get('vector_transform_batch_duration_seconds')).toBe('histogram');
    const bucket = (le: string) => prom.value('vector_transform_batch_duration_seconds_bucket', { component_id: 'parse', le });
    expect([bucket('0.0005'), bucket('0.0025'), bucket('10'), bucket('+Inf')]).toEqual([1, 3, 3, 4]);
    expect(prom.value('vector_transform_batch_duration_seconds_count', { component_id: 'parse' })).toBe(4);
    // The line that was not a metric: counted against the exporter, not silently dropped.
    expect(t.counter(EVENTS_DISCARDED, 'prom')).toBe(1);
  });
});

describe('/metrics through the CLI', () => {
  it('reports what a real run moved: events and bytes per component, wasm batch time, buffer, checkpoint lag', async () => {
    const { dir, config } = await writeLogsConfig(
      (dir) => `[transforms.parse]
type = "wasm"
inputs = ["logs"]
module = ${tomlString(JSON_PARSER_WASM)}
pool_size = 1

[sinks.out]
type = "file"
inputs = ["parse"]
path = ${tomlString(join(dir, 'out.log'))}
encoding.codec = "text"

[sources.metrics]
type = "internal_metrics"
scrape_interval_secs = 0.1

[sinks.prom]
type = "prometheus_exporter"
inputs = ["metrics"]
address = "127.0.0.1:0"
`,
    );
    const lines = Array.from({ length: 120 }, (_, i) => JSON.stringify({ seq: i, msg: `line ${i} ✓` }));
    const file = join(dir, 'logs', 'a.log');
    await writeFile(file, lines.slice(0, 100).join('\n') + '\n');
    const run = startCli(['--config', config]);
    const base = await loggedUrl(run, 'prometheus_exporter_started', 'prom');

    let last = '';
    const scrape = async (): Promise<PromExposition> => {
      last = (await httpGet(`${base}/metrics`)).body;
      return parsePrometheusText(last);
    };
    const until = (what: string, probe: (p: PromExposition) => boolean) =>
      pollUntil(what, async () => {
        const p = await scrape();
        return probe(p) ? p : undefined;
      }, { describe: () => `${last}\nstderr: ${run.stderr()}` });
    const value = (p: PromExposition, name: string, labels: Record<string, string>) => p.find(name, labels)[0]?.value;

    await until('100 events at the sink', (p) => value(p, 'vector_component_received_events_total', { component_id: 'out' }) === 100);
    await appendFile(file, lines.slice(100).join('\n') + '\n');
    const prom = await until('120 events at the sink and no checkpoint lag', (p) =>
      value(p, 'vector_component_received_events_total', { component_id: 'out' }) === 120 &&
      value(p, 'vector_checkpoint_lag_bytes', { component_id: 'logs', file }) === 0,
    );

    const sourceBytes = lines.reduce((sum, l) => sum + Buffer.byteLength(l), 0);
    expect(prom.value('vector_component_sent_events_total', { component_id: 'logs', component_kind: 'source', component_type: 'file' })).toBe(120);
    expect(prom.value('vector_component_sent_event_bytes_total', { component_id: 'logs' })).toBe(sourceBytes);
    expect(prom.value('vector_component_received_events_total', { component_id: 'parse', component_type: 'wasm' })).toBe(120);
    expect(prom.value('vector_component_sent_events_total', { component_id: 'parse' })).toBe(120);
    const batches = prom.value('vector_transform_batch_duration_seconds_count', { component_id: 'parse' });
    expect(batches).toBeGreaterThanOrEqual(2);
    expect(prom.value('vector_transform_batch_duration_seconds_bucket', { component_id: 'parse', le: '+Inf' })).toBe(batches);
    expect(prom.value('vector_buffer_events', { component_id: 'out' })).toBe(0);
    expect(prom.value('vector_component_sent_events_total', { component_id: 'out', component_type: 'file' })).toBe(120);
    expect(prom.find('vector_component_errors_total', { component_id: 'parse' })).toEqual([]);
    expect((await readFile(join(dir, 'out.log'), 'utf8')).split('\n')).toHaveLength(121);

    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
  });
});
