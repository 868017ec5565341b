/**
 * Over OTLP/gRPC, what the collector says beyond a status: the RetryInfo of a failed call
 * (honoured like HTTP Retry-After), an OK answer's partial success (counted and logged), and
 * `tls.verify_certificate = false` against a self-signed server certificate. All against a real
 * @grpc/grpc-js server (test/support/otlp-grpc-receiver.ts).
 */
import { status as grpcStatus } from '@grpc/grpc-js';
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ConfigReader, type ConfigTable } from '../src/config/reader.js';
import type { ConfigProblem } from '../src/errors.js';
import { batchFromLines, type LineBatch } from '../src/event.js';
import { PARTIAL_SUCCESS_REJECTED_EVENTS, RETRY_AFTER_RESPONSES } from '../src/sinks/opentelemetry/buffer.js';
import { MAX_RETRY_AFTER_MS, grpcRetryDelayMs } from '../src/sinks/opentelemetry/buffer-feedback.js';
import { DISCARDED_EVENTS, SENT_EVENTS } from '../src/sinks/opentelemetry/events.js';
import {
  checkOpentelemetryHealth,
  opentelemetrySink,
  parseOpentelemetryConfig,
  type OpentelemetrySink,
} from '../src/sinks/opentelemetry/index.js';
import { Telemetry, type LogRecord } from '../src/telemetry.js';
import { tempDir } from './support/cli.js';
import { startOtlpGrpcReceiver, statusWithRetryInfo, type GrpcReceiverTls, type OtlpGrpcReceiver } from './support/otlp-grpc-receiver.js';
import { pollUntil } from './support/poll.js';

const encoder = new TextEncoder();

function lines(...texts: string[]): LineBatch {
  return batchFromLines(
    texts.map((t) => encoder.encode(t)),
    { sourceId: 'app', sourceType: 'file', file: '/var/log/app.log', host: 'node-1', timestampMs: Date.UTC(2024, 0, 1), format: 'json' },
  );
}

function parse(table: ConfigTable) {
  const problems: ConfigProblem[] = [];
  const reader = new ConfigReader('sinks.otlp', table, problems);
  const config = parseOpentelemetryConfig(reader, {});
  reader.finish();
  return { config, problems: problems.map((p) => p.message) };
}

async function sink(table: ConfigTable): Promise<{ sink: OpentelemetrySink; telemetry: Telemetry; logs: LogRecord[] }> {
  const { config, problems } = parse({ healthcheck: false, protocol: 'grpc', ...table });
  expect(problems).toEqual([]);
  const logs: LogRecord[] = [];
  const telemetry = new Telemetry((record) => logs.push(record), 'debug');
  const instance = opentelemetrySink.build(config, { id: 'otlp', dataDir: '/tmp', mode: 'replay', telemetry }) as OpentelemetrySink;
  onTestFinished(() => instance.stop(1000));
  await instance.start();
  return { sink: instance, telemetry, logs };
}

async function receiver(tls?: GrpcReceiverTls): Promise<OtlpGrpcReceiver> {
  const r = await startOtlpGrpcReceiver(tls === undefined ? {} : { tls });
  onTestFinished(() => r.close());
  return r;
}

/** Backoff far shorter than the retry delays the receiver asks for. */
const FAST = { batch: { timeout_secs: 0.02 }, request: { retry_initial_backoff_secs: 0.01, retry_max_duration_secs: 0.05 } };

