import { appendFileSync, readdirSync, readlinkSync, renameSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildFileSource, fileConfig, fileTempDir } from './support/file-harness.js';
import { pollUntil } from './support/poll.js';

const FAST = { pollIntervalMs: 50, checkpointIntervalMs: 50 };

/** Paths this process holds a descriptor on. */
function openPaths(): Set<string> {
  const paths = new Set<string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      paths.add(readlinkSync(`/proc/self/fd/${fd}`));
    } catch {
      // Closed meanwhile (the readdir's own descriptor).
    }
  }
  return paths;
}

describe.runIf(process.platform === 'linux')('file source: a file closed for the open-file limit', () => {
  it('renamed to a name the globs do not match while closed: found by inode, its last lines still read', async () => {
    const dir = await fileTempDir();
    const names = ['a', 'b', 'c', 'd'].map((n) => path.join(dir, `${n}.log`));
    for (const [i, file] of names.entries()) writeFileSync(file, `first ${i}\n`);
    const { source, downstream, telemetry } = buildFileSource(
      fileConfig([path.join(dir, '*.log')], { globMinimumCooldownMs: 50 }, { ...FAST, maxOpenFiles: 1, idleAfterMs: 50 }),
      { dataDir: path.join(dir, 'data') },
    );
    await source.start();
    await pollUntil('the first lines', () => downstream.lines().length >= names.length, { describe: () => JSON.stringify(downstream.lines()) });
    // A file the source has closed (limit 1: at least three of the four are closed).
    const closed = await pollUntil('a tracked file without a descriptor', () => {
      const open = openPaths();
      return names.find((f) => !open.has(f));
    });
    const inode = statSync(closed).ino;
    // Written and rotated away in one go (synchronous calls: no event is handled in between).
    appendFileSync(closed, 'written while closed\n');
    const rotated = `${closed}.1`;
    renameSync(closed, rotated);
    writeFileSync(closed, 'new file\n');
    expect(statSync(rotated).ino).toBe(inode);
    expect(statSync(closed).ino).not.toBe(inode);

    await pollUntil('the line written while closed and the new file', () => {
      const lines = downstream.lines();
      return lines.includes('written while closed') && lines.includes('new file');
    }, { describe: () => `${JSON.stringify(downstream.lines())}, lost ${telemetry.counter('files_lost_while_closed_total', 'in')}` });
    expect(telemetry.counter('files_lost_while_closed_total', 'in')).toBe(0);
    expect(telemetry.counter('files_found_by_inode_total', 'in')).toBe(1);
    const lines = downstream.lines();
    expect(lines.filter((l) => l === 'written while closed')).toHaveLength(1);
    expect(lines.filter((l) => l.startsWith('first ')).sort()).toEqual(names.map((_, i) => `first ${i}`));
    // The old file's lines keep the path they were read under.
    const marker = Buffer.from('written while closed');
    const batch = downstream.batches.find((b) => Buffer.from(b.data).includes(marker));
    expect(batch?.meta.file).toBe(closed);
  });
});
