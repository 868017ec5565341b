/**
 * The transport side of the `opentelemetry` sink: OTLP/gRPC through the OpenTelemetry gRPC export
 * delegate (with a passthrough serializer for our pre-encoded protobuf), TLS options in Vector's
 * names for both transports, the standard `OTEL_EXPORTER_OTLP_*` environment variables where the
 * config is silent, and the start-up healthcheck (an empty ExportLogsServiceRequest).
 */
import type { ChannelCredentials, VerifyOptions } from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import type { AgentOptions } from 'node:https';
import { createRequire } from 'node:module';
import type { ConfigReader } from '../../config/reader.js';
import { TlsFileError } from '../../errors.js';
import type { SendOutcome } from './batching.js';
import { decodeLogsResponse, grpcRetryDelayMs, partialSuccessOf } from './buffer-feedback.js';

type GrpcExporterBase = typeof import('@opentelemetry/otlp-grpc-exporter-base');
let grpcBase: GrpcExporterBase | undefined;

/**
 * The OpenTelemetry gRPC export delegate's package, loaded on first use: it loads @grpc/grpc-js,
 * about 100 ms of start-up (and memory) that a process without a gRPC sink does not need.
 */
function grpcExporterBase(): GrpcExporterBase {
  grpcBase ??= createRequire(import.meta.url)('@opentelemetry/otlp-grpc-exporter-base') as GrpcExporterBase;
  return grpcBase;
}

export const OTLP_PROTOCOLS = ['http', 'grpc'] as const;
export type OtlpProtocol = (typeof OTLP_PROTOCOLS)[number];
/** `protocol` (or `protocol.type`): OTLP over HTTP, as Vector's default. */
export const DEFAULT_OTLP_PROTOCOL: OtlpProtocol = 'http';
/** `tls.verify_certificate`: the collector's certificate is checked against the CA, as Vector's default. */
export const DEFAULT_TLS_VERIFY_CERTIFICATE = true;
/** `healthcheck.enabled`: one empty export request at start; a failure warns, as Vector's default. */
export const DEFAULT_HEALTHCHECK_ENABLED = true;
/** The gRPC method OTLP logs are exported with. */
export const OTLP_GRPC_LOGS_METHOD = '/opentelemetry.proto.collector.logs.v1.LogsService/Export';

/** `tls.*`, Vector's names. Files are read when the sink is built. */
export interface OtlpTlsConfig {
  caFile?: string;
  crtFile?: string;
  keyFile?: string;
  verifyCertificate: boolean;
}

export function parseTls(reader: ConfigReader): OtlpTlsConfig {
  const tls = reader.table('tls');
  const config: OtlpTlsConfig = {
    verifyCertificate: tls.boolean('verify_certificate', DEFAULT_TLS_VERIFY_CERTIFICATE),
  };
  const caFile = tls.string('ca_file');
  const crtFile = tls.string('crt_file');
  const keyFile = tls.string('key_file');
  if (caFile !== undefined) config.caFile = caFile;
  if (crtFile !== undefined) config.crtFile = crtFile;
  if (keyFile !== undefined) config.keyFile = keyFile;
  if ((crtFile === undefined) !== (keyFile === undefined)) tls.problem('set both "tls.crt_file" and "tls.key_file", or neither');
  // Accepted for compatibility with Vector configs.
  tls.accept('enabled', 'verify_hostname', 'alpn_protocols', 'key_pass', 'server_name');
  tls.finish();
  return config;
}

/** What the `OTEL_EXPORTER_OTLP_*` variables say; each used only where the config is silent. */
export interface OtlpEnvDefaults {
  /** A full logs URL (`_LOGS_ENDPOINT`) or a base URL (`_ENDPOINT`, `/v1/logs` appended for http). */
  endpoint?: string;
  /** True when `endpoint` came from `_LOGS_ENDPOINT` and is used as is. */
  endpointIsFull: boolean;
  protocol?: OtlpProtocol;
  codec?: 'protobuf' | 'json';
  compression?: 'none' | 'gzip';
  timeoutSecs?: number;
  headers: Record<string, string>;
  caFile?: string;
  /** Variables with values that could not be used: names only, never values (they may be secrets). */
  invalid: string[];
}

