/**
 * What crosses the thread boundary between the opentelemetry sink and its encoding workers:
 * plain data only.
 */
import type { BatchMeta } from '../../event.js';

/** `workerData` of every worker in a sink's pool. */
export interface EncodeWorkerInit {
  serviceName: string;
  /** Which encoder the worker runs: OTLP protobuf (encode.ts) or OTLP JSON (encode-json.ts). */
  codec: 'protobuf' | 'json';
}

/** One batch to encode; `data` and `offsets` are transferred (each spans its whole buffer). */
export interface EncodeTask {
  data: Uint8Array;
  offsets: Uint32Array;
  meta: BatchMeta;
}

export type EncodeWorkerResult =
  /** An `EncodedBatch`: its buffers are transferred back. */
  | { status: 'encoded'; bytes: Uint8Array; offsets: Uint32Array; resourceEnd: number }
  /** The encoder threw: the input comes back (transferred) so the caller can still deliver it. */
  | { status: 'failed'; message: string; data: Uint8Array; offsets: Uint32Array };
