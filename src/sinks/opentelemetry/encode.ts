/**
 * OTLP/protobuf encoding of a whole batch, straight from its bytes: one `ResourceLogs` per batch
 * (one file = one resource), one `ScopeLogs` (scope `logwasm`), one `LogRecord` per line. Pure and
 * synchronous, so it runs the same in the sink's worker threads and, as a fallback, on the main
 * thread. The mapping rules are mapping.ts's (the same functions decide timestamp and severity);
 * the wire layout follows opentelemetry-proto v1 (`logs.proto`, `common.proto`).
 *
 * The output is built to be split and joined without re-encoding: the resource and scope entries
 * come first, then every LogRecord as a complete `ScopeLogs.log_records` entry (tag and length
 * included), with record offsets. Any run of records `[from, to)` becomes a valid
 * `ExportLogsServiceRequest.resource_logs` entry by writing two small headers around the resource
 * entry, the scope entry and those records' bytes (`requestBody`). A request body is the
 * concatenation of such entries. With `mapping.service_name_field`, a batch's records can belong
 * to several resources: they are then grouped by resource (records of a group in line order, groups
 * in order of first appearance), and a run spanning groups becomes one entry per group.
 */
import { isUtf8 } from 'node:buffer';
import { parseJsonObject, type BatchMeta } from '../../event.js';
import {
  DEFAULT_MAPPING,
  eventTime,
  fastRfc3339,
  hrTimeFromMs,
  parseSeverity,
  parseHexId,
  parseTimestamp,
  parseTraceFlags,
  promotedByField,
  recordAttributes,
  resourceAttributes,
  severityOf,
  takeMappedFields,
  type HrTime,
  type OtlpMapping,
  type Severity,
} from './mapping.js';
import { CAPTURE_SERVICE, CAPTURE_SPAN_ID, CAPTURE_TRACE_FLAGS, CAPTURE_TRACE_ID, JsonTranscoder, RAW } from './transcode.js';
import { WasmBatchEncoder, type WasmEncoderStats } from './wasm-encoder.js';

/** Name of the instrumentation scope of every record. */
export const SCOPE_NAME = 'logwasm';

/** What the encoder needs of a batch: its layout and meta, not its ownership. */
export interface EncodeInput {
  data: Uint8Array;
  offsets: Uint32Array;
  meta: BatchMeta;
}

/**
 * One batch, encoded. `bytes` holds, back to back: the `ResourceLogs.resource` entry
 * (`[0, resourceEnd)`), the `ScopeLogs.scope` entry (`[resourceEnd, offsets[0])`), then record `i`
 * as `bytes[offsets[i], offsets[i + 1])`, a whole `ScopeLogs.log_records` entry.
 *
 * When the records belong to several resources, `groups` holds four numbers per resource: where
 * its resource entry starts, where it ends (its scope entry follows), where the scope entry ends,
 * and the index of its first record. The headers of every group come first, then the records,
 * group after group; `resourceEnd` is then the first group's.
 */
export interface EncodedBatch {
  bytes: Uint8Array;
  offsets: Uint32Array;
  resourceEnd: number;
  groups?: Uint32Array;
  /**
   * Set by `framedAsRequest`: `bytes` is itself the body of a request carrying every record of
   * the batch, so such a request is sent without copying. The resource entry then starts at
   * `resourceStart` and the scope entry at `scopeStart` (the framing sits before each).
   */
  request?: { resourceStart: number; scopeStart: number };
}

/** A run of records `[from, to)` of an encoded batch: what a request carries of it. */
export interface EncodedSlice {
  batch: EncodedBatch;
  from: number;
  to: number;
}

/** Records in a slice. */
export function sliceCount(slice: EncodedSlice): number {
  return slice.to - slice.from;
}

/**
 * One `resource_logs` entry of a slice, as byte positions in its batch's `bytes`: the resource
 * entry is `[start, resourceEnd)`, the scope entry `[scopeStart, headerEnd)` (`scopeStart` is
 * `resourceEnd` unless the batch was framed as a request).
 */
export type EntryVisitor = (start: number, resourceEnd: number, headerEnd: number, recordsStart: number, recordsEnd: number, scopeStart: number) => void;

/**
 * The entries a slice becomes: one per resource group its records span (a batch without `groups`
 * is one group); an empty slice is one entry without records.
 */
export function forEachEntry(slice: EncodedSlice, visit: EntryVisitor): void {
  const { batch, from, to } = slice;
  const { groups, offsets } = batch;
  if (groups === undefined) {
    const request = batch.request;
    visit(request?.resourceStart ?? 0, batch.resourceEnd, offsets[0]!, offsets[from]!, offsets[to]!, request?.scopeStart ?? batch.resourceEnd);
    return;
  }
  const count = groups.length / 4;
  for (let g = 0; g < count; g++) {
    const first = groups[g * 4 + 3]!;
    const next = g + 1 < count ? groups[g * 4 + 7]! : offsets.length - 1;
    const a = Math.max(from, first);
    const b = Math.min(to, next);
    const holdsEmpty = from === to && from >= first && (from < next || g === count - 1);
    if (a < b || holdsEmpty) visit(groups[g * 4]!, groups[g * 4 + 1]!, groups[g * 4 + 2]!, offsets[a]!, offsets[a < b ? b : a]!, groups[g * 4 + 1]!);
  }
}

