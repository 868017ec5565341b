/**
 * Turns the lines of a batch into OTLP log records (`ReadableLogRecord`, what the OTLP exporters
 * serialize). Pure: no I/O, no telemetry. The rules are documented in docs/sinks/opentelemetry.md.
 */
import { basename } from 'node:path';
import type { AnyValueMap, LogAttributes } from '@opentelemetry/api-logs';
import { createRequire } from 'node:module';
import type { Resource } from '@opentelemetry/resources';
import type { ReadableLogRecord } from '@opentelemetry/sdk-logs';
import { isTable, show, type ConfigReader } from '../../config/reader.js';
import { parseJsonObject, type BatchMeta, type LineBatch } from '../../event.js';

type SpanContext = NonNullable<ReadableLogRecord['spanContext']>;

/** Instrumentation scope of every record; one object, since the exporter groups by identity. */
export const INSTRUMENTATION_SCOPE: ReadableLogRecord['instrumentationScope'] = Object.freeze({ name: 'logwasm' });

/** Fields of a JSON record read as the event time, in this order. */
export const TIMESTAMP_FIELDS = ['timestamp', 'ts', 'time'] as const;
/** Fields of a JSON record read as the severity, in this order. */
export const SEVERITY_FIELDS = ['level', 'severity'] as const;

/** Seconds and nanoseconds since the Unix epoch, as OpenTelemetry JS keeps times. */
export type HrTime = [number, number];

/** One top-level field of a record moved from the body into the record's attributes, as `name`. */
export interface PromotedField {
  field: string;
  name: string;
}

/**
 * The configurable part of the mapping (`mapping.*` of the sink's config). Plain data: it is the
 * encoding workers' `workerData` too. A field name of `''` turns its rule off.
 */
export interface OtlpMapping {
  /** `mapping.attributes`: top-level fields moved from the body into record attributes. */
  attributes: readonly PromotedField[];
  /** `mapping.service_name_field`: a top-level string field that overrides `service_name` per record. */
  serviceNameField: string;
  /** `mapping.trace_id_field`: 32 hex digits, the record's `trace_id`. */
  traceIdField: string;
  /** `mapping.span_id_field`: 16 hex digits, the record's `span_id`. */
  spanIdField: string;
  /** `mapping.trace_flags_field`: an integer 0-255 or two hex digits, the record's `flags`. */
  traceFlagsField: string;
}

/** `mapping.trace_id_field`. */
export const DEFAULT_TRACE_ID_FIELD = 'trace_id';
/** `mapping.span_id_field`. */
export const DEFAULT_SPAN_ID_FIELD = 'span_id';
/** `mapping.trace_flags_field`. */
export const DEFAULT_TRACE_FLAGS_FIELD = 'trace_flags';

/** What an unconfigured `mapping` means: no attributes promoted, no service field, the trace fields. */
export const DEFAULT_MAPPING: OtlpMapping = Object.freeze({
  attributes: Object.freeze([]),
  serviceNameField: '',
  traceIdField: DEFAULT_TRACE_ID_FIELD,
  spanIdField: DEFAULT_SPAN_ID_FIELD,
  traceFlagsField: DEFAULT_TRACE_FLAGS_FIELD,
});

/** Record attributes logwasm sets itself: a promoted field may not take their names. */
export const RESERVED_RECORD_ATTRIBUTES: readonly string[] = ['log.file.path', 'log.file.name', 'log.iostream'];

/**
 * The sink's `mapping` table: `attributes` (an array of field names, or a table of field =
 * "attribute name"), `service_name_field`, `trace_id_field`, `span_id_field`, `trace_flags_field`.
 */
export function parseMappingConfig(reader: ConfigReader): OtlpMapping {
  if (!reader.has('mapping')) {
    reader.accept('mapping');
    return DEFAULT_MAPPING;
  }
  const table = reader.table('mapping');
  const attributes = parsePromotedFields(table);
  const mapping: OtlpMapping = {
    attributes,
    serviceNameField: table.string('service_name_field', ''),
    traceIdField: table.string('trace_id_field', DEFAULT_TRACE_ID_FIELD),
    spanIdField: table.string('span_id_field', DEFAULT_SPAN_ID_FIELD),
    traceFlagsField: table.string('trace_flags_field', DEFAULT_TRACE_FLAGS_FIELD),
  };
  table.finish();
  return mapping;
}

