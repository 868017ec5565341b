/**
 * A worker that dies (its thread exits mid-batch; not a hang, not a trap) fails only its batch:
 * the transform retries the batch one line per task on fresh workers, and only the line that
 * kills a worker again reaches the failure policy (`worker_failed`). Real workers: the compiled
 * worker wrapped by test/support/wasm-dying-worker.mjs, which exits its thread on a marked line.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { ComponentContext } from '../src/components.js';
import type { LineBatch } from '../src/event.js';
import { Telemetry, type LogRecord } from '../src/telemetry.js';
import { wasmTransform, type WasmTransformConfig } from '../src/transforms/wasm/index.js';
import { fromBatchLayout, toBatchLayout } from './support/wasm-fixtures.js';
import { ECHO_BODY, guestWat, watBytes } from './support/wasm-wat.js';
import { wasmConfig } from './support/wasm-config.js';

const DYING_WORKER = fileURLToPath(new URL('./support/wasm-dying-worker.mjs', import.meta.url));
const KILL = 'kill-this-worker';
const encoder = new TextEncoder();
const decoder = new TextDecoder();

async function setup(overrides: Partial<WasmTransformConfig>): Promise<{ process: (lines: string[]) => Promise<{ out: string[]; dropped: string[] }>; telemetry: Telemetry; logs: LogRecord[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'logwasm-death-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  const module = join(dir, 'echo.wasm');
  await writeFile(module, await watBytes(guestWat(ECHO_BODY)));
  const logs: LogRecord[] = [];
  const telemetry = new Telemetry((r) => logs.push(r), 'debug');
  const context: ComponentContext = { id: 'echo', dataDir: '/nonexistent', mode: 'replay', telemetry };
  const config: WasmTransformConfig = wasmConfig(module, { workerScript: DYING_WORKER, ...overrides });
  const transform = wasmTransform.build(config, context);
  onTestFinished(() => transform.stop());
  await transform.start();
  const texts = (batch: LineBatch | null | undefined): string[] => (batch ? fromBatchLayout(batch.data, batch.offsets).map((l) => decoder.decode(l)) : []);
  return {
    telemetry,
    logs,
    async process(lines) {
      const { data, offsets } = toBatchLayout(lines.map((l) => encoder.encode(l)));
      const result = await transform.process({ data, offsets, meta: { sourceId: 'app', sourceType: 'file', file: '/f', host: 'h', timestampMs: 0, format: 'text' } });
      return { out: texts(result.out), dropped: texts(result.dropped) };
    },
  };
}

describe('a worker that dies mid-batch', () => {
  const lines = ['{"n":1}', '{"n":2}', `{"n":3,"msg":"${KILL}"}`, '{"n":4} é', '{"n":5}'];

  it('fails only the line that kills a worker again when retried alone; the rest go through', async () => {
    const t = await setup({});
    const { out } = await t.process(lines);
    // Default policy: the poison line is forwarded unchanged, every other line went through the plugin.
    expect(out).toEqual(lines);
    expect(t.telemetry.counter('wasm_batch_retries_total', 'echo')).toBe(1);
    expect(t.telemetry.counter('wasm_line_failures_total_worker_failed', 'echo')).toBe(1);
    expect(t.telemetry.counter('wasm_line_failures_total_timeout', 'echo') ?? 0).toBe(0);
    const failure = t.logs.find((l) => l.message.includes('line 2 killed its worker'));
    expect(failure, JSON.stringify(t.logs.map((l) => l.message))).toBeDefined();
    // The pool replaced the dead workers: the next batch runs whole, with no retry.
    expect((await t.process(['{"after":true}'])).out).toEqual(['{"after":true}']);
    expect(t.telemetry.counter('wasm_batch_retries_total', 'echo')).toBe(1);
  });

  it('with drop_on_error and reroute_dropped, exactly the poison line goes to ID.dropped', async () => {
    const t = await setup({ dropOnError: true, rerouteDropped: true, poolSize: 1 });
    const { out, dropped } = await t.process(lines);
    expect(out).toEqual(lines.filter((l) => !l.includes(KILL)));
    expect(dropped).toEqual([lines[2]]);
    expect(t.telemetry.counter('wasm_line_failures_total_worker_failed', 'echo')).toBe(1);
  });
});
