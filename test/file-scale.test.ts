import { appendFileSync, readdirSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildFileSource, fileConfig, fileTempDir } from './support/file-harness.js';
import { pollUntil } from './support/poll.js';

const FILES = 2000;
const LIMIT = 64;

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

describe.runIf(process.platform === 'linux')('file source: scale', () => {
  it(`tails ${FILES} files under one glob with at most ${LIMIT} of them open`, async () => {
    const dir = await fileTempDir();
    const logs = path.join(dir, 'logs');
    await mkdir(logs);
    const name = (i: number): string => path.join(logs, `f${String(i).padStart(4, '0')}.log`);
    for (let i = 0; i < FILES; i++) writeFileSync(name(i), `first ${i}\n`);
    const baseline = openFds();
    let peak = baseline;
    const { source, downstream, telemetry } = buildFileSource(
      // Default poll, idle-check and rescan intervals (so the idle CPU figure is the real one), a low
      // descriptor limit and a short idle delay so that most files get closed and reopened.
      fileConfig([path.join(logs, '*.log')], {}, { maxOpenFiles: LIMIT, idleAfterMs: 100 }),
      { dataDir: path.join(dir, 'data') },
    );
    const sample = (): void => {
      peak = Math.max(peak, openFds());
    };
    await source.start();
    sample();
    await pollUntil(`${FILES} first lines`, () => (sample(), downstream.lines().length >= FILES), {
      describe: () => `${downstream.lines().length} lines, peak fds +${peak - baseline}`,
      timeoutMs: 60_000,
    });
    // Every file gets a second line, most of them while closed for being idle.
    for (let i = 0; i < FILES; i++) appendFileSync(name(i), `second ${i}\n`);
    await pollUntil(`${FILES * 2} lines`, () => (sample(), downstream.lines().length >= FILES * 2), {
      describe: () => `${downstream.lines().length} lines, peak fds +${peak - baseline}`,
      timeoutMs: 60_000,
    });
    const lines = downstream.lines();
    expect(new Set(lines).size).toBe(FILES * 2);
    for (const i of [0, 999, FILES - 1]) expect(lines.indexOf(`first ${i}`)).toBeLessThan(lines.indexOf(`second ${i}`));
    expect(telemetry.counter('files_added_total', 'in')).toBe(FILES);
    // The limit, plus a few descriptors of the watcher and of checkpoint writes.
    expect(peak - baseline).toBeLessThanOrEqual(LIMIT + 16);

    // Idle CPU, for the record (no assertion on time): what the process spends with nothing written.
    const before = process.cpuUsage();
    const started = performance.now();
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const used = process.cpuUsage(before);
    const wall = performance.now() - started;
    process.stderr.write(`[file-scale] idle with ${FILES} files: ${(((used.user + used.system) / 1000 / wall) * 100).toFixed(1)}% of one core\n`);
    await source.stop();
  }, 180_000);
});