function parsePromotedFields(table: ConfigReader): PromotedField[] {
  const raw = table.raw('attributes');
  if (raw === undefined) return [];
  const invalid = (detail: string): PromotedField[] => {
    table.problem(`invalid value for "mapping.attributes": ${detail}`);
    return [];
  };
  let fields: PromotedField[];
  if (Array.isArray(raw) && raw.every((item) => typeof item === 'string')) {
    fields = (raw as string[]).map((field) => ({ field, name: field }));
  } else if (isTable(raw) && Object.values(raw).every((name) => typeof name === 'string')) {
    fields = Object.entries(raw as Record<string, string>).map(([field, name]) => ({ field, name }));
  } else {
    return invalid(`expected an array of field names or a table of field = "attribute name", actual: ${show(raw)}`);
  }
  const names = new Set<string>();
  const seen = new Set<string>();
  for (const { field, name } of fields) {
    if (field === '' || name === '') return invalid('a field or attribute name is empty');
    if (seen.has(field)) return invalid(`field "${field}" is listed twice`);
    if (names.has(name)) return invalid(`two fields become attribute "${name}"`);
    if (RESERVED_RECORD_ATTRIBUTES.includes(name)) return invalid(`attribute "${name}" is set by logwasm itself`);
    // A JS object lists such keys first, which would reorder the attributes between the encoders.
    if (/^(0|[1-9]\d*)$/.test(name)) return invalid(`attribute name "${name}" is an array index; not supported`);
    seen.add(field);
    names.add(name);
  }
  return fields;
}

/** Resource attributes of a batch: host, service and, when the source knows them, Kubernetes ones. */
export function resourceAttributes(meta: BatchMeta, serviceName: string): Record<string, string> {
  const attributes: Record<string, string> = { 'host.name': meta.host, 'service.name': serviceName };
  const k8s = meta.kubernetes;
  if (k8s !== undefined) {
    attributes['k8s.namespace.name'] = k8s.pod_namespace;
    attributes['k8s.pod.name'] = k8s.pod_name;
    attributes['k8s.pod.uid'] = k8s.pod_uid;
    attributes['k8s.container.name'] = k8s.container_name;
  }
  return attributes;
}

/** Attributes every record of a batch shares: the file it came from and, when known, its stream. */
export function recordAttributes(meta: BatchMeta): Record<string, string> {
  const attributes: Record<string, string> = { 'log.file.path': meta.file, 'log.file.name': basename(meta.file) };
  if (meta.stream !== undefined) attributes['log.iostream'] = meta.stream;
  return attributes;
}

type ResourcesPackage = typeof import('@opentelemetry/resources');
let resourcesPackage: ResourcesPackage | undefined;

/**
 * @opentelemetry/resources, loaded on first use: only the OTLP JSON path builds Resource objects,
 * and the package (with its semantic conventions) costs every thread that imports this module
 * about 70 ms of start-up and a few MiB.
 */
function resources(): ResourcesPackage {
  resourcesPackage ??= createRequire(import.meta.url)('@opentelemetry/resources') as ResourcesPackage;
  return resourcesPackage;
}

export class RecordMapper {
  /** The exporter groups records by resource object identity: one object per distinct resource. */
  private readonly resources = new Map<string, Resource>();
  private readonly promoted: ReadonlyMap<string, string> | undefined;

  constructor(
    private readonly serviceName: string,
    private readonly mapping: OtlpMapping = DEFAULT_MAPPING,
  ) {
    this.promoted = promotedByField(mapping);
  }

