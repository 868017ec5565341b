import { status as grpcStatus } from '@grpc/grpc-js';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ConfigReader, type ConfigTable } from '../src/config/reader.js';
import type { ConfigProblem } from '../src/errors.js';
import { batchFromLines } from '../src/event.js';
import { REJECTED_EVENTS, SENT_EVENTS } from '../src/sinks/opentelemetry/events.js';
import { OpentelemetrySink, opentelemetrySink, parseOpentelemetryConfig } from '../src/sinks/opentelemetry/index.js';
import { Telemetry, type LogRecord } from '../src/telemetry.js';
import { startOtlpGrpcReceiver, type OtlpGrpcReceiver } from './support/otlp-grpc-receiver.js';
import { pollUntil } from './support/poll.js';

const encoder = new TextEncoder();

function lines(...texts: string[]) {
  return batchFromLines(
    texts.map((t) => encoder.encode(t)),
    { sourceId: 'app', sourceType: 'file', file: '/var/log/app.log', host: 'node-1', timestampMs: Date.UTC(2024, 0, 1), format: 'json' },
  );
}

function parse(table: ConfigTable, env: NodeJS.ProcessEnv = {}) {
  const problems: ConfigProblem[] = [];
  const reader = new ConfigReader('sinks.otlp', table, problems);
  const config = parseOpentelemetryConfig(reader, env);
  reader.finish();
  return { config, problems: problems.map((p) => p.message) };
}

function sink(table: ConfigTable) {
  const { config, problems } = parse(table);
  expect(problems).toEqual([]);
  const logs: LogRecord[] = [];
  const telemetry = new Telemetry((record) => logs.push(record), 'debug');
  const instance = opentelemetrySink.build(config, { id: 'otlp', dataDir: '/tmp', mode: 'replay', telemetry }) as OpentelemetrySink;
  onTestFinished(() => instance.stop(1000));
  return { sink: instance, telemetry, logs };
}

async function receiver(): Promise<OtlpGrpcReceiver> {
  const r = await startOtlpGrpcReceiver();
  onTestFinished(() => r.close());
  return r;
}

const FAST = { healthcheck: false, batch: { timeout_secs: 0.02 }, request: { retry_initial_backoff_secs: 0.01, retry_max_duration_secs: 0.05 } };

describe('opentelemetry sink: protocol = "grpc"', () => {
  it('parses the flat form, Vector\'s protocol.type form, and keeps the :4317 endpoint without a path', () => {
    expect(parse({ endpoint: 'http://otel-collector:4317', protocol: 'grpc' })).toMatchObject({
      config: { protocol: 'grpc', endpoint: 'http://otel-collector:4317' },
      problems: [],
    });
    expect(parse({ protocol: { type: 'grpc', uri: 'http://otel-collector:4317' } })).toMatchObject({
      config: { protocol: 'grpc', endpoint: 'http://otel-collector:4317' },
      problems: [],
    });
    expect(parse({ endpoint: 'http://c:4318' }).config).toMatchObject({ protocol: 'http', endpoint: 'http://c:4318/v1/logs' });
    expect(parse({ endpoint: 'http://c:4317', protocol: 'smoke' }).problems).toHaveLength(1);
    expect(parse({ endpoint: 'http://c:4317', protocol: 'grpc', encoding: 'json' }).problems).toEqual([
      'encoding "json" is not supported with protocol "grpc" (gRPC carries protobuf)',
    ]);
  });

  it('records arrive at a real gRPC server, with configured headers as metadata', async () => {
    const grpc = await receiver();
    const { sink: s, telemetry } = sink({ endpoint: grpc.url, protocol: 'grpc', ...FAST, request: { ...FAST.request, headers: { 'x-tenant': 'blue' } } });
    await s.start();
    await s.write(lines('{"msg":"one","n":1}', '{"msg":"two","n":2}', 'plain text'));
    expect(grpc.records).toHaveLength(3);
    expect(grpc.records.map((r) => JSON.stringify(r.body))).toEqual([
      expect.stringContaining('one'),
      expect.stringContaining('two'),
      expect.stringContaining('plain text'),
    ]);
    expect(grpc.calls.at(-1)!.metadata.getMap()).toMatchObject({ 'x-tenant': 'blue' });
    expect(telemetry.counter(SENT_EVENTS, 'otlp')).toBe(3);
  });

  it('UNAVAILABLE is retried until the records arrive', async () => {
    const grpc = await receiver();
    grpc.failNext(3, grpcStatus.UNAVAILABLE);
    const { sink: s, telemetry } = sink({ endpoint: grpc.url, protocol: 'grpc', ...FAST });
    await s.start();
    await s.write(lines('{"msg":"a"}', '{"msg":"b"}'));
    expect(grpc.records).toHaveLength(2);
    expect(grpc.calls.map((c) => c.code).filter((c) => c === grpcStatus.UNAVAILABLE)).toHaveLength(3);
    expect(telemetry.counter(SENT_EVENTS, 'otlp')).toBe(2);
    expect(telemetry.counter(REJECTED_EVENTS, 'otlp')).toBe(0);
  });

  it('INVALID_ARGUMENT drops only that request, counted and logged with the status', async () => {
    const grpc = await receiver();
    grpc.failNext(1, grpcStatus.INVALID_ARGUMENT);
    const { sink: s, telemetry, logs } = sink({ endpoint: grpc.url, protocol: 'grpc', ...FAST });
    await s.start();
    await s.write(lines('{"msg":"refused"}', '{"msg":"refused too"}'));
    await s.write(lines('{"msg":"kept"}'));
    await pollUntil('1 record stored', () => grpc.records.length === 1 || undefined, { describe: () => grpc.describe() });
    expect(telemetry.counter(REJECTED_EVENTS, 'otlp')).toBe(2);
    expect(telemetry.counter(SENT_EVENTS, 'otlp')).toBe(1);
    expect(logs.some((l) => JSON.stringify(l).includes('INVALID_ARGUMENT'))).toBe(true);
  });
});
