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
import type { Resource } from '@opentelemetry/resources';
import type { ReadableLogRecord } from '@opentelemetry/sdk-logs';
import { Writer, forEachEntry, type EncodeInput, type EncodedBatch, type EncodedSlice } from './encode.js';
import { DEFAULT_MAPPING, RecordMapper, type HrTime, type OtlpMapping } from './mapping.js';

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

function attributes(values: LogAttributes | Record<string, unknown>): unknown[] {
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

  constructor(serviceName: string, mapping: OtlpMapping = DEFAULT_MAPPING) {
    this.mapper = new RecordMapper(serviceName, mapping);
  }

  /**
   * `bytes[0, resourceEnd)` opens a `resourceLogs` entry up to its `logRecords` array; each record
   * follows as `,{...}` (the join drops the comma before a slice's first record). Records of
   * several resources (`mapping.service_name_field`) are grouped as the protobuf encoder groups
   * them: every group's opening first, then the records group after group.
   */
  encode(input: EncodeInput): EncodedBatch {
    const writer = this.writer;
    writer.pos = 0;
    const records: ReadableLogRecord[] = this.mapper.map(input);
    const count = records.length;
    // Resources in order of first appearance (the mapper hands out one object per resource).
    const resources: Resource[] = [];
    const members: number[][] = [];
    const index = new Map<Resource, number>();
    for (let i = 0; i < count; i++) {
      const resource = records[i]!.resource;
      let group = index.get(resource);
      if (group === undefined) {
        group = resources.push(resource) - 1;
        members.push([]);
        index.set(resource, group);
      }
      members[group]!.push(i);
    }
    if (resources.length === 0) resources.push(this.mapper.resourceFor(input.meta));
    const groups = new Uint32Array(resources.length * 4);
    resources.forEach((resource, g) => {
      groups[g * 4] = writer.pos;
      const header = { attributes: attributes(resource.attributes as Record<string, unknown>), droppedAttributesCount: 0 };
      this.text(`{"resource":${JSON.stringify(header)},"scopeLogs":[{"scope":{"name":"logwasm"},"logRecords":[`);
      groups[g * 4 + 1] = groups[g * 4 + 2] = writer.pos;
    });
    const offsets = new Uint32Array(count + 1);
    let written = 0;
    const observed = count === 0 ? '' : nanos(records[0]!.hrTimeObserved as HrTime);
    // Most records share the batch's attributes object: each object is converted once.
    const converted = new Map<object, unknown[]>();
    for (let g = 0; g < resources.length; g++) {
      groups[g * 4 + 3] = written;
      for (const i of members[g] ?? []) {
        const record = records[i]!;
        offsets[written++] = writer.pos;
        let recordAttributes = converted.get(record.attributes);
        if (recordAttributes === undefined) {
          recordAttributes = attributes(record.attributes);
          converted.set(record.attributes, recordAttributes);
        }
        this.record(record, recordAttributes, observed);
      }
    }
    offsets[count] = writer.pos;
    const bytes = new Uint8Array(Buffer.allocUnsafeSlow(writer.pos).buffer, 0, writer.pos);
    bytes.set(writer.buf.subarray(0, writer.pos));
    const resourceEnd = groups[1]!;
    return resources.length === 1 ? { bytes, offsets, resourceEnd } : { bytes, offsets, resourceEnd, groups };
  }

  /** `,{...}`: one record as the OpenTelemetry JS JSON serializer writes it, its trace context only when set. */
  private record(record: ReadableLogRecord, recordAttributes: unknown[], observed: string): void {
    const time = record.hrTime === record.hrTimeObserved ? observed : nanos(record.hrTime as HrTime);
    const span = record.spanContext;
    this.text(
      `,${JSON.stringify({
        timeUnixNano: time,
        observedTimeUnixNano: observed,
        severityNumber: record.severityNumber,
        severityText: record.severityText,
        body: anyValue(record.body),
        attributes: recordAttributes,
        droppedAttributesCount: record.droppedAttributesCount,
        flags: span?.traceFlags ? span.traceFlags : undefined,
        traceId: span?.traceId ? span.traceId : undefined,
        spanId: span?.spanId ? span.spanId : undefined,
      })}`,
    );
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

/** Bytes of the `resourceLogs` entries that carry `slice` in jsonRequestBody, the comma before each included. */
export function jsonEntrySize(slice: EncodedSlice): number {
  let size = 0;
  forEachEntry(slice, (start, _resourceEnd, headerEnd, recordsStart, recordsEnd) => {
    size += 1 + headerEnd - start + recordsEnd - recordsStart - (recordsEnd > recordsStart ? 1 : 0) + CLOSE_ENTRY.length;
  });
  return size;
}

/** An OTLP JSON `ExportLogsServiceRequest` body carrying `slices`, each as its own `resourceLogs` entry (or one per resource group). */
export function jsonRequestBody(slices: readonly EncodedSlice[]): Uint8Array {
  let total = OPEN.length + CLOSE.length - 1;
  for (const slice of slices) total += jsonEntrySize(slice);
  total = Math.max(total, OPEN.length + CLOSE.length);
  const out = Buffer.allocUnsafeSlow(total);
  out.set(OPEN, 0);
  let pos = OPEN.length;
  let first = true;
  for (const slice of slices) {
    const bytes = slice.batch.bytes;
    forEachEntry(slice, (start, _resourceEnd, headerEnd, recordsStart, recordsEnd) => {
      if (!first) out[pos++] = 0x2c;
      first = false;
      out.set(bytes.subarray(start, headerEnd), pos);
      pos += headerEnd - start;
      if (recordsEnd > recordsStart) {
        // Without the comma that precedes the entry's first record.
        const records = bytes.subarray(recordsStart + 1, recordsEnd);
        out.set(records, pos);
        pos += records.length;
      }
      out.set(CLOSE_ENTRY, pos);
      pos += CLOSE_ENTRY.length;
    });
  }
  out.set(CLOSE, pos);
  return out;
}
