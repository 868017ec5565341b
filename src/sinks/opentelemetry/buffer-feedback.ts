/**
 * What the collector's responses tell the delivery queue, read where the OpenTelemetry export
 * delegate would otherwise swallow it:
 *
 * - `Retry-After` on a 429/503 (seconds or an HTTP-date). The delegate's transport honours it for
 *   its own few quick retries (up to 5, within `request.timeout_secs`) and then reports a plain
 *   failure without the header; `observeRetryAfter` sees every HTTP response on the transport's
 *   agent, so our own retry loop (`Delivery.holdUntil`) waits as told too.
 * - OTLP partial success (`rejected_log_records`, `error_message`) in a 2xx body: the delegate
 *   only writes it to the OTel diag log; `partialSuccessOf` reads it from the decoded response
 *   (HTTP and gRPC alike).
 * - Over gRPC, the retry delay a collector puts in a failed call's `grpc-status-details-bin`
 *   trailer (a `google.rpc.Status` whose details hold a `google.rpc.RetryInfo`, what the OTel
 *   Collector sends with UNAVAILABLE / RESOURCE_EXHAUSTED): `grpcRetryDelayMs` reads it.
 */
import type { Agent, ClientRequest, IncomingMessage } from 'node:http';

/** Agent factory as the OTel node-http options carry it. */
export type AgentFactory = (protocol: string) => Agent | Promise<Agent>;

/** Statuses whose Retry-After is honoured: too many requests, unavailable. */
export const RETRY_AFTER_STATUSES: readonly number[] = [429, 503];

/** A Retry-After longer than this is capped (a misbehaving collector must not park us for days). */
export const MAX_RETRY_AFTER_MS = 10 * 60 * 1000;

/**
 * Milliseconds to wait from `nowMs` for a `Retry-After` value: delay-seconds (`"120"`) or an
 * HTTP-date (`"Wed, 21 Oct 2015 07:28:00 GMT"`). Undefined when absent or unreadable; a date in
 * the past gives 0. Capped at `MAX_RETRY_AFTER_MS`.
 */
export function parseRetryAfter(value: string | string[] | undefined, nowMs: number): number | undefined {
  const raw = Array.isArray(value) ? value[0] : value;
  if (raw === undefined) return undefined;
  const text = raw.trim();
  if (text === '') return undefined;
  if (/^\d+$/.test(text)) return Math.min(MAX_RETRY_AFTER_MS, Number(text) * 1000);
  if (!/[a-z]/i.test(text)) return undefined; // an HTTP-date names its day and month
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.min(MAX_RETRY_AFTER_MS, Math.max(0, at - nowMs));
}

/**
 * Wraps an agent factory so that every response on its agents is looked at: a 429/503 with a
 * readable Retry-After calls `onRetryAfter(status, ms)`. Works whatever options (TLS, keep-alive)
 * the agents were made with; the requests themselves are untouched.
 */
export function observeRetryAfter(
  factory: AgentFactory,
  onRetryAfter: (status: number, delayMs: number) => void,
): AgentFactory {
  const hooked = new WeakSet<Agent>();
  return async (protocol) => {
    const agent = await factory(protocol);
    if (hooked.has(agent)) return agent;
    hooked.add(agent);
    // addRequest is how http.request hands every ClientRequest to its agent.
    const target = agent as unknown as { addRequest: (req: ClientRequest, options: unknown) => void };
    const addRequest = target.addRequest.bind(agent);
    target.addRequest = (req, options) => {
      req.once('response', (res: IncomingMessage) => {
        const status = res.statusCode ?? 0;
        if (!RETRY_AFTER_STATUSES.includes(status)) return;
        const delayMs = parseRetryAfter(res.headers['retry-after'], Date.now());
        if (delayMs !== undefined) onRetryAfter(status, delayMs);
      });
      addRequest(req, options);
    };
    return agent;
  };
}

export interface PartialSuccess {
  rejected: number;
  message: string;
}

/**
 * The partial success of a decoded `ExportLogsServiceResponse` (as the OTel serializers return it:
 * `partialSuccess.rejectedLogRecords` a number, string or Long), when it rejected something or
 * carries a message; undefined for a full success.
 */
export function partialSuccessOf(response: unknown): PartialSuccess | undefined {
  const partial = (response as { partialSuccess?: unknown } | undefined)?.partialSuccess as
    | { rejectedLogRecords?: unknown; errorMessage?: unknown }
    | undefined;
  if (partial === undefined || partial === null) return undefined;
  const raw = partial.rejectedLogRecords;
  const rejected = raw === undefined || raw === null ? 0 : Number(typeof raw === 'object' ? String(raw) : raw);
  const message = typeof partial.errorMessage === 'string' ? partial.errorMessage : '';
  if (!(rejected > 0) && message === '') return undefined;
  return { rejected: Number.isFinite(rejected) && rejected > 0 ? rejected : 0, message };
}

