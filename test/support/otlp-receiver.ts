/**
 * A real OTLP/HTTP logs receiver for tests: node:http on 127.0.0.1, port 0.
 *
 *   const receiver = await startOtlpReceiver();
 *   onTestFinished(() => receiver.close());
 *   // point a sink at receiver.url (".../v1/logs") or receiver.baseUrl ("http://127.0.0.1:PORT")
 *   await pollUntil('2 records', () => receiver.records.length >= 2 || undefined,
 *     { describe: () => receiver.describe() });
 *   expect(receiver.records[0].body).toEqual({ msg: 'hi', count: 3n });
 *
 * It accepts `POST /v1/logs` with `application/x-protobuf` (decoded with protobufjs against
 * ./otlp-logs.proto) or `application/json` (OTLP JSON: lowerCamelCase, int64 as string or number,
 * bytes as base64 or hex ids), either one optionally `Content-Encoding: gzip`. Both encodings are
 * normalized to one shape, `ReceivedLogRecord`, where an OTLP `AnyValue` becomes a plain JS value:
 * string -> string, bool -> boolean, int -> **bigint** (so ints and doubles stay distinguishable),
 * double -> number, array -> array, kvlist -> plain object, bytes -> Uint8Array, empty -> null.
 * Timestamps are bigint nanoseconds.
 *
 * Fault injection: `failNext(n, status)` answers the next n requests with `status` (503, 429, 400,
 * ...) without storing their records; they are still listed in `requests` with that status.
 * Anything else than `POST /v1/logs` gets a 404, and an undecodable body a 400 (both recorded).
 * `failNext(n, status, { headers })` adds response headers (e.g. `Retry-After`) to those answers;
 * `failFor(ms, status)` answers every request with `status` until `ms` from now; `dropNext(n)`
 * destroys the connection of the next n requests once their body arrived, without answering;
 * `delayEach(ms)` answers every later request only after `ms`; `partialSuccessNext(n, rejected,
 * message)` stores the records but answers 200 with an OTLP partial success.
 * Every request's arrival time is in `requests[i].at` (Date.now()), its body's size in `bodyBytes`.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import protobuf from 'protobufjs';

export type OtlpValue =
  | string
  | boolean
  | bigint
  | number
  | Uint8Array
  | null
  | OtlpValue[]
  | { [key: string]: OtlpValue };

export interface ReceivedLogRecord {
  /** Resource attributes of the ResourceLogs the record came in. */
  resource: Record<string, OtlpValue>;
  scope: { name: string; version: string };
  timeUnixNano: bigint;
  observedTimeUnixNano: bigint;
  severityNumber: number;
  severityText: string;
  body: OtlpValue | undefined;
  attributes: Record<string, OtlpValue>;
  /** `trace_id` and `span_id` as lower-case hex, '' when absent. */
  traceId: string;
  spanId: string;
  /** `flags` (the W3C trace flags in its low byte), 0 when absent. */
  flags: number;
  /** Which wire encoding delivered it. */
  encoding: 'protobuf' | 'json';
  /** Index into `requests` of the request that carried it. */
  request: number;
}

export interface ReceivedRequest {
  method: string;
  path: string;
  contentType: string;
  contentEncoding: string;
  headers: IncomingMessage['headers'];
  /** The status the receiver answered with. */
  status: number;
  /** Records decoded and stored from this request (0 for failed or injected-failure requests). */
  recordCount: number;
  /** For a 400 caused by an undecodable body: why. */
  error?: string;
  /** Date.now() when its body had arrived. */
  at: number;
  /** Length of the body as received (compressed, when it was). */
  bodyBytes: number;
}

export interface FailOptions {
  /** Extra response headers, e.g. `{ 'retry-after': '2' }`. */
  headers?: Record<string, string>;
}

