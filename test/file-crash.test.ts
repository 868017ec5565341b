/**
 * Crash recovery of the file source through the real CLI: `node dist/cli.js` tails a file being
 * written and ships it to a real OTLP receiver; it is killed with SIGKILL while records arrive,
 * restarted, and must deliver every line at least once. The only lines sent twice may be those
 * past the checkpoint that was on disk when it died (sent, not yet durably acknowledged).
 */
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { startCli, writeLogsConfig } from './support/cli.js';
import { startOtlpReceiver } from './support/otlp-receiver.js';
import { pollUntil } from './support/poll.js';

const TOTAL = 20_000;
const BURST = 100;

function line(i: number): string {
  return `crash-line-${String(i).padStart(6, '0')} ${'p'.repeat(i % 40)}`;
}

describe('file source: kill -9 and restart', () => {
  it('delivers every line at least once; duplicates are only lines past the durable checkpoint', async () => {
    const receiver = await startOtlpReceiver();
    onTestFinished(() => receiver.close());
    const { dir, logs, config } = await writeLogsConfig(
      () => `[sinks.otlp]
type = "opentelemetry"
inputs = ["logs"]
endpoint = "\${TEST_OTLP_ENDPOINT}"
encoding = "protobuf"
`,
    );
    const file = join(logs, 'app.log');
    const dataDir = join(dir, 'data');
    const env = { TEST_OTLP_ENDPOINT: receiver.url };
    await writeFile(file, '');

    // The writer keeps appending in bursts while the CLI runs, is killed and restarts.
    let written = 0;
    const writer = (async () => {
      while (written < TOTAL) {
        const n = Math.min(BURST, TOTAL - written);
        const chunk = Array.from({ length: n }, (_, k) => line(written + k) + '\n').join('');
        await appendFile(file, chunk);
        written += n;
        await new Promise((resolve) => setTimeout(resolve, 15));
      }
    })();

    const first = startCli(['--config', config], { env });
    const checkpointFile = join(dataDir, 'logs', 'checkpoints.json');
    const durableOffset = async (): Promise<number> => {
      const saved = JSON.parse(await readFile(checkpointFile, 'utf8')) as { checkpoints: Array<{ position: number }> };
      return saved.checkpoints[0]?.position ?? 0;
    };
    // Mid-stream: records arriving and a first checkpoint on disk, while the writer is still writing.
    await pollUntil('records arriving and a checkpoint on disk', async () => receiver.records.length >= 3000 && (await durableOffset()) > 0, {
      describe: () => `${receiver.describe()}; stderr: ${first.stderr()}`,
      timeoutMs: 60_000,
    });
    first.child.kill('SIGKILL');
    expect(await first.exited).toBe('SIGKILL');
    const receivedBeforeKill = receiver.records.length;
    // What the dead process had made durable: lines before this offset are never sent again.
    const durable = await durableOffset();
    const writtenAtKill = written;

    await writer;
    const second = startCli(['--config', config], { env });
    const bodies = (): string[] => receiver.records.map((r) => String(r.body));
    await pollUntil('every line received', () => new Set(bodies()).size >= TOTAL, {
      describe: () => `${new Set(bodies()).size} distinct of ${TOTAL}; ${receiver.describe()}; stderr: ${second.stderr()}`,
      timeoutMs: 120_000,
    });
    second.child.kill('SIGKILL');
    await second.exited;

    const all = bodies();
    const expected = Array.from({ length: TOTAL }, (_, i) => line(i));
    expect(new Set(all)).toEqual(new Set(expected));
    // Duplicates: only lines at or past the durable offset, and no more than the first run sent past it.
    const offsets = new Map<string, number>();
    let at = 0;
    for (const l of expected) {
      offsets.set(l, at);
      at += Buffer.byteLength(l) + 1;
    }
    const counts = new Map<string, number>();
    for (const b of all) counts.set(b, (counts.get(b) ?? 0) + 1);
    const duplicated = [...counts].filter(([, c]) => c > 1);
    expect(duplicated.every(([l, c]) => c === 2 && offsets.get(l)! >= durable)).toBe(true);
    const sentPastDurable = all.slice(0, receivedBeforeKill).filter((l) => offsets.get(l)! >= durable).length;
    expect(duplicated.length).toBeLessThanOrEqual(sentPastDurable);
    // The kill really happened mid-stream.
    expect(writtenAtKill).toBeLessThan(TOTAL);
  }, 240_000);
});
