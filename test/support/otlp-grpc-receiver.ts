/**
 * A real OTLP/gRPC logs receiver for tests: an @grpc/grpc-js Server on 127.0.0.1, port 0, with a
 * passthrough handler for /opentelemetry.proto.collector.logs.v1.LogsService/Export that decodes
 * each request with protobufjs against ./otlp-logs.proto.
 *
 *   const receiver = await startOtlpGrpcReceiver();
 *   onTestFinished(() => receiver.close());
 *   // point a sink at receiver.url ("http://127.0.0.1:PORT") with protocol = "grpc"
 *
 * `failNext(n, code)` answers the next n calls with that gRPC status and stores nothing from them.
 * With `tls`, it serves TLS with the given key and certificate (and, with `ca`, requires clients
 * to present a certificate signed by it).
 */
import { Server, ServerCredentials, status as grpcStatus, type Metadata, type ServerUnaryCall, type sendUnaryData } from '@grpc/grpc-js';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

const root = protobuf.loadSync(fileURLToPath(new URL('./otlp-logs.proto', import.meta.url)));
const ExportLogsServiceRequest = root.lookupType('opentelemetry.proto.ExportLogsServiceRequest');

export interface GrpcReceivedRecord {
  body: unknown;
  attributes: Record<string, unknown>;
}

export interface GrpcReceivedCall {
  /** gRPC status answered. */
  code: number;
  recordCount: number;
  metadata: Metadata;
}

export interface OtlpGrpcReceiver {
  url: string;
  records: GrpcReceivedRecord[];
  calls: GrpcReceivedCall[];
  failNext(count: number, code: number): void;
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
  const failures: number[] = [];
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
        const entry: GrpcReceivedCall = { code: grpcStatus.OK, recordCount: 0, metadata: call.metadata };
        calls.push(entry);
        const injected = failures.shift();
        if (injected !== undefined) {
          entry.code = injected;
          callback({ code: injected, details: `injected failure ${injected}` });
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
        callback(null, Buffer.alloc(0));
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
    failNext(count, code) {
      for (let i = 0; i < count; i++) failures.push(code);
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
