/**
 * `type = "opentelemetry"`: sends every line as an OTLP log record over OTLP/HTTP, protobuf or
 * JSON. Durability is ours: records are batched by `Delivery`, retried without limit by default,
 * and a `write()` resolves only once the collector accepted all of its records. User docs:
 * docs/sinks/opentelemetry.md.
 *
 * Batches are encoded in a worker pool (pool.ts), one `ResourceLogs` per batch: OTLP protobuf by
 * our own encoder from the bytes (encode.ts), OTLP JSON from mapped records (encode-json.ts). The
 * main thread only joins encoded bytes into request bodies and hands them to the OpenTelemetry
 * HTTP export delegate, which owns headers, compression, timeouts and its quick retries.
 */
import { convertLegacyHttpOptions, createOtlpHttpExportDelegate } from '@opentelemetry/otlp-exporter-base/node-http';
import type { OTLPExporterNodeConfigBase } from '@opentelemetry/otlp-exporter-base';
import { join } from 'node:path';
import type { ComponentContext, Sink, SinkType } from '../../components.js';
import type { ConfigReader } from '../../config/reader.js';
import type { LineBatch } from '../../event.js';
import type { Telemetry } from '../../telemetry.js';
import { Delivery, type SegmentOps, type Send, type SendOutcome } from './batching.js';
import { jsonEntrySize, jsonRequestBody } from './encode-json.js';
import { entrySize, requestBody, sliceCount, type EncodedBatch, type EncodedSlice } from './encode.js';
import {
  otlpEncodedOnMainThread,
  otlpEncoderWithoutWasm,
  otlpEventsReceived,
  otlpEventsSent,
  otlpRecordsRejected,
  otlpRecordsUndelivered,
  otlpSendFailed,
  otlpSinkDisabled,
} from './events.js';
import { parseMappingConfig, type OtlpMapping } from './mapping.js';
import { EncodePool, releaseEncoded } from './pool.js';
import { wasmEncoderProblem, wasmEncoderSupports } from './wasm-encoder.js';
import {
  otlpBufferDropped,
  otlpDiskBufferCorrupt,
  otlpPartialSuccess,
  otlpRetryAfter,
  parseBufferConfig,
  type BufferConfig,
} from './buffer.js';
import { decodeLogsResponse, observeRetryAfter, partialSuccessOf, type AgentFactory } from './buffer-feedback.js';
import { DiskBuffer, runDiskSender } from './disk-buffer.js';
import {
  DEFAULT_HEALTHCHECK_ENABLED,
  DEFAULT_OTLP_PROTOCOL,
  OTLP_PROTOCOLS,
  classifyGrpcResult,
  createGrpcExporter,
  httpsAgentOptions,
  otlpEnvDefaults,
  parseTls,
  readTlsMaterial,
  redactedUrl,
  type OtlpProtocol,
  type OtlpTlsConfig,
} from './transport.js';

export const OTLP_CODECS = ['protobuf', 'json'] as const;
export type OtlpCodec = (typeof OTLP_CODECS)[number];
export const OTLP_COMPRESSIONS = ['none', 'gzip'] as const;
export type OtlpCompression = (typeof OTLP_COMPRESSIONS)[number];

/** `encoding` (or `encoding.codec`, `protocol.encoding.codec`): the OTLP/HTTP body format. */
export const DEFAULT_OTLP_CODEC: OtlpCodec = 'protobuf';
/** `compression`: `gzip` compresses request bodies. */
export const DEFAULT_OTLP_COMPRESSION: OtlpCompression = 'none';
/** `service_name`: the `service.name` resource attribute of every record. */
export const DEFAULT_SERVICE_NAME = 'logwasm';
/**
 * `batch.max_events`: most records in one export request. Vector sets no limit here (only
 * `max_bytes`); this one is the file source's batch size (MAX_BATCH_LINES), so that a source batch
 * is sent as one request without a copy, and a request never holds several batches' bodies.
 */
export const DEFAULT_BATCH_MAX_EVENTS = 2500;
/**
 * `batch.max_bytes`: most bytes of one request body, before compression (Vector's default for its
 * HTTP-based sinks). A single record bigger than this is sent alone.
 */
