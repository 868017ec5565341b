/**
 * `logwasm replay` on real files through the real CLI: PATHS replacing the file source's include
 * (plain and .gz), the summary line, exit codes, no checkpoints written unless asked; and the progress
 * display (bar on a TTY, one line per interval off it) with a fake stream and clock.
 */
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ReplayProgress, formatBytes, formatDuration } from '../src/run.js';
import { runCli, tempDir, tomlString, writeLogsConfig } from './support/cli.js';
import { startOtlpReceiver } from './support/otlp-receiver.js';

async function setup(extra = '') {
  const dir = await tempDir();
  await mkdir(join(dir, 'in'));
  const config = join(dir, 'vector.toml');
  await writeFile(
    config,
    `data_dir = ${tomlString(join(dir, 'data'))}

[sources.logs]
type = "file"
include = [${tomlString(join(dir, 'nowhere', '*.log'))}]

[sinks.out]
type = "file"
inputs = ["logs"]
path = ${tomlString(join(dir, 'out', 'all.txt'))}
encoding.codec = "text"
${extra}`,
  );
  return { dir, config };
}

const lines = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix} ${i} — 日本語`);

describe('logwasm replay PATHS', () => {
  it('reads the given files (plain and .gz) instead of the include, writes every line once, no checkpoints', async () => {
    const { dir, config } = await setup();
    const plain = lines('plain', 300);
    const zipped = lines('zipped', 200);
    await writeFile(join(dir, 'in', 'a.log'), plain.join('\n') + '\n');
    await writeFile(join(dir, 'in', 'b.log.gz'), gzipSync(zipped.join('\n') + '\n'));
    const result = await runCli(['replay', '--config', config, join(dir, 'in', 'a.log'), join(dir, 'in', '*.gz')]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/replay done: 500 lines, \d+ bytes in [\d.]+ s \(\d+ lines\/s\); 0 errors, 0 undelivered/);
    const out = (await readFile(join(dir, 'out', 'all.txt'), 'utf8')).split('\n').slice(0, -1);
    expect([...out].sort()).toEqual([...plain, ...zipped].sort());
    // Replay writes no checkpoints unless asked.
    expect(await readdir(join(dir, 'data')).catch(() => [])).toEqual([]);
  });

  it('writes checkpoints when asked (--checkpoints), so a later tail run resumes after the replay', async () => {
    const { dir, config } = await setup();
    const file = join(dir, 'in', 'a.log');
    const content = lines('seen', 50).join('\n') + '\n';
    await writeFile(file, content);
    const result = await runCli(['replay', '--checkpoints', '--config', config, file]);
    expect(result.code, result.stderr).toBe(0);
    const saved = JSON.parse(await readFile(join(dir, 'data', 'logs', 'checkpoints.json'), 'utf8')) as {
      checkpoints: { path: string; position: number }[];
    };
    expect(saved.checkpoints).toMatchObject([{ path: file, position: Buffer.byteLength(content) }]);
  });

  it('refuses PATHS when the config has two file sources (exit 78); other commands take no PATHS', async () => {
    const { dir, config } = await setup(`