// Wire types and tags (field number << 3 | wire type) of the fields written here.
const TAG_RESOURCE_LOGS = 0x0a; // ExportLogsServiceRequest.resource_logs = 1, LEN
const TAG_RESOURCE = 0x0a; // ResourceLogs.resource = 1, LEN
const TAG_SCOPE_LOGS = 0x12; // ResourceLogs.scope_logs = 2, LEN
const TAG_SCOPE = 0x0a; // ScopeLogs.scope = 1, LEN
const TAG_LOG_RECORD = 0x12; // ScopeLogs.log_records = 2, LEN
const TAG_ATTRIBUTE = 0x0a; // Resource.attributes = 1, LEN
const TAG_NAME = 0x0a; // InstrumentationScope.name = 1, LEN
const TAG_TIME = 0x09; // LogRecord.time_unix_nano = 1, I64
const TAG_SEVERITY_NUMBER = 0x10; // LogRecord.severity_number = 2, VARINT
const TAG_SEVERITY_TEXT = 0x1a; // LogRecord.severity_text = 3, LEN
const TAG_BODY = 0x2a; // LogRecord.body = 5, LEN
const TAG_RECORD_ATTRIBUTE = 0x32; // LogRecord.attributes = 6, LEN
const TAG_FLAGS = 0x45; // LogRecord.flags = 8, I32
const TAG_TRACE_ID = 0x4a; // LogRecord.trace_id = 9, LEN
const TAG_SPAN_ID = 0x52; // LogRecord.span_id = 10, LEN
const TAG_OBSERVED_TIME = 0x59; // LogRecord.observed_time_unix_nano = 11, I64
const TAG_KEY = 0x0a; // KeyValue.key = 1, LEN
const TAG_VALUE = 0x12; // KeyValue.value = 2, LEN
const TAG_STRING = 0x0a; // AnyValue.string_value = 1, LEN
const TAG_BOOL = 0x10; // AnyValue.bool_value = 2, VARINT
const TAG_INT = 0x18; // AnyValue.int_value = 3, VARINT
const TAG_DOUBLE = 0x21; // AnyValue.double_value = 4, I64
const TAG_ARRAY = 0x2a; // AnyValue.array_value = 5, LEN
const TAG_KVLIST = 0x32; // AnyValue.kvlist_value = 6, LEN
const TAG_VALUES = 0x0a; // ArrayValue.values / KeyValueList.values = 1, LEN

const TWO_32 = 0x1_0000_0000;
const INT64_LIMIT = 2 ** 63;

/** Bytes of `value` (a non-negative integer below 2^53) as a varint. */
export function varintSize(value: number): number {
  let size = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    size++;
  }
  return size;
}

/**
 * A growable byte buffer with the few protobuf writes the encoder needs. Nested messages reserve
 * room for their length prefix (`begin`) and fix it up when they end (`end`), moving the content
 * in the rare case the reservation was wrong: one pass, no size pre-computation.
 */
export class Writer {
  buf: Uint8Array;
  pos = 0;
  private readonly floats = new Float64Array(1);
  private readonly floatBytes = new Uint8Array(this.floats.buffer);
  private readonly encoder = new TextEncoder();

  constructor(initial: number) {
    this.buf = new Uint8Array(initial);
  }