export const DEFAULT_BATCH_MAX_BYTES = 10_000_000;
/** `batch.timeout_secs`: a partly filled request is sent this long after its first record. */
export const DEFAULT_BATCH_TIMEOUT_SECS = 1;
/** `request.timeout_secs`: one HTTP attempt (with the exporter's own quick retries) ends after this. */
export const DEFAULT_REQUEST_TIMEOUT_SECS = 60;
/** `request.concurrency`: most export requests in flight (including ones waiting to retry). */
export const DEFAULT_REQUEST_CONCURRENCY = 4;
/** `request.retry_attempts`: retries of a failed request; unbounded, as Vector's default. */
export const DEFAULT_RETRY_ATTEMPTS = Number.POSITIVE_INFINITY;
/** `request.retry_initial_backoff_secs`: first retry after 0.125-0.375 s, doubling after. */
export const DEFAULT_RETRY_INITIAL_BACKOFF_SECS = 0.25;
/** `request.retry_max_duration_secs`: the longest wait between two attempts. */
export const DEFAULT_RETRY_MAX_DURATION_SECS = 30;
/** Path appended to a base `endpoint` that does not already end with it. */
export const OTLP_LOGS_PATH = '/v1/logs';

export interface OpentelemetrySinkConfig {
  /** Full OTLP/HTTP logs URL, or the gRPC server's `http(s)://host:port`; empty disables the sink. */
  endpoint: string;
  /** `protocol` / `protocol.type`: OTLP/HTTP or OTLP/gRPC (transport.ts). */
  protocol: OtlpProtocol;
  tls: OtlpTlsConfig;
  /** `healthcheck.enabled`: one empty export request at start. */
  healthcheck: boolean;
  codec: OtlpCodec;
  compression: OtlpCompression;
  headers: Record<string, string>;
  serviceName: string;
  /** `mapping`: promoted attributes, the service and trace fields (mapping.ts). */
  mapping: OtlpMapping;
  batchMaxEvents: number;
  batchMaxBytes: number;
  batchTimeoutSecs: number;
  requestTimeoutSecs: number;
  concurrency: number;
  retryAttempts: number;
  retryInitialBackoffSecs: number;
  retryMaxDurationSecs: number;
  /** `buffer`: where records wait for a request (see buffer.ts). */
  buffer: BufferConfig;
}

export const opentelemetrySink: SinkType<OpentelemetrySinkConfig> = {
  kind: 'sink',
  type: 'opentelemetry',
  parse: parseOpentelemetryConfig,
  build: (config, context) => new OpentelemetrySink(config, context),
};

/**
 * Reads both forms: logwasm's flat `endpoint = "..."` with options at the top level, and Vector's
 * `[sinks.x.protocol] type = "http" uri = "..."` with options inside `protocol` (where Vector keeps
 * them). An option may sit in either place, not both.
 */
