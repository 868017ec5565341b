import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import type { ComponentContext, Transform } from '../src/components.js';
import { ConfigReader } from '../src/config/reader.js';
import type { ConfigProblem } from '../src/errors.js';
import type { BatchMeta, LineBatch } from '../src/event.js';
import { Telemetry, type LogRecord } from '../src/telemetry.js';
import { wasmTransform, type WasmTransformConfig } from '../src/transforms/wasm/index.js';
import { JSON_PARSER_WASM, fromBatchLayout, jsonParserFixtures, toBatchLayout } from './support/wasm-fixtures.js';
import { pollUntil } from './support/poll.js';
import { ECHO_BODY, FULL_GUEST_WAT, guestWat, watBytes } from './support/wasm-wat.js';
import { wasmConfig } from './support/wasm-config.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const META: BatchMeta = { sourceId: 'app', sourceType: 'file', file: '/var/log/app.log', host: 'h', timestampMs: 1, format: 'text' };

let scratch: string | undefined;
afterEach(() => {
  if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true });
  scratch = undefined;
});

async function writePlugin(wat: string): Promise<string> {
  scratch ??= mkdtempSync(join(tmpdir(), 'logwasm-wasm-'));
  const path = join(scratch, `plugin-${Math.random().toString(36).slice(2)}.wasm`);
  writeFileSync(path, await watBytes(wat));
  return path;
}

function setup(overrides: Partial<WasmTransformConfig>): { transform: Transform; telemetry: Telemetry; logs: LogRecord[] } {
  const logs: LogRecord[] = [];
  const telemetry = new Telemetry((record) => logs.push(record), 'debug');
  const context: ComponentContext = { id: 'parse', dataDir: '/nonexistent', mode: 'replay', telemetry };
  const config: WasmTransformConfig = wasmConfig(JSON_PARSER_WASM, overrides);
  const transform = wasmTransform.build(config, context);
  onTestFinished(() => transform.stop());
  return { transform, telemetry, logs };
}

function batchOf(lines: (string | Uint8Array)[]): LineBatch {
  const { data, offsets } = toBatchLayout(lines.map((l) => (typeof l === 'string' ? encoder.encode(l) : l)));
  return { data, offsets, meta: { ...META } };
}

function texts(batch: LineBatch | null | undefined): string[] {
  return batch ? fromBatchLayout(batch.data, batch.offsets).map((l) => decoder.decode(l)) : [];
}

// First byte 'T' traps; anything else is echoed.
const TRAP_ON_T = guestWat(`(if (i32.eq (i32.load8_u (local.get $ptr)) (i32.const 84)) (then unreachable)) ${ECHO_BODY}`);

describe('wasm transform over the real json_parser plugin in real workers', () => {
  it('rewrites lines as the golden fixtures say, transferring the batch buffers', async () => {
    const { transform, telemetry } = setup({});
    await transform.start();
    const fixtures = jsonParserFixtures();
    const batches = Array.from({ length: 8 }, () => batchOf(fixtures.map((f) => f.input)));
    const results = await Promise.all(batches.map((b) => transform.process(b)));
    for (const [i, result] of results.entries()) {
      expect(fromBatchLayout(result.out!.data, result.out!.offsets)).toEqual(fixtures.map((f) => f.expected));
      expect(result.out!.meta).toEqual({ ...META, format: 'json' });
      expect(result.dropped ?? null).toBeNull();
      // Zero-copy: the buffers went to a worker by transfer, leaving the sender's detached.
      expect(batches[i]!.data.buffer.byteLength).toBe(0);
      expect(batches[i]!.offsets.buffer.byteLength).toBe(0);
    }
    expect(telemetry.snapshot()).toEqual({});
  });

  it('copies a batch that is a view into a larger buffer instead of taking its neighbours', async () => {
    const { transform } = setup({ poolSize: 1 });
    await transform.start();
    const whole = encoder.encode('NEIGHBOUR{"a":1}notjsonNEIGHBOUR');
    const batch: LineBatch = { data: whole.subarray(9, 23), offsets: Uint32Array.of(0, 7, 14), meta: { ...META } };
    const result = await transform.process(batch);
    expect(texts(result.out)).toEqual(['{"a":1,"log_size_bytes":7}', 'notjson']);
    expect(decoder.decode(whole)).toBe('NEIGHBOUR{"a":1}notjsonNEIGHBOUR');
  });

  it('refuses at start a module that imports anything, and a missing file, with coded errors', async () => {
    const importing = await writePlugin(guestWat(ECHO_BODY, { imports: '(import "env" "now" (func (result i32)))' }));
    await expect(setup({ module: importing }).transform.start()).rejects.toMatchObject({ code: 'LOGWASM_PLUGIN_ABI' });
    await expect(setup({ module: join(tmpdir(), 'no-such-plugin.wasm') }).transform.start()).rejects.toMatchObject({
      code: 'LOGWASM_PLUGIN_LOAD',
    });
  });
});