  ensure(extra: number): void {
    if (this.pos + extra <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + extra) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  byte(value: number): void {
    this.ensure(1);
    this.buf[this.pos++] = value;
  }

  varint(value: number): void {
    this.ensure(10);
    const buf = this.buf;
    let pos = this.pos;
    while (value >= 0x80) {
      buf[pos++] = (value & 0x7f) | 0x80;
      value = Math.floor(value / 128);
    }
    buf[pos++] = value;
    this.pos = pos;
  }

  /** A 64-bit varint from its two 32-bit halves (unsigned). */
  varint64(low: number, high: number): void {
    if (high === 0) {
      this.varint(low);
      return;
    }
    this.ensure(10);
    const buf = this.buf;
    let pos = this.pos;
    // Seven bits at a time across the two halves.
    while (high !== 0 || low >= 0x80) {
      buf[pos++] = (low & 0x7f) | 0x80;
      low = ((low >>> 7) | (high << 25)) >>> 0;
      high = high >>> 7;
    }
    buf[pos++] = low;
    this.pos = pos;
  }

  /** An int64 varint of an integer in [-2^63, 2^63). */
  int64(value: number): void {
    if (value >= 0 && value < TWO_32) {
      this.varint(value);
      return;
    }
    const magnitude = Math.abs(value);
    let low = magnitude % TWO_32;
    let high = (magnitude - low) / TWO_32;
    if (value < 0) {
      // Two's complement of the 64-bit magnitude.
      low = ~low >>> 0;
      high = ~high >>> 0;
      low = (low + 1) >>> 0;
      if (low === 0) high = (high + 1) >>> 0;
    }
    this.varint64(low >>> 0, high >>> 0);
  }

  fixed64(low: number, high: number): void {
    this.ensure(8);
    const buf = this.buf;
    const pos = this.pos;
    buf[pos] = low & 0xff;
    buf[pos + 1] = (low >>> 8) & 0xff;
    buf[pos + 2] = (low >>> 16) & 0xff;
    buf[pos + 3] = low >>> 24;
    buf[pos + 4] = high & 0xff;
    buf[pos + 5] = (high >>> 8) & 0xff;
    buf[pos + 6] = (high >>> 16) & 0xff;
    buf[pos + 7] = high >>> 24;
    this.pos = pos + 8;
  }

  double(value: number): void {
    this.ensure(8);
    this.floats[0] = value;
    this.buf.set(this.floatBytes, this.pos);
    this.pos += 8;
  }

  /** A length-delimited string: ASCII below 128 chars byte by byte, anything else through TextEncoder. */
  string(value: string): void {
    const length = value.length;
    if (length < 0x80) {
      this.ensure(length + 1);
      const buf = this.buf;
      let pos = this.pos + 1;
      let i = 0;
      for (; i < length; i++) {
        const c = value.charCodeAt(i);
        if (c >= 0x80) break;
        buf[pos++] = c;
      }
      if (i === length) {
        buf[this.pos] = length;
        this.pos = pos;
        return;
      }
    }
    // UTF-8 takes at most 3 bytes per UTF-16 unit (lone surrogates become U+FFFD, 3 bytes).
    const start = this.begin(varintSize(length * 3));
    this.ensure(length * 3);
    const { written } = this.encoder.encodeInto(value, this.buf.subarray(this.pos));
    this.pos += written;
    this.end(start, varintSize(length * 3));
  }

  bytes(value: Uint8Array): void {
    this.varint(value.length);
    this.ensure(value.length);
    this.buf.set(value, this.pos);
    this.pos += value.length;
  }

  /** Reserves `reserve` bytes for a length prefix; returns where the prefix goes. */
  begin(reserve: number): number {
    this.ensure(reserve);
    const start = this.pos;
    this.pos += reserve;
    return start;
  }

  /** Writes the length of what follows `start + reserve`, moving it if the prefix needs another size. */
  end(start: number, reserve: number): void {
    const length = this.pos - start - reserve;
    // The reservation was right (nearly always): write the prefix and return.
    if (reserve === 2 && length >= 0x80 && length < 0x4000) {
      this.buf[start] = (length & 0x7f) | 0x80;
      this.buf[start + 1] = length >>> 7;
      return;
    }
    if (reserve === 1 && length < 0x80) {
      this.buf[start] = length;
      return;
    }
    const size = varintSize(length);
    if (size !== reserve) {
      this.ensure(size - reserve);
      this.buf.copyWithin(start + size, start + reserve, this.pos);
      this.pos += size - reserve;
    }
    const buf = this.buf;
    let pos = start;
    let value = length;
    while (value >= 0x80) {
      buf[pos++] = (value & 0x7f) | 0x80;
      value = Math.floor(value / 128);
    }
    buf[pos] = value;
  }
}

/** Splits HrTime nanoseconds into 32-bit halves exactly (beyond 2^53), as the OTel serializer does. */
function writeHrTime(writer: Writer, time: HrTime): void {
  const seconds = time[0];
  const nanos = time[1];
  const lowSeconds = seconds & 0xffff;
  const highSeconds = (seconds / 0x10000) >>> 0;
  const fromLow = lowSeconds * 1e9;
  const fromHigh = highSeconds * 1e9;
  const lowSum = (fromLow >>> 0) + (((fromHigh & 0xffff) * 0x10000) >>> 0) + nanos;
  const high = (Math.floor(fromLow / TWO_32) + ((fromHigh / 0x10000) >>> 0) + Math.floor(lowSum / TWO_32)) >>> 0;
  writer.fixed64(lowSum >>> 0, high);
}

/**
 * An AnyValue's content (no tag or length of its own): the OTel JS rules, so bodies match what the
 * exporter sent before: integers in int64 range as int_value, other numbers as double_value, null
 * (and anything unrepresentable) as an empty AnyValue.
 */
function writeAnyValue(writer: Writer, value: unknown): void {
  switch (typeof value) {
    case 'string':
      writer.byte(TAG_STRING);
      writer.string(value);
      return;
    case 'boolean':
      writer.byte(TAG_BOOL);
      writer.byte(value ? 1 : 0);
      return;
    case 'number':
      if (Number.isInteger(value) && value >= -INT64_LIMIT && value < INT64_LIMIT) {
        writer.byte(TAG_INT);
        writer.int64(value);
      } else {
        writer.byte(TAG_DOUBLE);
        writer.double(value);
      }
      return;
    case 'object': {
      if (value === null) return;
      if (Array.isArray(value)) {
        writer.byte(TAG_ARRAY);
        const start = writer.begin(1);
        for (const item of value) {
          writer.byte(TAG_VALUES);
          const itemStart = writer.begin(1);
          writeAnyValue(writer, item);
          writer.end(itemStart, 1);
        }
        writer.end(start, 1);
        return;
      }
      writer.byte(TAG_KVLIST);
      const start = writer.begin(2);
      writeKeyValues(writer, value as Record<string, unknown>);
      writer.end(start, 2);
      return;
    }
    default:
      return;
  }
}

/** `KeyValueList.values` entries (or entries under `tag`) of an object, in `for...in` order (the exporter's order). */
function writeKeyValues(writer: Writer, object: Record<string, unknown>, tag = TAG_VALUES): void {
  for (const key in object) {
    writer.byte(tag);
    const start = writer.begin(1);
    writer.byte(TAG_KEY);
    writer.string(key);
    writer.byte(TAG_VALUE);
    const valueStart = writer.begin(1);
    writeAnyValue(writer, object[key]);
    writer.end(valueStart, 1);
    writer.end(start, 1);
  }
}

/** Repeated KeyValue entries with string values under `tag`. */
function writeStringAttributes(writer: Writer, tag: number, attributes: Readonly<Record<string, string>>): void {
  for (const key in attributes) {
    writer.byte(tag);
    const start = writer.begin(1);
    writer.byte(TAG_KEY);
    writer.string(key);
    writer.byte(TAG_VALUE);
    const valueStart = writer.begin(1);
    writer.byte(TAG_STRING);
    writer.string(attributes[key]!);
    writer.end(valueStart, 1);
    writer.end(start, 1);
  }
}

/** Most distinct level strings remembered by bytes; beyond, they are decoded and parsed each time. */
const LEVEL_CACHE_SIZE = 32;

/** A level's encoded severity fields (severity_number and severity_text), as writeSeverity() writes them. */
function encodedSeverity(severity: Severity | undefined): Uint8Array {
  const writer = new Writer(64);
  writeSeverity(writer, severity);
  return writer.buf.slice(0, writer.pos);
}

/** Encoded severity fields of a level string by its bytes: a line's level is one of a handful of words. */
class LevelCache {
  private readonly keys: Uint8Array[] = [];
  private readonly values: Uint8Array[] = [];

