import { execFileSync } from 'node:child_process';
import { appendFileSync, writeFileSync } from 'node:fs';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildFileSource, fileConfig, fileTempDir, type RecordingDownstream } from './support/file-harness.js';
import { pollUntil } from './support/poll.js';

const FAST = { pollIntervalMs: 50, checkpointIntervalMs: 50 };

function linesSeen(downstream: RecordingDownstream, n: number): Promise<string[]> {
  return pollUntil(`${n} lines downstream`, () => (downstream.lines().length >= n ? downstream.lines() : undefined), {
    describe: () => JSON.stringify(downstream.lines()),
  });
}

describe('file source: bad input', () => {
  it('passes invalid UTF-8 and NUL bytes through as bytes', async () => {
    const dir = await fileTempDir();
    const file = path.join(dir, 'app.log');
    const weird = Buffer.from([0xff, 0xfe, 0x00, 0x41, 0xc3, 0x28, 0x00]);
    writeFileSync(file, Buffer.concat([Buffer.from('first\n'), weird, Buffer.from('\n\0\n')]));
    const { source, downstream } = buildFileSource(fileConfig([file], {}, { ...FAST, readChunkBytes: 3 }), { dataDir: path.join(dir, 'data') });
    await source.start();
    await linesSeen(downstream, 3);
    expect(downstream.rawLines()).toEqual([Buffer.from('first'), weird, Buffer.from([0])]);
  });

  it('discards a 50 MiB line with the default max_line_bytes and reads the next line intact, without buffering it', async () => {
    const dir = await fileTempDir();
    const file = path.join(dir, 'big.log');
    writeFileSync(file, 'before\n');
    const mib = Buffer.alloc(1024 * 1024, 'x');
    for (let i = 0; i < 50; i++) appendFileSync(file, mib);
    appendFileSync(file, '\nafter\n');
    const { source, downstream, telemetry } = buildFileSource(fileConfig([file], {}, FAST), { dataDir: path.join(dir, 'data') });
    const baseline = process.memoryUsage().arrayBuffers;
    let peak = baseline;
    await source.start();
    await pollUntil('both short lines', () => {
      peak = Math.max(peak, process.memoryUsage().arrayBuffers);
      return downstream.lines().length >= 2;
    }, { describe: () => `${downstream.lines().length} lines, peak arrayBuffers +${peak - baseline} bytes`, timeoutMs: 60_000 });
    expect(downstream.lines()).toEqual(['before', 'after']);
    expect(telemetry.counter('file_lines_discarded_total', 'in')).toBe(1);
    // Holding the line would take 50 MiB; the source keeps one read buffer (256 KiB + max_line_bytes).
    expect(peak - baseline).toBeLessThan(20 * 1024 * 1024);
  });

  it('ignores a directory and a FIFO matching the glob, and reads a symlink to a file', async () => {
    const dir = await fileTempDir();
    const logs = path.join(dir, 'logs');
    await mkdir(logs);
    await mkdir(path.join(logs, 'subdir.log'));
    execFileSync('mkfifo', [path.join(logs, 'pipe.log')]);
    await writeFile(path.join(dir, 'target.txt'), 'via symlink\n');
    await symlink(path.join(dir, 'target.txt'), path.join(logs, 'link.log'));
    await writeFile(path.join(logs, 'plain.log'), 'plain\n');
    const { source, downstream, telemetry, logs: records } = buildFileSource(fileConfig([path.join(logs, '*.log')], { globMinimumCooldownMs: 50 }, FAST), {
      dataDir: path.join(dir, 'data'),
    });
    await source.start();
    expect((await linesSeen(downstream, 2)).sort()).toEqual(['plain', 'via symlink']);
    // A few more scans pass over the directory and the FIFO without error.
    const scans = telemetry.counter('files_added_total', 'in');
    appendFileSync(path.join(logs, 'plain.log'), 'more\n');
    await linesSeen(downstream, 3);
    expect(telemetry.counter('files_added_total', 'in')).toBe(scans);
    expect(records.filter((r) => r.level === 'error')).toEqual([]);
  });

  // Root ignores file modes, so the chmod 000 case (test/file-source.test.ts) is skipped there; a
  // link to /proc/self/mem is a regular file whose first read fails (EIO) for root too.
  it.runIf(process.getuid?.() === 0 && process.platform === 'linux')('logs a file whose read fails once and reads the others (as root)', async () => {
    const dir = await fileTempDir();
    await symlink('/proc/self/mem', path.join(dir, 'bad.log'));
    await writeFile(path.join(dir, 'good.log'), 'good\n');
    const { source, downstream, telemetry, logs } = buildFileSource(fileConfig([path.join(dir, '*.log')], { globMinimumCooldownMs: 20 }, FAST), {
      dataDir: path.join(dir, 'data'),
    });
    await source.start();
    expect(await linesSeen(downstream, 1)).toEqual(['good']);
    appendFileSync(path.join(dir, 'good.log'), 'again\n');
    await linesSeen(downstream, 2);
    await pollUntil('several failed opens', () => telemetry.counter('file_open_errors_total', 'in') >= 1);
    expect(telemetry.counter('file_open_errors_total', 'in')).toBe(1);
    expect(logs.filter((l) => l.event === 'file_open_failed')).toHaveLength(1);
  });
});