export interface OtlpReceiver {
  /** Full logs endpoint: `http://127.0.0.1:PORT/v1/logs`. */
  url: string;
  /** Without the path: `http://127.0.0.1:PORT`. */
  baseUrl: string;
  /** Every stored record, in arrival order (live array). */
  records: ReceivedLogRecord[];
  /** Every request received, in arrival order (live array). */
  requests: ReceivedRequest[];
  /** Answer the next `count` requests with `status` and store nothing from them. */
  failNext(count: number, status: number, options?: FailOptions): void;
  /** Answer every request with `status` (storing nothing) until `ms` from now. */
  failFor(ms: number, status: number, options?: FailOptions): void;
  /** Destroy the connection of the next `count` requests without answering (nothing stored). */
  dropNext(count: number): void;
  /** Answer every later request after `ms` (0 turns it off). */
  delayEach(ms: number): void;
  /** Store the next `count` requests' records but answer with an OTLP partial success. */
  partialSuccessNext(count: number, rejected: number, message: string): void;
  /** Requests being handled right now (received, not yet answered). */
  readonly active: number;
  /** Most requests ever handled at the same time. */
  readonly maxActive: number;
  /** One line summary for poll failure messages. */
  describe(): string;
  close(): Promise<void>;
}

const root = protobuf.loadSync(fileURLToPath(new URL('./otlp-logs.proto', import.meta.url)));
const ExportLogsServiceRequest = root.lookupType('opentelemetry.proto.ExportLogsServiceRequest');
const ExportLogsServiceResponse = root.lookupType('opentelemetry.proto.ExportLogsServiceResponse');

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const records: ReceivedLogRecord[] = [];
  const requests: ReceivedRequest[] = [];
  const failures: { status: number; headers: Record<string, string> }[] = [];
  let failUntil = 0;
  let failForStatus = 503;
  let failForHeaders: Record<string, string> = {};
  let drops = 0;
  let delayMs = 0;
  const partials: { rejected: number; message: string }[] = [];
  let active = 0;
  let maxActive = 0;

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      active++;
      maxActive = Math.max(maxActive, active);
      let done = false;
      const finish = (): void => {
        if (!done) active--;
        done = true;
      };
      res.on('close', finish);
      const raw = Buffer.concat(chunks);
      if (delayMs > 0) setTimeout(() => handle(req, res, raw), delayMs);
      else handle(req, res, raw);
    });
  });

  function handle(req: IncomingMessage, res: ServerResponse, raw: Buffer): void {
    const contentType = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
    const contentEncoding = req.headers['content-encoding'] ?? '';
    const entry: ReceivedRequest = {
      method: req.method ?? '',
      path: req.url ?? '',
      contentType,
      contentEncoding,
      headers: req.headers,
      status: 200,
      recordCount: 0,
      at: Date.now(),
      bodyBytes: raw.length,
    };
    const index = requests.push(entry) - 1;
    const reply = (status: number, body: Uint8Array | string, type = 'text/plain', headers: Record<string, string> = {}): void => {
      entry.status = status;
      res.writeHead(status, { ...headers, 'content-type': type });
      res.end(body);
    };
    if (req.method !== 'POST' || (req.url ?? '').split('?')[0] !== '/v1/logs') {
      reply(404, 'not found');
      return;
    }
    if (drops > 0) {
      drops--;
      entry.status = 0;
      req.socket.destroy();
      return;
    }
    if (Date.now() < failUntil) {
      reply(failForStatus, `injected failure ${failForStatus}`, 'text/plain', failForHeaders);
      return;
    }
    const injected = failures.shift();
    if (injected !== undefined) {
      reply(injected.status, `injected failure ${injected.status}`, 'text/plain', injected.headers);
      return;
    }
    let decoded: ReceivedLogRecord[];
    try {
      const body = contentEncoding === 'gzip' ? gunzipSync(raw) : raw;
      if (contentType === 'application/x-protobuf') {
        const message = ExportLogsServiceRequest.decode(body);
        const plain = ExportLogsServiceRequest.toObject(message, { longs: String, bytes: Array });
        decoded = normalizeRequest(plain, 'protobuf', index);
      } else if (contentType === 'application/json') {
        decoded = normalizeRequest(JSON.parse(body.toString('utf8')), 'json', index);
      } else {
        throw new Error(`unsupported content-type "${contentType}"`);
      }
    } catch (error) {
      entry.error = error instanceof Error ? error.message : String(error);
      reply(400, entry.error);
      return;
    }
    records.push(...decoded);
    entry.recordCount = decoded.length;
    const partial = partials.shift();
    const response =
      partial === undefined
        ? {}
        : { partialSuccess: { rejectedLogRecords: partial.rejected, errorMessage: partial.message } };
    if (contentType === 'application/x-protobuf') {
      reply(200, ExportLogsServiceResponse.encode(ExportLogsServiceResponse.fromObject(response)).finish(), 'application/x-protobuf');
    } else {
      reply(200, JSON.stringify(response), 'application/json');
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const baseUrl = `http://127.0.0.1:${port}`;

  return {
    url: `${baseUrl}/v1/logs`,
    baseUrl,
    records,
    requests,
    failNext(count, status, options = {}) {
      for (let i = 0; i < count; i++) failures.push({ status, headers: options.headers ?? {} });
    },
    failFor(ms, status, options = {}) {
      failUntil = Date.now() + ms;
      failForStatus = status;
      failForHeaders = options.headers ?? {};
    },
    dropNext(count) {
      drops += count;
    },
    delayEach(ms) {
      delayMs = ms;
    },
    partialSuccessNext(count, rejected, message) {
      for (let i = 0; i < count; i++) partials.push({ rejected, message });
    },
    get active() {
      return active;
    },
    get maxActive() {
      return maxActive;
    },
    describe() {
      const statuses = requests.map((r) => r.status).join(',');
      return `${records.length} records from ${requests.length} requests (statuses: ${statuses || 'none'})`;
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

type Json = Record<string, unknown>;

function normalizeRequest(request: unknown, encoding: 'protobuf' | 'json', index: number): ReceivedLogRecord[] {
  const out: ReceivedLogRecord[] = [];
  for (const resourceLogs of list(request, 'resourceLogs')) {
    const resource = attributes(list(obj(resourceLogs, 'resource'), 'attributes'), encoding);
    for (const scopeLogs of list(resourceLogs, 'scopeLogs')) {
      const scopeRaw = obj(scopeLogs, 'scope');
      const scope = { name: str(scopeRaw?.['name']), version: str(scopeRaw?.['version']) };
      for (const record of list(scopeLogs, 'logRecords')) {
        const r = record as Json;
        out.push({
          resource,
          scope,
          timeUnixNano: nanos(r['timeUnixNano']),
          observedTimeUnixNano: nanos(r['observedTimeUnixNano']),
          severityNumber: Number(r['severityNumber'] ?? 0),
          severityText: str(r['severityText']),
          body: r['body'] === undefined ? undefined : anyValue(r['body'], encoding),
          attributes: attributes(list(r, 'attributes'), encoding),
          traceId: hexId(r['traceId']),
          spanId: hexId(r['spanId']),
          flags: Number(r['flags'] ?? 0),
          encoding,
          request: index,
        });
      }
    }
  }
  return out;
}

function list(value: unknown, key: string): unknown[] {
  const item = (value as Json | undefined)?.[key];
  return Array.isArray(item) ? item : [];
}

function obj(value: unknown, key: string): Json | undefined {
  const item = (value as Json | undefined)?.[key];
  return typeof item === 'object' && item !== null ? (item as Json) : undefined;
}

function str(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

/** Protobuf bytes (decoded as a number array) or OTLP JSON's hex string, as lower-case hex. */
function hexId(value: unknown): string {
  if (Array.isArray(value)) return Buffer.from(value as number[]).toString('hex');
  return typeof value === 'string' ? value.toLowerCase() : '';
}

function nanos(value: unknown): bigint {
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'bigint') return BigInt(value);
  return 0n;
}

function attributes(keyValues: unknown[], encoding: 'protobuf' | 'json'): Record<string, OtlpValue> {
  const out: Record<string, OtlpValue> = {};
  for (const kv of keyValues) {
    const { key, value } = kv as { key: string; value?: unknown };
    out[key] = value === undefined ? null : anyValue(value, encoding);
  }
  return out;
}

function anyValue(value: unknown, encoding: 'protobuf' | 'json'): OtlpValue {
  const v = (value ?? {}) as Json;
  if ('stringValue' in v) return str(v['stringValue']);
  if ('boolValue' in v) return v['boolValue'] === true;
  if ('intValue' in v) return BigInt(v['intValue'] as string | number);
  if ('doubleValue' in v) return Number(v['doubleValue']);
  if ('arrayValue' in v) return list(v['arrayValue'], 'values').map((item) => anyValue(item, encoding));
  if ('kvlistValue' in v) return attributes(list(v['kvlistValue'], 'values'), encoding);
  if ('bytesValue' in v) {
    const bytes = v['bytesValue'];
    if (Array.isArray(bytes)) return Uint8Array.from(bytes as number[]);
    return new Uint8Array(Buffer.from(String(bytes), 'base64'));
  }
  return null;
}