  /** For the level `transcoder` captured as field `field`, RAW at `data[start, end)`. */
  encoded(data: Uint8Array, start: number, end: number, transcoder: JsonTranscoder, field: number): Uint8Array {
    const length = end - start;
    const keys = this.keys;
    for (let k = 0; k < keys.length; k++) {
      const key = keys[k]!;
      if (key.length !== length) continue;
      let i = 0;
      while (i < length && key[i] === data[start + i]) i++;
      if (i === length) return this.values[k]!;
    }
    const encoded = encodedSeverity(parseSeverity(transcoder.capturedValue(field) as string));
    if (keys.length < LEVEL_CACHE_SIZE && length <= 32) {
      keys.push(data.slice(start, end));
      this.values.push(encoded);
    }
    return encoded;
  }
}

/** Initial size of an encoder's scratch buffer; it grows (doubling) to the largest batch seen. */
export const INITIAL_ENCODE_BUFFER_BYTES = 512 * 1024;

/**
 * Encodes batches. Keeps one scratch buffer across calls (an instance per thread); every result
 * owns a fresh, exactly sized buffer, so it can be transferred.
 */
export class BatchEncoder {
  private readonly writer = new Writer(INITIAL_ENCODE_BUFFER_BYTES);
  /** Batch-constant parts, encoded once per batch and copied into every record. */
  private readonly recordAttributes = new Writer(256);
  /** Promoted members of the record being transcoded (`mapping.attributes`). */
  private readonly promoted = new Writer(256);
  /** The groups' headers, when grouped. */
  private readonly head = new Writer(256);
  /** The two parts of a transcoded record's tail, per batch, for records with promoted attributes between them. */
  private tailAttributes = new Uint8Array(0);
  private tailObserved = new Uint8Array(0);
  private readonly transcoder: JsonTranscoder;
  private readonly levels = new LevelCache();
  private readonly promotedFields: ReadonlyMap<string, string> | undefined;
  /** Whether records choose their resource (`mapping.service_name_field`). */
  private readonly grouped: boolean;
  /** Per batch, when grouped: the service name of each group, its index, and each record's group. */
  private readonly groupNames: string[] = [];
  private readonly groupIndex = new Map<string, number>();
  private groupOf = new Uint32Array(0);
  /** Each group's service name as UTF-8, to find the group of a value still in the line's bytes. */
  private readonly groupKeys: Uint8Array[] = [];
  /** Records encoded so far by the byte transcoder and through JSON.parse or as text: for tests and benchmarks. */
  readonly stats = { transcoded: 0, other: 0 };
  /** Records the Rust encoder wrote, records it refused (then encoded here), batches it failed on: for tests and benchmarks. */
  readonly wasmStats: WasmEncoderStats = { encoded: 0, refused: 0, failed: 0 };
  /** The Rust encoder (wasm-encoder.ts): null until the first batch, undefined when off or unavailable. */
  private wasm: WasmBatchEncoder | undefined | null;
  /** Set while the refused records of a batch are encoded here. */
  private refusedOnly = false;
  /** Single-resource batches come out laid out as a whole request (`packEncoded`). */
  private readonly framed: boolean;

  constructor(
    private readonly serviceName: string,
    private readonly mapping: OtlpMapping = DEFAULT_MAPPING,
    /**
     * `wasm: false` keeps the Rust encoder off (to compare the two paths); it is used when the
     * mapping and the module allow. `framed: true` lays each single-resource batch out as the body
     * of a request carrying all of it (EncodedBatch.request), as the encoder worker hands them on.
     */
    options: { wasm?: boolean; framed?: boolean } = {},
  ) {
    this.transcoder = new JsonTranscoder(this.writer, this.promoted, mapping);
    this.promotedFields = promotedByField(mapping);
    this.grouped = mapping.serviceNameField !== '';
    this.wasm = options.wasm === false ? undefined : null;
    this.framed = options.framed === true;
  }

  /** Whether batches go through the Rust encoder (loading it on first use). */
  get usesWasm(): boolean {
    if (this.wasm === null) this.wasm = WasmBatchEncoder.create(this.mapping);
    return this.wasm !== undefined;
  }

