import { statSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkpointsPath, parseCheckpoints } from '../src/sources/file/checkpoints.js';
import { crc64Ecma182 } from '../src/sources/file/fingerprint.js';
import { buildFileSource, fileConfig, fileTempDir, type RecordingDownstream } from './support/file-harness.js';
import { pollUntil } from './support/poll.js';

const FAST = { pollIntervalMs: 50, checkpointIntervalMs: 50 };

function linesSeen(downstream: RecordingDownstream, n: number): Promise<string[]> {
  return pollUntil(`${n} lines downstream`, () => (downstream.lines().length >= n ? downstream.lines() : undefined), {
    describe: () => JSON.stringify(downstream.lines()),
  });
}

/** Vector's checkpoints.json as lib/file-source/src/checkpointer.rs writes it (serde, state version "1"). */
function vectorCheckpoints(entries: string[]): string {
  return `{"version":"1","checkpoints":[${entries.join(',')}]}`;
}

describe("Vector's checkpoints.json", () => {
  it('parses dev_inode and first_lines_checksum entries exactly (u64 beyond 2^53), skips legacy forms', () => {
    const text = vectorCheckpoints([
      '{"fingerprint":{"dev_inode":[2049,18446744073709551615]},"position":10,"modified":"2024-05-06T07:08:09.123456789Z"}',
      '{"fingerprint":{"first_lines_checksum":18446744073709551557},"position":20,"modified":"2024-05-06T07:08:09Z"}',
      '{"fingerprint":{"checksum":12345},"position":30,"modified":"2024-05-06T07:08:09Z"}',
      '{"fingerprint":{"unknown":7},"position":40,"modified":"2024-05-06T07:08:09Z"}',
    ]);
    const parsed = [...parseCheckpoints(text).entries()];
    expect(parsed.map(([key, c]) => [key, c.position])).toEqual([
      ['device_and_inode:2049:18446744073709551615', 10],
      ['checksum:18446744073709551557', 20],
    ]);
    expect(parsed[0]![1].modifiedMs).toBe(Date.parse('2024-05-06T07:08:09.123Z'));
  });

  it('device_and_inode: resumes where Vector stopped, then rewrites the file in logwasm format', async () => {
    const dir = await fileTempDir();
    const dataDir = path.join(dir, 'data');
    const file = path.join(dir, 'app.log');
    await writeFile(file, 'read by vector\nnew 1\n');
    const { dev, ino } = statSync(file);
    await mkdir(path.join(dataDir, 'in'), { recursive: true });
    await writeFile(
      checkpointsPath(dataDir, 'in'),
      vectorCheckpoints([`{"fingerprint":{"dev_inode":[${dev},${ino}]},"position":15,"modified":"${new Date().toISOString()}"}`]),
    );
    const { source, downstream, telemetry, logs } = buildFileSource(fileConfig([file], { fingerprint: { strategy: 'device_and_inode' } }, FAST), { dataDir });
    await source.start();
    expect(await linesSeen(downstream, 1)).toEqual(['new 1']);
    expect(telemetry.counter('checkpoints_imported_total', 'in')).toBe(1);
    expect(logs.filter((l) => l.event === 'vector_checkpoints_imported')).toHaveLength(1);
    await source.stop();
    const rewritten = JSON.parse(await readFile(checkpointsPath(dataDir, 'in'), 'utf8')) as { version: unknown; checkpoints: Array<{ position: number }> };
    expect(rewritten.version).toBe(1);
    expect(rewritten.checkpoints.map((c) => c.position)).toEqual([21]);
  });

  it('checksum: a first_lines_checksum Vector computed for the file matches logwasm\'s fingerprint', async () => {
    const dir = await fileTempDir();
    const dataDir = path.join(dir, 'data');
    const file = path.join(dir, 'app.log');
    await writeFile(file, 'header line\nseen\nnot yet\n');
    const checksum = crc64Ecma182(new TextEncoder().encode('header line\n'));
    await mkdir(path.join(dataDir, 'in'), { recursive: true });
    await writeFile(
      checkpointsPath(dataDir, 'in'),
      vectorCheckpoints([`{"fingerprint":{"first_lines_checksum":${checksum}},"position":17,"modified":"${new Date().toISOString()}"}`]),
    );
    const { source, downstream } = buildFileSource(fileConfig([file], {}, FAST), { dataDir });
    await source.start();
    expect(await linesSeen(downstream, 1)).toEqual(['not yet']);
  });
});