describe('wasm transform failure policy', () => {
  it('forwards the lines of a trapping plugin unchanged, counts and logs them once', async () => {
    const { transform, telemetry, logs } = setup({ module: await writePlugin(TRAP_ON_T), poolSize: 1 });
    await transform.start();
    const first = await transform.process(batchOf(['a', 'T1', 'b', 'T2']));
    const second = await transform.process(batchOf(['c', 'T3']));
    expect(texts(first.out)).toEqual(['a', 'T1', 'b', 'T2']);
    expect(texts(second.out)).toEqual(['c', 'T3']);
    expect(telemetry.counter('component_errors_total', 'parse')).toBe(3);
    expect(telemetry.counter('wasm_line_failures_total_trap', 'parse')).toBe(3);
    expect(telemetry.counter('component_discarded_events_total', 'parse')).toBe(0);
    const errors = logs.filter((l) => l.event === 'wasm_plugin_failed');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ level: 'error', component: 'parse' });
  });

  it('with drop_on_error and reroute_dropped, sends failed originals to the dropped output', async () => {
    const { transform, telemetry } = setup({ module: await writePlugin(TRAP_ON_T), poolSize: 1, dropOnError: true, rerouteDropped: true });
    await transform.start();
    const result = await transform.process(batchOf(['a', 'T1', 'b', 'T2 é']));
    expect(texts(result.out)).toEqual(['a', 'b']);
    expect(texts(result.dropped)).toEqual(['T1', 'T2 é']);
    expect(telemetry.counter('component_errors_total', 'parse')).toBe(2);
  });

  it('with drop_on_error alone, drops failed lines and counts them as discarded', async () => {
    const { transform, telemetry } = setup({ module: await writePlugin(TRAP_ON_T), poolSize: 1, dropOnError: true });
    await transform.start();
    const result = await transform.process(batchOf(['T only']));
    expect(result.out).toBeNull();
    expect(result.dropped ?? null).toBeNull();
    expect(telemetry.counter('component_discarded_events_total', 'parse')).toBe(1);
  });

  it('terminates a worker stuck in a loop, retries the batch line by line, and fails only the poison line', async () => {
    // 'L' loops forever; 'l' is rewritten to 'ok', so the retried lines show they really ran.
    const looping = guestWat(`
      (if (i32.eq (i32.load8_u (local.get $ptr)) (i32.const 76)) (then (loop $forever (br $forever))))
      (if (i32.eq (i32.load8_u (local.get $ptr)) (i32.const 108)) (then (call $emit (i32.const 512) (i32.const 2)) (return (i32.const 0))))
      ${ECHO_BODY}`, { extra: '(data (i32.const 512) "ok")' });
    const { transform, telemetry, logs } = setup({ module: await writePlugin(looping), poolSize: 1, timeoutMs: 2000 });
    await transform.start();
    const stuck = await transform.process(batchOf(['l before', 'L loops', 'l after']));
    expect(texts(stuck.out)).toEqual(['ok', 'L loops', 'ok']);
    expect(telemetry.counter('wasm_line_failures_total_timeout', 'parse')).toBe(1);
    expect(telemetry.counter('component_errors_total', 'parse')).toBe(1);
    expect(telemetry.counter('wasm_batch_retries_total', 'parse')).toBe(1);
    expect(logs.filter((l) => l.event === 'wasm_worker_failed')).toHaveLength(1);
    expect(logs.find((l) => l.event === 'wasm_plugin_failed')?.message).toContain('line 1');
    const next = await transform.process(batchOf(['{"fresh":true}', 'l']));
    expect(texts(next.out)).toEqual(['{"fresh":true}', 'ok']);
    expect(telemetry.counter('component_errors_total', 'parse')).toBe(1);
  });

  it('with drop_on_error and reroute_dropped, reroutes only the line that hangs', async () => {
    const looping = guestWat(`(if (i32.eq (i32.load8_u (local.get $ptr)) (i32.const 76)) (then (loop $forever (br $forever)))) ${ECHO_BODY}`);
    const { transform } = setup({ module: await writePlugin(looping), poolSize: 1, timeoutMs: 2000, dropOnError: true, rerouteDropped: true });
    await transform.start();
    const result = await transform.process(batchOf(['a', 'L loops', 'b']));
    expect(texts(result.out)).toEqual(['a', 'b']);
    expect(texts(result.dropped)).toEqual(['L loops']);
  });
});

