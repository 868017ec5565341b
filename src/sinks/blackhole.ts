/**
 * `type = "blackhole"`: accepts every batch at once and only counts it, as Vector's blackhole
 * sink does. For benchmarks and for pipelines whose output is not needed.
 */
import type { ComponentContext, Sink, SinkType } from '../components.js';
import type { ConfigReader } from '../config/reader.js';
import type { LineBatch } from '../event.js';

/**
 * Lines accepted, counted as sent (delivered nowhere), as Vector's blackhole does; the topology
 * already counts every sink's received events.
 */
export const BLACKHOLE_SENT_EVENTS = 'component_sent_events_total';
/** Bytes of the lines accepted (without line delimiters). */
export const BLACKHOLE_SENT_BYTES = 'component_sent_event_bytes_total';

export interface BlackholeSinkConfig {
  /**
   * Vector's `print_interval_secs`: accepted for compatibility; logwasm reports the counters
   * through its telemetry instead of printing them.
   */
  printIntervalSecs: number | undefined;
}

export const blackholeSink: SinkType<BlackholeSinkConfig> = {
  kind: 'sink',
  type: 'blackhole',
  parse(reader: ConfigReader): BlackholeSinkConfig {
    const printIntervalSecs = reader.number('print_interval_secs', undefined, { min: 0 });
    reader.accept('rate', 'acknowledgements', 'healthcheck');
    return { printIntervalSecs };
  },
  build(_config, context: ComponentContext): Sink {
    const { id, telemetry } = context;
    return {
      async start() {},
      async write(batch: LineBatch) {
        const count = batch.offsets.length - 1;
        telemetry.count(BLACKHOLE_SENT_EVENTS, id, count);
        telemetry.count(BLACKHOLE_SENT_BYTES, id, batch.offsets[count]! - batch.offsets[0]!);
      },
      async stop() {},
    };
  },
};
