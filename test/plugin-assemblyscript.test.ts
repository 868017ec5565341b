/**
 * The AssemblyScript plugin (plugins/json-parser-as, npm-only toolchain) passes the same golden
 * fixtures as the Rust json_parser, on its committed .wasm: each alone, then all in one batch
 * twice on one instance (state left by one line must not leak into the next).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PluginRunner } from '../src/wasm-memory/runner.js';
import { compileModuleSync, moduleImports } from '../src/wasm-memory/wasm-api.js';
import { fromBatchLayout, jsonParserFixtures, toBatchLayout } from './support/wasm-fixtures.js';
import { pluginWasm } from './support/wasm-plugin-fixtures.js';

const module = compileModuleSync(new Uint8Array(readFileSync(pluginWasm('json-parser-as'))));
const fixtures = jsonParserFixtures();

describe('the committed json-parser-as.wasm (AssemblyScript)', () => {
  it('imports nothing (no env.abort: built with --use abort=)', () => {
    expect(moduleImports(module)).toEqual([]);
  });

  it.each(fixtures.map((f) => [f.name, f] as const))('json_parser fixture %s', (_name, fixture) => {
    const { data, offsets } = toBatchLayout([fixture.input]);
    const outcome = new PluginRunner(module).processBatch(data, offsets);
    expect(outcome.failures).toEqual([]);
    expect(Buffer.from(fromBatchLayout(outcome.data, outcome.offsets)[0]!).toString('latin1')).toBe(Buffer.from(fixture.expected).toString('latin1'));
  });

  it('passes every fixture in one batch, twice, on one instance', () => {
    const runner = new PluginRunner(module);
    const { data, offsets } = toBatchLayout([...fixtures, ...fixtures].map((f) => f.input));
    const outcome = runner.processBatch(data, offsets);
    expect(outcome.failures).toEqual([]);
    expect(fromBatchLayout(outcome.data, outcome.offsets)).toEqual([...fixtures, ...fixtures].map((f) => f.expected));
    expect(runner.reinstantiations).toBe(0);
  });
});