describe('wasm transform config', () => {
  function parse(table: Record<string, unknown>): { config: WasmTransformConfig; problems: string[] } {
    const problems: ConfigProblem[] = [];
    const reader = new ConfigReader('transforms.parse', table, problems);
    const config = wasmTransform.parse(reader);
    reader.finish();
    return { config, problems: problems.map((p) => `${p.component}: ${p.message}`) };
  }

  it('reads every option, accepting Vector\'s old runtime knobs', () => {
    const { config, problems } = parse({
      module: 'plugins/x.wasm',
      options: { level: 3 },
      heap_memory_size: 1048576,
      max_output_bytes: 1000,
      artifact_cache: '/tmp',
      drop_on_error: true,
      reroute_dropped: true,
      pool_size: 3,
      timeout_ms: 5000,
      sha256: 'AB'.repeat(32),
    });
    expect(problems).toEqual([]);
    expect(config).toEqual({
      module: 'plugins/x.wasm',
      options: { level: 3 },
      dropOnError: true,
      rerouteDropped: true,
      poolSize: 3,
      timeoutMs: 5000,
      heapMemorySize: 1048576,
      maxOutputBytes: 1000,
      sha256: 'ab'.repeat(32),
      abi: 'logwasm',
      functionName: '',
      wasi: false,
      hotReload: false,
    });
  });

  it('reads timeout_secs as the older name of timeout_ms, and refuses both at once', () => {
    expect(parse({ module: 'm', timeout_secs: 2.5 }).config.timeoutMs).toBe(2500);
    expect(parse({ module: 'm', timeout_secs: 2, timeout_ms: 100 }).problems).toEqual([
      'transforms.parse: "timeout_secs" and "timeout_ms" both set; keep "timeout_ms"',
    ]);
  });

  it('reports every bad option in one pass', () => {
    const { problems } = parse({ module: 7, options: 'x', pool_size: 0, drop_on_error: 'yes', modul: 'typo', sha256: 'abc', heap_memory_size: 10 });
    expect(problems).toEqual([
      'transforms.parse: invalid value for "module": expected a string, actual: 7',
      'transforms.parse: invalid value for "options": expected a table, actual: "x"',
      'transforms.parse: invalid value for "sha256": expected 64 hex digits, actual: "abc"',
      'transforms.parse: invalid value for "drop_on_error": expected true or false, actual: "yes"',
      'transforms.parse: invalid value for "pool_size": expected a number >= 1, actual: 0',
      'transforms.parse: invalid value for "heap_memory_size": expected a number >= 65536, actual: 10',
      'transforms.parse: unknown key "modul"',
    ]);
  });

  it('requires module', () => {
    expect(parse({}).problems).toEqual(['transforms.parse: missing required key "module"']);
  });
});

