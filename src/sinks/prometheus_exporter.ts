/**
 * `type = "prometheus_exporter"`: serves the metric events it receives (from `internal_metrics`)
 * on `GET /metrics` in the Prometheus text format, as Vector's sink of that name. The exposition
 * is rendered by prom-client's Registry; each metric is kept at its latest absolute value, keyed
 * by name and tags. Metric names are `<namespace>_<name>` (`vector_component_errors_total`); a
 * histogram becomes `_bucket` (cumulative, with `le`), `_sum` and `_count` series.
 *
 * A line that is not a metric event (a log line sent here by mistake) is counted as an error and
 * a discarded event, and logged.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Metric, Registry } from 'prom-client';
import { parseListenAddress } from '../api/config.js';
import type { ComponentContext, Sink, SinkType } from '../components.js';
import type { ConfigReader } from '../config/reader.js';
import { LogwasmError } from '../errors.js';
import type { LineBatch } from '../event.js';
import { COMPONENT_ERRORS, EVENTS_DISCARDED, type Telemetry } from '../telemetry.js';

/** `address`: Vector's default, every interface. */
export const DEFAULT_PROMETHEUS_ADDRESS = '0.0.0.0:9598';

export interface PrometheusExporterConfig {
  host: string;
  port: number;
  /** `default_namespace`: for metric events without a namespace. */
  defaultNamespace: string | undefined;
}

export const prometheusExporterSink: SinkType<PrometheusExporterConfig> = {
  kind: 'sink',
  type: 'prometheus_exporter',
  parse(reader: ConfigReader): PrometheusExporterConfig {
    const { host, port } = parseListenAddress(reader, 'address', DEFAULT_PROMETHEUS_ADDRESS);
    // Vector options with no effect here: distributions are not produced, metrics do not expire.
    reader.accept('buckets', 'quantiles', 'distributions_as_summaries', 'flush_period_secs', 'suppress_timestamp', 'acknowledgements', 'healthcheck', 'buffer');
    return { host, port, defaultNamespace: reader.string('default_namespace') };
  },
  build: (config, context) => new PrometheusExporterSink(config, context),
};

interface Sample {
  kind: 'counter' | 'gauge' | 'histogram';
  labels: Record<string, string>;
  value?: number;
  buckets?: { upper_limit: number; count: number }[];
  count?: number;
  sum?: number;
}

/** One metric family for prom-client's Registry: returns the stored samples when scraped. */
class Family {
  readonly samples = new Map<string, Sample>();
  constructor(
    readonly name: string,
    readonly type: 'counter' | 'gauge' | 'histogram',
  ) {}

  get help(): string {
    return `logwasm internal metric ${this.name}`;
  }