function envValue(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === '' ? undefined : value;
}

/** `key1=value1,key2=value2`, values URL-decoded (the OTLP exporter spec's format). */
function parseEnvHeaders(raw: string | undefined, into: Record<string, string>, name: string, invalid: string[]): void {
  if (raw === undefined) return;
  for (const pair of raw.split(',')) {
    if (pair.trim() === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) {
      invalid.push(name);
      continue;
    }
    try {
      into[decodeURIComponent(pair.slice(0, eq).trim())] = decodeURIComponent(pair.slice(eq + 1).trim());
    } catch {
      invalid.push(name);
    }
  }
}

export function otlpEnvDefaults(env: NodeJS.ProcessEnv = process.env): OtlpEnvDefaults {
  const out: OtlpEnvDefaults = { endpointIsFull: false, headers: {}, invalid: [] };
  const logsEndpoint = envValue(env, 'OTEL_EXPORTER_OTLP_LOGS_ENDPOINT');
  const endpoint = envValue(env, 'OTEL_EXPORTER_OTLP_ENDPOINT');
  if (logsEndpoint !== undefined) {
    out.endpoint = logsEndpoint;
    out.endpointIsFull = true;
  } else if (endpoint !== undefined) out.endpoint = endpoint;

  const protocolName = envValue(env, 'OTEL_EXPORTER_OTLP_LOGS_PROTOCOL') !== undefined ? 'OTEL_EXPORTER_OTLP_LOGS_PROTOCOL' : 'OTEL_EXPORTER_OTLP_PROTOCOL';
  const protocol = envValue(env, protocolName);
  if (protocol === 'grpc') out.protocol = 'grpc';
  else if (protocol === 'http/protobuf') {
    out.protocol = 'http';
    out.codec = 'protobuf';
  } else if (protocol === 'http/json') {
    out.protocol = 'http';
    out.codec = 'json';
  } else if (protocol !== undefined) out.invalid.push(protocolName);

  const compressionName = envValue(env, 'OTEL_EXPORTER_OTLP_LOGS_COMPRESSION') !== undefined ? 'OTEL_EXPORTER_OTLP_LOGS_COMPRESSION' : 'OTEL_EXPORTER_OTLP_COMPRESSION';
  const compression = envValue(env, compressionName);
  if (compression === 'gzip' || compression === 'none') out.compression = compression;
  else if (compression !== undefined) out.invalid.push(compressionName);

  const timeoutName = envValue(env, 'OTEL_EXPORTER_OTLP_LOGS_TIMEOUT') !== undefined ? 'OTEL_EXPORTER_OTLP_LOGS_TIMEOUT' : 'OTEL_EXPORTER_OTLP_TIMEOUT';
  const timeout = envValue(env, timeoutName);
  if (timeout !== undefined) {
    // The spec gives the timeout in milliseconds.
    const ms = Number(timeout);
    if (Number.isFinite(ms) && ms > 0) out.timeoutSecs = ms / 1000;
    else out.invalid.push(timeoutName);
  }

  // Signal-specific headers override the generic ones of the same name.
  parseEnvHeaders(envValue(env, 'OTEL_EXPORTER_OTLP_HEADERS'), out.headers, 'OTEL_EXPORTER_OTLP_HEADERS', out.invalid);
  parseEnvHeaders(envValue(env, 'OTEL_EXPORTER_OTLP_LOGS_HEADERS'), out.headers, 'OTEL_EXPORTER_OTLP_LOGS_HEADERS', out.invalid);

  const caFile = envValue(env, 'OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE') ?? envValue(env, 'OTEL_EXPORTER_OTLP_CERTIFICATE');
  if (caFile !== undefined) out.caFile = caFile;
  return out;
}

/** TLS material read from the configured files. */
export interface TlsMaterial {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  verifyCertificate: boolean;
}

