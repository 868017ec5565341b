import type { ComponentContext, RunMode, Sink, Source, Transform } from './components.js';
import type { LoadedConfig } from './config/load.js';
import { cloneBatch, lineCount, type LineBatch } from './event.js';
import { BUFFER_EVENTS, EVENTS_RECEIVED, EVENTS_SENT, EVENT_BYTES_SENT, TRANSFORM_BATCH_SECONDS, type Telemetry } from './telemetry.js';

type Deliver = (batch: LineBatch) => Promise<void>;

interface Running {
  sources: { id: string; instance: Source }[];
  transforms: { id: string; instance: Transform }[];
  sinks: { id: string; instance: Sink }[];
}

/**
 * The running graph: sources push batches through transforms into sinks. A batch's promise
 * settles when every sink it reaches has accepted it, which is how acknowledgements travel back
 * to the source. A batch handed to several consumers is copied for all but one, because a
 * transform may transfer its buffer to a worker thread.
 */
export class Topology {
  private readonly running: Running = { sources: [], transforms: [], sinks: [] };
  private readonly consumers = new Map<string, Deliver[]>();

  constructor(
    private readonly config: LoadedConfig,
    private readonly telemetry: Telemetry,
    mode: RunMode,
    options: { writeCheckpoints?: boolean } = {},
  ) {
    const writeCheckpoints = mode === 'tail' || options.writeCheckpoints === true;
    const context = (id: string): ComponentContext => ({ id, dataDir: config.dataDir, mode, telemetry, writeCheckpoints });

    for (const plan of config.sinks) {
      const sink = plan.type.build(plan.config, context(plan.id));
      this.running.sinks.push({ id: plan.id, instance: sink });
      let buffered = 0;
      const write: Deliver = async (batch) => {
        const count = lineCount(batch);
        telemetry.count(EVENTS_RECEIVED, plan.id, count);
        buffered += count;
        telemetry.gauge(BUFFER_EVENTS, plan.id, buffered);
        try {
          await sink.write(batch);
        } finally {
          buffered -= count;
          telemetry.gauge(BUFFER_EVENTS, plan.id, buffered);
        }
      };
      for (const input of plan.inputs) this.consumersOf(input).push(write);
    }
    for (const plan of config.transforms) {
      const transform = plan.type.build(plan.config, context(plan.id));
      this.running.transforms.push({ id: plan.id, instance: transform });
      const process: Deliver = async (batch) => {
        telemetry.count(EVENTS_RECEIVED, plan.id, lineCount(batch));
        const began = performance.now();
        const result = await transform.process(batch);
        telemetry.observe(TRANSFORM_BATCH_SECONDS, plan.id, (performance.now() - began) / 1000);
        await Promise.all([
          result.out ? this.deliver(plan.id, result.out) : undefined,
          result.dropped ? this.deliver(`${plan.id}.dropped`, result.dropped) : undefined,
        ]);
      };
      for (const input of plan.inputs) this.consumersOf(input).push(process);
    }
    for (const plan of config.sources) {
      const emit = (batch: LineBatch): Promise<void> => this.deliver(plan.id, batch);
      const source = plan.type.build(plan.config, { ...context(plan.id), emit });
      this.running.sources.push({ id: plan.id, instance: source });
    }
  }

  /** Starts sinks first, then transforms, then sources, so nothing is read before it can go somewhere. */
  async start(): Promise<void> {
    // Metric tags (kind, type) and per-type gauges (checkpoint lag) read what is registered here.
    const { telemetry, config } = this;
    telemetry.components.clear();
    for (const [kind, plans] of [['source', config.sources], ['transform', config.transforms], ['sink', config.sinks]] as const) {
      for (const plan of plans) telemetry.components.set(plan.id, { kind, type: plan.type.type, config: plan.config, dataDir: config.dataDir });
    }
    for (const { instance } of this.running.sinks) await instance.start();
    for (const { instance } of this.running.transforms) await instance.start();
    for (const { instance } of this.running.sources) await instance.start();
  }

  /** Replay mode: resolves when every source has read its files to the end and all of it is acknowledged. */
  async sourcesFinished(): Promise<void> {
    const sources = this.running.sources;
    // Once everything was read, sinks send what they hold without waiting for fuller batches: the
    // acknowledgements `finished()` waits for depend on it.
    void Promise.all(sources.map(({ instance }) => instance.exhausted?.() ?? instance.finished())).then(() => this.expediteSinks());
    await Promise.all(sources.map(({ instance }) => instance.finished()));
  }

  private expediteSinks(): void {
    for (const { instance } of this.running.sinks) instance.expedite?.();
  }

  /**
   * Stops reading, drains what is in flight (sources wait for their acknowledgements, which need
   * the transforms and sinks still running), then stops transforms and flushes sinks.
   */
  async stop(): Promise<void> {
    const sourcesStopped = Promise.all(this.running.sources.map(({ instance }) => instance.stop()));
    // Nothing more is read: a sink holding a partial batch for its timeout would only delay the
    // acknowledgements the sources are waiting for.
    this.expediteSinks();
    await sourcesStopped;
    await Promise.all(this.running.transforms.map(({ instance }) => instance.stop()));
    await Promise.all(this.running.sinks.map(({ instance }) => instance.stop()));
  }

  private consumersOf(output: string): Deliver[] {
    let list = this.consumers.get(output);
    if (list === undefined) {
      list = [];
      this.consumers.set(output, list);
    }
    return list;
  }

  private async deliver(output: string, batch: LineBatch): Promise<void> {
    const consumers = this.consumers.get(output);
    const count = lineCount(batch);
    this.telemetry.count(EVENTS_SENT, output, count);
    this.telemetry.count(EVENT_BYTES_SENT, output, batch.data.byteLength);
    if (consumers === undefined || consumers.length === 0 || count === 0) return;
    if (consumers.length === 1) return consumers[0]!(batch);
    // Every copy is made before any consumer runs: the first consumer may detach the original's buffer.
    const copies = consumers.slice(1).map(() => cloneBatch(batch));
    await Promise.all(consumers.map((consume, i) => consume(i === 0 ? batch : copies[i - 1]!)));
  }
}
