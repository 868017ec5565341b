/**
 * What the file source does while nothing is written: quiet files are walked once per
 * `quietPollIntervalMs` instead of every `pollIntervalMs`, and the periodic rescan of an unchanged
 * directory does not go through its files. Both were most of the idle CPU of 1,000 tailed files.
 * The counts asserted are upper bounds over a window (a slow machine only walks less), or waited
 * for with pollUntil.
 */
import { appendFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { FileSource } from '../src/sources/file/index.js';
import { buildFileSource, fileConfig, fileTempDir } from './support/file-harness.js';
import { pollUntil } from './support/poll.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('file source: idle', () => {
  it('walks quiet files once per quiet interval, reads a write at once, and polls every interval again while a file is active', async () => {
    const dir = await fileTempDir();
    for (const name of ['a', 'b', 'c']) writeFileSync(path.join(dir, `${name}.log`), `${name}1\n`);
    const idleAfterMs = 1500;
    const { source, downstream } = buildFileSource(
      fileConfig([path.join(dir, '*.log')], {}, { pollIntervalMs: 25, quietPollIntervalMs: 60_000, idleAfterMs, checkpointIntervalMs: 50 }),
      { dataDir: path.join(dir, 'data') },
    );
    const files = source as FileSource;
    await source.start();
    await pollUntil('3 lines', () => downstream.lines().length >= 3);

    // Every file quiet: after the walk that finds it so, none for the next minute.
    await sleep(idleAfterMs + 500);
    const quietFrom = files.pollWalks;
    await sleep(1500);
    expect(files.pollWalks - quietFrom).toBeLessThanOrEqual(1);

    // A write is read through its watch event, not by the poll; the file is then active, and the
    // poll walks every 25 ms again (about 60 walks before it is idle once more).
    appendFileSync(path.join(dir, 'b.log'), 'b2\n');
    await pollUntil('the appended line', () => downstream.lines().includes('b2'));
    const activeFrom = files.pollWalks;
    await pollUntil('the poll walking again', () => files.pollWalks - activeFrom >= 10, { timeoutMs: 10_000 });
  }, 30_000);

  it('rescans an unchanged directory without going through its files, and still picks up a new file', async () => {
    const dir = await fileTempDir();
    for (const name of ['a', 'b']) writeFileSync(path.join(dir, `${name}.log`), `${name}1\n`);
    const { source, downstream } = buildFileSource(fileConfig([path.join(dir, '*.log')], { globMinimumCooldownMs: 20 }, { pollIntervalMs: 25, checkpointIntervalMs: 50 }), {
      dataDir: path.join(dir, 'data'),
    });
    const files = source as FileSource;
    await source.start();
    await pollUntil('2 lines', () => downstream.lines().length >= 2);
    await sleep(300);
    // About 50 rescans in a second, of which at most the first goes through the paths again.
    const from = files.rescanWalks;
    await sleep(1000);
    expect(files.rescanWalks - from).toBeLessThanOrEqual(1);

    writeFileSync(path.join(dir, 'c.log'), 'c1\n');
    await pollUntil('the new file read', () => downstream.lines().includes('c1'));
    expect(files.rescanWalks).toBeGreaterThan(from);
  }, 30_000);
});