  resourceFor(meta: BatchMeta, serviceName = this.serviceName): Resource {
    const attributes = resourceAttributes(meta, serviceName);
    const key = JSON.stringify(attributes);
    let resource = this.resources.get(key);
    if (resource === undefined) {
      resource = resources().resourceFromAttributes(attributes);
      this.resources.set(key, resource);
    }
    return resource;
  }

  /** One record per line, in line order. */
  map(batch: LineBatch): ReadableLogRecord[] {
    const { meta, data, offsets } = batch;
    const count = offsets.length - 1;
    const resource = this.resourceFor(meta);
    // One attributes object shared by every record of the batch: the serializers only read it.
    const attributes: LogAttributes = recordAttributes(meta);
    const observed = hrTimeFromMs(meta.timestampMs);
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const parseJson = meta.format === 'json';
    const records: ReadableLogRecord[] = new Array(count);
    for (let i = 0; i < count; i++) {
      const start = offsets[i]!;
      const end = offsets[i + 1]!;
      // Buffer#toString replaces invalid UTF-8 with U+FFFD, as the OTLP string type requires.
      const text = bytes.toString('utf8', start, end);
      const object = parseJson ? parseJsonObject(text) : undefined;
      if (object === undefined) {
        records[i] = {
          hrTime: observed,
          hrTimeObserved: observed,
          body: text,
          resource,
          instrumentationScope: INSTRUMENTATION_SCOPE,
          attributes,
          droppedAttributesCount: 0,
        };
        continue;
      }
      const severity = severityOf(object);
      const hrTime = eventTime(object) ?? observed;
      const fields = takeMappedFields(object, this.mapping, this.promoted);
      const spanContext = spanContextOf(fields);
      records[i] = {
        hrTime,
        hrTimeObserved: observed,
        ...(severity === undefined ? {} : severity),
        body: object as AnyValueMap,
        resource: fields.serviceName === undefined ? resource : this.resourceFor(meta, fields.serviceName),
        instrumentationScope: INSTRUMENTATION_SCOPE,
        attributes: fields.attributes === undefined ? attributes : withPromoted(attributes, fields.attributes),
        droppedAttributesCount: 0,
        ...(spanContext === undefined ? {} : { spanContext }),
      };
    }
    return records;
  }
}

/** What the configurable mapping takes from one JSON record. */
export interface MappedFields {
  /** Promoted fields as attribute name -> value, in the record's key order; undefined when none. */
  attributes: Record<string, unknown> | undefined;
  /** The service field's value, when it is a non-empty string. */
  serviceName: string | undefined;
  /** Lower-case hex. */
  traceId: string | undefined;
  spanId: string | undefined;
  traceFlags: number | undefined;
}

/** `mapping.attributes` as field -> attribute name, or undefined when nothing is promoted. */
export function promotedByField(mapping: OtlpMapping): ReadonlyMap<string, string> | undefined {
  if (mapping.attributes.length === 0) return undefined;
  return new Map(mapping.attributes.map(({ field, name }) => [field, name]));
}

/**
 * Applies the configurable mapping to a parsed JSON record: promoted fields are deleted from
 * `object` (it becomes the body) and returned as attributes; the service and trace fields are read
 * and stay. The encoder's byte transcoder follows the same rules (encode.ts).
 */
export function takeMappedFields(
  object: Record<string, unknown>,
  mapping: OtlpMapping,
  promoted: ReadonlyMap<string, string> | undefined = promotedByField(mapping),
): MappedFields {
  const service = mapping.serviceNameField === '' ? undefined : object[mapping.serviceNameField];
  const fields: MappedFields = {
    attributes: undefined,
    serviceName: typeof service === 'string' && service !== '' ? service : undefined,
    traceId: mapping.traceIdField === '' ? undefined : parseHexId(object[mapping.traceIdField], 32),
    spanId: mapping.spanIdField === '' ? undefined : parseHexId(object[mapping.spanIdField], 16),
    traceFlags: mapping.traceFlagsField === '' ? undefined : parseTraceFlags(object[mapping.traceFlagsField]),
  };
  if (promoted !== undefined) {
    for (const key in object) {
      const name = promoted.get(key);
      if (name === undefined) continue;
      // A null-prototype object: an attribute may be called `__proto__` like any JSON key.
      fields.attributes ??= Object.create(null) as Record<string, unknown>;
      fields.attributes[name] = object[key];
      delete object[key];
    }
  }
  return fields;
}

