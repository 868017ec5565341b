/**
 * The disk buffer through the real CLI (tail mode): the collector is down (503), 100k lines are
 * read and acknowledged into the disk buffer (the file checkpoint reaches the end of the file),
 * logwasm is killed with SIGKILL, then restarted with the collector up: every line arrives, all of
 * them from the disk buffer (the checkpoint says the file was fully read).
 */
import { readFile, stat, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { startCli, tempDir, tomlString } from './support/cli.js';
import { startOtlpReceiver } from './support/otlp-receiver.js';
import { pollUntil } from './support/poll.js';

const TOTAL = 100_000;

function line(i: number): string {
  return `disk-line-${String(i).padStart(6, '0')}`;
}

describe('opentelemetry disk buffer through the CLI', () => {
  it('collector down, 100k lines buffered, SIGKILL, restart with the collector up: every line arrives', async () => {
    const dir = await tempDir('logwasm-disk-buffer-');
    const receiver = await startOtlpReceiver();
    onTestFinished(() => receiver.close());
    receiver.failFor(3_600_000, 503);
    const logs = join(dir, 'logs');
    const file = join(logs, 'app.log');
    const dataDir = join(dir, 'data');
    const config = join(dir, 'vector.toml');
    await mkdir(logs);
    await writeFile(file, Array.from({ length: TOTAL }, (_, i) => line(i) + '\n').join(''));
    const size = (await stat(file)).size;
    await writeFile(
      config,
      `data_dir = ${tomlString(dataDir)}

[sources.logs]
type = "file"
include = [${tomlString(join(logs, '*.log'))}]

[sinks.otlp]
type = "opentelemetry"
inputs = ["logs"]
endpoint = "\${TEST_OTLP_ENDPOINT}"
healthcheck = false

[sinks.otlp.request]
retry_initial_backoff_secs = 0.05
retry_max_duration_secs = 0.5
timeout_secs = 1

[sinks.otlp.buffer]
type = "disk"
max_size = 268435488
`,
    );
    const env = { TEST_OTLP_ENDPOINT: receiver.url };
    const checkpointFile = join(dataDir, 'logs', 'checkpoints.json');
    const durableOffset = async (): Promise<number> => {
      const saved = JSON.parse(await readFile(checkpointFile, 'utf8')) as { checkpoints: Array<{ position: number }> };
      return saved.checkpoints[0]?.position ?? 0;
    };

    const first = startCli(['--config', config], { env });
    // Acknowledged into the disk buffer: the checkpoint reaches the end of the file with nothing delivered.
    await pollUntil('the whole file checkpointed', async () => (await durableOffset()) === size, {
      describe: () => `${receiver.describe()}; stderr: ${first.stderr().slice(-2000)}`,
      timeoutMs: 120_000,
      intervalMs: 100,
    });
    expect(receiver.records).toHaveLength(0);
    first.child.kill('SIGKILL');
    expect(await first.exited).toBe('SIGKILL');

    receiver.failFor(0, 503);
    const second = startCli(['--config', config], { env });
    const distinct = (): Set<string> => new Set(receiver.records.map((r) => String(r.body)));
    await pollUntil('every line received', () => distinct().size >= TOTAL, {
      describe: () => `${distinct().size} distinct of ${TOTAL}; ${receiver.describe().slice(0, 300)}; stderr: ${second.stderr().slice(-2000)}`,
      timeoutMs: 180_000,
      intervalMs: 200,
    });
    second.child.kill('SIGKILL');
    await second.exited;
    expect(receiver.records.length).toBeGreaterThanOrEqual(TOTAL);
    const seen = distinct();
    const absent = Array.from({ length: TOTAL }, (_, i) => line(i)).filter((l) => !seen.has(l));
    expect(absent).toEqual([]);
  }, 400_000);
});
