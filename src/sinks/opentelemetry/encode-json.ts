/**
 * OTLP/JSON encoding of a whole batch, for `encoding = "json"`, laid out like the protobuf
 * encoder's output (encode.ts) so it can run in the same worker pool and be split and joined the
 * same way: one `resourceLogs` entry per batch, records as separately addressable bytes.
 *
 * The records are mapped by RecordMapper and written with the OpenTelemetry JS JSON rules
 * (`JSON_ENCODER` of @opentelemetry/otlp-transformer): times as decimal strings, int64 as JSON
 * numbers, `null` as an empty AnyValue. JSON is not the fast path; this moves its cost off the
 * main thread.
 */
import type { LogAttributes } from '@opentelemetry/api-logs';
import type { ReadableLogRecord } from '@opentelemetry/sdk-logs';
import { Writer, type EncodeInput, type EncodedBatch, type EncodedSlice } from './encode.js';
import { RecordMapper, resourceAttributes, type HrTime } from './mapping.js';

const utf8 = new TextEncoder();

/** OTLP JSON of an AnyValue, as the OpenTelemetry JS `toAnyValue` builds it. */
function anyValue(value: unknown): unknown {
  switch (typeof value) {
    case 'string':
      return { stringValue: value };
    case 'number':
      return Number.isInteger(value) ? { intValue: value } : { doubleValue: value };
    case 'boolean':
      return { boolValue: value };
    case 'object': {
      if (value === null) return {};
      if (Array.isArray(value)) return { arrayValue: { values: value.map(anyValue) } };
      const object = value as Record<string, unknown>;
      return { kvlistValue: { values: Object.keys(object).map((key) => ({ key, value: anyValue(object[key]) })) } };
    }
    default:
      return {};
  }
}

function attributes(values: LogAttributes | Record<string, string>): unknown[] {
  return Object.keys(values).map((key) => ({ key, value: anyValue(values[key]) }));
}

/** Nanoseconds since the epoch as a decimal string, exact beyond 2^53. */
function nanos(time: HrTime): string {
  return (BigInt(Math.trunc(time[0])) * 1_000_000_000n + BigInt(Math.trunc(time[1]))).toString();
}

/** The same EncodedBatch layout, in OTLP JSON text (UTF-8). */
export class JsonBatchEncoder {
  private readonly writer = new Writer(64 * 1024);
  private readonly mapper: RecordMapper;

  constructor(private readonly serviceName: string) {
    this.mapper = new RecordMapper(serviceName);
  }

  /**
   * `bytes[0, resourceEnd)` opens a `resourceLogs` entry up to its `logRecords` array; each record
   * follows as `,{...}` (the join drops the comma before a slice's first record).
   */
  encode(input: EncodeInput): EncodedBatch {
    const writer = this.writer;
    writer.pos = 0;
    const resource = { attributes: attributes(resourceAttributes(input.meta, this.serviceName)), droppedAttributesCount: 0 };
    this.text(`{"resource":${JSON.stringify(resource)},"scopeLogs":[{"scope":{"name":"logwasm"},"logRecords":[`);
    const resourceEnd = writer.pos;
    const records: ReadableLogRecord[] = this.mapper.map(input);
    const offsets = new Uint32Array(records.length + 1);
    let shared: { attributes: unknown; observed: string; observedFrom: ReadableLogRecord['hrTimeObserved'] } | undefined;
    records.forEach((record, i) => {
      offsets[i] = writer.pos;
      // Every record of a batch shares its attributes and read time: converted once.
      if (shared === undefined || shared.observedFrom !== record.hrTimeObserved) {
        shared = { attributes: attributes(record.attributes), observed: nanos(record.hrTimeObserved as HrTime), observedFrom: record.hrTimeObserved };
      }
      const time = record.hrTime === record.hrTimeObserved ? shared.observed : nanos(record.hrTime as HrTime);
      this.text(
        `,${JSON.stringify({
          timeUnixNano: time,
          observedTimeUnixNano: shared.observed,
          severityNumber: record.severityNumber,
          severityText: record.severityText,
          body: anyValue(record.body),
          attributes: shared.attributes,
          droppedAttributesCount: record.droppedAttributesCount,
        })}`,
      );
    });
    offsets[records.length] = writer.pos;
    const bytes = new Uint8Array(Buffer.allocUnsafeSlow(writer.pos).buffer, 0, writer.pos);
    bytes.set(writer.buf.subarray(0, writer.pos));
    return { bytes, offsets, resourceEnd };
  }

  private text(value: string): void {
    const writer = this.writer;
    writer.ensure(value.length * 3);
    writer.pos += utf8.encodeInto(value, writer.buf.subarray(writer.pos)).written;
  }
}

const OPEN = utf8.encode('{"resourceLogs":[');
const CLOSE_ENTRY = utf8.encode(']}]}');
const CLOSE = utf8.encode(']}');

/** An OTLP JSON `ExportLogsServiceRequest` body carrying `slices`, each as its own `resourceLogs` entry. */
export function jsonRequestBody(slices: readonly EncodedSlice[]): Uint8Array {
  let total = OPEN.length + CLOSE.length + Math.max(0, slices.length - 1);
  for (const { batch, from, to } of slices) {
    const records = batch.offsets[to]! - batch.offsets[from]! - (to > from ? 1 : 0);
    total += batch.resourceEnd + records + CLOSE_ENTRY.length;
  }
  const out = Buffer.allocUnsafeSlow(total);
  out.set(OPEN, 0);
  let pos = OPEN.length;
  slices.forEach(({ batch, from, to }, i) => {
    if (i > 0) out[pos++] = 0x2c;
    out.set(batch.bytes.subarray(0, batch.resourceEnd), pos);
    pos += batch.resourceEnd;
    if (to > from) {
      // Without the comma that precedes the slice's first record.
      const records = batch.bytes.subarray(batch.offsets[from]! + 1, batch.offsets[to]!);
      out.set(records, pos);
      pos += records.length;
    }
    out.set(CLOSE_ENTRY, pos);
    pos += CLOSE_ENTRY.length;
  });
  out.set(CLOSE, pos);
  return out;
}