  encode(input: EncodeInput): EncodedBatch {
    const { data, offsets, meta } = input;
    const count = offsets.length - 1;
    const writer = this.writer;
    writer.pos = 0;
    const grouped = this.grouped;
    // Without a service field every record has the batch's resource: its header goes first. With
    // one, the headers are known only once every record was read (assemble()).
    const resourceEnd = grouped ? 0 : writeHeader(writer, meta, this.serviceName);
    if (grouped) this.startGroups(count);

    // Record attributes are the same for every line: encoded once, copied per record.
    const attributes = this.recordAttributes;
    attributes.pos = 0;
    writeStringAttributes(attributes, TAG_RECORD_ATTRIBUTE, recordAttributes(meta));
    const attributeBytes = attributes.buf.subarray(0, attributes.pos);
    const observed = hrTimeFromMs(meta.timestampMs);
    // What ends every transcoded record: the attributes, then the observed time.
    attributes.byte(TAG_OBSERVED_TIME);
    writeHrTime(attributes, observed);
    const tail = attributes.buf.slice(0, attributes.pos);
    if (this.promotedFields !== undefined) {
      this.tailAttributes = tail.slice(0, attributeBytes.length);
      this.tailObserved = tail.slice(attributeBytes.length);
    }
    if (!this.refusedOnly && !grouped && this.usesWasm) {
      const encoded = this.wasm!.encode(input, writer.buf.subarray(0, writer.pos), resourceEnd, tail, this.framed, (refused) => {
        this.refusedOnly = true;
        try {
          return this.encode(refused);
        } finally {
          this.refusedOnly = false;
        }
      });
      if (encoded !== undefined) {
        // The same counts as the JS path's: the Rust encoder transcodes the objects it accepts.
        this.stats.transcoded += encoded.objects;
        this.stats.other += encoded.texts;
        this.wasmStats.encoded += encoded.objects + encoded.texts;
        this.wasmStats.refused += count - encoded.objects - encoded.texts;
        const batch = { bytes: encoded.bytes, offsets: encoded.offsets, resourceEnd: encoded.resourceEnd };
        if (encoded.request === undefined) return this.framed ? framedAsRequest(batch) : batch;
        return { ...batch, request: encoded.request };
      }
      // The guest failed (a trap, or no memory left): this batch and the next go the JS way (the header is still in the writer).
      this.wasm = undefined;
      this.wasmStats.failed++;
    }

    const recordOffsets = new Uint32Array(count + 1);
    const text = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const parseJson = meta.format === 'json';
    // One check for the whole batch; only a batch with invalid UTF-8 somewhere is checked per line.
    const allUtf8 = parseJson && isUtf8(data);
    for (let i = 0; i < count; i++) {
      recordOffsets[i] = writer.pos;
      const start = offsets[i]!;
      const end = offsets[i + 1]!;
      const brace = parseJson ? objectStart(data, start, end) : -1;
      if (brace !== -1) {
        if ((allUtf8 || isUtf8(data.subarray(start, end))) && this.transcodeRecord(data, text, brace, end, observed, tail)) {
          this.stats.transcoded++;
          if (grouped) this.groupOf[i] = this.capturedGroup(data);
          continue;
        }
        // Not for the fast path (see transcode.ts): start the record again through JSON.parse.
        writer.pos = recordOffsets[i]!;
      }
      this.stats.other++;
      writer.byte(TAG_LOG_RECORD);
      const recordStart = writer.begin(2);
      const object = brace !== -1 ? parseJsonObject(text.toString('utf8', start, end)) : undefined;
      if (object === undefined) {
        if (grouped) this.groupOf[i] = this.groupFor(this.serviceName);
        writer.byte(TAG_TIME);
        writeHrTime(writer, observed);
        writer.byte(TAG_BODY);
        const bodyStart = writer.begin(2);
        writer.byte(TAG_STRING);
        this.writeLine(data, text, start, end);
        writer.end(bodyStart, 2);
        copyInto(writer, attributeBytes);
      } else {
        writer.byte(TAG_TIME);
        writeHrTime(writer, eventTime(object) ?? observed);
        writeSeverity(writer, severityOf(object));
        // After the time and severity, which read the record as written.
        const fields = takeMappedFields(object, this.mapping, this.promotedFields);
        if (grouped) this.groupOf[i] = this.groupFor(fields.serviceName ?? this.serviceName);
        writer.byte(TAG_BODY);
        const bodyStart = writer.begin(2);
        writer.byte(TAG_KVLIST);
        const listStart = writer.begin(2);
        writeKeyValues(writer, object);
        writer.end(listStart, 2);
        writer.end(bodyStart, 2);
        copyInto(writer, attributeBytes);
        if (fields.attributes !== undefined) writeKeyValues(writer, fields.attributes, TAG_RECORD_ATTRIBUTE);
        if (fields.traceId !== undefined) writeHexId(writer, TAG_TRACE_ID, fields.traceId);
        if (fields.spanId !== undefined) writeHexId(writer, TAG_SPAN_ID, fields.spanId);
        if (fields.traceFlags) writeFlags(writer, fields.traceFlags);
      }
      writer.byte(TAG_OBSERVED_TIME);
      writeHrTime(writer, observed);
      writer.end(recordStart, 2);
    }
    recordOffsets[count] = writer.pos;
    if (grouped) return this.assemble(meta, recordOffsets, count);
    const header = writer.buf.subarray(0, recordOffsets[0]);
    const records = writer.buf.subarray(recordOffsets[0], writer.pos);
    return packEncoded(header, resourceEnd, records, recordOffsets, this.framed && !this.refusedOnly);
  }

  /**
   * A JSON object line as a whole LogRecord entry through the transcoder; false (with the writer
   * left anywhere past the record's start) when the line needs the JSON.parse path.
   */
  private transcodeRecord(data: Uint8Array, text: Buffer, brace: number, end: number, observed: HrTime, tail: Uint8Array): boolean {
    const writer = this.writer;
    // The record, body and list headers, each with two bytes reserved for its length. The body
    // comes first: the timestamp and severity are known only once the object was read (field
    // order does not matter in protobuf).
    writer.ensure(9);
    let buf = writer.buf;
    const at = writer.pos;
    buf[at] = TAG_LOG_RECORD;
    buf[at + 3] = TAG_BODY;
    buf[at + 6] = TAG_KVLIST;
    writer.pos = at + 9;
    if (!this.transcoder.object(data, text, brace, end)) return false;
    writer.end(at + 7, 2);
    writer.end(at + 4, 2);
    // The same rules as eventTime() and severityOf(), over the captured fields.
    const transcoder = this.transcoder;
    const captured = transcoder.captured;
    let time: HrTime | undefined;
    for (let k = 0; k < 3 && time === undefined; k++) {
      if (captured[k] === undefined) continue;
      if (captured[k] === RAW) {
        // Straight from the bytes in the common RFC 3339 shape; null: any other text, decode it.
        const fast = fastRfc3339(data, transcoder.spans[k * 2]!, transcoder.spans[k * 2 + 1]!);
        if (fast !== null) {
          time = fast;
          continue;
        }
      }
      time = parseTimestamp(transcoder.capturedValue(k));
    }
    writer.byte(TAG_TIME);
    writeHrTime(writer, time ?? observed);
    const levelField = captured[3] !== undefined ? 3 : captured[4] !== undefined ? 4 : -1;
    if (levelField !== -1) {
      if (captured[levelField] === RAW) {
        const severity = this.levels.encoded(data, transcoder.spans[levelField * 2]!, transcoder.spans[levelField * 2 + 1]!, transcoder, levelField);
        copyInto(writer, severity);
      } else {
        writeSeverity(writer, parseSeverity(transcoder.capturedValue(levelField)!));
      }
    }
    if (captured[CAPTURE_TRACE_ID] !== undefined || captured[CAPTURE_SPAN_ID] !== undefined || captured[CAPTURE_TRACE_FLAGS] !== undefined) {
      this.writeTraceContext(data);
    }
    const promoted = this.promoted;
    const promotedLength = promoted.pos;
    if (promotedLength === 0) {
      copyInto(writer, tail);
    } else {
      // The batch's attributes, the promoted ones, then the observed time.
      copyInto(writer, this.tailAttributes);
      writer.ensure(promotedLength);
      buf = writer.buf;
      const from = promoted.buf;
      const pos = writer.pos;
      if (promotedLength > COPY_LOOP_MAX) buf.set(from.subarray(0, promotedLength), pos);
      else for (let i = 0; i < promotedLength; i++) buf[pos + i] = from[i]!;
      writer.pos = pos + promotedLength;
      copyInto(writer, this.tailObserved);
    }
    writer.end(at + 1, 2);
    return true;
  }

