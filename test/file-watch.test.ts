import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildFileSource, fileConfig, fileTempDir } from './support/file-harness.js';
import { pollUntil } from './support/poll.js';

// Polling and rescans pushed out of the test's reach: only the directory watches can find changes.
const NO_POLL = { globMinimumCooldownMs: 600_000 };
const NO_POLL_INTERNAL = { pollIntervalMs: 50, checkpointIntervalMs: 50, idleAfterMs: 1, idleCheckMs: 600_000 };

describe('file source: directory watches (no polling)', () => {
  it('an append to an idle file, a rotation and a new file are found by watch events alone', async () => {
    const dir = await fileTempDir();
    const file = path.join(dir, 'app.log');
    writeFileSync(file, 'one\n');
    const { source, downstream } = buildFileSource(fileConfig([path.join(dir, '*.log')], NO_POLL, NO_POLL_INTERNAL), {
      dataDir: path.join(dir, 'data'),
    });
    await source.start();
    const seen = (n: number) =>
      pollUntil(`${n} lines`, () => downstream.lines().length >= n, { describe: () => JSON.stringify(downstream.lines()) });
    await seen(1);
    // Idle at once (idleAfterMs 1) and never polled: only the change event can wake it.
    appendFileSync(file, 'two\n');
    await seen(2);
    await rename(file, path.join(dir, 'app.log.1'));
    writeFileSync(file, 'three\n');
    writeFileSync(path.join(dir, 'other.log'), 'four\n');
    await seen(4);
    expect(downstream.lines().slice(0, 2)).toEqual(['one', 'two']);
    expect(downstream.lines().slice(2).sort()).toEqual(['four', 'three']);
  });

  it('** globs: a file in a new subdirectory is found by the watch of that directory', async () => {
    const dir = await fileTempDir();
    const logs = path.join(dir, 'logs');
    mkdirSync(logs);
    const { source, downstream } = buildFileSource(fileConfig([path.join(logs, '**', '*.log')], NO_POLL, NO_POLL_INTERNAL), {
      dataDir: path.join(dir, 'data'),
    });
    await source.start();
    const sub = path.join(logs, 'a', 'b');
    mkdirSync(sub, { recursive: true });
    // Written after the directories exist, possibly before they are watched: the new-directory
    // event rescans once the watch is in place, and the later append comes as a change event.
    writeFileSync(path.join(sub, 'deep.log'), 'deep-1\n');
    await pollUntil('the first line of the new file', () => downstream.lines().includes('deep-1'), { describe: () => JSON.stringify(downstream.lines()) });
    appendFileSync(path.join(sub, 'deep.log'), 'deep-2\n');
    await pollUntil('the appended line', () => downstream.lines().includes('deep-2'), { describe: () => JSON.stringify(downstream.lines()) });
    expect(downstream.lines()).toEqual(['deep-1', 'deep-2']);
  });
});