export function parseOpentelemetryConfig(reader: ConfigReader, env: NodeJS.ProcessEnv = process.env): OpentelemetrySinkConfig {
  const fromEnv = otlpEnvDefaults(env);
  // `protocol = "grpc"` (the flat form) names the transport only; a table is Vector's form.
  const protocolRaw = reader.raw('protocol');
  const flatProtocol = typeof protocolRaw === 'string' || protocolRaw === undefined;
  const protocol = !flatProtocol ? reader.table('protocol') : undefined;
  let transport: OtlpProtocol = fromEnv.protocol ?? DEFAULT_OTLP_PROTOCOL;
  if (flatProtocol && protocolRaw !== undefined) transport = reader.oneOf('protocol', OTLP_PROTOCOLS, DEFAULT_OTLP_PROTOCOL);
  let endpoint = '';
  if (protocol !== undefined) {
    transport = protocol.oneOf('type', OTLP_PROTOCOLS, DEFAULT_OTLP_PROTOCOL);
    protocol.oneOf('method', ['post'] as const, 'post');
    protocol.accept('framing');
    if (reader.has('endpoint')) {
      reader.accept('endpoint');
      reader.problem('set either "endpoint" or "protocol.uri", not both');
    }
    endpoint = checkUrl(reader, 'protocol.uri', protocol.requiredString('uri'));
  } else if (!reader.has('endpoint') && fromEnv.endpoint !== undefined) {
    // OTEL_EXPORTER_OTLP_LOGS_ENDPOINT is the full URL; OTEL_EXPORTER_OTLP_ENDPOINT a base URL.
    const value = checkUrl(reader, 'OTEL_EXPORTER_OTLP_ENDPOINT', fromEnv.endpoint);
    endpoint = transport === 'grpc' || fromEnv.endpointIsFull ? value : withLogsPath(value);
  } else {
    const value = reader.requiredString('endpoint');
    endpoint = value === '' || transport === 'grpc' ? checkUrl(reader, 'endpoint', value) : withLogsPath(checkUrl(reader, 'endpoint', value));
  }
  for (const name of fromEnv.invalid) reader.problem(`environment variable ${name} has a value that cannot be used`);
  // Each group of options is read from `protocol` when it is there, else from the top level.
  const from = (key: string): ConfigReader => {
    if (protocol === undefined || !protocol.has(key)) return reader;
    if (reader.has(key)) {
      reader.accept(key);
      reader.problem(`set either "${key}" or "protocol.${key}", not both`);
    }
    return protocol;
  };

  const codecReader = from('encoding');
  const codec = !codecReader.has('encoding') && fromEnv.codec !== undefined ? fromEnv.codec : parseCodec(codecReader);
  const compressionReader = from('compression');
  const compression = compressionReader.oneOf('compression', OTLP_COMPRESSIONS, fromEnv.compression ?? DEFAULT_OTLP_COMPRESSION);
  const tls = parseTls(from('tls'));
  if (tls.caFile === undefined && fromEnv.caFile !== undefined) tls.caFile = fromEnv.caFile;
  if (transport === 'grpc' && codec === 'json') reader.problem('encoding "json" is not supported with protocol "grpc" (gRPC carries protobuf)');
  const serviceName = reader.string('service_name', DEFAULT_SERVICE_NAME);
  const mapping = parseMappingConfig(reader);

  const batch = from('batch').table('batch');
  const batchMaxEvents = batch.number('max_events', DEFAULT_BATCH_MAX_EVENTS, { integer: true, min: 1 });
  const batchTimeoutSecs = batch.number('timeout_secs', DEFAULT_BATCH_TIMEOUT_SECS, { min: 0.001 });
  const batchMaxBytes = batch.number('max_bytes', DEFAULT_BATCH_MAX_BYTES, { integer: true, min: 1 });
  batch.finish();

  const request = from('request').table('request');
  // Configured headers win over OTEL_EXPORTER_OTLP_(LOGS_)HEADERS of the same name.
  const headers = { ...fromEnv.headers, ...request.stringMap('headers') };
  const requestTimeoutSecs = request.number('timeout_secs', fromEnv.timeoutSecs ?? DEFAULT_REQUEST_TIMEOUT_SECS, { min: 0.001 });
  const concurrency = parseConcurrency(request);
  const retryAttempts = request.number('retry_attempts', DEFAULT_RETRY_ATTEMPTS, { integer: true, min: 0 });
  const retryInitialBackoffSecs = request.number(
    'retry_initial_backoff_secs',
    DEFAULT_RETRY_INITIAL_BACKOFF_SECS,
    { min: 0.001 },
  );
  const retryMaxDurationSecs = request.number('retry_max_duration_secs', DEFAULT_RETRY_MAX_DURATION_SECS, {
    min: 0.001,
  });
  // Accepted for compatibility with Vector configs; logwasm does not rate-limit requests.
  request.accept('rate_limit_duration_secs', 'rate_limit_num', 'retry_jitter_mode', 'adaptive_concurrency');
  request.finish();

  const buffer = parseBufferConfig(reader);

  const healthcheckRaw = reader.raw('healthcheck');
  let healthcheck = DEFAULT_HEALTHCHECK_ENABLED;
  if (typeof healthcheckRaw === 'boolean') healthcheck = reader.boolean('healthcheck', DEFAULT_HEALTHCHECK_ENABLED);
  else if (healthcheckRaw !== undefined) {
    const table = reader.table('healthcheck');
    healthcheck = table.boolean('enabled', DEFAULT_HEALTHCHECK_ENABLED);
    table.accept('uri');
    table.finish();
  }
  const acknowledgements = reader.raw('acknowledgements');
  if (acknowledgements !== undefined && typeof acknowledgements !== 'boolean') {
    const table = reader.table('acknowledgements');
    table.boolean('enabled', true);
    table.finish();
  }
  protocol?.finish();

  return {
    endpoint,
    protocol: transport,
    tls,
    healthcheck,
    codec,
    compression,
    headers,
    serviceName,
    mapping,
    batchMaxEvents,
    batchMaxBytes,
    batchTimeoutSecs,
    requestTimeoutSecs,
    concurrency,
    retryAttempts,
    retryInitialBackoffSecs,
    retryMaxDurationSecs,
    buffer,
  };
}