/** Reads the files named by `tls.*`; throws with the file name (never its content) when one cannot be read. */
export function readTlsMaterial(tls: OtlpTlsConfig): TlsMaterial {
  const read = (key: string, file: string | undefined): Buffer | undefined => {
    if (file === undefined) return undefined;
    try {
      return readFileSync(file);
    } catch (error) {
      throw new TlsFileError(`tls.${key} ${JSON.stringify(file)} cannot be read: ${(error as NodeJS.ErrnoException).code ?? 'error'}`, {
        cause: error,
      });
    }
  };
  const material: TlsMaterial = { verifyCertificate: tls.verifyCertificate };
  const ca = read('ca_file', tls.caFile);
  const cert = read('crt_file', tls.crtFile);
  const key = read('key_file', tls.keyFile);
  if (ca !== undefined) material.ca = ca;
  if (cert !== undefined) material.cert = cert;
  if (key !== undefined) material.key = key;
  return material;
}

/** `https.Agent` options for the HTTP export delegate. */
export function httpsAgentOptions(tls: TlsMaterial): AgentOptions {
  const options: AgentOptions = { keepAlive: true, rejectUnauthorized: tls.verifyCertificate };
  if (tls.ca !== undefined) options.ca = tls.ca;
  if (tls.cert !== undefined) options.cert = tls.cert;
  if (tls.key !== undefined) options.key = tls.key;
  return options;
}

/** What the sink hands the gRPC exporter. */
export interface GrpcExporterOptions {
  /** `http://host:4317` (plaintext) or `https://host:4317` (TLS). */
  endpoint: string;
  headers: Record<string, string>;
  compression: 'none' | 'gzip';
  timeoutMillis: number;
  concurrencyLimit: number;
  tls: TlsMaterial;
}

interface ExportResult {
  code: number;
  error?: Error;
}

export interface GrpcExporter<Q> {
  export(request: Q, callback: (result: ExportResult) => void): void;
  shutdown(): Promise<void>;
}

/** What a gRPC answer says beyond its status (buffer-feedback.ts). */
export interface GrpcFeedback {
  /** A retryable failure carried a `google.rpc.RetryInfo`: no retry before `delayMs` from now. */
  retryAfter(status: string, delayMs: number): void;
  /** An OK answer carried an OTLP partial success. */
  partialSuccess(rejected: number, message: string): void;
}

/**
 * The `@grpc/grpc-js` the export delegate itself loads (it requires it lazily): credentials must
 * come from the same copy as the client they are handed to.
 */
function delegateGrpc(): typeof import('@grpc/grpc-js') {
  const require = createRequire(import.meta.url);
  return createRequire(require.resolve('@opentelemetry/otlp-grpc-exporter-base'))('@grpc/grpc-js') as typeof import('@grpc/grpc-js');
}

/**
 * TLS credentials for an `https://` gRPC endpoint. `tls.verify_certificate = false` is grpc-js's
 * `rejectUnauthorized: false` (VerifyOptions): any server certificate is accepted, as over HTTP.
 */
function grpcSslCredentials(tls: TlsMaterial): ChannelCredentials {
  if (tls.verifyCertificate) return grpcExporterBase().createSslCredentials(tls.ca, tls.key, tls.cert);
  const verify: VerifyOptions = { rejectUnauthorized: false };
  return delegateGrpc().credentials.createSsl(tls.ca ?? null, tls.key ?? null, tls.cert ?? null, verify);
}

/**
 * The OpenTelemetry gRPC export delegate (what `OTLPLogExporter` of exporter-logs-otlp-grpc is
 * built on), with `serialize` in place of its record serializer: our requests are already OTLP
 * protobuf. `https://` endpoints use TLS (`tls.ca_file`, `tls.crt_file`, `tls.key_file`,
 * `tls.verify_certificate`). With `feedback`, a failed call's RetryInfo and an OK answer's partial
 * success are reported before the export's callback runs.
 */
