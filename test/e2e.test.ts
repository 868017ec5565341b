/**
 * The whole path with real parts only: log files in a temp dir -> the real `logwasm` CLI in a
 * child process (file source, piscina workers running the committed json_parser.wasm, the
 * opentelemetry sink) -> an OTLP/HTTP receiver on 127.0.0.1 that decodes protobuf and JSON.
 */
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { JSON_PARSER_WASM, runCli, startCli, tempDir, tomlString, writeLogsConfig } from './support/cli.js';
import { startOtlpReceiver, type OtlpReceiver } from './support/otlp-receiver.js';
import { pollUntil } from './support/poll.js';

function jsonLine(seq: number): string {
  return JSON.stringify({
    seq,
    level: seq % 7 === 0 ? 'error' : 'info',
    msg: `request ${seq} served ✓`,
    metadata: { user: { id: `u-${seq % 13}` }, session: { id: `s-${seq}` } },
  });
}

function textLine(n: number): string {
  return `plain line n° ${n} — ünïcødé 日本語`;
}

async function setup(encoding: 'protobuf' | 'json') {
  const receiver = await startOtlpReceiver();
  onTestFinished(() => receiver.close());
  const { dir, config } = await writeLogsConfig(
    () => `[transforms.parse]
type = "wasm"
inputs = ["logs"]
module = ${tomlString(JSON_PARSER_WASM)}
pool_size = 2

[sinks.otlp]
type = "opentelemetry"
inputs = ["parse"]
endpoint = "\${TEST_OTLP_ENDPOINT}"
encoding = "${encoding}"
`,
  );
  return { dir, receiver, config, env: { TEST_OTLP_ENDPOINT: receiver.url } };
}

/** Every record's identity: the `seq` of a JSON body, the text of a string body. */
function keys(receiver: OtlpReceiver): string[] {
  return receiver.records.map((r) => {
    const body = r.body;
    if (typeof body === 'string') return body;
    return `seq:${String((body as { seq?: unknown }).seq)}`;
  });
}

function expectExactlyOnce(receiver: OtlpReceiver, expected: string[]): void {
  const seen = keys(receiver);
  const duplicates = seen.filter((k, i) => seen.indexOf(k) !== i);
  expect(duplicates).toEqual([]);
  expect([...seen].sort()).toEqual([...expected].sort());
}

describe.each(['protobuf', 'json'] as const)('logwasm end to end (%s)', (encoding) => {
  it('ships every line once, tails appends, and resumes after a restart without duplicates', async () => {
    const { dir, receiver, config, env } = await setup(encoding);
    const a = join(dir, 'logs', 'a.log');
    const b = join(dir, 'logs', 'b.log');
    const jsonLines = Array.from({ length: 300 }, (_, i) => jsonLine(i));
    const textLines = Array.from({ length: 40 }, (_, i) => textLine(i));
    await writeFile(a, jsonLines.join('\n') + '\n');
    await writeFile(b, textLines.join('\n') + '\n');
    const expected = [...jsonLines.map((_, i) => `seq:${i}`), ...textLines];

    const first = startCli(['--config', config], { env });
    await pollUntil('the first 340 records', () => receiver.records.length >= expected.length, {
      describe: () => `${receiver.records.length} records; stderr: ${first.stderr()}`,
    });

    // The plugin's fields, on the real records.
    // The receiver keeps OTLP's int/double distinction: integers arrive as bigint.
    const record7 = receiver.records.find((r) => typeof r.body === 'object' && (r.body as { seq?: unknown }).seq === 7n);
    expect(record7?.body).toMatchObject({
      seq: 7n,
      user_id: 'u-7',
      session_id: 's-7',
      log_size_bytes: BigInt(Buffer.byteLength(jsonLines[7]!)),
    });
    expect(record7?.attributes['log.file.path']).toBe(a);
    expect(record7?.attributes['log.file.name']).toBe('a.log');
    expect(record7?.severityText?.toLowerCase()).toBe('error');
    const text3 = receiver.records.find((r) => r.body === textLines[3]);
    expect(text3).toBeDefined();

    // Appended lines arrive while running; a new file is picked up.
    await appendFile(a, jsonLine(300) + '\n' + jsonLine(301) + '\n');
    await writeFile(join(dir, 'logs', 'c.log'), textLine(1000) + '\n');
    expected.push('seq:300', 'seq:301', textLine(1000));
    await pollUntil('appended and new-file records', () => receiver.records.length >= expected.length, {
      describe: () => `${receiver.records.length} of ${expected.length}; stderr: ${first.stderr()}`,
    });

    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    expectExactlyOnce(receiver, expected);

    // Written while logwasm was down: read after the restart, nothing before it sent again.
    await appendFile(a, jsonLine(302) + '\n');
    await appendFile(b, textLine(40) + '\n');
    expected.push('seq:302', textLine(40));
    const second = startCli(['--config', config], { env });
    await pollUntil('records written while stopped', () => receiver.records.length >= expected.length, {
      describe: () => `${receiver.records.length} of ${expected.length}; stderr: ${second.stderr()}`,
    });
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    expectExactlyOnce(receiver, expected);
  });
});