/** `value` as lower-case hex when it is a string of exactly `digits` hex digits, not all zero (an invalid id in OTLP). */
export function parseHexId(value: unknown, digits: number): string | undefined {
  if (typeof value !== 'string' || value.length !== digits) return undefined;
  let nonZero = false;
  for (let i = 0; i < digits; i++) {
    const c = value.charCodeAt(i);
    const hex = (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46);
    if (!hex) return undefined;
    if (c !== 0x30) nonZero = true;
  }
  return nonZero ? value.toLowerCase() : undefined;
}

/** W3C trace flags: an integer 0-255, or two hex digits (`"01"`, as in a traceparent header). */
export function parseTraceFlags(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0 && value <= 255 ? value : undefined;
  if (typeof value !== 'string' || value.length !== 2 || !/^[0-9a-fA-F]{2}$/.test(value)) return undefined;
  return parseInt(value, 16);
}

/** The OpenTelemetry JS form of the trace context (its serializers skip empty ids and zero flags). */
function spanContextOf(fields: MappedFields): SpanContext | undefined {
  if (fields.traceId === undefined && fields.spanId === undefined && fields.traceFlags === undefined) return undefined;
  return { traceId: fields.traceId ?? '', spanId: fields.spanId ?? '', traceFlags: fields.traceFlags ?? 0 };
}

/** The batch's attributes, then the promoted ones. */
function withPromoted(shared: LogAttributes, promoted: Record<string, unknown>): LogAttributes {
  const attributes = Object.assign(Object.create(null) as LogAttributes, shared);
  for (const name in promoted) attributes[name] = promoted[name] as LogAttributes[string];
  return attributes;
}

export function hrTimeFromMs(ms: number): HrTime {
  const seconds = Math.floor(ms / 1000);
  return [seconds, Math.round((ms - seconds * 1000) * 1e6)];
}

/** The event time of a JSON record: its first parseable timestamp field, or undefined. */
export function eventTime(object: Record<string, unknown>): HrTime | undefined {
  for (const field of TIMESTAMP_FIELDS) {
    const value = object[field];
    if (value === undefined) continue;
    const time = parseTimestamp(value);
    if (time !== undefined) return time;
  }
  return undefined;
}

const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?(?:([Zz])|([+-])(\d{2}):?(\d{2}))$/;

/**
 * RFC 3339 text (nanosecond precision kept), or a Unix epoch as a number or a string of digits.
 * The epoch unit is guessed from the magnitude: below 1e11 seconds (fractions allowed), below 1e14
 * milliseconds, below 1e17 microseconds, else nanoseconds. Anything else, zero or negative: undefined.
 */
export function parseTimestamp(value: unknown): HrTime | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value > 0 ? fromEpochNumber(value) : undefined;
  if (typeof value !== 'string') return undefined;
  const fast = fastRfc3339String(value);
  if (fast !== null) return fast;
  if (/^\d+$/.test(value)) {
    // Integer strings are exact, even in nanoseconds beyond 2^53.
    const n = BigInt(value);
    if (n === 0n) return undefined;
    const perSecond = n < 100_000_000_000n ? 1n : n < 100_000_000_000_000n ? 1_000n : n < 100_000_000_000_000_000n ? 1_000_000n : 1_000_000_000n;
    return [Number(n / perSecond), Number(((n % perSecond) * 1_000_000_000n) / perSecond)];
  }
  if (/^\d+\.\d+$/.test(value)) return fromEpochNumber(Number(value));
  const match = RFC3339.exec(value);
  if (match === null) return undefined;
  const [, y, mo, d, h, mi, s, fraction, zulu, sign, oh, om] = match;
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Math.min(Number(s), 59); // A leap second reads as :59.
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59) return undefined;
  const utcMs = Date.UTC(Number(y), month - 1, day, hour, minute, second);
  if (new Date(utcMs).getUTCDate() !== day) return undefined; // 2023-02-30 and the like.
  const offsetMinutes = zulu !== undefined ? 0 : (sign === '-' ? -1 : 1) * (Number(oh) * 60 + Number(om));
  const seconds = utcMs / 1000 - offsetMinutes * 60;
  const nanos = fraction === undefined ? 0 : Number(fraction.slice(0, 9).padEnd(9, '0'));
  return seconds > 0 ? [seconds, nanos] : undefined;
}

