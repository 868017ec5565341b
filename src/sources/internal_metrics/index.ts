/**
 * `type = "internal_metrics"`: logwasm's own metrics as events, as Vector's source of that name.
 * Every `scrape_interval_secs` it emits one batch of format `json` holding one metric event per
 * line (shape in ./collect.ts): every counter, gauge and histogram of src/telemetry.ts, tagged
 * with `component_id`, `component_kind` and `component_type`. Feed it to `prometheus_exporter`,
 * or to any sink that writes JSON lines.
 *
 * A scrape is skipped while the previous batch is still unacknowledged, so a slow sink never
 * piles up snapshots. In replay mode the source counts as finished at once (it has no end) and
 * emits a last scrape when it stops, so a replay's final counts reach its sinks.
 */
import os from 'node:os';
import type { Source, SourceContext, SourceType } from '../../components.js';
import type { ConfigReader } from '../../config/reader.js';
import { batchFromLines } from '../../event.js';
import { collectMetrics } from './collect.js';

/** `scrape_interval_secs`: Vector's default. */
export const DEFAULT_SCRAPE_INTERVAL_SECS = 1;
/** `namespace`: the prefix Vector gives its own metrics (`vector_component_received_events_total`). */
export const DEFAULT_NAMESPACE = 'vector';

export interface InternalMetricsConfig {
  scrapeIntervalSecs: number;
  namespace: string;
  /** `tags.host_key`: tag every metric with the hostname under this name (off when unset). */
  hostKey: string | undefined;
  /** `tags.pid_key`: tag every metric with the process id under this name (off when unset). */
  pidKey: string | undefined;
}

export const internalMetricsSource: SourceType<InternalMetricsConfig> = {
  kind: 'source',
  type: 'internal_metrics',
  parse(reader: ConfigReader): InternalMetricsConfig {
    const tags = reader.table('tags');
    const hostKey = tags.string('host_key');
    const pidKey = tags.string('pid_key');
    tags.finish();
    return {
      scrapeIntervalSecs: reader.number('scrape_interval_secs', DEFAULT_SCRAPE_INTERVAL_SECS, { min: 0.01 }),
      namespace: reader.string('namespace', DEFAULT_NAMESPACE),
      hostKey,
      pidKey,
    };
  },
  build: (config, context) => new InternalMetricsSource(config, context),
};

const encoder = new TextEncoder();

export class InternalMetricsSource implements Source {
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | null = null;
  private stopRun: Promise<void> | null = null;
  private resolveFinished!: () => void;
  private readonly finishedPromise = new Promise<void>((resolve) => (this.resolveFinished = resolve));
  private readonly host = os.hostname();

  constructor(
    private readonly config: InternalMetricsConfig,
    private readonly context: SourceContext,
  ) {}

  async start(): Promise<void> {
    this.timer = setInterval(() => void this.scrape(), this.config.scrapeIntervalSecs * 1000);
    if (this.context.mode === 'replay') this.resolveFinished();
  }

  finished(): Promise<void> {
    return this.finishedPromise;
  }

  stop(): Promise<void> {
    this.stopRun ??= (async () => {
      clearInterval(this.timer);
      await this.inFlight;
      if (this.context.mode === 'replay') await this.scrape();
      this.resolveFinished();
    })();
    return this.stopRun;
  }

  /** Emits one snapshot, unless the previous one is still in flight. */
  scrape(): Promise<void> {
    if (this.inFlight !== null) return this.inFlight;
    const run = (async () => {
      const extraTags: Record<string, string> = {};
      if (this.config.hostKey !== undefined) extraTags[this.config.hostKey] = this.host;
      if (this.config.pidKey !== undefined) extraTags[this.config.pidKey] = String(process.pid);
      const now = new Date();
      const events = await collectMetrics(this.context.telemetry, { namespace: this.config.namespace, extraTags, now });
      if (events.length === 0) return;
      const batch = batchFromLines(
        events.map((e) => encoder.encode(JSON.stringify(e))),
        { sourceId: this.context.id, sourceType: 'internal_metrics', file: '', host: this.host, timestampMs: now.getTime(), format: 'json' },
      );
      await this.context.emit(batch);
    })().finally(() => {
      this.inFlight = null;
    });
    this.inFlight = run;
    return run;
  }
}
