import { appendFileSync, copyFileSync, existsSync, statSync, utimesSync } from 'node:fs';
import { rename, truncate, writeFile } from 'node:fs/promises';
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

describe('file source: rotation', () => {
  it('copytruncate: truncation restarts at 0 on the same inode, the copy is not read, a restart re-reads nothing', async () => {
    const dir = await fileTempDir();
    const dataDir = path.join(dir, 'data');
    const file = path.join(dir, 'app.log');
    const include = [path.join(dir, 'app.log*')];
    await writeFile(file, 'old-1\nold-2\n');
    const first = buildFileSource(fileConfig(include, { globMinimumCooldownMs: 50 }, FAST), { dataDir });
    await first.source.start();
    await linesSeen(first.downstream, 2);
    const inode = statSync(file).ino;
    copyFileSync(file, path.join(dir, 'app.log.1'));
    await truncate(file, 0);
    await pollUntil('truncation noticed', () => first.telemetry.counter('files_truncated_total', 'in') === 1);
    appendFileSync(file, 'new-1\nnew-2\n');
    await linesSeen(first.downstream, 4);
    expect(statSync(file).ino).toBe(inode);
    await first.source.stop();
    expect(first.downstream.lines()).toEqual(['old-1', 'old-2', 'new-1', 'new-2']);

    appendFileSync(file, 'new-3\n');
    const second = buildFileSource(fileConfig(include, {}, FAST), { dataDir });
    await second.source.start();
    expect(await linesSeen(second.downstream, 1)).toEqual(['new-3']);
  });

  it('rotate_wait_secs: a rotated file is given up once the wait is over, even if not read to its end', async () => {
    const dir = await fileTempDir();
    const file = path.join(dir, 'app.log');
    const lines = Array.from({ length: 20 }, (_, i) => `l${i}`);
    await writeFile(file, lines.map((l) => l + '\n').join(''));
    const { source, downstream, telemetry } = buildFileSource(
      fileConfig([file], { rotateWaitSecs: 0, globMinimumCooldownMs: 50 }, { ...FAST, maxBatchLines: 1, maxInFlightBatches: 1, readChunkBytes: 4 }),
      { dataDir: path.join(dir, 'data') },
    );
    downstream.hold();
    await source.start();
    await pollUntil('window full', () => downstream.heldCount >= 1);
    const inode = statSync(file).ino;
    await rename(file, path.join(dir, 'app.log.1'));
    await writeFile(file, 'fresh\n');
    expect(statSync(file).ino).not.toBe(inode);
    await pollUntil('rotate wait elapsed', () => telemetry.counter('files_rotate_wait_elapsed_total', 'in') === 1);
    downstream.releaseAll();
    await pollUntil('fresh file read', () => downstream.lines().includes('fresh'), { describe: () => JSON.stringify(downstream.lines()) });
    const old = downstream.lines().filter((l) => l !== 'fresh');
    expect(old.length).toBeLessThan(lines.length);
    expect(old).toEqual(lines.slice(0, old.length));
  });

  it('remove_after_secs: a file read to its end and fully acknowledged is deleted', async () => {
    const dir = await fileTempDir();
    const file = path.join(dir, 'app.log');
    await writeFile(file, 'a\nb\n');
    const { source, downstream, telemetry } = buildFileSource(fileConfig([file], { removeAfterSecs: 0 }, FAST), { dataDir: path.join(dir, 'data') });
    await source.start();
    await pollUntil('file removed', () => !existsSync(file) && telemetry.counter('files_removed_total', 'in') === 1);
    expect(downstream.lines()).toEqual(['a', 'b']);
  });

  it('ignore_older_secs: files not modified for longer are not read', async () => {
    const dir = await fileTempDir();
    const old = path.join(dir, 'old.log');
    await writeFile(old, 'stale\n');
    const hourAgo = Date.now() / 1000 - 3600;
    utimesSync(old, hourAgo, hourAgo);
    await writeFile(path.join(dir, 'new.log'), 'fresh\n');
    const { source, downstream } = buildFileSource(fileConfig([path.join(dir, '*.log')], { ignoreOlderSecs: 60 }, FAST), { dataDir: path.join(dir, 'data') });
    await source.start();
    expect(await linesSeen(downstream, 1)).toEqual(['fresh']);
    // The new file's batch came after the scan passed over the old one: nothing more will come from it.
    appendFileSync(path.join(dir, 'new.log'), 'fresh-2\n');
    expect(await linesSeen(downstream, 2)).toEqual(['fresh', 'fresh-2']);
  });

  it.each([
    [true, 'older file first'],
    [false, 'files in path order, a turn each'],
  ])('oldest_first = %s: %s', async (oldestFirst) => {
    const dir = await fileTempDir();
    const older = path.join(dir, 'b.log');
    const newer = path.join(dir, 'a.log');
    const lines = (p: string): string => Array.from({ length: 50 }, (_, i) => `${p}${String(i).padStart(2, '0')}\n`).join('');
    await writeFile(older, lines('b'));
    const past = Date.now() / 1000 - 600;
    utimesSync(older, past, past);
    await writeFile(newer, lines('a'));
    const { source, downstream } = buildFileSource(
      fileConfig([path.join(dir, '*.log')], { oldestFirst, maxReadBytes: 1 }, { ...FAST, readChunkBytes: 16 }),
      { dataDir: path.join(dir, 'data') },
    );
    await source.start();
    const got = await linesSeen(downstream, 100);
    const firstB = got.findIndex((l) => l.startsWith('b'));
    const lastB = got.findLastIndex((l) => l.startsWith('b'));
    if (oldestFirst) expect([firstB, lastB]).toEqual([0, 49]);
    else expect(got[0]!.startsWith('a') && firstB < 49).toBe(true);
  });
});