/** `encoding = "json"`, or `encoding.codec = "json"` (Vector's form, with its `protobuf` table accepted). */
function parseCodec(reader: ConfigReader): OtlpCodec {
  const raw = reader.raw('encoding');
  if (raw === undefined || typeof raw === 'string') return reader.oneOf('encoding', OTLP_CODECS, DEFAULT_OTLP_CODEC);
  const encoding = reader.table('encoding');
  const codec = encoding.oneOf('codec', OTLP_CODECS, DEFAULT_OTLP_CODEC);
  encoding.accept('protobuf');
  encoding.finish();
  return codec;
}

/** Vector's `request.concurrency`: a number, `"none"` (one at a time) or `"adaptive"` (the default here). */
function parseConcurrency(request: ConfigReader): number {
  const raw = request.raw('concurrency');
  if (raw === undefined || raw === 'adaptive') return DEFAULT_REQUEST_CONCURRENCY;
  if (raw === 'none') return 1;
  if (typeof raw === 'string') {
    request.oneOf('concurrency', ['none', 'adaptive'] as const, 'adaptive');
    return DEFAULT_REQUEST_CONCURRENCY;
  }
  return request.number('concurrency', DEFAULT_REQUEST_CONCURRENCY, { integer: true, min: 1 });
}

function checkUrl(reader: ConfigReader, key: string, value: string): string {
  if (value === '') return value;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    reader.problem(`invalid value for "${key}": expected an http:// or https:// URL, actual: ${JSON.stringify(value)}`);
    return '';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    reader.problem(`invalid value for "${key}": expected an http:// or https:// URL, actual: ${JSON.stringify(value)}`);
    return '';
  }
  return value;
}

/** `http://host:4318` and `http://host:4318/otel/` become `.../v1/logs`; a URL ending with it stays. */
export function withLogsPath(endpoint: string): string {
  if (endpoint === '') return endpoint;
  const url = new URL(endpoint);
  const path = url.pathname.replace(/\/+$/, '');
  if (!path.endsWith(OTLP_LOGS_PATH)) url.pathname = path + OTLP_LOGS_PATH;
  return url.toString();
}

type ExporterConfig = OTLPExporterNodeConfigBase;
interface ExportResult {
  code: number;
  error?: Error;
}
type ExportCallback = (result: ExportResult) => void;

/** What both transports offer: one export attempt per call, and a shutdown that waits for them. */
interface Exporter<Q> {
  export(request: Q, callback: ExportCallback): void;
  shutdown(): Promise<void>;
}

/**
 * The exporter's result says little: its transport already retried 429/502/503/504 and network
 * errors a few times, then reports a failure without a status. A failure that carries an HTTP
 * status 4xx (other than 408 and 429) is the collector refusing the data itself: permanent.
 * Everything else (5xx, timeouts, connection errors, retries exhausted) is worth another try.
 */
export function classifyExportResult(result: ExportResult): SendOutcome {
  if (result.code === 0) return { status: 'sent' };
  const error = result.error as (Error & { code?: unknown; data?: unknown }) | undefined;
  const status = typeof error?.code === 'number' ? error.code : undefined;
  const message = error?.message || 'export failed';
  if (status !== undefined) {
    const detail = typeof error?.data === 'string' && error.data !== '' ? `: ${error.data.slice(0, 200)}` : '';
    const reason = `HTTP ${status} ${message}${detail}`;
    if (status >= 400 && status < 500 && status !== 408 && status !== 429) return { status: 'rejected', reason };
    return { status: 'retry', reason };
  }
  return { status: 'retry', reason: message };
}

function exporterOptions(config: OpentelemetrySinkConfig): ExporterConfig {
  const https = config.endpoint.startsWith('https:');
  return {
    ...(https ? { httpAgentOptions: httpsAgentOptions(readTlsMaterial(config.tls)) } : {}),
    url: config.endpoint,
    headers: { ...config.headers },
    timeoutMillis: Math.round(config.requestTimeoutSecs * 1000),
    // Above our own in-flight limit, so the exporter never refuses a request for concurrency.
    concurrencyLimit: config.concurrency * 2 + 1,
    compression: config.compression as ExporterConfig['compression'],
  };
}