/** Days in each month of a common year. */
const MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Two ASCII digits at `at` as a number, or -1. */
function digits2(bytes: Uint8Array, at: number): number {
  const a = bytes[at]! - 48;
  const b = bytes[at + 1]! - 48;
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 ? a * 10 + b : -1;
}

/** Scratch for strings handed to fastRfc3339 (ASCII only, so one byte per char). */
const scratch = new Uint8Array(64);

function fastRfc3339String(value: string): HrTime | undefined | null {
  const length = value.length;
  if (length < 20 || length > scratch.length) return null;
  for (let i = 0; i < length; i++) {
    const c = value.charCodeAt(i);
    if (c >= 0x80) return null;
    scratch[i] = c;
  }
  return fastRfc3339(scratch, 0, length);
}

/**
 * The common shape `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` (years 1970-9999) parsed by hand
 * from bytes, for the encoder's transcoder and (through a copy) for strings: the regex, Date.UTC
 * validation and allocations of the general path cost more than the rest of a record's encoding.
 * Same result as the general path; `null` means "not this shape, use it".
 */
export function fastRfc3339(bytes: Uint8Array, start: number, end: number): HrTime | undefined | null {
  if (end - start < 20 || bytes[start + 4] !== 0x2d || bytes[start + 7] !== 0x2d) return null;
  const t = bytes[start + 10];
  if ((t !== 0x54 && t !== 0x74 && t !== 0x20) || bytes[start + 13] !== 0x3a || bytes[start + 16] !== 0x3a) return null;
  const century = digits2(bytes, start);
  const yy = digits2(bytes, start + 2);
  const month = digits2(bytes, start + 5);
  const day = digits2(bytes, start + 8);
  const hour = digits2(bytes, start + 11);
  const minute = digits2(bytes, start + 14);
  const rawSecond = digits2(bytes, start + 17);
  if (century < 19 || yy < 0 || month < 0 || day < 0 || hour < 0 || minute < 0 || rawSecond < 0) return null;
  const year = century * 100 + yy;
  if (year < 1970) return null;
  let at = start + 19;
  let nanos = 0;
  const separator = bytes[at];
  if (separator === 0x2e || separator === 0x2c) {
    at++;
    const first = at;
    let scale = 100_000_000;
    for (; at < end; at++) {
      const d = bytes[at]! - 48;
      if (d < 0 || d > 9) break;
      nanos += d * scale;
      scale = scale / 10;
      if (scale < 1) scale = 0;
    }
    if (at === first) return null;
  }
  let offsetMinutes = 0;
  const zone = at < end ? bytes[at] : -1;
  if (zone === 0x5a || zone === 0x7a) {
    if (at + 1 !== end) return null;
  } else if (zone === 0x2b || zone === 0x2d) {
    if (at + 5 > end) return null;
    const oh = digits2(bytes, at + 1);
    const colon = bytes[at + 3] === 0x3a ? 1 : 0;
    if (at + 5 + colon !== end) return null;
    const om = digits2(bytes, at + 3 + colon);
    if (oh < 0 || om < 0) return null;
    offsetMinutes = (zone === 0x2d ? -1 : 1) * (oh * 60 + om);
  } else {
    return null;
  }
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const monthDays = month === 2 && leap ? 29 : MONTH_DAYS[month - 1];
  if (month < 1 || month > 12 || day < 1 || monthDays === undefined || day > monthDays || hour > 23 || minute > 59) {
    return undefined;
  }
  const second = Math.min(rawSecond, 59); // A leap second reads as :59.
  // Consecutive lines mostly share their minute: Date.UTC once per minute seen.
  // Offsets span at most ±(99 * 60 + 99) minutes: 16384 slots keep every key distinct.
  const minuteKey = ((((year * 13 + month) * 32 + day) * 24 + hour) * 60 + minute) * 16384 + offsetMinutes + 8192;
  if (minuteKey !== lastMinuteKey) {
    lastMinuteKey = minuteKey;
    lastMinuteSeconds = Date.UTC(year, month - 1, day, hour, minute) / 1000 - offsetMinutes * 60;
  }
  const seconds = lastMinuteSeconds + second;
  return seconds > 0 ? [seconds, nanos] : undefined;
}