describe('gRPC RetryInfo', () => {
  it('reads retry_delay from a google.rpc.Status; none, garbage or another detail give undefined; capped', () => {
    expect(grpcRetryDelayMs(statusWithRetryInfo(14, 'x', 1500))).toBe(1500);
    expect(grpcRetryDelayMs(statusWithRetryInfo(8, 'slow down', 0))).toBe(0);
    expect(grpcRetryDelayMs(statusWithRetryInfo(8, '', 3_600_000))).toBe(MAX_RETRY_AFTER_MS);
    expect(grpcRetryDelayMs(new Uint8Array())).toBeUndefined();
    expect(grpcRetryDelayMs(Uint8Array.from([0x08, 0x0e, 0x12, 0x01, 0x78]))).toBeUndefined(); // code and message only
    expect(grpcRetryDelayMs(Uint8Array.from([0x1a, 0x40, 0x01]))).toBeUndefined(); // truncated
  });

  for (const code of [grpcStatus.UNAVAILABLE, grpcStatus.RESOURCE_EXHAUSTED]) {
    it(`${grpcStatus[code]} with RetryInfo 1.5 s: the retry waits for it although the backoff is 50 ms at most`, async () => {
      const grpc = await receiver();
      grpc.failNext(1, code, { retryDelayMs: 1500 });
      const { sink: s, telemetry, logs } = await sink({ endpoint: grpc.url, ...FAST });
      await s.write(lines('{"msg":"a"}', '{"msg":"b"}'));
      expect(grpc.records).toHaveLength(2);
      expect(grpc.calls.map((c) => c.code)).toEqual([code, grpcStatus.OK]);
      expect(grpc.calls[1]!.at - grpc.calls[0]!.at).toBeGreaterThanOrEqual(1500 - 20);
      expect(telemetry.counter(RETRY_AFTER_RESPONSES, 'otlp')).toBe(1);
      expect(telemetry.counter(SENT_EVENTS, 'otlp')).toBe(2);
      expect(logs.find((l) => l.event === 'otlp_retry_after')?.message).toContain(`gRPC ${grpcStatus[code]} with RetryInfo`);
    });
  }

  it('a refused call (INVALID_ARGUMENT) with RetryInfo holds nothing back: not retried, not counted as a retry hint', async () => {
    const grpc = await receiver();
    grpc.failNext(1, grpcStatus.INVALID_ARGUMENT, { retryDelayMs: 60_000 });
    const { sink: s, telemetry } = await sink({ endpoint: grpc.url, ...FAST });
    await s.write(lines('{"msg":"refused"}'));
    await s.write(lines('{"msg":"kept"}'));
    expect(grpc.records).toHaveLength(1);
    expect(telemetry.counter(RETRY_AFTER_RESPONSES, 'otlp')).toBe(0);
  });
});

describe('gRPC partial success', () => {
  it('rejected_log_records are counted as discarded and error_message is logged; the call counts as sent', async () => {
    const grpc = await receiver();
    grpc.partialSuccessNext(1, 2, 'two records too large');
    const { sink: s, telemetry, logs } = await sink({ endpoint: grpc.url, ...FAST });
    await s.write(lines('{"n":1}', '{"n":2}', '{"n":3}'));
    expect(grpc.records).toHaveLength(3);
    expect(telemetry.counter(PARTIAL_SUCCESS_REJECTED_EVENTS, 'otlp')).toBe(2);
    expect(telemetry.counter(DISCARDED_EVENTS, 'otlp')).toBe(2);
    expect(telemetry.counter(SENT_EVENTS, 'otlp')).toBe(3);
    const logged = logs.find((l) => l.event === 'otlp_partial_success');
    expect(logged?.level).toBe('error');
    expect(logged?.message).toContain('two records too large');
    // A plain OK answer afterwards reports nothing more.
    await s.write(lines('{"n":4}'));
    await pollUntil('4 records', () => grpc.records.length === 4 || undefined, { describe: () => grpc.describe() });
    expect(telemetry.counter(PARTIAL_SUCCESS_REJECTED_EVENTS, 'otlp')).toBe(2);
  });
});

describe('gRPC tls.verify_certificate = false', () => {
  it('accepts a self-signed server certificate that the default verification refuses', async () => {
    const dir = await tempDir('logwasm-grpc-tls-');
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'self.key', '-out', 'self.crt', '-days', '2', '-subj', '/CN=not-this-host',
        '-addext', 'subjectAltName=DNS:not-this-host'],
      { cwd: dir, stdio: 'pipe' },
    );
    const grpc = await receiver({ key: await readFile(join(dir, 'self.key')), cert: await readFile(join(dir, 'self.crt')) });
    expect(grpc.url.startsWith('https://')).toBe(true);

    const verified = parse({ endpoint: grpc.url, protocol: 'grpc', request: { timeout_secs: 2 } });
    expect(verified.problems).toEqual([]);
    expect(await checkOpentelemetryHealth(verified.config)).toBeDefined();
    expect(grpc.calls).toHaveLength(0);

    const { sink: s, telemetry } = await sink({ endpoint: grpc.url, tls: { verify_certificate: false }, ...FAST });
    await s.write(lines('{"msg":"over unverified TLS"}'));
    expect(grpc.records).toHaveLength(1);
    expect(telemetry.counter(SENT_EVENTS, 'otlp')).toBe(1);
  });
});