describe('logwasm replay', () => {
  it('reads every file to its end, delivers it all, prints a summary and exits 0', async () => {
    const { dir, receiver, config, env } = await setup('protobuf');
    const lines = Array.from({ length: 2500 }, (_, i) => jsonLine(i));
    await writeFile(join(dir, 'logs', 'big.log'), lines.join('\n') + '\n');
    const result = await runCli(['replay', '--config', config], { env });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/replay done: 2500 lines/);
    expectExactlyOnce(receiver, lines.map((_, i) => `seq:${i}`));
  });

  it('exits non-zero and says why when the collector rejects the records', async () => {
    const { dir, receiver, config, env } = await setup('protobuf');
    receiver.failNext(1_000, 400);
    await writeFile(join(dir, 'logs', 'x.log'), jsonLine(1) + '\n');
    const result = await runCli(['replay', '--config', config], { env });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/replay failed: 1 events could not be delivered/);
  });
});

describe('the default vector.toml', () => {
  it('replays the shipped sample logs through json_parser to the console', async () => {
    const dir = await tempDir();
    const result = await runCli(['replay'], { env: { LOGWASM_DATA_DIR: dir, OTLP_ENDPOINT: '' } });
    expect(result.code, result.stderr).toBe(0);
    const records = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    const samples = (await readFile(join(import.meta.dirname, '..', 'samples', 'logs', 'app.log'), 'utf8'))
      .trim()
      .split('\n');
    expect(records.length).toBeGreaterThanOrEqual(samples.length);
    const signedIn = records.find((r) => r.msg === 'user signed in');
    expect(signedIn).toMatchObject({ user_id: 'u-1842', session_id: 's-77a1', source_type: 'file' });
    expect(signedIn?.log_size_bytes).toBe(Buffer.byteLength(samples[0]!));
    expect(records.some((r) => r.message === samples[4])).toBe(true);
  });

  it('sends the same records to OTLP_ENDPOINT when it is set', async () => {
    const dir = await tempDir();
    const receiver = await startOtlpReceiver();
    onTestFinished(() => receiver.close());
    const result = await runCli(['replay'], { env: { LOGWASM_DATA_DIR: dir, OTLP_ENDPOINT: receiver.baseUrl } });
    expect(result.code, result.stderr).toBe(0);
    const printed = result.stdout.trim().split('\n').length;
    expect(receiver.records).toHaveLength(printed);
    const signedIn = receiver.records.find((r) => (r.body as { msg?: unknown }).msg === 'user signed in');
    expect(signedIn?.body).toMatchObject({ user_id: 'u-1842', session_id: 's-77a1' });
    expect(signedIn?.attributes['log.file.name']).toBe('app.log');
  });
});
