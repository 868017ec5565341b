import { appendFileSync, statSync } from 'node:fs';
import { chmod, mkdir, readFile, rename, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkpointsPath, loadCheckpoints } from '../src/sources/file/checkpoints.js';
import { buildFileSource, fileConfig, fileTempDir, RecordingDownstream } from './support/file-harness.js';
import { pollUntil, settledFlag } from './support/poll.js';

/** Small knobs so a handful of lines crosses chunk and batch edges and tests run fast. */
const FAST = { pollIntervalMs: 50, checkpointIntervalMs: 50 };

async function checkpointOf(dataDir: string, file: string): Promise<number | undefined> {
  const { checkpoints, problem } = await loadCheckpoints(checkpointsPath(dataDir, 'in'));
  if (problem !== undefined) throw new Error(problem);
  return [...checkpoints.values()].find((c) => c.path === file)?.position;
}

function linesSeen(downstream: RecordingDownstream, n: number): Promise<string[]> {
  return pollUntil(`${n} lines downstream`, () => (downstream.lines().length >= n ? downstream.lines() : undefined), {
    describe: () => JSON.stringify(downstream.lines()),
  });
}

describe('file source: replay', () => {
  it('reads every file to its end, emits a last line without newline, finishes once all is acked, writes no checkpoint', async () => {
    const dir = await fileTempDir();
    const dataDir = path.join(dir, 'data');
    await writeFile(path.join(dir, 'a.log'), 'a1\na2\n');
    await writeFile(path.join(dir, 'b.log'), 'b1\nb2 no newline');
    await writeFile(path.join(dir, 'c.txt'), 'not matched\n');
    const { source, downstream } = buildFileSource(fileConfig([path.join(dir, '*.log')], {}, FAST), { dataDir, mode: 'replay' });
    downstream.hold();
    await source.start();
    const finished = settledFlag(source.finished());
    await pollUntil('4 lines held', () => downstream.lines().length === 4, { describe: () => JSON.stringify(downstream.lines()) });
    expect(finished.settled).toBe(false);
    downstream.releaseAll();
    await source.finished();
    expect(downstream.lines().sort()).toEqual(['a1', 'a2', 'b1', 'b2 no newline']);
    const meta = downstream.batches.find((b) => b.meta.file.endsWith('b.log'))!.meta;
    expect(meta).toMatchObject({ sourceId: 'in', sourceType: 'file', file: path.join(dir, 'b.log'), host: os.hostname(), format: 'text' });
    await source.stop();
    await expect(readFile(checkpointsPath(dataDir, 'in'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('file source: tail', () => {
  it('emits lines byte-exact with multibyte UTF-8 cut at every read-chunk edge', async () => {
    const dir = await fileTempDir();
    const file = path.join(dir, 'app.log');
    const lines = ['héllo', '日本語のログ', '', '🙂🙂 emoji', 'tab\tand\r', 'x'.repeat(40)];
    await writeFile(file, lines.map((l) => l + '\n').join(''));
    const { source, downstream } = buildFileSource(fileConfig([file], {}, { ...FAST, readChunkBytes: 3, maxBatchLines: 2 }), { dataDir: dir });
    await source.start();
    await linesSeen(downstream, lines.length);
    expect(downstream.rawLines()).toEqual(lines.map((l) => Buffer.from(l)));
    expect(downstream.batches.every((b) => b.offsets.length - 1 <= 2)).toBe(true);
  });

  it('sees appended lines and picks up a new matching file while running', async () => {
    const dir = await fileTempDir();
    const first = path.join(dir, 'one.log');
    await writeFile(first, 'one-1\n');
    const { source, downstream } = buildFileSource(fileConfig([path.join(dir, '*.log')], { globMinimumCooldownMs: 200 }, FAST), {
      dataDir: path.join(dir, 'data'),
    });
    await source.start();
    await linesSeen(downstream, 1);
    appendFileSync(first, 'one-2\none-');
    await linesSeen(downstream, 2);
    appendFileSync(first, '3\n');
    await writeFile(path.join(dir, 'two.log'), 'two-1\n');
    await writeFile(path.join(dir, 'two.txt'), 'not matched\n');
    await linesSeen(downstream, 4);
    expect(downstream.lines().sort()).toEqual(['one-1', 'one-2', 'one-3', 'two-1']);
  });

  it('resumes after a restart without re-sending or skipping lines', async () => {
    const dir = await fileTempDir();
    const dataDir = path.join(dir, 'data');
    const file = path.join(dir, 'app.log');
    await writeFile(file, 'l1\nl2\n');
    const first = buildFileSource(fileConfig([file], {}, FAST), { dataDir });
    await first.source.start();
    await linesSeen(first.downstream, 2);
    await first.source.stop();
    await first.source.finished();
    expect(await checkpointOf(dataDir, file)).toBe(6);

    appendFileSync(file, 'l3\nl4\n');
    const second = buildFileSource(fileConfig([file], {}, FAST), { dataDir });
    await second.source.start();
    await linesSeen(second.downstream, 2);
    await second.source.stop();
    expect(second.downstream.lines()).toEqual(['l3', 'l4']);
    expect(await checkpointOf(dataDir, file)).toBe(12);
  });

  it('ignore_checkpoints reads from read_from again', async () => {
    const dir = await fileTempDir();
    const dataDir = path.join(dir, 'data');
    const file = path.join(dir, 'app.log');
    await writeFile(file, 'l1\n');
    const first = buildFileSource(fileConfig([file], {}, FAST), { dataDir });
    await first.source.start();
    await linesSeen(first.downstream, 1);
    await first.source.stop();
    const second = buildFileSource(fileConfig([file], { ignoreCheckpoints: true }, FAST), { dataDir });
    await second.source.start();
    expect(await linesSeen(second.downstream, 1)).toEqual(['l1']);
  });

  it('advances the checkpoint only over the prefix of acknowledged batches', async () => {
    const dir = await fileTempDir();
    const dataDir = path.join(dir, 'data');
    const file = path.join(dir, 'app.log');
    const other = path.join(dir, 'other.log');
    await writeFile(file, 'aa\nbb\ncc\n');
    await writeFile(other, '');
    const { source, downstream } = buildFileSource(fileConfig([path.join(dir, '*.log')], {}, { ...FAST, maxBatchLines: 1 }), { dataDir });
    downstream.hold();
    await source.start();
    await pollUntil('3 batches held', () => downstream.heldCount === 3, { describe: () => `${downstream.heldCount} held` });
    // Batches 2 and 3 acknowledged, batch 1 still out.
    downstream.release([2, 1]);
    // A line of another file, acknowledged after those: once its checkpoint is on disk, the same
    // write shows what app.log's checkpoint was after the two out-of-order acks.
    appendFileSync(other, 'o1\n');
    await pollUntil('4 batches held', () => downstream.heldCount === 4, { describe: () => `${downstream.heldCount} held` });
    downstream.release([3]);
    await pollUntil('other.log checkpointed', async () => (await checkpointOf(dataDir, other)) === 3);
    expect(await checkpointOf(dataDir, file)).toBe(0);
    // stop() waits for the batch still in flight.
    const stopped = settledFlag(source.stop());
    await pollUntil('stop has begun waiting', () => true);
    expect(stopped.settled).toBe(false);
    downstream.release([0]);
    await source.stop();
    expect(await checkpointOf(dataDir, file)).toBe(9);
  });

  it('stop() sends the last line without newline and checkpoints past it', async () => {
    const dir = await fileTempDir();
    const dataDir = path.join(dir, 'data');
    const file = path.join(dir, 'app.log');
    await writeFile(file, 'done\npartial');
    const { source, downstream } = buildFileSource(fileConfig([file], {}, FAST), { dataDir });
    await source.start();
    await linesSeen(downstream, 1);
    expect(downstream.lines()).toEqual(['done']);
    await source.stop();
    await source.finished();
    expect(downstream.lines()).toEqual(['done', 'partial']);
    expect(await checkpointOf(dataDir, file)).toBe(12);
  });

  it('sends a last line without newline once the file has been quiet, and what is appended later as a new line', async () => {
    const dir = await fileTempDir();
    const dataDir = path.join(dir, 'data');
    const file = path.join(dir, 'app.log');
    await writeFile(file, 'done\nno newline yet');
    const { source, downstream } = buildFileSource(fileConfig([file], {}, { ...FAST, partialLineFlushMs: 300 }), { dataDir });
    await source.start();
    expect(await linesSeen(downstream, 2)).toEqual(['done', 'no newline yet']);
    await pollUntil('checkpoint past the flushed line', async () => (await checkpointOf(dataDir, file)) === 19);
    appendFileSync(file, ' - rest\n');
    expect(await linesSeen(downstream, 3)).toEqual(['done', 'no newline yet', ' - rest']);
  });

  it('stop() does not send a line cut by a read when the rest of it is already in the file', async () => {
    const dir = await fileTempDir();
    const dataDir = path.join(dir, 'data');
    const file = path.join(dir, 'app.log');
    await writeFile(file, 'aaaa\nbbbb\n');
    const config = fileConfig([file], {}, { ...FAST, readChunkBytes: 7, maxInFlightBatches: 1 });
    const first = buildFileSource(config, { dataDir });
    first.downstream.hold();
    await first.source.start();
    // The first read ("aaaa\nbb") filled the window of one batch; "bb" is held, cut by the read.
    await pollUntil('first batch held', () => first.downstream.heldCount === 1);
    const stopped = first.source.stop();
    first.downstream.releaseAll();
    await stopped;
    expect(first.downstream.lines()).toEqual(['aaaa']);
    expect(await checkpointOf(dataDir, file)).toBe(5);
    const second = buildFileSource(config, { dataDir });
    await second.source.start();
    expect(await linesSeen(second.downstream, 1)).toEqual(['bbbb']);
  });

  it('pauses reading when the bytes in flight reach maxInFlightBytes, whatever the batch count allows', async () => {
    const dir = await fileTempDir();
    const dataDir = path.join(dir, 'data');
    const file = path.join(dir, 'app.log');
    await writeFile(file, 'line-001\nline-002\nline-003\nline-004\nline-005\n');
    // One 8-byte line per read and per batch; 100 batches may be in flight, but only 10 bytes.
    const config = fileConfig([file], {}, { ...FAST, readChunkBytes: 9, maxBatchLines: 1, maxInFlightBatches: 100, maxInFlightBytes: 10 });
    const first = buildFileSource(config, { dataDir });
    first.downstream.hold();
    await first.source.start();
    // 8 bytes in flight: under the limit, one more read; 16: over it, reading waits for acks.
    await pollUntil('two batches held', () => first.downstream.heldCount === 2);
    const stopped = first.source.stop();
    first.downstream.releaseAll();
    await stopped;
    expect(first.downstream.lines()).toEqual(['line-001', 'line-002']);
    expect(await checkpointOf(dataDir, file)).toBe(18);
    const second = buildFileSource(config, { dataDir });
    await second.source.start();
    expect(await linesSeen(second.downstream, 3)).toEqual(['line-003', 'line-004', 'line-005']);
  });

  it('follows a rename rotation: the old file is read to its end, the new one from 0, nothing lost or repeated', async () => {
    const dir = await fileTempDir();
    const file = path.join(dir, 'app.log');
    await writeFile(file, 'old-1\n');
    const { source, downstream } = buildFileSource(fileConfig([file], { globMinimumCooldownMs: 100 }, FAST), { dataDir: path.join(dir, 'data') });
    await source.start();
    await linesSeen(downstream, 1);
    const oldInode = statSync(file).ino;
    // Synchronous, so the source cannot look in between: the writer still appends to the old file
    // after the rename, then the new file appears at the path.
    const rotated = path.join(dir, 'app.log.1');
    appendFileSync(file, 'old-2\n');
    await rename(file, rotated);
    appendFileSync(rotated, 'old-3\n');
    appendFileSync(file, 'new-1\nnew-2\n');
    expect(statSync(file).ino).not.toBe(oldInode);
    await linesSeen(downstream, 5);
    appendFileSync(file, 'new-3\n');
    await linesSeen(downstream, 6);
    expect(downstream.lines()).toEqual(['old-1', 'old-2', 'old-3', 'new-1', 'new-2', 'new-3']);
    const byFile = downstream.batches.map((b) => path.basename(b.meta.file));
    expect(byFile.at(-1)).toBe('app.log');
  });

  it('keeps following a file rotated to another matched name, and a restart re-reads neither file', async () => {
    const dir = await fileTempDir();
    const dataDir = path.join(dir, 'data');
    const file = path.join(dir, 'app.log');
    const rotated = path.join(dir, 'app.log.1');
    const include = [path.join(dir, 'app.log*')];
    await writeFile(file, 'old-1\n');
    const first = buildFileSource(fileConfig(include, { globMinimumCooldownMs: 100 }, FAST), { dataDir });
    await first.source.start();
    await linesSeen(first.downstream, 1);
    const oldInode = statSync(file).ino;
    await rename(file, rotated);
    appendFileSync(file, 'new-1\n');
    expect(statSync(file).ino).not.toBe(oldInode);
    await linesSeen(first.downstream, 2);
    appendFileSync(rotated, 'old-2\n');
    await linesSeen(first.downstream, 3);
    await first.source.stop();
    expect(first.downstream.lines()).toEqual(['old-1', 'new-1', 'old-2']);
    const old2 = first.downstream.batches.find((b) => b.data.byteLength === 5 && Buffer.from(b.data).toString() === 'old-2');
    expect(old2?.meta.file).toBe(rotated);
    expect(await checkpointOf(dataDir, rotated)).toBe(12);
    expect(await checkpointOf(dataDir, file)).toBe(6);

    appendFileSync(file, 'new-2\n');
    const second = buildFileSource(fileConfig(include, {}, FAST), { dataDir });
    await second.source.start();
    await linesSeen(second.downstream, 1);
    await second.source.stop();
    expect(second.downstream.lines()).toEqual(['new-2']);
  });

  it('finishes reading a file deleted while open', async () => {
    const dir = await fileTempDir();
    const file = path.join(dir, 'app.log');
    await writeFile(file, 'x1\n');
    const { source, downstream, telemetry } = buildFileSource(fileConfig([path.join(dir, '*.log')], { globMinimumCooldownMs: 100 }, FAST), {
      dataDir: path.join(dir, 'data'),
    });
    await source.start();
    await linesSeen(downstream, 1);
    const { rmSync } = await import('node:fs');
    appendFileSync(file, 'x2\nx3');
    rmSync(file);
    await linesSeen(downstream, 3);
    expect(downstream.lines()).toEqual(['x1', 'x2', 'x3']);
    await pollUntil('file unwatched', () => telemetry.counter('files_unwatched_total', 'in') === 1);
  });

  it('reads a truncated file again from its start', async () => {
    const dir = await fileTempDir();
    const file = path.join(dir, 'app.log');
    await writeFile(file, 'before-1\nbefore-2\n');
    const { source, downstream, telemetry } = buildFileSource(fileConfig([file], {}, FAST), { dataDir: path.join(dir, 'data') });
    await source.start();
    await linesSeen(downstream, 2);
    const inode = statSync(file).ino;
    await truncate(file, 0);
    await pollUntil('truncation noticed', () => telemetry.counter('files_truncated_total', 'in') === 1);
    appendFileSync(file, 'after\n');
    await linesSeen(downstream, 3);
    expect(statSync(file).ino).toBe(inode);
    expect(downstream.lines()).toEqual(['before-1', 'before-2', 'after']);
  });

  it('reports a corrupt checkpoint file, falls back to read_from and rewrites it', async () => {
    const dir = await fileTempDir();
    const dataDir = path.join(dir, 'data');
    const file = path.join(dir, 'app.log');
    await writeFile(file, 'l1\nl2\n');
    await mkdir(path.join(dataDir, 'in'), { recursive: true });
    await writeFile(checkpointsPath(dataDir, 'in'), '{"version":1,"checkpoints":[{"trunc');
    const { source, downstream, telemetry, logs } = buildFileSource(fileConfig([file], {}, FAST), { dataDir });
    await source.start();
    expect(await linesSeen(downstream, 2)).toEqual(['l1', 'l2']);
    expect(telemetry.counter('checkpoint_errors_total', 'in')).toBe(1);
    expect(logs.filter((l) => l.event === 'checkpoints_unusable')).toHaveLength(1);
    await source.stop();
    expect(await checkpointOf(dataDir, file)).toBe(6);
  });

  it('discards an oversize line with a counted warning and reads the next line intact', async () => {
    const dir = await fileTempDir();
    const file = path.join(dir, 'app.log');
    await writeFile(file, `short\n${'z'.repeat(100)}\nnext ok\n`);
    const { source, downstream, telemetry, logs } = buildFileSource(fileConfig([file], { maxLineBytes: 20 }, { ...FAST, readChunkBytes: 7 }), {
      dataDir: path.join(dir, 'data'),
    });
    await source.start();
    expect(await linesSeen(downstream, 2)).toEqual(['short', 'next ok']);
    expect(telemetry.counter('file_lines_discarded_total', 'in')).toBe(1);
    expect(logs.filter((l) => l.event === 'line_too_long' && l.level === 'warn')).toHaveLength(1);
  });

  it('read_from = end skips what a new file already holds and reads what is appended', async () => {
    const dir = await fileTempDir();
    const file = path.join(dir, 'app.log');
    await writeFile(file, 'old\n');
    const { source, downstream } = buildFileSource(fileConfig([file], { readFrom: 'end' }, FAST), { dataDir: path.join(dir, 'data') });
    await source.start();
    appendFileSync(file, 'new\n');
    expect(await linesSeen(downstream, 1)).toEqual(['new']);
  });

  it('keeps a bounded number of batches in flight and still delivers everything', async () => {
    const dir = await fileTempDir();
    const file = path.join(dir, 'app.log');
    const lines = Array.from({ length: 40 }, (_, i) => `l${String(i).padStart(2, '0')}`);
    await writeFile(file, lines.map((l) => l + '\n').join(''));
    const downstream = new RecordingDownstream();
    let outstanding = 0;
    let maxOutstanding = 0;
    const acks: Array<() => void> = [];
    const emit = downstream.emit;
    const slow = new RecordingDownstream();
    Object.assign(slow, {
      emit: (batch: Parameters<typeof emit>[0]) => {
        void emit(batch);
        outstanding++;
        maxOutstanding = Math.max(maxOutstanding, outstanding);
        return new Promise<void>((resolve) => acks.push(() => (outstanding--, resolve())));
      },
    });
    // Lines of 4 bytes, reads of 8 bytes: one read makes at most 2 batches of 1 line.
    const { source } = buildFileSource(fileConfig([file], {}, { ...FAST, readChunkBytes: 8, maxBatchLines: 1, maxInFlightBatches: 2 }), {
      dataDir: path.join(dir, 'data'),
      downstream: slow,
    });
    await source.start();
    await pollUntil(
      'all 40 lines acked one at a time',
      () => {
        acks.shift()?.();
        return downstream.lines().length === 40 && outstanding === 0;
      },
      { describe: () => `${downstream.lines().length} lines, ${outstanding} outstanding` },
    );
    expect(downstream.lines()).toEqual(lines);
    // The window is 2; the read that found the window with one free slot may add one more batch.
    expect(maxOutstanding).toBeLessThanOrEqual(3);
  });

  it.skipIf(process.getuid?.() === 0)('logs an unreadable file once and reads the others', async () => {
    const dir = await fileTempDir();
    const locked = path.join(dir, 'locked.log');
    await writeFile(locked, 'secret\n');
    await chmod(locked, 0o000);
    await writeFile(path.join(dir, 'open.log'), 'visible\n');
    const { source, downstream, telemetry } = buildFileSource(fileConfig([path.join(dir, '*.log')], { globMinimumCooldownMs: 50 }, FAST), {
      dataDir: path.join(dir, 'data'),
    });
    await source.start();
    expect(await linesSeen(downstream, 1)).toEqual(['visible']);
    expect(telemetry.counter('file_open_errors_total', 'in')).toBe(1);
  });
});