[sources.more]
type = "file"
include = ["/nonexistent/*.log"]
`);
    const result = await runCli(['replay', '--config', config, join(dir, 'in', 'a.log')]);
    expect(result.code).toBe(78);
    expect(result.stderr).toMatch(/^replay: PATHS need exactly one source of type "file" to replace its include; the config has 2 \(logs, more\)$/m);
    const validate = await runCli(['validate', '--config', config, 'extra']);
    expect(validate.code).toBe(1);
    expect(validate.stderr).toMatch(/unknown command "validate extra"/);
  });

  it('exits 1 and says why when lines cannot be delivered', async () => {
    const { dir, config } = await setup();
    // The sink's output path is a directory: every write fails, every line is undelivered.
    await mkdir(join(dir, 'out', 'all.txt'), { recursive: true });
    await writeFile(join(dir, 'in', 'a.log'), lines('x', 10).join('\n') + '\n');
    const result = await runCli(['replay', '--config', config, join(dir, 'in', 'a.log')]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/replay done: 10 lines/);
    expect(result.stderr).toMatch(/replay failed: 10 events could not be delivered/);
  });

  it('prints periodic one-line progress on stderr off a TTY, and refuses a bad interval', async () => {
    const { dir, config } = await setup();
    await writeFile(join(dir, 'in', 'a.log'), lines('x', 20_000).join('\n') + '\n');
    const result = await runCli(['replay', '--config', config, '--progress-interval-secs', '0.001', join(dir, 'in', 'a.log')]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/^replay progress: \d+% \([\d.]+ [KM]iB \/ [\d.]+ [KM]iB\), \d+ lines, \d+ lines\/s, ETA \S+$/m);
    expect(result.stderr).toMatch(/replay done: 20000 lines/);

    const bad = await runCli(['replay', '--config', config, '--progress-interval-secs', 'x']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--progress-interval-secs takes a number of seconds/);
  });
});

describe('replay progress display', () => {
  function fake(isTTY: boolean) {
    const written: string[] = [];
    const stream = { isTTY, write: (text: string) => written.push(text) > 0 };
    let now = 0;
    let counts = { lines: 0, bytes: 0 };
    const progress = new ReplayProgress(stream, () => counts, 10_000, 1000, () => now);
    return {
      written,
      progress,
      advance(ms: number, lines: number, bytes: number) {
        now += ms;
        counts = { lines, bytes };
      },
    };
  }

  it('off a TTY: one line per tick with percent, bytes, lines/s and ETA', () => {
    const f = fake(false);
    f.advance(2000, 100, 2400); // 2500 of 10000 bytes (line bytes + one delimiter each) in 2 s
    f.progress.tick();
    expect(f.written).toEqual(['replay progress: 25% (2.4 KiB / 9.8 KiB), 100 lines, 50 lines/s, ETA 6s\n']);
    f.progress.stop();
    expect(f.written).toHaveLength(1);
  });

  it('on a TTY: a bar redrawn in place, erased at the end; never 100% before the end', () => {
    const f = fake(true);
    f.advance(1000, 50, 4950);
    f.progress.tick();
    f.advance(1000, 100, 20_000);
    f.progress.tick();
    f.progress.stop();
    expect(f.written[0]).toBe(`\r[${'#'.repeat(15)}${' '.repeat(15)}]  50% 4.9 KiB / 9.8 KiB, 50 lines, 50 lines/s, ETA 1s\x1b[K`);
    expect(f.written[1]).toMatch(/^\r\[#{30}\]  99% /);
    expect(f.written[2]).toBe('\r\x1b[K');
  });

  it('formats sizes and durations', () => {
    expect([formatBytes(512), formatBytes(1536), formatBytes(5 * 1024 ** 3)]).toEqual(['512 B', '1.5 KiB', '5.0 GiB']);
    expect([formatDuration(0.2), formatDuration(75), formatDuration(7322)]).toEqual(['1s', '1m15s', '2h02m']);
  });
});

describe('logwasm replay to a batching sink', () => {
  it('does not wait for batch.timeout_secs at the end: once every file is read, the last partial request goes out', async () => {
    const otlp = await startOtlpReceiver();
    onTestFinished(() => otlp.close());
    const { logs, config } = await writeLogsConfig(
      () => `[sinks.otlp]
type = "opentelemetry"
inputs = ["logs"]
endpoint = ${tomlString(otlp.url)}
batch.max_events = 1000
batch.timeout_secs = 3600
`,
    );
    await writeFile(join(logs, 'a.log'), lines('last', 7).join('\n') + '\n');
    // Without expediting, the 7 records would wait an hour for more: the test would time out.
    const result = await runCli(['replay', '--config', config]);
    expect(result.code, result.stderr).toBe(0);
    expect(otlp.records.map((r) => r.body)).toEqual(lines('last', 7));
  });
});
