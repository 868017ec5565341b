import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createServer, type ServerOptions } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ConfigReader, type ConfigTable } from '../src/config/reader.js';
import { TlsFileError, type ConfigProblem } from '../src/errors.js';
import { batchFromLines } from '../src/event.js';
import { OpentelemetrySink, checkOpentelemetryHealth, opentelemetrySink, parseOpentelemetryConfig } from '../src/sinks/opentelemetry/index.js';
import { Telemetry } from '../src/telemetry.js';
import { tempDir } from './support/cli.js';
import { startOtlpGrpcReceiver } from './support/otlp-grpc-receiver.js';

const root = protobuf.loadSync(fileURLToPath(new URL('./support/otlp-logs.proto', import.meta.url)));
const ExportLogsServiceRequest = root.lookupType('opentelemetry.proto.ExportLogsServiceRequest');

interface Pki {
  dir: string;
  caFile: string;
  serverCrt: Buffer;
  serverKey: Buffer;
  clientCrtFile: string;
  clientKeyFile: string;
  ca: Buffer;
}

/** A CA, a server certificate for 127.0.0.1 and a client certificate, made with the openssl CLI. */
async function pki(): Promise<Pki> {
  const dir = await tempDir('logwasm-tls-');
  const ssl = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  };
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=logwasm test CA');
  for (const name of ['server', 'client']) {
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name === 'server' ? '127.0.0.1' : 'logwasm'}`);
    const ext = join(dir, `${name}.ext`);
    execFileSync('sh', ['-c', `printf '%s\\n' "${name === 'server' ? 'subjectAltName=IP:127.0.0.1,DNS:localhost' : 'extendedKeyUsage=clientAuth'}" > ${ext}`]);
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', ext);
  }
  return {
    dir,
    caFile: join(dir, 'ca.crt'),
    ca: await readFile(join(dir, 'ca.crt')),
    serverCrt: await readFile(join(dir, 'server.crt')),
    serverKey: await readFile(join(dir, 'server.key')),
    clientCrtFile: join(dir, 'client.crt'),
    clientKeyFile: join(dir, 'client.key'),
  };
}

/** A real OTLP/HTTPS receiver counting the records of each protobuf request. */
async function httpsReceiver(options: ServerOptions): Promise<{ url: string; records: () => number; requests: () => number }> {
  let records = 0;
  let requests = 0;
  const server = createServer(options, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      requests++;
      const plain = ExportLogsServiceRequest.toObject(ExportLogsServiceRequest.decode(Buffer.concat(chunks))) as {
        resourceLogs?: { scopeLogs?: { logRecords?: unknown[] }[] }[];
      };
      for (const r of plain.resourceLogs ?? []) for (const s of r.scopeLogs ?? []) records += s.logRecords?.length ?? 0;
      res.writeHead(200, { 'content-type': 'application/x-protobuf' });
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );
  return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, records: () => records, requests: () => requests };
}

function parse(table: ConfigTable, env: NodeJS.ProcessEnv = {}) {
  const problems: ConfigProblem[] = [];
  const reader = new ConfigReader('sinks.otlp', table, problems);
  const config = parseOpentelemetryConfig(reader, env);
  reader.finish();
  return { config, problems: problems.map((p) => p.message) };
}

async function send(table: ConfigTable): Promise<void> {
  const { config, problems } = parse({ ...table, healthcheck: false, batch: { timeout_secs: 0.02 } });
  expect(problems).toEqual([]);
  const telemetry = new Telemetry(() => undefined, 'debug');
  const sink = opentelemetrySink.build(config, { id: 'otlp', dataDir: '/tmp', mode: 'replay', telemetry }) as OpentelemetrySink;
  onTestFinished(() => sink.stop(1000));
  await sink.start();
  const encoder = new TextEncoder();
  await sink.write(
    batchFromLines([encoder.encode('{"msg":"a"}'), encoder.encode('{"msg":"b"}')], {
      sourceId: 'app',
      sourceType: 'file',
      file: '/var/log/a.log',
      host: 'h',
      timestampMs: 0,
      format: 'json',
    }),
  );
}

describe('opentelemetry sink: TLS', () => {
  it('parses tls.* (Vector names), takes OTEL_EXPORTER_OTLP_CERTIFICATE when tls.ca_file is not set', () => {
    expect(parse({ endpoint: 'https://c', tls: { ca_file: '/ca.pem', crt_file: '/c.pem', key_file: '/k.pem', verify_certificate: false } })).toEqual({
      config: expect.objectContaining({ tls: { caFile: '/ca.pem', crtFile: '/c.pem', keyFile: '/k.pem', verifyCertificate: false } }),
      problems: [],
    });
    expect(parse({ endpoint: 'https://c' }, { OTEL_EXPORTER_OTLP_CERTIFICATE: '/env-ca.pem' }).config.tls.caFile).toBe('/env-ca.pem');
    expect(parse({ endpoint: 'https://c', tls: { ca_file: '/ca.pem' } }, { OTEL_EXPORTER_OTLP_CERTIFICATE: '/env-ca.pem' }).config.tls.caFile).toBe('/ca.pem');
    expect(parse({ endpoint: 'https://c', tls: { crt_file: '/c.pem' } }).problems).toEqual(['set both "tls.crt_file" and "tls.key_file", or neither']);
    expect(parse({ endpoint: 'https://c', tls: { ca_fil: '/c.pem' } }).problems).toHaveLength(1);
  });

  it('a TLS file that cannot be read fails the build with a coded error naming the option and file', () => {
    const { config } = parse({ endpoint: 'https://127.0.0.1:1', tls: { ca_file: '/nonexistent/ca.pem' } });
    const telemetry = new Telemetry(() => undefined, 'debug');
    let thrown: unknown;
    try {
      opentelemetrySink.build(config, { id: 'otlp', dataDir: '/tmp', mode: 'replay', telemetry });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(TlsFileError);
    expect((thrown as TlsFileError).code).toBe('LOGWASM_TLS_FILE');
    expect((thrown as Error).message).toContain('tls.ca_file "/nonexistent/ca.pem"');
  });

  it('https: trusted through tls.ca_file; refused without it; accepted with verify_certificate = false', async () => {
    const p = await pki();
    const receiver = await httpsReceiver({ key: p.serverKey, cert: p.serverCrt });
    await send({ endpoint: receiver.url, tls: { ca_file: p.caFile } });
    expect(receiver.records()).toBe(2);

    const untrusted = await checkOpentelemetryHealth(parse({ endpoint: receiver.url, request: { timeout_secs: 2 } }).config);
    expect(untrusted).toMatch(/certificate/i);

    await send({ endpoint: receiver.url, tls: { verify_certificate: false } });
    expect(receiver.records()).toBe(4);
  });

  it('https with a client certificate (mutual TLS): tls.crt_file and tls.key_file are presented', async () => {
    const p = await pki();
    const receiver = await httpsReceiver({ key: p.serverKey, cert: p.serverCrt, ca: p.ca, requestCert: true, rejectUnauthorized: true });
    const without = await checkOpentelemetryHealth(parse({ endpoint: receiver.url, tls: { ca_file: p.caFile }, request: { timeout_secs: 2 } }).config);
    expect(without).toBeDefined();
    expect(receiver.requests()).toBe(0);
    await send({ endpoint: receiver.url, tls: { ca_file: p.caFile, crt_file: p.clientCrtFile, key_file: p.clientKeyFile } });
    expect(receiver.records()).toBe(2);
  });

  it('grpc over TLS (https:// endpoint) with tls.ca_file and a client certificate', async () => {
    const p = await pki();
    const grpc = await startOtlpGrpcReceiver({ tls: { key: p.serverKey, cert: p.serverCrt, ca: p.ca } });
    onTestFinished(() => grpc.close());
    expect(grpc.url.startsWith('https://')).toBe(true);
    await send({ endpoint: grpc.url, protocol: 'grpc', tls: { ca_file: p.caFile, crt_file: p.clientCrtFile, key_file: p.clientKeyFile } });
    expect(grpc.records).toHaveLength(2);
    const untrusted = await checkOpentelemetryHealth(parse({ endpoint: grpc.url, protocol: 'grpc', request: { timeout_secs: 2 } }).config);
    expect(untrusted).toBeDefined();
  });
});