export function createGrpcExporter<Q>(
  options: GrpcExporterOptions,
  serialize: (request: Q) => Uint8Array,
  countItems: (request: Q) => number,
  feedback?: GrpcFeedback,
): GrpcExporter<Q> {
  const grpc = grpcExporterBase();
  const metadata = grpc.createEmptyMetadata();
  for (const [key, value] of Object.entries(options.headers)) metadata.set(key.toLowerCase(), value);
  const url = new URL(options.endpoint);
  const secure = url.protocol === 'https:';
  const credentials = secure ? grpcSslCredentials(options.tls) : grpc.createInsecureCredentials();
  const grpcOptions = grpc.convertLegacyOtlpGrpcOptions(
    {
      url: `${url.protocol}//${url.host}`,
      metadata,
      credentials,
      compression: options.compression as never,
      timeoutMillis: options.timeoutMillis,
      concurrencyLimit: options.concurrencyLimit,
    },
    'LOGS',
  );
  const delegate = grpc.createOtlpGrpcExportDelegate(
    grpcOptions,
    {
      serializeRequest: (request: Q) => serialize(request),
      deserializeResponse: (data: Uint8Array) => {
        const response = decodeLogsResponse(data, false);
        const partial = partialSuccessOf(response);
        if (partial !== undefined) feedback?.partialSuccess(partial.rejected, partial.message);
        return response;
      },
    },
    'otlp_grpc_log_exporter',
    { name: 'log', countItems },
    undefined,
    'LogsExportService',
    OTLP_GRPC_LOGS_METHOD,
  );
  if (feedback === undefined) return delegate;
  return {
    export(request, callback) {
      delegate.export(request, (result) => {
        const hint = grpcRetryHint(result);
        if (hint !== undefined) feedback.retryAfter(hint.status, hint.delayMs);
        callback(result);
      });
    },
    shutdown: () => delegate.shutdown(),
  };
}

/**
 * The retry delay of a retryable gRPC failure, from the RetryInfo in its
 * `grpc-status-details-bin` trailer (grpc-js puts the trailers in the error's `metadata`).
 */
export function grpcRetryHint(result: ExportResult): { status: string; delayMs: number } | undefined {
  if (result.code === 0 || classifyGrpcResult(result).status !== 'retry') return undefined;
  const error = result.error as (Error & { code?: unknown; metadata?: { get?: (key: string) => unknown[] } }) | undefined;
  if (typeof error?.code !== 'number' || typeof error.metadata?.get !== 'function') return undefined;
  for (const value of error.metadata.get('grpc-status-details-bin')) {
    if (!(value instanceof Uint8Array)) continue;
    const delayMs = grpcRetryDelayMs(value);
    if (delayMs !== undefined) return { status: `gRPC ${GRPC_STATUS_NAMES.get(error.code) ?? error.code}`, delayMs };
  }
  return undefined;
}

/** gRPC status codes (grpc/doc/statuscodes.md), by the names this file uses. */
export const GRPC_STATUS = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

const GRPC_STATUS_NAMES = new Map<number, string>(Object.entries(GRPC_STATUS).map(([name, code]) => [code, name]));

/**
 * The OTLP spec's retryable gRPC codes: CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE,
 * UNAVAILABLE, DATA_LOSS, and RESOURCE_EXHAUSTED (which a collector answers under memory
 * pressure). Every other code is the collector refusing the data: permanent.
 */
const GRPC_RETRYABLE = new Set<number>([
  GRPC_STATUS.CANCELLED,
  GRPC_STATUS.DEADLINE_EXCEEDED,
  GRPC_STATUS.RESOURCE_EXHAUSTED,
  GRPC_STATUS.ABORTED,
  GRPC_STATUS.OUT_OF_RANGE,
  GRPC_STATUS.UNAVAILABLE,
  GRPC_STATUS.DATA_LOSS,
]);

export function classifyGrpcResult(result: ExportResult): SendOutcome {
  if (result.code === 0) return { status: 'sent' };
  const error = result.error as (Error & { code?: unknown; details?: unknown }) | undefined;
  const code = typeof error?.code === 'number' ? error.code : undefined;
  if (code === undefined) return { status: 'retry', reason: error?.message || 'export failed' };
  const details = typeof error?.details === 'string' && error.details !== '' ? `: ${error.details.slice(0, 200)}` : '';
  const reason = `gRPC ${GRPC_STATUS_NAMES.get(code) ?? code}${details}`;
  return GRPC_RETRYABLE.has(code) ? { status: 'retry', reason } : { status: 'rejected', reason };
}

/** An endpoint for logs and errors: user and password of a `https://user:pass@host` URL removed. */
export function redactedUrl(endpoint: string): string {
  try {
    const url = new URL(endpoint);
    if (url.username === '' && url.password === '') return endpoint;
    url.username = '';
    url.password = '';
    return url.toString();
  } catch {
    return '(invalid URL)';
  }
}
