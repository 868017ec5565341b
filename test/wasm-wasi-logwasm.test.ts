/**
 * `wasi = true` for an ABI v1 plugin: plugins/wasi-tagger (Rust, logwasm_sdk, built for
 * wasm32-wasi with Debian's toolchain) reads its word list with std::fs in `init`, through the
 * real transform in real workers. It works with the list's directory preopened; it is refused at
 * start without `wasi = true`; reading the list from outside the preopens fails at start.
 */
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { ComponentContext } from '../src/components.js';
import { ConfigReader } from '../src/config/reader.js';
import type { ConfigProblem } from '../src/errors.js';
import type { LineBatch } from '../src/event.js';
import { inspectPlugin, pluginCommand } from '../src/plugin-inspect.js';
import { Telemetry } from '../src/telemetry.js';
import { WASM_GUEST_OUTPUT_TOTAL } from '../src/transforms/wasm/events.js';
import { wasmTransform } from '../src/transforms/wasm/index.js';
import { ABI_VERSION, REQUIRED_FUNCTIONS, instantiatePlugin } from '../src/wasm-memory/abi.js';
import { compileModuleSync, moduleExports, moduleImports } from '../src/wasm-memory/wasm-api.js';
import { WASI_FUNCTIONS, WASI_MODULE, wasiHost } from '../src/wasm-memory/wasi.js';
import { fromBatchLayout, toBatchLayout } from './support/wasm-fixtures.js';
import { ECHO_BODY, guestWat, watBytes } from './support/wasm-wat.js';
import { pluginWasm } from './support/wasm-plugin-fixtures.js';

const TAGGER = pluginWasm('wasi-tagger');
const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface Tagged {
  message: string;
  tags: string[];
}

function setup(table: Record<string, unknown>): { telemetry: Telemetry; start: () => Promise<void>; run: (lines: string[]) => Promise<Tagged[]> } {
  const problems: ConfigProblem[] = [];
  const reader = new ConfigReader('transforms.tag', { module: TAGGER, pool_size: 2, ...table }, problems);
  const config = wasmTransform.parse(reader);
  reader.finish();
  expect(problems.map((p) => p.message)).toEqual([]);
  const telemetry = new Telemetry(() => undefined, 'debug');
  const context: ComponentContext = { id: 'tag', dataDir: '/nonexistent', mode: 'replay', telemetry };
  const transform = wasmTransform.build(config, context);
  onTestFinished(() => transform.stop());
  return {
    telemetry,
    start: () => transform.start(),
    async run(lines) {
      const { data, offsets } = toBatchLayout(lines.map((l) => encoder.encode(l)));
      const batch: LineBatch = { data, offsets, meta: { sourceId: 'app', sourceType: 'file', file: '/f', host: 'h', timestampMs: 0, format: 'text' } };
      const result = await transform.process(batch);
      return (result.out ? fromBatchLayout(result.out.data, result.out.offsets) : []).map((l) => JSON.parse(decoder.decode(l)) as Tagged);
    },
  };
}

/** root/{outside.txt, lists/{words.txt, escape -> ../outside.txt}} */
async function tree(): Promise<{ root: string; lists: string }> {
  const root = await mkdtemp(join(tmpdir(), 'logwasm-wasi-tagger-'));
  onTestFinished(() => rm(root, { recursive: true, force: true }));
  const lists = join(root, 'lists');
  await mkdir(lists);
  await writeFile(join(lists, 'words.txt'), '# words to tag\nerror\n\ntimeout\ndisk\n');
  await writeFile(join(root, 'outside.txt'), 'secret\n');
  await symlink('../outside.txt', join(lists, 'escape'));
  return { root, lists };
}

describe('the committed wasi-tagger.wasm', () => {
  it('exports ABI v1 and imports only WASI functions this host provides, file calls included', () => {
    const module = compileModuleSync(new Uint8Array(readFileSync(TAGGER)));
    const imports = moduleImports(module);
    expect(imports.map((i) => i.name)).toEqual(expect.arrayContaining(['path_open', 'fd_read', 'fd_prestat_get', 'fd_prestat_dir_name']));
    for (const imported of imports) {
      expect(imported.module).toBe(WASI_MODULE);
      expect(WASI_FUNCTIONS).toContain(imported.name);
    }
    const exported = moduleExports(module).map((e) => e.name);
    expect(exported).toEqual(expect.arrayContaining([...Object.keys(REQUIRED_FUNCTIONS), 'init', 'process_batch', 'logwasm_abi_version']));
    expect(ABI_VERSION).toBe(1);
  });

  it('is a reactor: its C constructors (preopen discovery) run once in _initialize, not in every call', async () => {
    const { lists } = await tree();
    const host = wasiHost([{ path: lists, writable: false }]);
    onTestFinished(() => host.close());
    const calls = new Map<string, number>();
    const functions = host.imports[WASI_MODULE]!;
    for (const [name, fn] of Object.entries(functions)) {
      functions[name] = (...args: never[]) => {
        calls.set(name, (calls.get(name) ?? 0) + 1);
        return fn(...args);
      };
    }
    const guest = instantiatePlugin(compileModuleSync(new Uint8Array(readFileSync(TAGGER))), 'tagger', host);
    const discovered = calls.get('fd_prestat_get');
    expect(discovered).toBeGreaterThan(0);
    const options = encoder.encode(JSON.stringify({ words_file: join(lists, 'words.txt') }));
    const ptr = guest.alloc(options.byteLength);
    new Uint8Array(guest.memory.buffer).set(options, ptr);
    expect(guest.init!(ptr, options.byteLength)).toBe(0);
    const memoryBefore = guest.memory.buffer.byteLength;
    for (let i = 0; i < 2000; i++) expect(guest.processLog(ptr, 4)).toBe(0);
    // Without _initialize, wasm-ld runs the constructors at the start of every export: wasi-libc
    // registers the preopens again each time and the heap grows by their names every call.
    expect(calls.get('fd_prestat_get')).toBe(discovered);
    expect(guest.memory.buffer.byteLength).toBe(memoryBefore);
  });
});

