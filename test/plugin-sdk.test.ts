/**
 * Plugins built on plugins/sdk-rust (redact, sampler): the committed .wasm files, their golden
 * fixtures through every entry point (process_batch_packed, process_batch and per-line process_log), their options, and
 * one run through the wasm transform in real workers.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { ComponentContext } from '../src/components.js';
import { PluginAbiError } from '../src/errors.js';
import { Telemetry } from '../src/telemetry.js';
import { wasmTransform } from '../src/transforms/wasm/index.js';
import { PluginRunner } from '../src/wasm-memory/runner.js';
import { compileModuleSync, instantiate, moduleExports, moduleImports } from '../src/wasm-memory/wasm-api.js';
import { fromBatchLayout, toBatchLayout } from './support/wasm-fixtures.js';
import { linesFixtures, pluginWasm } from './support/wasm-plugin-fixtures.js';
import { wasmConfig } from './support/wasm-config.js';

const decoder = new TextDecoder();
const SDK_PLUGINS = ['redact', 'sampler'] as const;

function load(name: string): ReturnType<typeof compileModuleSync> {
  return compileModuleSync(new Uint8Array(readFileSync(pluginWasm(name))));
}

describe.each(SDK_PLUGINS)('the committed %s.wasm', (name) => {
  const module = load(name);

  it('imports nothing and exports the full ABI v1 surface from export_plugin!', () => {
    expect(moduleImports(module)).toEqual([]);
    const exports = instantiate(module).exports as Record<string, (...args: number[]) => unknown>;
    const arities = Object.fromEntries(
      ['alloc', 'dealloc', 'process_log', 'process_batch', 'process_batch_packed', 'init', 'logwasm_result', 'logwasm_abi_version'].map((n) => [
        n,
        exports[n]?.length,
      ]),
    );
    expect(arities).toEqual({
      alloc: 1,
      dealloc: 2,
      process_log: 2,
      process_batch: 3,
      process_batch_packed: 3,
      init: 2,
      logwasm_result: 0,
      logwasm_abi_version: 0,
    });
    expect(moduleExports(module).find((e) => e.name === 'memory')?.kind).toBe('memory');
  });

  it.each(linesFixtures(name).map((c) => [c.name, c] as const))('fixture %s, batched (both layouts) and per line', (_case, fixture) => {
    expect(fixture.expected, `${fixture.dir}/expected is missing`).toBeDefined();
    const { data, offsets } = toBatchLayout(fixture.input);
    const perLine = new PluginRunner(module, { initOptions: fixture.options }).processBatch(data, offsets, 'per_line');
    expect(perLine.failures).toEqual([]);
    expect(fromBatchLayout(perLine.data, perLine.offsets)).toEqual(fixture.expected);
    expect(perLine.dropped).toBe(fixture.input.length - fixture.expected!.length);
    for (const [layout, usePackedBatch] of [['packed', true], ['records', false]] as const) {
      const batchedRunner = new PluginRunner(module, { initOptions: fixture.options, usePackedBatch });
      expect(batchedRunner.batchLayout).toBe(layout);
      const batched = batchedRunner.processBatch(data, offsets);
      expect(batched.batched, layout).toBe(true);
      expect(batched.failures, layout).toEqual([]);
      expect(fromBatchLayout(batched.data, batched.offsets), layout).toEqual(fixture.expected);
      expect(batched.dropped, layout).toBe(perLine.dropped);
    }
  });

  it('refuses unknown options at init, with the plugin\'s message', () => {
    let caught: unknown;
    try {
      new PluginRunner(module, { initOptions: '{"nonsense":1}', label: 'transforms.t' });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(PluginAbiError);
    expect((caught as PluginAbiError).message).toContain('unknown option "nonsense"');
  });
});

describe('sampler decisions', () => {
  const module = load('sampler');
  const fixture = linesFixtures('sampler').find((c) => c.name === 'default_tiers')!;
  const parsed = fixture.input.map((l) => {
    try {
      return JSON.parse(decoder.decode(l)) as Record<string, unknown>;
    } catch {
      return undefined;
    }
  });

  it('keeps every vip line and decides the same for the same key and tier', () => {
    const runner = new PluginRunner(module);
    const kept = new Set<number>();
    fixture.input.forEach((line, i) => {
      const outcome = runner.processBatch(line, Uint32Array.of(0, line.byteLength));
      if (outcome.offsets.length > 1) kept.add(i);
    });
    const decisions = new Map<string, boolean>();
    parsed.forEach((record, i) => {
      if (record === undefined) return;
      const tier = record['vip'] === true ? 'vip' : String(record['x-user-tier'] ?? (record['headers'] as Record<string, unknown> | undefined)?.['x-user-tier'] ?? '');
      if (tier === 'vip') expect(kept.has(i), `vip line ${i}`).toBe(true);
      const key = `${String(record['user_id'])}/${tier}`;
      const seen = decisions.get(key);
      if (seen !== undefined) expect(kept.has(i), `line ${i} (${key})`).toBe(seen);
      decisions.set(key, kept.has(i));
    });
    const pro = parsed.filter((r, i) => r?.['x-user-tier'] === 'pro' && kept.has(i)).length;
    expect(pro).toBeGreaterThan(0);
    expect(pro).toBeLessThan(50);
  });
});

describe('redact through the wasm transform in real workers', () => {
  it('masks with the options of the transform table', async () => {
    const telemetry = new Telemetry(() => undefined, 'error');
    const context: ComponentContext = { id: 'redact', dataDir: '/nonexistent', mode: 'replay', telemetry };
    const transform = wasmTransform.build(
      wasmConfig(pluginWasm('redact'), { options: { card_mask: '<card>', email_mask: '<email>' } }),
      context,
    );
    onTestFinished(() => transform.stop());
    await transform.start();
    const lines = ['pay 4111 1111 1111 1111 from a@example.com', 'nothing'].map((l) => new TextEncoder().encode(l));
    const { data, offsets } = toBatchLayout(lines);
    const meta = { sourceId: 's', sourceType: 'file', file: '/f', host: 'h', timestampMs: 1, format: 'text' as const };
    const result = await transform.process({ data, offsets, meta });
    expect(fromBatchLayout(result.out!.data, result.out!.offsets).map((l) => decoder.decode(l))).toEqual(['pay <card> from <email>', 'nothing']);
    expect(telemetry.snapshot()).toEqual({});
  });
});
