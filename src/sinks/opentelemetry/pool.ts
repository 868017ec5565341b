/**
 * The opentelemetry sink's encoding pool: piscina worker threads that turn batches into OTLP
 * protobuf (encode.ts) or JSON (encode-json.ts), so the main thread only joins encoded bytes into
 * request bodies.
 *
 * A batch's buffers are transferred to the worker (the sink owns the batch: after `encode()` the
 * caller's views are detached; a view into a larger buffer is copied first) and the encoded bytes
 * are transferred back. If the worker script is missing (running from src/ without `npm run
 * build`), or an encoding fails in the worker, the batch is encoded on the main thread instead:
 * slower, never lost. Only a worker that dies while holding a batch (out of memory) loses that
 * batch; the promise then rejects and the sink counts the records as rejected.
 */
import { access } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { LineBatch } from '../../event.js';
import { BatchEncoder, type EncodeInput, type EncodedBatch } from './encode.js';
import { JsonBatchEncoder } from './encode-json.js';
import { DEFAULT_MAPPING, type OtlpMapping } from './mapping.js';
import type { EncodeTask, EncodeWorkerInit, EncodeWorkerResult } from './protocol.js';

/**
 * Encoding threads of one sink. One: with the Rust encoder (crates/otlp_encode), encoding costs
 * about 0.5-0.7 µs per ~215-byte JSON record (1.3-1.5 µs on the JS path it falls back to), so one
 * thread keeps up with well over a million records/s of CPU time, and every extra thread competes
 * with the wasm transform's workers for the same cores.
 */
export const DEFAULT_ENCODE_THREADS = 1;

/** Why a batch was encoded on the main thread instead of a worker. */
export type FallbackReason = 'worker_missing' | 'worker_failed';

export interface EncodePoolOptions {
  serviceName: string;
  /** OTLP protobuf (default) or OTLP JSON. */
  codec?: 'protobuf' | 'json';
  /** The sink's `mapping.*` options; DEFAULT_MAPPING when absent. */
  mapping?: OtlpMapping;
  threads?: number;
  /** Told whenever a batch is encoded on the main thread, with the worker's message if any. */
  onFallback?: (reason: FallbackReason, detail: string) => void;
  /** The worker script; encodeWorkerFile() by default. */
  filename?: string;
}

/**
 * The compiled worker. Under vitest this file runs from src/ as TypeScript, but worker threads
 * need JavaScript: map src/ onto the compiled dist/ (`npm run build` first), as the wasm
 * transform does.
 */
export function encodeWorkerFile(): string {
  const path = fileURLToPath(new URL('./worker.js', import.meta.url));
  const marker = `${'/'}src${'/'}`;
  const at = path.lastIndexOf(marker);
  if (at === -1 || !import.meta.url.endsWith('.ts')) return path;
  return `${path.slice(0, at)}/dist/${path.slice(at + marker.length)}`;
}

export class EncodePool {
  private pool: Piscina | undefined;
  private readonly local: { encode(input: EncodeInput): EncodedBatch };
  private started: Promise<void> | undefined;
  /** Set when the worker script is missing: why every batch is encoded inline. */
  private missing: string | undefined;

  constructor(private readonly options: EncodePoolOptions) {
    const mapping = options.mapping ?? DEFAULT_MAPPING;
    this.local = options.codec === 'json' ? new JsonBatchEncoder(options.serviceName, mapping) : new BatchEncoder(options.serviceName, mapping);
  }

  /** Starts the worker threads; without a worker script, every batch is encoded inline. */
  start(): Promise<void> {
    this.started ??= this.open();
    return this.started;
  }

  /** Whether batches go to worker threads (false before start() or without a worker script). */
  get threaded(): boolean {
    return this.pool !== undefined;
  }

  private async open(): Promise<void> {
    const filename = this.options.filename ?? encodeWorkerFile();
    try {
      await access(filename);
    } catch {
      this.missing = `worker script "${filename}" is missing (run npm run build)`;
      return;
    }
    const threads = this.options.threads ?? DEFAULT_ENCODE_THREADS;
    const workerData: EncodeWorkerInit = {
      serviceName: this.options.serviceName,
      mapping: this.options.mapping ?? DEFAULT_MAPPING,
      codec: this.options.codec ?? 'protobuf',
    };
    this.pool = new Piscina({ filename, minThreads: threads, maxThreads: threads, idleTimeout: Infinity, workerData });
  }

  /** Encodes `batch`, taking ownership of its buffers. */
  async encode(batch: LineBatch): Promise<EncodedBatch> {
    await this.start();
    const pool = this.pool;
    if (pool === undefined) {
      if (this.missing !== undefined) this.options.onFallback?.('worker_missing', this.missing);
      return this.local.encode(batch);
    }
    const task: EncodeTask = { data: ownedView(batch.data), offsets: ownedView(batch.offsets), meta: batch.meta };
    const transferList = task.data.buffer === task.offsets.buffer ? [task.data.buffer] : [task.data.buffer, task.offsets.buffer];
    const result = (await pool.run(task, { transferList: transferList as ArrayBuffer[] })) as EncodeWorkerResult;
    if (result.status === 'encoded') {
      const { bytes, offsets, resourceEnd, groups, request } = result;
      const batch: EncodedBatch = { bytes, offsets, resourceEnd };
      if (groups !== undefined) batch.groups = groups;
      if (request !== undefined) batch.request = request;
      fromWorker.add(batch);
      return batch;
    }
    this.options.onFallback?.('worker_failed', result.message);
    return this.local.encode({ data: result.data, offsets: result.offsets, meta: batch.meta });
  }

  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    if (pool === undefined) return;
    await pool.close();
    await pool.destroy();
  }
}

/** Encoded batches whose buffers came from a worker: each owns its buffers whole. */
const fromWorker = new WeakSet<EncodedBatch>();

/**
 * Hands the memory of an encoded batch that is done with (every record delivered or given up on)
 * back at the next minor GC instead of the next full one. An encoded batch usually outlives two
 * scavenges on its way through the requests, so its JS object is promoted, and a promoted
 * ArrayBuffer's memory is freed only by a mark-compact: hundreds of milliseconds of dead request
 * bodies (up to tens of MiB) piled up on the main thread in between. Transferring the buffers
 * into a throwaway clone detaches them; the clone's fresh, young ArrayBuffers now hold the memory
 * and die at once. Only batches a worker made: a main-thread fallback's may share a pooled buffer.
 */
export function releaseEncoded(batch: EncodedBatch): void {
  if (!fromWorker.delete(batch)) return;
  const buffers = batch.bytes.buffer === batch.offsets.buffer ? [batch.bytes.buffer] : [batch.bytes.buffer, batch.offsets.buffer];
  if (buffers.some((buffer) => !(buffer instanceof ArrayBuffer) || buffer.byteLength === 0)) return;
  structuredClone(buffers, { transfer: buffers as ArrayBuffer[] });
}

/**
 * `view` itself when it spans its whole (non-shared) buffer, else a copy that does: transferring
 * a view's buffer would take whatever else the caller keeps in it. The file source and the wasm
 * transform hand on exactly sized buffers, so on the usual path nothing is copied here.
 */
function ownedView<T extends Uint8Array | Uint32Array>(view: T): T {
  const whole = view.byteOffset === 0 && view.byteLength === view.buffer.byteLength && view.buffer instanceof ArrayBuffer;
  return whole ? view : (view.slice() as T);
}