/** A protobuf request as the export delegate sees it: the encoded slices it carries. */
interface EncodedRequest {
  slices: EncodedSlice[];
  count: number;
}

/**
 * The OpenTelemetry OTLP/HTTP export delegate (what the OTLP exporters themselves are built on),
 * with a serializer that joins our pre-encoded slices instead of serializing records: the
 * transport, its headers, compression, timeout and quick retries are the exporter's own.
 */
function createEncodedExporter(config: OpentelemetrySinkConfig, feedback?: ResponseFeedback): Exporter<EncodedRequest> {
  if (config.protocol === 'grpc') return createGrpcEncodedExporter(config, feedback);
  const json = config.codec === 'json';
  const options = convertLegacyHttpOptions(exporterOptions(config), 'LOGS', 'v1/logs', {
    'Content-Type': json ? 'application/json' : 'application/x-protobuf',
  });
  if (feedback !== undefined) {
    options.agentFactory = observeRetryAfter(options.agentFactory as AgentFactory, feedback.retryAfter);
  }
  const observed = <R>(response: R): R => {
    const partial = partialSuccessOf(response);
    if (partial !== undefined) feedback?.partialSuccess(partial.rejected, partial.message);
    return response;
  };
  const serializer = json
    ? {
        serializeRequest: (request: EncodedRequest): Uint8Array => jsonRequestBody(request.slices),
        deserializeResponse: (data: Uint8Array) => observed(decodeLogsResponse(data, true)),
      }
    : {
        serializeRequest: (request: EncodedRequest): Uint8Array => requestBody(request.slices),
        deserializeResponse: (data: Uint8Array) => observed(decodeLogsResponse(data, false)),
      };
  return createOtlpHttpExportDelegate(
    options,
    serializer,
    'otlp_http_log_exporter',
    { name: 'log', countItems: (request: EncodedRequest) => request.count },
    undefined,
  );
}

/** OTLP/gRPC through the OpenTelemetry gRPC export delegate (transport.ts), protobuf only. */
function createGrpcEncodedExporter(config: OpentelemetrySinkConfig, feedback?: ResponseFeedback): Exporter<EncodedRequest> {
  return createGrpcExporter<EncodedRequest>(
    {
      endpoint: config.endpoint,
      headers: config.headers,
      compression: config.compression,
      timeoutMillis: Math.round(config.requestTimeoutSecs * 1000),
      concurrencyLimit: config.concurrency * 2 + 1,
      tls: readTlsMaterial(config.tls),
    },
    (request) => requestBody(request.slices),
    (request) => request.count,
    feedback,
  );
}

/** What the collector's responses tell us beyond success or failure (buffer-feedback.ts). */
interface ResponseFeedback {
  /** An HTTP status with Retry-After, or a gRPC status (`gRPC UNAVAILABLE`) with RetryInfo. */
  retryAfter(status: number | string, delayMs: number): void;
  partialSuccess(rejected: number, message: string): void;
}

/** One attempt through the exporter per call, its result classified. */
function exporterSend<S, Q>(
  exporter: Exporter<Q>,
  request: (segments: S[]) => Q,
  classify: (result: ExportResult) => SendOutcome,
): Send<S> {
  return (segments) =>
    new Promise<SendOutcome>((resolve) => {
      try {
        exporter.export(request(segments), (result) => resolve(classify(result)));
      } catch (error) {
        resolve({ status: 'retry', reason: error instanceof Error ? error.message : String(error) });
      }
    });
}

/** `healthcheck`: the longest the start-up check waits for the collector. */
export const HEALTHCHECK_TIMEOUT_SECS = 10;

/**
 * The start-up healthcheck: one empty ExportLogsServiceRequest to the endpoint, through the same
 * transport, headers and TLS as the records. Resolves with why it failed, or undefined when the
 * collector accepted it (and for a disabled sink). Never throws. The reason names a status, never
 * a header value.
 */