describe('wasm transform limits and optional exports, in real workers', () => {
  it('hands options to init in every worker and uses process_batch', async () => {
    const { transform, telemetry } = setup({ module: await writePlugin(FULL_GUEST_WAT), options: { tier: 'pro' }, poolSize: 2 });
    await transform.start();
    const results = await Promise.all([1, 2, 3, 4].map(() => transform.process(batchOf(['P', 'M', 'D', 'x']))));
    for (const result of results) expect(texts(result.out)).toEqual(['{"tier":"pro"}', 'one', 'two', 'x']);
    expect(telemetry.counter('wasm_plugin_dropped_total', 'parse')).toBe(4);
  });

  it('refuses at start a plugin whose init rejects the options', async () => {
    const { transform } = setup({ module: await writePlugin(FULL_GUEST_WAT), options: { long: 'x'.repeat(200) } });
    await expect(transform.start()).rejects.toMatchObject({ code: 'LOGWASM_PLUGIN_ABI', message: expect.stringContaining('options too long') });
  });

  it('fails only the poison line of a batch whose process_batch traps', async () => {
    const { transform, telemetry } = setup({ module: await writePlugin(FULL_GUEST_WAT), poolSize: 1 });
    await transform.start();
    const result = await transform.process(batchOf(['a', 'T trap', 'M']));
    expect(texts(result.out)).toEqual(['a', 'T trap', 'one', 'two']);
    expect(telemetry.counter('wasm_line_failures_total_trap', 'parse')).toBe(1);
  });

  it('caps memory at heap_memory_size: a grow past it fails inside the guest, only that line fails', async () => {
    const grower = guestWat(`
      (if (i32.eq (i32.load8_u (local.get $ptr)) (i32.const 71))
        (then (if (i32.eq (memory.grow (i32.const 40)) (i32.const -1)) (then unreachable))))
      ${ECHO_BODY}`);
    const path = await writePlugin(grower);
    const { transform, telemetry } = setup({ module: path, poolSize: 1, heapMemorySize: 1024 * 1024 });
    await transform.start();
    const result = await transform.process(batchOf(['a', 'G grows 2.5 MiB', 'b']));
    expect(texts(result.out)).toEqual(['a', 'G grows 2.5 MiB', 'b']);
    // A trap, not memory_limit: the grow itself was refused by the engine.
    expect(telemetry.counter('wasm_line_failures_total_trap', 'parse')).toBe(1);
    // The same plugin with room to grow does not fail.
    const roomy = setup({ module: path, poolSize: 1, heapMemorySize: 8 * 1024 * 1024 });
    await roomy.transform.start();
    const fine = await roomy.transform.process(batchOf(['G grows 2.5 MiB']));
    expect(roomy.telemetry.snapshot()).toEqual({});
    expect(texts(fine.out)).toEqual(['G grows 2.5 MiB']);
  });

  it('refuses a module whose initial memory is already past heap_memory_size', async () => {
    const big = guestWat(ECHO_BODY).replace('(memory (export "memory") 1)', '(memory (export "memory") 20)');
    const { transform } = setup({ module: await writePlugin(big), heapMemorySize: 1024 * 1024 });
    await expect(transform.start()).rejects.toMatchObject({ code: 'LOGWASM_PLUGIN_ABI', message: expect.stringContaining('heap_memory_size') });
  });

  it('fails output past max_output_bytes and invalid UTF-8 in workers, forwarding the originals', async () => {
    const { transform, telemetry } = setup({ module: await writePlugin(FULL_GUEST_WAT), poolSize: 1, maxOutputBytes: 8 });
    await transform.start();
    const result = await transform.process(batchOf(['short', 'longer than eight', 'X']));
    expect(texts(result.out)).toEqual(['short', 'longer than eight', 'X']);
    expect(telemetry.counter('wasm_line_failures_total_output_too_large', 'parse')).toBe(1);
    expect(telemetry.counter('wasm_line_failures_total_bad_utf8', 'parse')).toBe(1);
  });

  it('pins the module by sha256: a mismatch refuses to start, showing both hashes', async () => {
    const path = await writePlugin(guestWat(ECHO_BODY));
    const actual = createHash('sha256').update(readFileSync(path)).digest('hex');
    const wrong = '0'.repeat(64);
    const refused = setup({ module: path, sha256: wrong });
    const error = await refused.transform.start().then(
      () => undefined,
      (e: unknown) => e as { code: string; message: string },
    );
    expect(error?.code).toBe('LOGWASM_PLUGIN_ABI');
    expect(error?.message).toContain(actual);
    expect(error?.message).toContain(wrong);
    await expect(setup({ module: path, sha256: actual }).transform.start()).resolves.toBeUndefined();
  });
});