  /** `trace_id`, `span_id` and `flags` from the captured trace fields that are valid; the others are left alone. */
  private writeTraceContext(data: Uint8Array): void {
    const writer = this.writer;
    const transcoder = this.transcoder;
    const captured = transcoder.captured;
    for (const [k, tag, size] of TRACE_IDS) {
      const value = captured[k];
      if (value === RAW) {
        const start = transcoder.spans[k * 2]!;
        if (transcoder.spans[k * 2 + 1]! - start === size * 2) writeHexBytes(writer, tag, data, start, size);
      } else if (typeof value === 'string') {
        const hex = parseHexId(value, size * 2);
        if (hex !== undefined) writeHexId(writer, tag, hex);
      }
    }
    if (captured[CAPTURE_TRACE_FLAGS] !== undefined) {
      const flags = parseTraceFlags(transcoder.capturedValue(CAPTURE_TRACE_FLAGS));
      if (flags) writeFlags(writer, flags);
    }
  }

  /** Per batch: no groups yet, room for every record's group. */
  private startGroups(count: number): void {
    this.groupNames.length = 0;
    this.groupKeys.length = 0;
    this.groupIndex.clear();
    if (this.groupOf.length < count) this.groupOf = new Uint32Array(count);
  }

  private groupFor(serviceName: string): number {
    let group = this.groupIndex.get(serviceName);
    if (group === undefined) {
      group = this.groupNames.push(serviceName) - 1;
      this.groupKeys.push(Buffer.from(serviceName));
      this.groupIndex.set(serviceName, group);
    }
    return group;
  }

  /** The group of the record just transcoded, from its captured service field. */
  private capturedGroup(data: Uint8Array): number {
    const transcoder = this.transcoder;
    const value = transcoder.captured[CAPTURE_SERVICE];
    if (value === RAW) {
      const start = transcoder.spans[CAPTURE_SERVICE * 2]!;
      const end = transcoder.spans[CAPTURE_SERVICE * 2 + 1]!;
      if (start === end) return this.groupFor(this.serviceName);
      // A few services per batch, usually: compared by bytes, without decoding the value.
      const keys = this.groupKeys;
      const length = end - start;
      for (let g = 0; g < keys.length && g < GROUP_SCAN_MAX; g++) {
        const key = keys[g]!;
        if (key.length !== length) continue;
        let i = 0;
        while (i < length && key[i] === data[start + i]) i++;
        if (i === length) return g;
      }
      return this.groupFor(transcoder.capturedValue(CAPTURE_SERVICE) as string);
    }
    return this.groupFor(typeof value === 'string' && value !== '' ? value : this.serviceName);
  }

  /**
   * The grouped layout (see EncodedBatch): every group's headers, then its records. The records
   * were written from the writer's start, in line order; with one group they are copied as they
   * are, else group by group.
   */
  private assemble(meta: BatchMeta, recordOffsets: Uint32Array, count: number): EncodedBatch {
    const names = this.groupNames;
    if (names.length === 0) names.push(this.serviceName);
    const groupCount = names.length;
    const head = this.head;
    head.pos = 0;
    const groups = new Uint32Array(groupCount * 4);
    for (let g = 0; g < groupCount; g++) {
      groups[g * 4] = head.pos;
      groups[g * 4 + 1] = writeHeader(head, meta, names[g]!, groups.subarray(g * 4 + 2, g * 4 + 3));
    }
    const headerBytes = head.pos;
    const records = this.writer.buf.subarray(0, this.writer.pos);
    const total = headerBytes + records.length;
    const bytes = new Uint8Array(Buffer.allocUnsafeSlow(total).buffer, 0, total);
    bytes.set(head.buf.subarray(0, headerBytes));
    if (groupCount === 1) {
      bytes.set(records, headerBytes);
      for (let i = 0; i <= count; i++) recordOffsets[i]! += headerBytes;
      return { bytes, offsets: recordOffsets, resourceEnd: groups[1]! };
    }
    // A counting sort of the records by group, keeping line order within each.
    const groupOf = this.groupOf;
    const next = new Uint32Array(groupCount);
    for (let i = 0; i < count; i++) next[groupOf[i]!]!++;
    for (let g = 0, first = 0; g < groupCount; g++) {
      const size = next[g]!;
      groups[g * 4 + 3] = first;
      next[g] = first;
      first += size;
    }
    const order = new Uint32Array(count);
    for (let i = 0; i < count; i++) order[next[groupOf[i]!]!++] = i;
    const offsets = new Uint32Array(count + 1);
    let pos = headerBytes;
    for (let j = 0; j < count; ) {
      // Records next to each other in the line order and in the group order: one copy.
      let k = j + 1;
      while (k < count && order[k] === order[k - 1]! + 1) k++;
      const from = recordOffsets[order[j]!]!;
      for (let r = j; r < k; r++) offsets[r] = pos + recordOffsets[order[r]!]! - from;
      const to = recordOffsets[order[k - 1]! + 1]!;
      bytes.set(records.subarray(from, to), pos);
      pos += to - from;
      j = k;
    }
    offsets[count] = pos;
    return { bytes, offsets, resourceEnd: groups[1]!, groups };
  }