describe('logwasm plugin inspect on wasi-tagger.wasm', () => {
  it('says abi = "logwasm" accepts it only with wasi = true', async () => {
    const report = await inspectPlugin(TAGGER);
    expect(report.logwasm.accepted).toBe(false);
    expect(report.logwasm.refusedBecause.join(' ')).toContain('"wasi_snapshot_preview1"."path_open", but the transform does not enable WASI (set wasi = true)');
    expect(report.logwasm.withWasi).toEqual({ accepted: true, refusedBecause: [] });
    expect(report.abiVersion).toBe(1);
    expect(report.cyclonedx.components[0]!.properties).toEqual(
      expect.arrayContaining([
        { name: 'logwasm:abi_logwasm', value: 'refused' },
        { name: 'logwasm:abi_logwasm_wasi', value: 'accepted' },
      ]),
    );
    const out: string[] = [];
    const err: string[] = [];
    expect(await pluginCommand(['inspect', TAGGER], (t) => out.push(t), (t) => err.push(t))).toBe(0);
    expect(err.join('')).toContain('abi = "logwasm" accepts it only with wasi = true');
    expect((JSON.parse(out.join('')) as { logwasm: unknown }).logwasm).toEqual(report.logwasm);
  });

  it('gives no wasi = true verdict for a module that imports nothing', async () => {
    const report = await inspectPlugin(pluginWasm('json_parser'));
    expect(report.logwasm).toEqual({ accepted: true, refusedBecause: [] });
    expect(report.logwasm.withWasi).toBeUndefined();
  });
});

describe('wasi = true with abi = "logwasm", in real workers', () => {
  it('reads the word list from a read-only preopen in init and tags every line', async () => {
    const { lists } = await tree();
    const tagger = setup({ wasi: true, wasi_preopens: [lists], options: { words_file: join(lists, 'words.txt') } });
    await tagger.start();
    const out = await tagger.run(['disk full: error', 'all good', 'timeout after error on disk', 'é timeout 日本']);
    expect(out).toEqual([
      { message: 'disk full: error', tags: ['error', 'disk'] },
      { message: 'all good', tags: [] },
      { message: 'timeout after error on disk', tags: ['error', 'timeout', 'disk'] },
      { message: 'é timeout 日本', tags: ['timeout'] },
    ]);
    expect(tagger.telemetry.counter('wasm_line_failures_total_trap', 'tag') ?? 0).toBe(0);
    // init's eprintln went through WASI fd_write to the host, which counts and logs it.
    expect(tagger.telemetry.counter(WASM_GUEST_OUTPUT_TOTAL, 'tag')).toBeGreaterThanOrEqual(1);
  });

  it('is refused at start without wasi = true, naming the WASI imports', async () => {
    const { lists } = await tree();
    const tagger = setup({ options: { words_file: join(lists, 'words.txt') } });
    await expect(tagger.start()).rejects.toMatchObject({
      code: 'LOGWASM_PLUGIN_ABI',
      message: expect.stringMatching(/"wasi_snapshot_preview1"\."path_open", but the transform does not enable WASI \(set wasi = true\)/),
    });
  });

  it('fails at start when the list is outside the preopens: an absolute path, .. or a symlink out', async () => {
    const { root, lists } = await tree();
    const cases: [string, string][] = [
      [join(root, 'outside.txt'), 'pre-opened'],
      [`${lists}/../outside.txt`, 'Capabilities insufficient'],
      [join(lists, 'escape'), 'Capabilities insufficient'],
    ];
    for (const [path, why] of cases) {
      const tagger = setup({ wasi: true, wasi_preopens: [lists], options: { words_file: path } });
      await expect(tagger.start(), path).rejects.toMatchObject({
        code: 'LOGWASM_PLUGIN_ABI',
        message: expect.stringContaining(`init refused the transform's options: cannot read words_file "${path}"`),
      });
      await expect(tagger.start(), path).rejects.toMatchObject({ message: expect.stringContaining(why) });
    }
  });

  it('still refuses at start, with wasi = true, an import outside the WASI subset, naming it', async () => {
    const { root } = await tree();
    const module = join(root, 'env-import.wasm');
    await writeFile(module, await watBytes(guestWat(ECHO_BODY, { imports: '(import "env" "now" (func (result i32)))' })));
    const tagger = setup({ module, wasi: true });
    await expect(tagger.start()).rejects.toMatchObject({ code: 'LOGWASM_PLUGIN_ABI', message: expect.stringContaining('"env"."now"') });
  });

  it('gives a wasi = true plugin with no preopens no file at all', async () => {
    const { lists } = await tree();
    const tagger = setup({ wasi: true, options: { words_file: join(lists, 'words.txt') } });
    await expect(tagger.start()).rejects.toMatchObject({ code: 'LOGWASM_PLUGIN_ABI', message: expect.stringContaining('pre-opened') });
  });
});
