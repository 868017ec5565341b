import type { ConfigReader } from './config/reader.js';
import type { LineBatch } from './event.js';
import type { Telemetry } from './telemetry.js';

/**
 * Sends a batch to every component downstream. The promise settles once every sink that the
 * batch reaches has accepted it (or handled it by its configured failure policy): that is the
 * acknowledgement a source waits for before it advances its checkpoint. It never rejects.
 */
export type Emit = (batch: LineBatch) => Promise<void>;

/** How the process runs: `tail` follows files forever, `replay` reads them to their end once. */
export type RunMode = 'tail' | 'replay';

export interface ComponentContext {
  /** The component's id: the `ID` of `[sources.ID]`. */
  id: string;
  /** Global `data_dir`: where sources keep checkpoints. */
  dataDir: string;
  mode: RunMode;
  telemetry: Telemetry;
  /** Replay mode writes no checkpoints unless asked (`logwasm replay --checkpoints`); tail mode always does. */
  writeCheckpoints?: boolean;
}

export interface SourceContext extends ComponentContext {
  emit: Emit;
}

export interface Source {
  /** Starts reading. Resolves once the source is running (files discovered, first reads issued). */
  start(): Promise<void>;
  /**
   * Replay mode: resolves when every matched file has been read to its end and every batch emitted
   * has been acknowledged. Tail mode: resolves only after `stop()`.
   */
  finished(): Promise<void>;
  /**
   * Replay mode: resolves once every matched file has been read to its end, before its last
   * batches are acknowledged (then sinks need not hold partial batches for more). Optional:
   * without it, `finished()` stands for it.
   */
  exhausted?(): Promise<void>;
  /** Stops reading, waits for in-flight batches to be acknowledged, writes checkpoints. */
  stop(): Promise<void>;
}

/** A transform's outputs: `out` goes to components listing `ID`, `dropped` to those listing `ID.dropped`. */
export interface TransformResult {
  out: LineBatch | null;
  dropped?: LineBatch | null;
}

export interface Transform {
  start(): Promise<void>;
  /** Takes ownership of `batch` (its buffer may be transferred to a worker thread). */
  process(batch: LineBatch): Promise<TransformResult>;
  stop(): Promise<void>;
}

export interface Sink {
  start(): Promise<void>;
  /**
   * Takes ownership of `batch` (its buffer may be transferred to an encoder thread). Resolves
   * when the batch is accepted: delivered, or handled by the failure policy (and counted). Must
   * not reject. Backpressure is a promise that takes longer to resolve.
   */
  write(batch: LineBatch): Promise<void>;
  /** Flushes what is buffered and releases resources. */
  stop(): Promise<void>;
  /**
   * Sources have stopped reading: what is still on its way is the last of it, so batches need not
   * wait for more records (a batch timeout) before they are sent. Writes are still accepted.
   */
  expedite?(): void;
}

export type ComponentKind = 'source' | 'transform' | 'sink';

/**
 * A component type: what `type = "..."` names. `parse` reads the component's table through the
 * reader (which reports unknown keys and bad values); `build` turns the parsed config into a
 * running instance.
 */
export interface SourceType<C> {
  kind: 'source';
  type: string;
  parse(reader: ConfigReader): C;
  build(config: C, context: SourceContext): Source;
}
export interface TransformType<C> {
  kind: 'transform';
  type: string;
  parse(reader: ConfigReader): C;
  build(config: C, context: ComponentContext): Transform;
}
export interface SinkType<C> {
  kind: 'sink';
  type: string;
  parse(reader: ConfigReader): C;
  build(config: C, context: ComponentContext): Sink;
}
