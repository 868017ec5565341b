/**
 * The file sink on real files: path templates (strftime in UTC, `{{ field }}`), json and text
 * codecs (json rendered like the console sink), gzip members, and counted failures.
 */
import { mkdir, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { ConfigProblem } from '../src/errors.js';
import { batchFromLines, type BatchMeta } from '../src/event.js';
import { ConfigReader } from '../src/config/reader.js';
import { encodeJson } from '../src/sinks/console.js';
import { fileSink, FileSink, type FileSinkConfig } from '../src/sinks/file/index.js';
import { Template } from '../src/sinks/file/template.js';
import { COMPONENT_ERRORS, EVENTS_DISCARDED, EVENTS_SENT, Telemetry, type LogRecord } from '../src/telemetry.js';
import { tempDir } from './support/cli.js';

const AT = Date.UTC(2026, 0, 2, 3, 4, 5); // 2026-01-02T03:04:05Z, day 2 of the year

function meta(format: 'text' | 'json', timestampMs = AT): BatchMeta {
  return { sourceId: 'in', sourceType: 'file', file: '/var/log/app.log', host: 'h1', timestampMs, format };
}

function batch(lines: string[], format: 'text' | 'json', timestampMs = AT) {
  return batchFromLines(lines.map((l) => new TextEncoder().encode(l)), meta(format, timestampMs));
}

function parse(table: Record<string, unknown>): { config: FileSinkConfig; problems: ConfigProblem[] } {
  const problems: ConfigProblem[] = [];
  const reader = new ConfigReader('sinks.out', { type: 'file', ...table }, problems);
  reader.accept('type');
  const config = fileSink.parse(reader);
  reader.finish();
  return { config, problems };
}

function sinkFor(table: Record<string, unknown>) {
  const { config, problems } = parse(table);
  expect(problems).toEqual([]);
  const logs: LogRecord[] = [];
  const telemetry = new Telemetry((r) => logs.push(r), 'debug');
  const sink = new FileSink(config, { id: 'out', dataDir: '/nonexistent', mode: 'replay', telemetry });
  return { sink, telemetry, logs };
}

describe('file sink path template', () => {
  it('renders strftime specifiers in UTC and dotted fields', () => {
    const t = Template.parse('/x/%Y/%m/%d/%H%M%S-%j-%F-%%-{{ kubernetes.pod_name }}-{{n}}.log');
    expect(t.render({ kubernetes: { pod_name: 'web-1' }, n: 7 }, AT)).toBe('/x/2026/01/02/030405-002-2026-01-02-%-web-1-7.log');
    expect(t.render({ n: 7 }, AT)).toBeUndefined();
    expect(t.render({ kubernetes: { pod_name: { deep: 1 } }, n: 7 }, AT)).toBeUndefined();
    expect(Template.parse('/plain.log').isStatic).toBe(true);
  });

  it('refuses unknown specifiers and unclosed fields in the config, naming the key', () => {
    expect(parse({ path: '/x/%Q.log' }).problems.map((p) => p.message)[0]).toMatch(/^invalid value for "path": unknown strftime specifier "%Q"/);
    expect(parse({ path: '/x/{{ a.log' }).problems.map((p) => p.message)).toEqual([
      'invalid value for "path": unclosed "{{" at character 4, actual: "/x/{{ a.log"',
    ]);
    expect(parse({ path: '/x', compression: 'zstd', encoding: { codec: 'avro' }, colour: 1 }).problems.map((p) => p.message)).toEqual([
      'invalid value for "encoding.codec": expected one of "json", "text", actual: "avro"',
      'invalid value for "compression": expected one of "none", "gzip", actual: "zstd"',
      'unknown key "colour"',
    ]);
    expect(parse({}).problems.map((p) => p.message)).toEqual(['missing required key "path"']);
  });
});

describe('file sink', () => {
  it('writes json events exactly as the console sink renders them, one file per rendered path', async () => {
    const dir = await tempDir();
    const { sink, telemetry } = sinkFor({ path: join(dir, '{{ service }}', '%Y-%m-%d.log'), encoding: { codec: 'json' } });
    await sink.start();
    const lines = ['{"service":"api","msg":"é ✓"}', '{"service":"db","n":1}', '{"service":"api","msg":"two"}'];
    await sink.write(batch(lines, 'json'));
    await sink.stop();
    const expected = encodeJson(batch(lines, 'json')).split('\n');
    expect(await readFile(join(dir, 'api', '2026-01-02.log'), 'utf8')).toBe(`${expected[0]}\n${expected[2]}\n`);
    expect(await readFile(join(dir, 'db', '2026-01-02.log'), 'utf8')).toBe(`${expected[1]}\n`);
    expect(telemetry.counter(EVENTS_SENT, 'out')).toBe(3);
  });

  it('appends text lines byte for byte, and gzip as members that decompress to the same bytes', async () => {
    const dir = await tempDir();
    const plain = sinkFor({ path: join(dir, 'out.log'), encoding: { codec: 'text' } });
    const zipped = sinkFor({ path: join(dir, 'out.log.gz'), encoding: { codec: 'text' }, compression: 'gzip' });
    const first = ['plain line n° 1 — 日本語', '', 'third'];
    const second = ['after a restart'];
    for (const { sink } of [plain, zipped]) {
      await sink.start();
      await sink.write(batch(first, 'text'));
      await sink.write(batch(second, 'text'));
      await sink.stop();
    }
    const expected = [...first, ...second].join('\n') + '\n';
    expect(await readFile(join(dir, 'out.log'), 'utf8')).toBe(expected);
    const gz = await readFile(join(dir, 'out.log.gz'));
    expect(gz[0]).toBe(0x1f);
    expect(gunzipSync(gz).toString('utf8')).toBe(expected);
  });

  it('counts, logs and discards lines whose path names a missing field; writes the rest', async () => {
    const dir = await tempDir();
    const { sink, telemetry, logs } = sinkFor({ path: join(dir, '{{ service }}.log'), encoding: 'text' });
    await sink.start();
    await sink.write(batch(['{"service":"api"}', 'not json', '{"other":1}'], 'json'));
    await sink.stop();
    expect(await readdir(dir)).toEqual(['api.log']);
    expect(telemetry.counter(EVENTS_DISCARDED, 'out')).toBe(2);
    expect(telemetry.counter(COMPONENT_ERRORS, 'out')).toBe(2);
    expect(telemetry.counter('file_sink_errors_total_template_failed', 'out')).toBe(2);
    expect(logs.filter((l) => l.event === 'file_sink_template_failed')).toHaveLength(1);
  });

  it('counts a failed write as discarded and keeps accepting batches', async () => {
    const dir = await tempDir();
    await mkdir(join(dir, 'taken'));
    const { sink, telemetry } = sinkFor({ path: join(dir, '{{ message }}'), encoding: 'text' });
    await sink.start();
    await sink.write(batch(['taken', 'free'], 'text'));
    await sink.stop();
    expect(telemetry.counter(EVENTS_DISCARDED, 'out')).toBe(1);
    expect(telemetry.counter('file_sink_errors_total_write_failed', 'out')).toBe(1);
    expect(await readFile(join(dir, 'free'), 'utf8')).toBe('free\n');
  });
});