/** What `partialSuccessOf` reads of an `ExportLogsServiceResponse`. */
export interface LogsResponse {
  partialSuccess?: { rejectedLogRecords: number; errorMessage: string };
}

/**
 * An `ExportLogsServiceResponse` body, protobuf or OTLP JSON (as `JsonLogsSerializer` reads it:
 * the parsed object). Hand-read because only `partial_success` matters here: the serializers of
 * @opentelemetry/otlp-transformer (protobufjs) cost every run ~70 ms of start-up. Throws on a
 * malformed body, as they do.
 */
export function decodeLogsResponse(data: Uint8Array, json: boolean): LogsResponse | undefined {
  if (json) return data.byteLength === 0 ? {} : (JSON.parse(new TextDecoder().decode(data)) as LogsResponse);
  // ExportLogsServiceResponse: partial_success = 1; ExportLogsPartialSuccess:
  // rejected_log_records = 1 (int64), error_message = 2 (string).
  const partial = fields(data, 1).at(-1);
  if (partial === undefined) return {};
  const message = fields(partial, 2).at(-1);
  return { partialSuccess: { rejectedLogRecords: varintField(partial, 1) ?? 0, errorMessage: message === undefined ? '' : new TextDecoder().decode(message) } };
}

/** `Any.type_url` of a `google.rpc.RetryInfo` detail. */
export const RETRY_INFO_TYPE_URL = 'type.googleapis.com/google.rpc.RetryInfo';

/**
 * Milliseconds of the `RetryInfo.retry_delay` in a serialized `google.rpc.Status` (the
 * `grpc-status-details-bin` trailer), capped at `MAX_RETRY_AFTER_MS`; undefined when there is
 * none or the bytes are not readable.
 */
export function grpcRetryDelayMs(statusDetails: Uint8Array): number | undefined {
  try {
    // google.rpc.Status: details = 3 (repeated google.protobuf.Any).
    for (const any of fields(statusDetails, 3)) {
      // Any: type_url = 1, value = 2.
      const typeUrl = new TextDecoder().decode(fields(any, 1)[0] ?? new Uint8Array());
      if (typeUrl !== RETRY_INFO_TYPE_URL) continue;
      // RetryInfo: retry_delay = 1 (google.protobuf.Duration: seconds = 1, nanos = 2, varints).
      const duration = fields(fields(any, 2)[0] ?? new Uint8Array(), 1)[0];
      if (duration === undefined) return 0;
      const seconds = varintField(duration, 1) ?? 0;
      const nanos = varintField(duration, 2) ?? 0;
      const ms = seconds * 1000 + Math.floor(nanos / 1e6);
      return Number.isFinite(ms) && ms >= 0 ? Math.min(MAX_RETRY_AFTER_MS, ms) : undefined;
    }
  } catch {
    return undefined;
  }
  return undefined;
}

/** A protobuf reader just big enough for the messages above; throws on malformed input. */
class ProtoReader {
  pos = 0;
  constructor(readonly bytes: Uint8Array) {}

  get done(): boolean {
    return this.pos >= this.bytes.length;
  }

  varint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.bytes.length) throw new Error('truncated varint');
      const byte = this.bytes[this.pos++]!;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 128;
    }
    throw new Error('varint too long');
  }

  /** Skips a field of `wireType`, or returns its bytes for a LEN field. */
  value(wireType: number): Uint8Array | number {
    switch (wireType) {
      case 0:
        return this.varint();
      case 1:
        this.pos += 8;
        break;
      case 2: {
        const length = this.varint();
        if (this.pos + length > this.bytes.length) throw new Error('truncated field');
        const out = this.bytes.subarray(this.pos, this.pos + length);
        this.pos += length;
        return out;
      }
      case 5:
        this.pos += 4;
        break;
      default:
        throw new Error(`unsupported wire type ${wireType}`);
    }
    if (this.pos > this.bytes.length) throw new Error('truncated field');
    return 0;
  }
}

/** Every LEN field `number` of a message, in order. */
function fields(message: Uint8Array, number: number): Uint8Array[] {
  const reader = new ProtoReader(message);
  const out: Uint8Array[] = [];
  while (!reader.done) {
    const tag = reader.varint();
    const value = reader.value(tag % 8);
    if (Math.floor(tag / 8) === number && value instanceof Uint8Array) out.push(value);
  }
  return out;
}

/** The last varint field `number` of a message (protobuf's last-one-wins). */
function varintField(message: Uint8Array, number: number): number | undefined {
  const reader = new ProtoReader(message);
  let out: number | undefined;
  while (!reader.done) {
    const tag = reader.varint();
    const value = reader.value(tag % 8);
    if (Math.floor(tag / 8) === number && typeof value === 'number' && tag % 8 === 0) out = value;
  }
  return out;
}
