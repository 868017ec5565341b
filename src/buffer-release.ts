/**
 * Frees, promptly, the ArrayBuffers a worker thread is done with.
 *
 * A worker of the wasm transform or of the OTLP encoder receives each batch's buffers by transfer
 * and drops them once the batch is processed. V8 frees a dead ArrayBuffer's memory only when it
 * collects the JS object, and it collects when the JS heap fills up or when external memory has
 * grown by about 64 MiB since the last collection. These workers allocate little on the JS heap
 * (the OTLP encoder's work is mostly in wasm), so the second trigger is the one that fires: each
 * worker held up to ~64 MiB of dead batches, which was most of the process's peak RSS. A minor
 * collection (a scavenge of a young generation of a few MiB) after every few MiB of released
 * batches costs a fraction of a millisecond and bounds that to the threshold.
 *
 * V8 offers no API for it without `--expose-gc`; the flag is turned on at run time and the `gc`
 * function taken from a fresh context, which is the flag's only effect.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Bytes of released buffers after which a worker runs a minor collection. */
export const RELEASE_EVERY_BYTES = 4 * 1024 * 1024;

/** V8's `gc` function as `--expose-gc` installs it. */
export type CollectGarbage = (options: { type: 'minor' | 'major' }) => void;

export class BufferReleaser {
  private pending = 0;
  /** Minor collections run so far: for tests. */
  collections = 0;

  constructor(
    /** null: only count (a runtime that refuses `--expose-gc`). */
    private readonly collect: CollectGarbage | null = exposedGc() ?? null,
    private readonly everyBytes = RELEASE_EVERY_BYTES,
  ) {}

  /** Notes that `bytes` of ArrayBuffers became garbage; collects the young generation past the threshold. */
  released(bytes: number): void {
    this.pending += bytes;
    if (this.pending < this.everyBytes || this.collect === null) return;
    this.pending = 0;
    this.collections++;
    this.collect({ type: 'minor' });
  }
}

/** V8's `gc`, or undefined if this runtime refuses to expose it (then buffers are freed as V8 sees fit). */
export function exposedGc(): CollectGarbage | undefined {
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('gc');
    return typeof gc === 'function' ? (gc as CollectGarbage) : undefined;
  } catch {
    return undefined;
  }
}
