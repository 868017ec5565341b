import { rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { checkpointsPath, loadCheckpoints } from '../src/sources/file/checkpoints.js';
import { buildFileSource, fileConfig, fileTempDir, type RecordingDownstream } from './support/file-harness.js';
import { pollUntil } from './support/poll.js';

const FAST = { pollIntervalMs: 50, checkpointIntervalMs: 50 };

function linesSeen(downstream: RecordingDownstream, n: number): Promise<string[]> {
  return pollUntil(`${n} lines downstream`, () => (downstream.lines().length >= n ? downstream.lines() : undefined), {
    describe: () => JSON.stringify(downstream.lines()),
  });
}

const LINES = Array.from({ length: 300 }, (_, i) => `gz line ${i} ${'é'.repeat(i % 7)}`);
const CONTENT = LINES.map((l) => l + '\n').join('');

describe('file source: gzip', () => {
  it('replay reads a matched .gz decompressed, lines cut at small chunk edges', async () => {
    const dir = await fileTempDir();
    await writeFile(path.join(dir, 'app.log.1.gz'), gzipSync(CONTENT));
    const { source, downstream } = buildFileSource(fileConfig([path.join(dir, '*.gz')], {}, { ...FAST, readChunkBytes: 5, maxBatchLines: 7 }), {
      dataDir: path.join(dir, 'data'),
      mode: 'replay',
    });
    await source.start();
    await source.finished();
    expect(downstream.lines()).toEqual(LINES);
  });

  it('tail reads an archive once, checkpoints its decompressed end, and a restart does not read it again', async () => {
    const dir = await fileTempDir();
    const dataDir = path.join(dir, 'data');
    const gz = path.join(dir, 'old.log.gz');
    await writeFile(gz, gzipSync(CONTENT));
    const first = buildFileSource(fileConfig([path.join(dir, '*.gz')], {}, FAST), { dataDir });
    await first.source.start();
    await linesSeen(first.downstream, LINES.length);
    await first.source.stop();
    expect(first.downstream.lines()).toEqual(LINES);
    const { checkpoints } = await loadCheckpoints(checkpointsPath(dataDir, 'in'));
    expect([...checkpoints.values()].map((c) => c.position)).toEqual([Buffer.byteLength(CONTENT)]);

    const second = buildFileSource(fileConfig([path.join(dir, '*'), path.join(dir, '*.gz')], {}, FAST), { dataDir });
    await writeFile(path.join(dir, 'marker.log'), 'marker\n');
    await second.source.start();
    expect(await linesSeen(second.downstream, 1)).toEqual(['marker']);
    await second.source.stop();
    expect(second.downstream.lines()).toEqual(['marker']);
  });

  it('a plain log compressed by rotation (same checksum) is not read again', async () => {
    const dir = await fileTempDir();
    const file = path.join(dir, 'app.log');
    await writeFile(file, CONTENT);
    const { source, downstream, telemetry } = buildFileSource(fileConfig([path.join(dir, 'app.log*')], { globMinimumCooldownMs: 50 }, FAST), {
      dataDir: path.join(dir, 'data'),
    });
    await source.start();
    await linesSeen(downstream, LINES.length);
    await writeFile(path.join(dir, 'app.log.1.gz'), gzipSync(CONTENT));
    rmSync(file);
    await pollUntil('plain file unwatched', () => telemetry.counter('files_unwatched_total', 'in') === 1);
    await writeFile(file, 'after rotation\n');
    await linesSeen(downstream, LINES.length + 1);
    await source.stop();
    expect(downstream.lines()).toEqual([...LINES, 'after rotation']);
  });

  it.runIf(process.platform === 'linux')('replays many archives with few descriptors open', async () => {
    const dir = await fileTempDir();
    const { readdirSync } = await import('node:fs');
    for (let i = 0; i < 40; i++) await writeFile(path.join(dir, `a${String(i).padStart(2, '0')}.log.gz`), gzipSync(`archive ${i} line 1\narchive ${i} line 2\n`));
    const baseline = readdirSync('/proc/self/fd').length;
    let peak = baseline;
    const { source, downstream } = buildFileSource(fileConfig([path.join(dir, '*.gz')], {}, { ...FAST, maxOpenFiles: 4 }), {
      dataDir: path.join(dir, 'data'),
      mode: 'replay',
    });
    const sampler = setInterval(() => (peak = Math.max(peak, readdirSync('/proc/self/fd').length)), 1);
    try {
      await source.start();
      await source.finished();
    } finally {
      clearInterval(sampler);
    }
    expect(new Set(downstream.lines()).size).toBe(80);
    expect(peak - baseline).toBeLessThanOrEqual(4 + 4);
  });
});