export async function checkOpentelemetryHealth(config: OpentelemetrySinkConfig): Promise<string | undefined> {
  if (config.endpoint === '') return undefined;
  let exporter: Exporter<EncodedRequest>;
  try {
    exporter = createEncodedExporter({ ...config, requestTimeoutSecs: Math.min(config.requestTimeoutSecs, HEALTHCHECK_TIMEOUT_SECS) });
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
  const send = exporterSend(
    exporter,
    (): EncodedRequest => ({ slices: [], count: 0 }),
    config.protocol === 'grpc' ? classifyGrpcResult : classifyExportResult,
  );
  const outcome = await send([]);
  await exporter.shutdown().catch(() => undefined);
  return outcome.status === 'sent' ? undefined : `${outcome.reason} (${redactedUrl(config.endpoint)})`;
}

/**
 * Encoded slices are cut without copying: a slice of a slice is a narrower record range. Their
 * size in a request body is what `requestBody` (protobuf) or `jsonRequestBody` writes for them.
 */
function sliceSegments(codec: OtlpCodec): SegmentOps<EncodedSlice> {
  const slice = (segment: EncodedSlice, from: number, to: number): EncodedSlice => ({
    batch: segment.batch,
    from: segment.from + from,
    to: segment.from + to,
  });
  if (codec === 'protobuf') return { count: sliceCount, slice, bytes: entrySize };
  // jsonRequestBody: `{"resourceLogs":[` entries joined by `,` `]}`; an entry is the resource
  // opening, the records without the comma before the first one, and `]}]}`.
  return {
    count: sliceCount,
    slice,
    baseBytes: JSON_ENVELOPE_BYTES - 1,
    bytes: jsonEntrySize,
  };
}
const JSON_ENVELOPE_BYTES = jsonRequestBody([]).length;

function countSlices(slices: readonly EncodedSlice[]): number {
  let count = 0;
  for (const slice of slices) count += slice.to - slice.from;
  return count;
}

export class OpentelemetrySink implements Sink {
  private readonly id: string;
  private readonly telemetry: Telemetry;
  /** Undefined when the sink is disabled (empty endpoint). */
  private readonly exporter: Exporter<EncodedRequest> | undefined;
  private readonly pool: EncodePool | undefined;
  private readonly delivery: Delivery<EncodedSlice> | undefined;
  private readonly dataDir: string;
  /** `buffer.type = "disk"`: the segment files and the loop feeding them to `delivery`. */
  private disk: { buffer: DiskBuffer; sender: Promise<void> } | undefined;

  constructor(
    readonly config: OpentelemetrySinkConfig,
    context: ComponentContext,
  ) {
    const { id, telemetry } = context;
    this.id = id;
    this.telemetry = telemetry;
    this.dataDir = context.dataDir;
    if (config.endpoint === '') return;
    this.exporter = createEncodedExporter(config, {
      retryAfter: (status, delayMs) => {
        this.delivery?.holdUntil(Date.now() + delayMs);
        otlpRetryAfter(telemetry, id, status, delayMs);
      },
      partialSuccess: (rejected, message) => otlpPartialSuccess(telemetry, id, rejected, message),
    });
    this.pool = new EncodePool({
      serviceName: config.serviceName,
      mapping: config.mapping,
      codec: config.codec,
      onFallback: (reason, detail) => otlpEncodedOnMainThread(telemetry, id, reason, detail),
    });
    this.delivery = new Delivery<EncodedSlice>(
      exporterSend(
        this.exporter,
        (slices: EncodedSlice[]) => ({ slices, count: countSlices(slices) }),
        config.protocol === 'grpc' ? classifyGrpcResult : classifyExportResult,
      ),
      {
        maxEvents: config.batchMaxEvents,
        maxBytes: config.batchMaxBytes,
        batchTimeoutMs: config.batchTimeoutSecs * 1000,
        maxInFlight: config.concurrency,
        // `buffer.max_events` waiting, on top of what fills every in-flight request slot.
        maxPending: config.buffer.maxEvents + config.batchMaxEvents * config.concurrency,
        whenFull: config.buffer.whenFull,
        retry: {
          maxRetries: config.retryAttempts,
          initialBackoffMs: config.retryInitialBackoffSecs * 1000,
          maxBackoffMs: config.retryMaxDurationSecs * 1000,
        },
      },
      {
        sent: (count) => otlpEventsSent(telemetry, id, count),
        attemptFailed: (count, reason, attempt, delayMs) => otlpSendFailed(telemetry, id, count, reason, attempt, delayMs),
        rejected: (count, reason) => otlpRecordsRejected(telemetry, id, count, reason),
        undelivered: (count, reason) => otlpRecordsUndelivered(telemetry, id, count, reason),
        dropped: (count) => otlpBufferDropped(telemetry, id, count),
      },
      sliceSegments(config.codec),
    );
  }

  async start(): Promise<void> {
    if (this.pool === undefined) otlpSinkDisabled(this.telemetry, this.id);
    else await this.pool.start();
    if (this.pool !== undefined && this.config.codec === 'protobuf' && wasmEncoderSupports(this.config.mapping)) {
      const problem = wasmEncoderProblem();
      if (problem !== undefined) otlpEncoderWithoutWasm(this.telemetry, this.id, problem);
    }
    if (this.config.buffer.type === 'disk' && this.delivery !== undefined) {
      const { telemetry, id } = this;
      const buffer = await DiskBuffer.open({
        dir: join(this.dataDir, id, 'buffer'),
        maxSizeBytes: this.config.buffer.maxSizeBytes ?? 0,
        onCorrupt: (file, offset, reason) => otlpDiskBufferCorrupt(telemetry, id, file, offset, reason),
      });
      const limit = this.config.buffer.maxEvents + this.config.batchMaxEvents * this.config.concurrency;
      this.disk = { buffer, sender: runDiskSender(buffer, (batch) => this.deliver(batch), limit) };
    }
    // As in Vector, the healthcheck runs beside start-up and only warns; `--require-healthy`
    // (run.ts) waits for it before anything starts.
    if (this.config.healthcheck && this.config.endpoint !== '') {
      const { telemetry, id } = this;
      void checkOpentelemetryHealth(this.config).then((reason) => {
        if (reason !== undefined) telemetry.log('warn', 'healthcheck_failed', `healthcheck failed: ${reason}`, id);
      });
    }
  }

  /**
   * Takes ownership of `batch`: its buffers are transferred to an encoding thread (a view into a
   * larger buffer is copied first). Resolves once the collector accepted every record.
   */
  async write(batch: LineBatch): Promise<void> {
    const count = batch.offsets.length - 1;
    otlpEventsReceived(this.telemetry, this.id, count);
    if (count === 0) return;
    // Disk buffer: acknowledged once synced to the buffer; the sender delivers it from there.
    if (this.disk !== undefined) return this.disk.buffer.append(batch);
    return this.deliver(batch);
  }

  private async deliver(batch: LineBatch): Promise<void> {
    const count = batch.offsets.length - 1;
    const { delivery, pool } = this;
    if (delivery === undefined || pool === undefined || count === 0) return;
    // Room in the queue is reserved before encoding, so backpressure holds before the work is done.
    let encoded: EncodedBatch | undefined;
    const allSent = await delivery.writeLater(count, async () => {
      encoded = await pool.encode(batch);
      return { batch: encoded, from: 0, to: count };
    });
    // The collector answered 2xx to every request carrying these bytes, so it read them all and no
    // socket write still points into them. (A request given up on, or abandoned at a stop
    // deadline, may still be writing: its bytes are left to the GC.)
    if (allSent && encoded !== undefined) releaseEncoded(encoded);
  }

  /** Sources stopped reading: partial requests go out now, not at `batch.timeout_secs`. */
  expedite(): void {
    this.delivery?.expedite();
  }

  /**
   * Sends what is queued and waits until the collector accepted it, however long that takes.
   * With `deadlineMs`, gives up after that many ms: what is left is counted as undelivered.
   */
  async stop(deadlineMs?: number): Promise<void> {
    const { delivery, pool, exporter } = this;
    if (delivery === undefined || pool === undefined || exporter === undefined) return;
    const started = Date.now();
    // Disk buffer: no more frames are read; what was not delivered stays on disk for the next run.
    if (this.disk !== undefined) {
      await this.disk.buffer.close();
      await this.disk.sender;
    }
    await delivery.stop(deadlineMs);
    // shutdown() waits for the exporter's in-flight requests; after a deadline, do not wait for
    // the ones we abandoned.
    const shutdown = (async () => {
      await pool.close();
      await exporter.shutdown();
    })().catch(() => undefined);
    if (deadlineMs === undefined) {
      await shutdown;
      return;
    }
    const left = Math.max(0, deadlineMs - (Date.now() - started));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([shutdown, new Promise((resolve) => (timer = setTimeout(resolve, left)))]);
    clearTimeout(timer);
  }

  /** Records queued and not yet accepted by the collector. */
  get pending(): number {
    return this.delivery?.pending ?? 0;
  }
}
