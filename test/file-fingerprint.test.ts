import { appendFileSync, copyFileSync, rmSync, statSync } from 'node:fs';
import { open, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { checkpointsPath } from '../src/sources/file/checkpoints.js';
import { checksumFingerprint, crc64Ecma182 } from '../src/sources/file/fingerprint.js';
import { buildFileSource, fileConfig, fileTempDir, type RecordingDownstream } from './support/file-harness.js';
import { pollUntil } from './support/poll.js';

const FAST = { pollIntervalMs: 50, checkpointIntervalMs: 50 };

function linesSeen(downstream: RecordingDownstream, n: number): Promise<string[]> {
  return pollUntil(`${n} lines downstream`, () => (downstream.lines().length >= n ? downstream.lines() : undefined), {
    describe: () => JSON.stringify(downstream.lines()),
  });
}

async function fingerprintOfFile(file: string, lines = 1, ignoredHeaderBytes = 0): Promise<string | null> {
  const handle = await open(file, 'r');
  try {
    return (await checksumFingerprint(handle, { lines, ignoredHeaderBytes, maxBytes: 1024 }))?.checksum ?? null;
  } finally {
    await handle.close();
  }
}

describe('checksum fingerprint', () => {
  it('is CRC-64/ECMA-182, the CRC Vector uses', () => {
    expect(crc64Ecma182(new TextEncoder().encode('123456789'))).toBe(0x6c40df5f0b497347n);
    expect(crc64Ecma182(new Uint8Array(0))).toBe(0n);
  });

  it('hashes the first lines after the ignored header; waits on short files; sees through gzip', async () => {
    const dir = await fileTempDir();
    const f = (name: string): string => path.join(dir, name);
    await writeFile(f('a'), 'first\nsecond a\n');
    await writeFile(f('b'), 'first\nsecond b\n');
    await writeFile(f('short'), 'first without newline');
    await writeFile(f('hdr'), 'HEADER-1first\nx\n');
    await writeFile(f('a.gz'), gzipSync('first\nsecond a\n'));
    const a = await fingerprintOfFile(f('a'));
    expect(a).toBe(crc64Ecma182(new TextEncoder().encode('first\n')).toString());
    expect(await fingerprintOfFile(f('b'))).toBe(a);
    expect(await fingerprintOfFile(f('b'), 2)).not.toBe(await fingerprintOfFile(f('a'), 2));
    expect(await fingerprintOfFile(f('short'))).toBeNull();
    expect(await fingerprintOfFile(f('a'), 3)).toBeNull();
    expect(await fingerprintOfFile(f('hdr'), 1, 8)).toBe(a);
    expect(await fingerprintOfFile(f('a.gz'))).toBe(a);
  });
});

describe('file source: fingerprints', () => {
  it('waits for a file shorter than its fingerprint, then reads it from its start', async () => {
    const dir = await fileTempDir();
    const file = path.join(dir, 'app.log');
    await writeFile(file, 'partial');
    const { source, downstream, telemetry } = buildFileSource(fileConfig([path.join(dir, '*.log')], { globMinimumCooldownMs: 50 }, FAST), {
      dataDir: path.join(dir, 'data'),
    });
    await source.start();
    await pollUntil('file seen as too short', () => telemetry.counter('files_waiting_fingerprint_total', 'in') === 1);
    expect(downstream.lines()).toEqual([]);
    appendFileSync(file, ' line\nnext\n');
    expect(await linesSeen(downstream, 2)).toEqual(['partial line', 'next']);
  });

  it('checksum: a copy of a read file appearing under another matched name is not read again', async () => {
    const dir = await fileTempDir();
    const file = path.join(dir, 'app.log');
    const copy = path.join(dir, 'moved.log');
    await writeFile(file, 'one\ntwo\n');
    const { source, downstream, telemetry } = buildFileSource(fileConfig([path.join(dir, '*.log')], { globMinimumCooldownMs: 50 }, FAST), {
      dataDir: path.join(dir, 'data'),
    });
    await source.start();
    await linesSeen(downstream, 2);
    copyFileSync(file, copy);
    expect(statSync(copy).ino).not.toBe(statSync(file).ino);
    await pollUntil('copy seen as the same file', () => telemetry.counter('files_duplicate_fingerprint_total', 'in') === 1);
    appendFileSync(file, 'three\n');
    await linesSeen(downstream, 3);
    await source.stop();
    expect(downstream.lines()).toEqual(['one', 'two', 'three']);
    const saved = JSON.parse(await readFile(checkpointsPath(path.join(dir, 'data'), 'in'), 'utf8')) as { checkpoints: Array<{ fingerprint: { strategy: string } }> };
    expect(saved.checkpoints.map((c) => c.fingerprint.strategy)).toEqual(['checksum']);
  });

  it('device_and_inode: the same copy is a new file and is read', async () => {
    const dir = await fileTempDir();
    const file = path.join(dir, 'app.log');
    await writeFile(file, 'one\n');
    const { source, downstream } = buildFileSource(
      fileConfig([path.join(dir, '*.log')], { globMinimumCooldownMs: 50, fingerprint: { strategy: 'device_and_inode' } }, FAST),
      { dataDir: path.join(dir, 'data') },
    );
    await source.start();
    await linesSeen(downstream, 1);
    copyFileSync(file, path.join(dir, 'moved.log'));
    expect(await linesSeen(downstream, 2)).toEqual(['one', 'one']);
  });

  it('checksum: a file moved to a new inode while stopped resumes at its checkpoint', async () => {
    const dir = await fileTempDir();
    const dataDir = path.join(dir, 'data');
    const file = path.join(dir, 'app.log');
    const moved = path.join(dir, 'app-moved.log');
    await writeFile(file, 'one\ntwo\n');
    const include = [path.join(dir, '*.log')];
    const first = buildFileSource(fileConfig(include, {}, FAST), { dataDir });
    await first.source.start();
    await linesSeen(first.downstream, 2);
    await first.source.stop();
    const inode = statSync(file).ino;
    copyFileSync(file, moved);
    rmSync(file);
    appendFileSync(moved, 'three\n');
    expect(statSync(moved).ino).not.toBe(inode);
    const second = buildFileSource(fileConfig(include, {}, FAST), { dataDir });
    await second.source.start();
    expect(await linesSeen(second.downstream, 1)).toEqual(['three']);
  });

  it('checksum: two files with the same first line are one file, as Vector documents; lines = 2 tells them apart', async () => {
    const dir = await fileTempDir();
    await writeFile(path.join(dir, 'a.log'), 'same header\na1\n');
    await writeFile(path.join(dir, 'b.log'), 'same header\nb1\n');
    const one = buildFileSource(fileConfig([path.join(dir, '*.log')], {}, FAST), { dataDir: path.join(dir, 'data1') });
    await one.source.start();
    await linesSeen(one.downstream, 2);
    await pollUntil('duplicate reported', () => one.telemetry.counter('files_duplicate_fingerprint_total', 'in') === 1);
    await one.source.stop();
    expect(one.downstream.lines()).toEqual(['same header', 'a1']);

    const two = buildFileSource(fileConfig([path.join(dir, '*.log')], { fingerprint: { strategy: 'checksum', lines: 2, ignoredHeaderBytes: 0 } }, FAST), {
      dataDir: path.join(dir, 'data2'),
    });
    await two.source.start();
    expect((await linesSeen(two.downstream, 4)).sort()).toEqual(['a1', 'b1', 'same header', 'same header']);
  });
});
