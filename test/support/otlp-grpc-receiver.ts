/**
 * A real OTLP/gRPC logs receiver for tests: an @grpc/grpc-js Server on 127.0.0.1, port 0, with a
 * passthrough handler for /opentelemetry.proto.collector.logs.v1.LogsService/Export that decodes
 * each request with protobufjs against ./otlp-logs.proto.
 *
 *   const receiver = await startOtlpGrpcReceiver();
 *   onTestFinished(() => receiver.close());
 *   // point a sink at receiver.url ("http://127.0.0.1:PORT") with protocol = "grpc"
 *
 * `failNext(n, code)` answers the next n calls with that gRPC status and stores nothing from them;
 * `failNext(n, code, { retryDelayMs })` adds what the OTel Collector sends with UNAVAILABLE and
 * RESOURCE_EXHAUSTED: a `grpc-status-details-bin` trailer, a `google.rpc.Status` whose details hold
 * a `google.rpc.RetryInfo` with that `retry_delay`. `partialSuccessNext(n, rejected, message)`
 * stores the next n calls' records but answers OK with an OTLP partial success. Every call's
 * arrival time is in `calls[i].at` (Date.now()).
 * With `tls`, it serves TLS with the given key and certificate (and, with `ca`, requires clients
 * to present a certificate signed by it).
 */
import { Metadata, Server, ServerCredentials, status as grpcStatus, type ServerUnaryCall, type sendUnaryData } from '@grpc/grpc-js';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

const root = protobuf.loadSync(fileURLToPath(new URL('./otlp-logs.proto', import.meta.url)));
const ExportLogsServiceRequest = root.lookupType('opentelemetry.proto.ExportLogsServiceRequest');
const ExportLogsServiceResponse = root.lookupType('opentelemetry.proto.ExportLogsServiceResponse');

export interface GrpcReceivedRecord {
  body: unknown;
  attributes: Record<string, unknown>;
}

export interface GrpcReceivedCall {
  /** gRPC status answered. */
  code: number;
  recordCount: number;
  metadata: Metadata;
  /** Date.now() when the call arrived. */
  at: number;
}

export interface GrpcFailOptions {
  /** Sent as a google.rpc.RetryInfo in the `grpc-status-details-bin` trailer. */
  retryDelayMs?: number;
}

export interface OtlpGrpcReceiver {
  url: string;
  records: GrpcReceivedRecord[];
  calls: GrpcReceivedCall[];
  failNext(count: number, code: number, options?: GrpcFailOptions): void;
  /** Store the next `count` calls' records but answer with an OTLP partial success. */
  partialSuccessNext(count: number, rejected: number, message: string): void;
  describe(): string;
  close(): Promise<void>;
}

export interface GrpcReceiverTls {
  key: Buffer;
  cert: Buffer;
  /** Client certificates must be signed by this CA. */
  ca?: Buffer;
}

export async function startOtlpGrpcReceiver(options: { tls?: GrpcReceiverTls } = {}): Promise<OtlpGrpcReceiver> {
  const records: GrpcReceivedRecord[] = [];
  const calls: GrpcReceivedCall[] = [];
  const failures: { code: number; retryDelayMs?: number }[] = [];
  const partials: { rejected: number; message: string }[] = [];
  const server = new Server();
  const passthrough = (value: Buffer): Buffer => value;
  server.addService(
    {
      export: {
        path: '/opentelemetry.proto.collector.logs.v1.LogsService/Export',
        requestStream: false,
        responseStream: false,
        requestSerialize: passthrough,
        requestDeserialize: passthrough,
        responseSerialize: passthrough,
        responseDeserialize: passthrough,
      },
    },
    {
      export: (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
        const entry: GrpcReceivedCall = { code: grpcStatus.OK, recordCount: 0, metadata: call.metadata, at: Date.now() };
        calls.push(entry);
        const injected = failures.shift();
        if (injected !== undefined) {
          entry.code = injected.code;
          const details = `injected failure ${injected.code}`;
          const trailer = new Metadata();
          if (injected.retryDelayMs !== undefined) trailer.set('grpc-status-details-bin', statusWithRetryInfo(injected.code, details, injected.retryDelayMs));
          callback({ code: injected.code, details, metadata: trailer });
          return;
        }
        let decoded: GrpcReceivedRecord[];
        try {
          decoded = decode(call.request);
        } catch (error) {
          entry.code = grpcStatus.INVALID_ARGUMENT;
          callback({ code: grpcStatus.INVALID_ARGUMENT, details: (error as Error).message });
          return;
        }
        records.push(...decoded);
        entry.recordCount = decoded.length;
        const partial = partials.shift();
        if (partial === undefined) {
          callback(null, Buffer.alloc(0));
          return;
        }
        const response = { partialSuccess: { rejectedLogRecords: partial.rejected, errorMessage: partial.message } };
        callback(null, Buffer.from(ExportLogsServiceResponse.encode(ExportLogsServiceResponse.fromObject(response)).finish()));
      },
    },
  );
  const credentials = options.tls
    ? ServerCredentials.createSsl(options.tls.ca ?? null, [{ private_key: options.tls.key, cert_chain: options.tls.cert }], options.tls.ca !== undefined)
    : ServerCredentials.createInsecure();
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', credentials, (error, bound) => (error ? reject(error) : resolve(bound)));
  });
  return {
    url: `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    records,
    calls,
    failNext(count, code, options = {}) {
      for (let i = 0; i < count; i++) {
        failures.push(options.retryDelayMs === undefined ? { code } : { code, retryDelayMs: options.retryDelayMs });
      }
    },
    partialSuccessNext(count, rejected, message) {
      for (let i = 0; i < count; i++) partials.push({ rejected, message });
    },
    describe() {
      return `${records.length} records from ${calls.length} calls (codes: ${calls.map((c) => c.code).join(',') || 'none'})`;
    },
    close() {
      server.forceShutdown();
      return Promise.resolve();
    },
  };
}

function decode(bytes: Buffer): GrpcReceivedRecord[] {
  const plain = ExportLogsServiceRequest.toObject(ExportLogsServiceRequest.decode(bytes), { longs: String, bytes: Array }) as {
    resourceLogs?: { scopeLogs?: { logRecords?: { body?: unknown; attributes?: { key: string; value: unknown }[] }[] }[] }[];
  };
  const out: GrpcReceivedRecord[] = [];
  for (const resource of plain.resourceLogs ?? []) {
    for (const scope of resource.scopeLogs ?? []) {
      for (const record of scope.logRecords ?? []) {
        const attributes: Record<string, unknown> = {};
        for (const kv of record.attributes ?? []) attributes[kv.key] = kv.value;
        out.push({ body: record.body, attributes });
      }
    }
  }
  return out;
}

/** A serialized google.rpc.Status { code, message, details: [Any(google.rpc.RetryInfo { retry_delay })] }. */
export function statusWithRetryInfo(code: number, message: string, delayMs: number): Buffer {
  const { Writer } = protobuf;
  const duration = Writer.create()
    .uint32(0x08)
    .int64(Math.floor(delayMs / 1000))
    .uint32(0x10)
    .int32((delayMs % 1000) * 1e6)
    .finish();
  const retryInfo = Writer.create().uint32(0x0a).bytes(duration).finish();
  const any = Writer.create().uint32(0x0a).string('type.googleapis.com/google.rpc.RetryInfo').uint32(0x12).bytes(retryInfo).finish();
  return Buffer.from(Writer.create().uint32(0x08).int32(code).uint32(0x12).string(message).uint32(0x1a).bytes(any).finish());
}
