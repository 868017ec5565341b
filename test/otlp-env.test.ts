import { describe, expect, it, onTestFinished } from 'vitest';
import { ConfigReader, type ConfigTable } from '../src/config/reader.js';
import type { ConfigProblem } from '../src/errors.js';
import { batchFromLines } from '../src/event.js';
import { REJECTED_EVENTS } from '../src/sinks/opentelemetry/events.js';
import { OpentelemetrySink, opentelemetrySink, parseOpentelemetryConfig } from '../src/sinks/opentelemetry/index.js';
import { otlpEnvDefaults } from '../src/sinks/opentelemetry/transport.js';
import { Telemetry, type LogRecord } from '../src/telemetry.js';
import { startOtlpReceiver } from './support/otlp-receiver.js';
import { pollUntil } from './support/poll.js';

function parse(table: ConfigTable, env: NodeJS.ProcessEnv) {
  const problems: ConfigProblem[] = [];
  const reader = new ConfigReader('sinks.otlp', table, problems);
  const config = parseOpentelemetryConfig(reader, env);
  reader.finish();
  return { config, problems: problems.map((p) => p.message) };
}

const encoder = new TextEncoder();
const lines = (...texts: string[]) =>
  batchFromLines(
    texts.map((t) => encoder.encode(t)),
    { sourceId: 'app', sourceType: 'file', file: '/var/log/a.log', host: 'h', timestampMs: 0, format: 'json' },
  );

describe('OTEL_EXPORTER_OTLP_* environment variables', () => {
  it('fill in what the config leaves out', () => {
    const { config, problems } = parse(
      {},
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
        OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%20abc,x-tenant=blue',
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_EXPORTER_OTLP_COMPRESSION: 'gzip',
        OTEL_EXPORTER_OTLP_TIMEOUT: '2500',
        OTEL_EXPORTER_OTLP_CERTIFICATE: '/etc/ca.pem',
      },
    );
    expect(problems).toEqual([]);
    expect(config).toMatchObject({
      endpoint: 'http://collector:4318/v1/logs',
      protocol: 'http',
      codec: 'json',
      compression: 'gzip',
      requestTimeoutSecs: 2.5,
      headers: { authorization: 'Bearer abc', 'x-tenant': 'blue' },
      tls: { caFile: '/etc/ca.pem' },
    });
  });

  it('logs-specific variables win over the generic ones; the logs endpoint is used as is', () => {
    const env = {
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://generic:4318',
      OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: 'http://logs:4318/custom/path',
      OTEL_EXPORTER_OTLP_HEADERS: 'a=generic,b=generic',
      OTEL_EXPORTER_OTLP_LOGS_HEADERS: 'a=logs',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_EXPORTER_OTLP_LOGS_PROTOCOL: 'grpc',
    };
    expect(parse({}, env).config).toMatchObject({
      endpoint: 'http://logs:4318/custom/path',
      protocol: 'grpc',
      headers: { a: 'logs', b: 'generic' },
    });
    expect(parse({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4317', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }).config.endpoint).toBe('http://c:4317');
  });

  it('the config wins over every variable', () => {
    const { config, problems } = parse(
      { endpoint: 'http://configured:4318', encoding: 'protobuf', compression: 'none', request: { timeout_secs: 7, headers: { a: 'config' } } },
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://env:4318',
        OTEL_EXPORTER_OTLP_HEADERS: 'a=env,b=env',
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_EXPORTER_OTLP_COMPRESSION: 'gzip',
        OTEL_EXPORTER_OTLP_TIMEOUT: '1000',
      },
    );
    expect(problems).toEqual([]);
    expect(config).toMatchObject({
      endpoint: 'http://configured:4318/v1/logs',
      codec: 'protobuf',
      compression: 'none',
      requestTimeoutSecs: 7,
      headers: { a: 'config', b: 'env' },
    });
    expect(parse({ protocol: { type: 'http', uri: 'http://vector-form:4318/v1/logs' } }, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://env:4318' }).config.endpoint).toBe(
      'http://vector-form:4318/v1/logs',
    );
  });

  it('unusable values are config problems naming the variable, never showing header values', () => {
    const { problems } = parse(
      { endpoint: 'http://c:4318' },
      { OTEL_EXPORTER_OTLP_PROTOCOL: 'smoke', OTEL_EXPORTER_OTLP_TIMEOUT: 'soon', OTEL_EXPORTER_OTLP_HEADERS: 'secret-without-equals' },
    );
    expect(problems.sort()).toEqual([
      'environment variable OTEL_EXPORTER_OTLP_HEADERS has a value that cannot be used',
      'environment variable OTEL_EXPORTER_OTLP_PROTOCOL has a value that cannot be used',
      'environment variable OTEL_EXPORTER_OTLP_TIMEOUT has a value that cannot be used',
    ]);
    expect(otlpEnvDefaults({}).headers).toEqual({});
  });

  it('records reach the endpoint from the environment with its headers; a rejection log does not show the secret', async () => {
    const receiver = await startOtlpReceiver();
    onTestFinished(() => receiver.close());
    const secret = 'Bearer sup3r-s3cret';
    const { config, problems } = parse(
      { healthcheck: false, batch: { timeout_secs: 0.02 } },
      { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.baseUrl, OTEL_EXPORTER_OTLP_HEADERS: `authorization=${encodeURIComponent(secret)}` },
    );
    expect(problems).toEqual([]);
    const logs: LogRecord[] = [];
    const telemetry = new Telemetry((record) => logs.push(record), 'debug');
    const sink = opentelemetrySink.build(config, { id: 'otlp', dataDir: '/tmp', mode: 'replay', telemetry }) as OpentelemetrySink;
    onTestFinished(() => sink.stop(1000));
    await sink.start();
    receiver.failNext(1, 401);
    await sink.write(lines('{"msg":"refused"}'));
    await sink.write(lines('{"msg":"kept"}'));
    await pollUntil('1 record', () => receiver.records.length === 1 || undefined, { describe: () => receiver.describe() });
    expect(receiver.requests.map((r) => r.headers['authorization'])).toEqual([secret, secret]);
    expect(telemetry.counter(REJECTED_EVENTS, 'otlp')).toBe(1);
    const logged = JSON.stringify(logs);
    expect(logged).toMatch(/401/);
    expect(logged).not.toContain('sup3r-s3cret');
  });
});