describe('wasm transform hot reload', () => {
  // A guest that answers every line with one constant letter, so outputs show which module ran.
  const constant = (letter: string): string =>
    guestWat(`(call $emit (i32.const 512) (i32.const 1)) (i32.const 0)`, { extra: `(data (i32.const 512) "${letter}")` });

  async function replaceFile(path: string, bytes: Uint8Array): Promise<void> {
    // Write beside, then rename over: what deploy tools do, and never a half-written module.
    const temp = `${path}.tmp`;
    writeFileSync(temp, bytes);
    renameSync(temp, path);
  }

  it('switches new batches to a changed module, refuses a bad one and keeps the old, losing no line', async () => {
    scratch ??= mkdtempSync(join(tmpdir(), 'logwasm-wasm-'));
    const path = join(scratch, 'hot.wasm');
    writeFileSync(path, await watBytes(constant('A')));
    const { transform, telemetry, logs } = setup({ module: path, poolSize: 1, hotReload: true });
    await transform.start();
    expect(texts((await transform.process(batchOf(['x', 'y']))).out)).toEqual(['A', 'A']);

    await replaceFile(path, await watBytes(constant('B')));
    const seen: string[][] = [];
    await pollUntil(
      'batches answered by module B',
      async () => {
        const out = texts((await transform.process(batchOf(['x', 'y']))).out);
        seen.push(out);
        return out[0] === 'B';
      },
      { describe: () => JSON.stringify(seen.slice(-3)) },
    );
    // Every batch was answered whole by one module or the other: nothing lost or mixed.
    for (const out of seen) expect(['AA', 'BB']).toContain(out.join(''));
    expect(telemetry.counter('wasm_module_reloads_total', 'parse')).toBe(1);
    expect(logs.find((l) => l.event === 'wasm_module_reloaded')?.message).toContain('sha256');

    await replaceFile(path, encoder.encode('not wasm at all'));
    await pollUntil('the bad module to be refused', () => telemetry.counter('wasm_reload_refused_total', 'parse') >= 1, {
      describe: () => JSON.stringify(telemetry.snapshot()),
    });
    expect(texts((await transform.process(batchOf(['z']))).out)).toEqual(['B']);
    expect(logs.find((l) => l.event === 'wasm_reload_refused')?.level).toBe('error');
    expect(telemetry.counter('component_errors_total', 'parse')).toBe(0);
  });

  it('finishes a batch already on the old pool while new batches use the new module', async () => {
    scratch ??= mkdtempSync(join(tmpdir(), 'logwasm-wasm-'));
    const path = join(scratch, 'slow.wasm');
    // 'S' spins for a while before answering, so its batch is still running during the reload.
    const slowA = guestWat(
      `(local $i i32)
       (if (i32.eq (i32.load8_u (local.get $ptr)) (i32.const 83))
         (then (loop $spin (local.set $i (i32.add (local.get $i) (i32.const 1))) (br_if $spin (i32.lt_u (local.get $i) (i32.const 300000000))))))
       (call $emit (i32.const 512) (i32.const 1)) (i32.const 0)`,
      { extra: '(data (i32.const 512) "A")' },
    );
    writeFileSync(path, await watBytes(slowA));
    const { transform, telemetry } = setup({ module: path, poolSize: 1, hotReload: true });
    await transform.start();
    const slow = transform.process(batchOf(['S slow', 'x']));
    await replaceFile(path, await watBytes(constant('B')));
    await pollUntil('the reload', () => telemetry.counter('wasm_module_reloads_total', 'parse') >= 1, { describe: () => JSON.stringify(telemetry.snapshot()) });
    expect(texts((await transform.process(batchOf(['n']))).out)).toEqual(['B']);
    expect(texts((await slow).out)).toEqual(['A', 'A']);
  });
});