  /**
   * A line as a length-delimited string. Valid UTF-8 (nearly every line) is copied as it is;
   * anything else is decoded, which replaces invalid sequences with U+FFFD as OTLP strings require.
   */
  private writeLine(data: Uint8Array, text: Buffer, start: number, end: number): void {
    const line = data.subarray(start, end);
    if (isUtf8(line)) {
      this.writer.bytes(line);
      return;
    }
    this.writer.string(text.toString('utf8', start, end));
  }
}

/** Groups whose service name capturedGroup() compares by bytes; later ones are found by decoded name. */
const GROUP_SCAN_MAX = 16;

/** Captured slot, tag and size in bytes of the two ids. */
const TRACE_IDS = [
  [CAPTURE_TRACE_ID, TAG_TRACE_ID, 16],
  [CAPTURE_SPAN_ID, TAG_SPAN_ID, 8],
] as const;

/**
 * A batch's `ResourceLogs.resource` entry for `serviceName`, then its `ScopeLogs.scope` entry.
 * Returns where the resource entry ends; `scopeEnd[0]`, when given, receives where the scope entry ends.
 */
function writeHeader(writer: Writer, meta: BatchMeta, serviceName: string, scopeEnd?: Uint32Array): number {
  writer.byte(TAG_RESOURCE);
  const resourceStart = writer.begin(1);
  writeStringAttributes(writer, TAG_ATTRIBUTE, resourceAttributes(meta, serviceName));
  writer.end(resourceStart, 1);
  const resourceEnd = writer.pos;
  writer.byte(TAG_SCOPE);
  const scopeStart = writer.begin(1);
  writer.byte(TAG_NAME);
  writer.string(SCOPE_NAME);
  writer.end(scopeStart, 1);
  if (scopeEnd !== undefined) scopeEnd[0] = writer.pos;
  return resourceEnd;
}

/** Value of one hex digit, or -1. */
function hexDigit(c: number): number {
  return c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : c >= 0x41 && c <= 0x46 ? c - 0x37 : -1;
}

/**
 * `tag` and the `size` bytes spelled by the hex digits at `source[start, start + 2 * size)`, unless
 * one is not a hex digit or all are zero (an invalid id in OTLP): then nothing.
 */
function writeHexBytes(writer: Writer, tag: number, source: Uint8Array, start: number, size: number): void {
  writer.ensure(size + 2);
  const buf = writer.buf;
  const at = writer.pos;
  let any = 0;
  for (let i = 0; i < size; i++) {
    const high = hexDigit(source[start + i * 2]!);
    const low = hexDigit(source[start + i * 2 + 1]!);
    if (high < 0 || low < 0) return;
    const byte = high * 16 + low;
    buf[at + 2 + i] = byte;
    any |= byte;
  }
  if (any === 0) return;
  buf[at] = tag;
  buf[at + 1] = size;
  writer.pos = at + 2 + size;
}

/** An id already checked (mapping.ts parseHexId): lower-case hex. */
function writeHexId(writer: Writer, tag: number, hex: string): void {
  writeHexBytes(writer, tag, Buffer.from(hex, 'latin1'), 0, hex.length / 2);
}

function writeFlags(writer: Writer, flags: number): void {
  writer.byte(TAG_FLAGS);
  writer.ensure(4);
  const buf = writer.buf;
  buf[writer.pos] = flags & 0xff;
  buf[writer.pos + 1] = (flags >>> 8) & 0xff;
  buf[writer.pos + 2] = (flags >>> 16) & 0xff;
  buf[writer.pos + 3] = flags >>> 24;
  writer.pos += 4;
}

/** Appends `bytes` to the writer: a loop for the short runs copied per record, which beats a native call. */
function copyInto(writer: Writer, bytes: Uint8Array): void {
  const length = bytes.length;
  writer.ensure(length);
  const buf = writer.buf;
  const pos = writer.pos;
  if (length > COPY_LOOP_MAX) buf.set(bytes, pos);
  else for (let i = 0; i < length; i++) buf[pos + i] = bytes[i]!;
  writer.pos = pos + length;
}

/** Longest run copyInto() copies byte by byte. */
const COPY_LOOP_MAX = 64;

/** Where the line's first non-blank byte is, if it is `{` (spaces and tabs skipped, as parseJsonObject does); else -1. */
function objectStart(data: Uint8Array, start: number, end: number): number {
  let i = start;
  while (i < end && (data[i] === 0x20 || data[i] === 0x09)) i++;
  return i < end && data[i] === 0x7b ? i : -1;
}

/** Severity number (unless unspecified) and text (unless empty), as the OTel serializer writes them. */
function writeSeverity(writer: Writer, severity: Severity | undefined): void {
  if (severity === undefined) return;
  if (severity.severityNumber !== 0) {
    writer.byte(TAG_SEVERITY_NUMBER);
    writer.varint(severity.severityNumber);
  }
  if (severity.severityText !== '') {
    writer.byte(TAG_SEVERITY_TEXT);
    writer.string(severity.severityText);
  }
}

/** Bytes of the `resource_logs` entries that carry `slice`. */
export function entrySize(slice: EncodedSlice): number {
  let size = 0;
  forEachEntry(slice, (start, resourceEnd, headerEnd, recordsStart, recordsEnd, scopeStart) => {
    const scopeLogs = recordsEnd - recordsStart + (headerEnd - scopeStart);
    const resourceLogs = resourceEnd - start + 1 + varintSize(scopeLogs) + scopeLogs;
    size += 1 + varintSize(resourceLogs) + resourceLogs;
  });
  return size;
}

/**
 * An `ExportLogsServiceRequest` body carrying `slices`, each as its own `resource_logs` entry (or
 * one per resource group it spans): the main thread's whole share of the encoding, a few header
 * bytes and one copy per entry.
 */
export function requestBody(slices: readonly EncodedSlice[]): Uint8Array {
  const only = slices.length === 1 ? slices[0]! : undefined;
  if (only !== undefined && only.batch.request !== undefined && only.from === 0 && only.to === only.batch.offsets.length - 1) {
    return only.batch.bytes;
  }
  let total = 0;
  for (const slice of slices) total += entrySize(slice);
  // Every byte is written below: no need to pay for zeroing a fresh buffer.
  const out = Buffer.allocUnsafeSlow(total);
  let pos = 0;
  const varint = (value: number): void => {
    while (value >= 0x80) {
      out[pos++] = (value & 0x7f) | 0x80;
      value = Math.floor(value / 128);
    }
    out[pos++] = value;
  };
  for (const slice of slices) {
    const bytes = slice.batch.bytes;
    forEachEntry(slice, (start, resourceEnd, headerEnd, recordsStart, recordsEnd, scopeStart) => {
      const scopeLogs = recordsEnd - recordsStart + (headerEnd - scopeStart);
      const resourceLogs = resourceEnd - start + 1 + varintSize(scopeLogs) + scopeLogs;
      out[pos++] = TAG_RESOURCE_LOGS;
      varint(resourceLogs);
      out.set(bytes.subarray(start, resourceEnd), pos);
      pos += resourceEnd - start;
      out[pos++] = TAG_SCOPE_LOGS;
      varint(scopeLogs);
      out.set(bytes.subarray(scopeStart, headerEnd), pos);
      pos += headerEnd - scopeStart;
      out.set(bytes.subarray(recordsStart, recordsEnd), pos);
      pos += recordsEnd - recordsStart;
    });
  }
  return out;
}

/**
 * `batch` laid out as the body of one request carrying all of its records (`EncodedBatch.request`),
 * in a new buffer. A batch of several resource groups, or one already framed, is returned as it is.
 */
export function framedAsRequest(batch: EncodedBatch): EncodedBatch {
  if (batch.groups !== undefined || batch.request !== undefined) return batch;
  const { bytes, offsets, resourceEnd } = batch;
  const count = offsets.length - 1;
  return packEncoded(bytes.subarray(0, offsets[0]), resourceEnd, bytes.subarray(offsets[0], offsets[count]), offsets, true);
}

/**
 * One batch's encoding in a buffer of its own (never a pooled Buffer's, so that it can be
 * transferred; not zeroed first, since every byte is written): `header` (the resource entry
 * `[0, resourceEnd)`, then the scope entry), then `records`, whose `offsets` are positions from
 * the header's start. With `framed`, laid out as the body of a request carrying all of it, the
 * `resource_logs` and `scope_logs` framing written around the entries in the same single copy:
 * the encoder worker hands batches on this way, so that the main thread sends the usual request
 * (one whole batch) as it is, without joining anything. `offsets` is adjusted in place.
 */
export function packEncoded(header: Uint8Array, resourceEnd: number, records: Uint8Array, offsets: Uint32Array, framed: boolean): EncodedBatch {
  const base = header.length;
  if (!framed) {
    const total = base + records.length;
    const bytes = new Uint8Array(Buffer.allocUnsafeSlow(total).buffer, 0, total);
    bytes.set(header);
    bytes.set(records, base);
    return { bytes, offsets, resourceEnd };
  }
  const scopeLogs = base - resourceEnd + records.length;
  const resourceLogs = resourceEnd + 1 + varintSize(scopeLogs) + scopeLogs;
  const total = 1 + varintSize(resourceLogs) + resourceLogs;
  const bytes = new Uint8Array(Buffer.allocUnsafeSlow(total).buffer, 0, total);
  let pos = 0;
  bytes[pos++] = TAG_RESOURCE_LOGS;
  pos = putVarint(bytes, pos, resourceLogs);
  const resourceStart = pos;
  bytes.set(header.subarray(0, resourceEnd), pos);
  pos += resourceEnd;
  bytes[pos++] = TAG_SCOPE_LOGS;
  pos = putVarint(bytes, pos, scopeLogs);
  const scopeStart = pos;
  bytes.set(header.subarray(resourceEnd), pos);
  bytes.set(records, pos + base - resourceEnd);
  const shift = scopeStart - resourceEnd;
  for (let i = 0; i < offsets.length; i++) offsets[i] = offsets[i]! + shift;
  return { bytes, offsets, resourceEnd: resourceStart + resourceEnd, request: { resourceStart, scopeStart } };
}

function putVarint(out: Uint8Array, pos: number, value: number): number {
  while (value >= 0x80) {
    out[pos++] = (value & 0x7f) | 0x80;
    value = Math.floor(value / 128);
  }
  out[pos++] = value;
  return pos;
}