let lastMinuteKey = -1;
let lastMinuteSeconds = 0;

function fromEpochNumber(value: number): HrTime {
  const ms = value < 1e11 ? value * 1e3 : value < 1e14 ? value : value < 1e17 ? value / 1e3 : value / 1e6;
  return hrTimeFromMs(ms);
}

export interface Severity {
  severityText: string;
  severityNumber: number;
}

/** Names of the OTLP severity ranges, for numeric levels. */
const SEVERITY_NAMES = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL'] as const;

/**
 * Level names, lower case, to OTLP SeverityNumber. Syslog names follow the OpenTelemetry spec's
 * mapping table (alert = ERROR3, crit = ERROR2, notice = INFO2).
 */
const SEVERITY_BY_NAME: Readonly<Record<string, number>> = {
  trace: 1,
  debug: 5,
  info: 9,
  information: 9,
  informational: 9,
  notice: 10,
  warn: 13,
  warning: 13,
  err: 17,
  error: 17,
  crit: 18,
  critical: 18,
  alert: 19,
  fatal: 21,
  emerg: 21,
  emergency: 21,
  panic: 21,
};

/** The severity of a JSON record from its first string or number severity field, or undefined. */
export function severityOf(object: Record<string, unknown>): Severity | undefined {
  for (const field of SEVERITY_FIELDS) {
    const value = object[field];
    if (typeof value === 'string' || typeof value === 'number') return parseSeverity(value);
  }
  return undefined;
}

/**
 * A level name (any case) keeps its text and gets its number; an unknown name keeps its text with
 * number 0 (unspecified). Numbers: 10, 20, ... 60 are pino/bunyan levels (trace ... fatal); any
 * other integer 1-24 is an OTLP SeverityNumber; the text is then the range name (`INFO`, ...).
 */
export function parseSeverity(value: string | number): Severity {
  if (typeof value === 'string') {
    // Few distinct level strings in practice: remember them (bounded). The result is shared: read only.
    let cached = severityCache.get(value);
    if (cached === undefined) {
      if (severityCache.size >= SEVERITY_CACHE_SIZE) severityCache.clear();
      cached = severityFromText(value);
      severityCache.set(value, cached);
    }
    return cached;
  }
  const numeric = severityFromNumber(value);
  if (numeric === undefined) return { severityText: String(value), severityNumber: 0 };
  return { severityText: SEVERITY_NAMES[Math.floor((numeric - 1) / 4)]!, severityNumber: numeric };
}

const SEVERITY_CACHE_SIZE = 256;
const severityCache = new Map<string, Severity>();

function severityFromText(value: string): Severity {
  const known = SEVERITY_BY_NAME[value.toLowerCase()];
  if (known !== undefined) return { severityText: value, severityNumber: known };
  if (/^\d+$/.test(value)) {
    const numeric = severityFromNumber(Number(value));
    if (numeric !== undefined) return { severityText: value, severityNumber: numeric };
  }
  return { severityText: value, severityNumber: 0 };
}

function severityFromNumber(value: number): number | undefined {
  if (!Number.isInteger(value)) return undefined;
  if (value >= 10 && value <= 60 && value % 10 === 0) return 1 + ((value / 10 - 1) * 4);
  if (value >= 1 && value <= 24) return value;
  return undefined;
}
