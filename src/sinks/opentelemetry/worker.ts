/**
 * A worker of the opentelemetry sink's encoding pool: encodes whole batches to OTLP protobuf
 * (encode.ts) or OTLP JSON (encode-json.ts). The batch's buffers arrive transferred and the encoded bytes go back transferred.
 * Outcomes are plain data: an encoding that throws hands the input back untouched, so the main
 * thread can still deliver it (nothing typed crosses the thread, and nothing is lost here).
 */
import { move, transferableSymbol, valueSymbol, workerData } from 'piscina';
import { BufferReleaser } from '../../buffer-release.js';
import { BatchEncoder } from './encode.js';
import { JsonBatchEncoder } from './encode-json.js';
import type { EncodeTask, EncodeWorkerInit, EncodeWorkerResult } from './protocol.js';

const init = workerData as EncodeWorkerInit;
const encoder =
  init.codec === 'json' ? new JsonBatchEncoder(init.serviceName, init.mapping) : new BatchEncoder(init.serviceName, init.mapping, { framed: true });
const releaser = new BufferReleaser();

export default function encodeBatch(task: EncodeTask): unknown {
  let result: EncodeWorkerResult;
  let transfer: ArrayBufferLike[];
  try {
    const encoded = encoder.encode(task);
    releaser.released(task.data.byteLength);
    result = { status: 'encoded', bytes: encoded.bytes, offsets: encoded.offsets, resourceEnd: encoded.resourceEnd };
    // A handful of numbers: copied, not transferred.
    if (encoded.groups !== undefined) result.groups = encoded.groups;
    if (encoded.request !== undefined) result.request = encoded.request;
    transfer = [encoded.bytes.buffer, encoded.offsets.buffer];
  } catch (error) {
    result = {
      status: 'failed',
      message: error instanceof Error ? error.message : String(error),
      data: task.data,
      offsets: task.offsets,
    };
    transfer = task.data.buffer === task.offsets.buffer ? [task.data.buffer] : [task.data.buffer, task.offsets.buffer];
  }
  // piscina transfers (instead of copying) only what `move` marked.
  return move({ [transferableSymbol]: transfer, [valueSymbol]: result } as unknown as ArrayBuffer);
}
