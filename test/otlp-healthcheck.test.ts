import { status as grpcStatus } from '@grpc/grpc-js';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ConfigReader, type ConfigTable } from '../src/config/reader.js';
import type { ConfigProblem } from '../src/errors.js';
import { checkOpentelemetryHealth, parseOpentelemetryConfig } from '../src/sinks/opentelemetry/index.js';
import { runCli, startCli, tempDir, tomlString } from './support/cli.js';
import { startOtlpGrpcReceiver } from './support/otlp-grpc-receiver.js';
import { startOtlpReceiver } from './support/otlp-receiver.js';
import { pollUntil } from './support/poll.js';

const SECRET = 's3cr3t-t0ken-value';

function parse(table: ConfigTable) {
  const problems: ConfigProblem[] = [];
  const reader = new ConfigReader('sinks.otlp', table, problems);
  const config = parseOpentelemetryConfig(reader, {});
  reader.finish();
  expect(problems.map((p) => p.message)).toEqual([]);
  return config;
}

/** A port nothing listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function writeConfig(endpoint: string): Promise<string> {
  const dir = await tempDir();
  const config = join(dir, 'vector.toml');
  await writeFile(
    config,
    `data_dir = ${tomlString(join(dir, 'data'))}

[sources.logs]
type = "file"
include = [${tomlString(join(dir, 'logs', '*.log'))}]

[sinks.otlp]
type = "opentelemetry"
inputs = ["logs"]
endpoint = ${tomlString(endpoint)}
request.timeout_secs = 2
request.headers.authorization = "Bearer ${SECRET}"
`,
  );
  return config;
}

describe('opentelemetry healthcheck', () => {
  it('is on by default and off with healthcheck.enabled = false or healthcheck = false', () => {
    expect(parse({ endpoint: 'http://c:4318' }).healthcheck).toBe(true);
    expect(parse({ endpoint: 'http://c:4318', healthcheck: { enabled: false } }).healthcheck).toBe(false);
    expect(parse({ endpoint: 'http://c:4318', healthcheck: false }).healthcheck).toBe(false);
  });

  it('sends one empty request over HTTP; a refusal is reported with its status', async () => {
    const receiver = await startOtlpReceiver();
    onTestFinished(() => receiver.close());
    const config = parse({ endpoint: receiver.baseUrl });
    expect(await checkOpentelemetryHealth(config)).toBeUndefined();
    expect(receiver.requests).toHaveLength(1);
    expect(receiver.requests[0]!.status).toBe(200);
    expect(receiver.records).toHaveLength(0);
    receiver.failNext(1, 401);
    expect(await checkOpentelemetryHealth(config)).toMatch(/HTTP 401/);
  });

  it('sends one empty request over gRPC; a refusal is reported with its status', async () => {
    const grpc = await startOtlpGrpcReceiver();
    onTestFinished(() => grpc.close());
    const config = parse({ endpoint: grpc.url, protocol: 'grpc' });
    expect(await checkOpentelemetryHealth(config)).toBeUndefined();
    expect(grpc.calls.map((c) => c.code)).toEqual([grpcStatus.OK]);
    grpc.failNext(1, grpcStatus.UNAUTHENTICATED);
    expect(await checkOpentelemetryHealth(config)).toMatch(/UNAUTHENTICATED/);
  });

  it('CLI: a failed healthcheck warns and startup goes on; the header secret is not in the output', async () => {
    const config = await writeConfig(`http://127.0.0.1:${await closedPort()}`);
    const run = startCli(['--config', config, '--graceful-shutdown-limit-secs', '1']);
    await pollUntil('healthcheck warning and start', () => /healthcheck failed/.test(run.stderr()) && /logwasm started/.test(run.stderr()), {
      timeoutMs: 30_000,
      describe: () => run.stderr(),
    });
    expect(run.child.exitCode).toBeNull();
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
    expect(run.stderr()).not.toContain(SECRET);
  });

  it('CLI: with --require-healthy a failed healthcheck exits 1 with the reason, before starting', async () => {
    const config = await writeConfig(`http://127.0.0.1:${await closedPort()}`);
    const result = await runCli(['--config', config, '--require-healthy']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/sinks\.otlp: healthcheck failed and --require-healthy is set/);
    expect(result.stderr).not.toMatch(/logwasm started/);
    expect(result.stderr).not.toContain(SECRET);
  });

  it('CLI: with --require-healthy a healthy collector lets it start', async () => {
    const receiver = await startOtlpReceiver();
    onTestFinished(() => receiver.close());
    const config = await writeConfig(receiver.baseUrl);
    const run = startCli(['--config', config, '--require-healthy', '--graceful-shutdown-limit-secs', '1']);
    await pollUntil('start', () => /logwasm started/.test(run.stderr()), { timeoutMs: 30_000, describe: () => run.stderr() });
    expect(receiver.requests.length).toBeGreaterThanOrEqual(1);
    expect(receiver.requests[0]!.headers['authorization']).toBe(`Bearer ${SECRET}`);
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
    expect(run.stderr()).not.toMatch(/healthcheck failed/);
  });
});
