/**
 * The configurable OTLP mapping through the real CLI: a log file -> the committed json_parser.wasm
 * -> the opentelemetry sink with `[sinks.otlp.mapping]` -> the real OTLP/HTTP receiver. Protobuf
 * through the memory buffer; JSON through the disk buffer, which stores raw batches and encodes
 * them when it sends them.
 */
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { JSON_PARSER_WASM, startCli, tomlString, writeLogsConfig } from './support/cli.js';
import { startOtlpReceiver, type ReceivedLogRecord } from './support/otlp-receiver.js';
import { pollUntil } from './support/poll.js';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN_ID = '00f067aa0ba902b7';

const LINES = [
  JSON.stringify({ msg: 'one', service: 'checkout', method: 'GET', status: 200, took: 1.5, cached: false, req: { path: '/a' }, trace_id: TRACE_ID, span_id: SPAN_ID, trace_flags: '01' }),
  JSON.stringify({ msg: 'two', service: 'cart', method: 'POST', status: 500, trace_id: 'xyz' }),
  // A duplicate key: the plugin keeps it byte for byte, so the sink takes its JSON.parse path.
  `{"msg":"dup","service":"checkout","method":"PUT","method":"DELETE","trace_id":"${TRACE_ID}"}`,
  JSON.stringify({ msg: 'four', method: 'GET' }),
  'not json',
];

function byMsg(records: ReceivedLogRecord[], msg: string): ReceivedLogRecord {
  const record = records.find((r) => typeof r.body === 'object' && r.body !== null && (r.body as Record<string, unknown>)['msg'] === msg);
  expect(record, `record "${msg}"`).toBeDefined();
  return record!;
}

describe.each([
  ['protobuf', ''],
  ['json', '\n[sinks.otlp.buffer]\ntype = "disk"\nmax_size = 1048576\n'],
] as const)('the OTLP mapping through the CLI (%s)', (encoding, buffer) => {
  it('promotes attributes, splits resources by the service field, sets the trace context', async () => {
    const receiver = await startOtlpReceiver();
    onTestFinished(() => receiver.close());
    const { dir, logs, config } = await writeLogsConfig(
      () => `[transforms.parse]
type = "wasm"
inputs = ["logs"]
module = ${tomlString(JSON_PARSER_WASM)}

[sinks.otlp]
type = "opentelemetry"
inputs = ["parse"]
endpoint = "\${TEST_OTLP_ENDPOINT}"
encoding = "${encoding}"
service_name = "fallback"
healthcheck = false
batch.timeout_secs = 0.05

[sinks.otlp.mapping]
attributes = { method = "http.request.method", status = "http.response.status_code", took = "took", cached = "cached", req = "req" }
service_name_field = "service"
${buffer}`,
    );
    await writeFile(join(logs, 'app.log'), LINES.map((line) => `${line}\n`).join(''));
    const run = startCli(['--config', config], { env: { TEST_OTLP_ENDPOINT: receiver.url } });
    await pollUntil(`${LINES.length} records`, () => receiver.records.length >= LINES.length, {
      describe: () => `${receiver.describe()}; stderr: ${run.stderr()}`,
    });
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
    // The disk buffer was in the path (its directory is made when the sink starts).
    if (buffer !== '') expect((await stat(join(dir, 'data', 'otlp', 'buffer'))).isDirectory()).toBe(true);
    const records = receiver.records;
    expect(records).toHaveLength(LINES.length);
    expect(records.every((r) => r.encoding === encoding)).toBe(true);

    const one = byMsg(records, 'one');
    expect(one.resource['service.name']).toBe('checkout');
    expect(one.attributes).toMatchObject({
      'log.file.name': 'app.log',
      'http.request.method': 'GET',
      'http.response.status_code': 200n,
      took: 1.5,
      cached: false,
      req: { path: '/a' },
    });
    expect(one.body).not.toHaveProperty('method');
    expect(one.body).toMatchObject({ msg: 'one', service: 'checkout', trace_id: TRACE_ID, span_id: SPAN_ID, trace_flags: '01' });
    expect([one.traceId, one.spanId, one.flags]).toEqual([TRACE_ID, SPAN_ID, 1]);

    const two = byMsg(records, 'two');
    expect([two.resource['service.name'], two.traceId, (two.body as Record<string, unknown>)['trace_id']]).toEqual(['cart', '', 'xyz']);
    const dup = byMsg(records, 'dup');
    expect([dup.resource['service.name'], dup.attributes['http.request.method'], dup.traceId]).toEqual(['checkout', 'DELETE', TRACE_ID]);
    expect(byMsg(records, 'four').resource['service.name']).toBe('fallback');
    expect(records.find((r) => r.body === 'not json')!.resource['service.name']).toBe('fallback');

    // One request of one batch: three ResourceLogs, records grouped by service in order of first appearance.
    expect(new Set(records.map((r) => r.request)).size).toBe(1);
    expect(records.map((r) => r.resource['service.name'])).toEqual(['checkout', 'checkout', 'cart', 'fallback', 'fallback']);
  });
});