  get() {
    const values: { labels: Record<string, string | number>; value: number; metricName?: string }[] = [];
    for (const sample of this.samples.values()) {
      if (sample.kind !== 'histogram') {
        values.push({ labels: sample.labels, value: sample.value ?? 0 });
        continue;
      }
      let cumulative = 0;
      for (const bucket of sample.buckets ?? []) {
        cumulative += bucket.count;
        const le = bucket.upper_limit === Number.POSITIVE_INFINITY || bucket.upper_limit === null ? '+Inf' : String(bucket.upper_limit);
        values.push({ labels: { ...sample.labels, le }, value: cumulative, metricName: `${this.name}_bucket` });
      }
      values.push({ labels: sample.labels, value: sample.sum ?? 0, metricName: `${this.name}_sum` });
      values.push({ labels: sample.labels, value: sample.count ?? 0, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: 'sum' as const };
  }
}

export class PrometheusExporterSink implements Sink {
  /** prom-client, loaded with the first use of this sink: ~60 ms of start-up that configs without it skip. */
  private registryLoad: Promise<Registry> | undefined;
  private readonly families = new Map<string, Family>();
  private server: Server | null = null;
  private readonly id: string;
  private readonly telemetry: Telemetry;

  constructor(
    private readonly config: PrometheusExporterConfig,
    context: ComponentContext,
  ) {
    this.id = context.id;
    this.telemetry = context.telemetry;
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => void this.handle(req, res));
    server.keepAliveTimeout = 1000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.config.port, this.config.host, () => {
        server.off('error', reject);
        resolve();
      });
    }).catch((error: Error) => {
      throw new LogwasmError(`sinks.${this.id}: cannot listen on ${this.config.host}:${this.config.port}: ${error.message}`, { cause: error });
    });
    this.server = server;
    const bound = server.address() as AddressInfo;
    const host = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
    this.telemetry.log('info', 'prometheus_exporter_started', `Serving metrics on http://${host}:${bound.port}/metrics`, this.id);
  }

  private registry(): Promise<Registry> {
    this.registryLoad ??= import('prom-client').then(({ Registry }) => new Registry());
    return this.registryLoad;
  }

  async write(batch: LineBatch): Promise<void> {
    const registry = await this.registry();
    const { data, offsets } = batch;
    const count = offsets.length - 1;
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    let bad = 0;
    for (let i = 0; i < count; i++) {
      if (!this.accept(registry, bytes.toString('utf8', offsets[i], offsets[i + 1]))) bad++;
    }
    if (bad > 0) {
      this.telemetry.count(COMPONENT_ERRORS, this.id, bad);
      this.telemetry.count(EVENTS_DISCARDED, this.id, bad);
      this.telemetry.logLimited('error', 'prometheus_not_a_metric', `${bad} events discarded: not metric events (inputs should be internal_metrics sources).`, this.id);
    }
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (server === null) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** The current exposition text (what `/metrics` serves). */
  async render(): Promise<string> {
    return (await this.registry()).metrics();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if ((req.url ?? '/').split('?')[0] !== '/metrics' || req.method !== 'GET') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    try {
      const text = await this.render();
      res.writeHead(200, { 'content-type': (await this.registry()).contentType }).end(text);
    } catch (error) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`${(error as Error).message}\n`);
    }
  }

  /** Stores one metric event; false when the line is not one. */
  private accept(registry: Registry, line: string): boolean {
    let event: Record<string, unknown>;
    try {
      event = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return false;
    }
    if (typeof event !== 'object' || event === null || typeof event.name !== 'string') return false;
    const namespace = typeof event.namespace === 'string' ? event.namespace : this.config.defaultNamespace;
    const name = sanitize(namespace === undefined || namespace === '' ? event.name : `${namespace}_${event.name}`);
    const labels: Record<string, string> = {};
    if (typeof event.tags === 'object' && event.tags !== null) {
      for (const [k, v] of Object.entries(event.tags as Record<string, unknown>)) if (typeof v === 'string') labels[sanitize(k)] = v;
    }
    let sample: Sample;
    const counter = event.counter as { value?: unknown } | undefined;
    const gauge = event.gauge as { value?: unknown } | undefined;
    const histogram = event.aggregated_histogram as Sample | undefined;
    if (typeof counter?.value === 'number') sample = { kind: 'counter', labels, value: counter.value };
    else if (typeof gauge?.value === 'number') sample = { kind: 'gauge', labels, value: gauge.value };
    else if (histogram !== undefined && Array.isArray(histogram.buckets)) {
      sample = { kind: 'histogram', labels, buckets: histogram.buckets, count: Number(histogram.count ?? 0), sum: Number(histogram.sum ?? 0) };
    } else return false;
    let family = this.families.get(name);
    if (family === undefined) {
      family = new Family(name, sample.kind);
      this.families.set(name, family);
      registry.registerMetric(family as unknown as Metric);
    } else if (family.type !== sample.kind) {
      return false;
    }
    family.samples.set(labelKey(labels), sample);
    return true;
  }
}

function sanitize(name: string): string {
  return name.replace(/[^a-zA-Z0-9_:]/g, '_').replace(/^([0-9])/, '_$1');
}

function labelKey(labels: Record<string, string>): string {
  return JSON.stringify(Object.keys(labels).sort().map((k) => [k, labels[k]]));
}
