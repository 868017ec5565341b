/**
 * What crosses the thread boundary between the opentelemetry sink and its encoding workers:
 * plain data only.
 */
import type { BatchMeta } from '../../event.js';
import type { EncodedBatch } from './encode.js';
import type { OtlpMapping } from './mapping.js';

/** `workerData` of every worker in a sink's pool. */
export interface EncodeWorkerInit {
  serviceName: string;
  /** The sink's `mapping.*` options. */
  mapping: OtlpMapping;
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
  | { status: 'encoded'; bytes: Uint8Array; offsets: Uint32Array; resourceEnd: number; groups?: Uint32Array; request?: EncodedBatch['request'] }
  /** The encoder threw: the input comes back (transferred) so the caller can still deliver it. */
  | { status: 'failed'; message: string; data: Uint8Array; offsets: Uint32Array };
